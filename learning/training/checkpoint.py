"""Atomic checkpoints: written to a temporary file in the run directory, then renamed (docs/fidelity.md#checkpoints).

A crash or a kill while writing leaves the previous checkpoint intact, so a run loses at most the
epoch in progress; a failed write (a full disk) removes its temporary file and raises WriteFailure.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from learning.training.run_guard import payload_bytes, signals_held, write_atomically, write_failure

CHECKPOINT_FILE = "checkpoint.pt"
CONFIG_FILE = "config.json"


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, unreadable or does not fit the run; one-line message."""


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """``torch.save`` to a temporary file, flush to disk, then rename over ``path``."""
    path = Path(path)
    try:
        with signals_held():  # a signal inside torch.save would surface as a RuntimeError
            write_atomically(path, lambda handle: torch.save(state, handle))
    except (OSError, RuntimeError) as error:  # a full disk: the previous checkpoint stays as it was
        raise write_failure("the checkpoint", path, payload_bytes(state), error) from None


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` (CPU tensors; the caller moves them)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # a truncated or foreign file
        raise CheckpointError(f"cannot read checkpoint {path}: {type(error).__name__}") from None
