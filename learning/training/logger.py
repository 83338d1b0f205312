"""Where metrics go: Weights & Biases, a local JSONL file, and the terminal (SPEC §10.2).

W&B runs online when the user is logged in, offline otherwise, and not at all with ``--wandb False``.
The W&B step is the epoch. Every epoch also appends one JSON row to ``metrics.jsonl`` in the run
directory, whatever W&B does, so runs can be compared and plotted without any service.
"""

from __future__ import annotations

import json
import math
import os
import sys
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from learning.training.config import Config

METRICS_FILE = "metrics.jsonl"
WANDB_ID_FILE = "wandb_run_id.txt"


def wandb_mode(enabled: bool) -> str:
    """"disabled" when off; "online" when credentials exist (or WANDB_MODE says so); else "offline"."""
    if not enabled:
        return "disabled"
    if os.environ.get("WANDB_MODE") in ("online", "offline", "disabled"):
        return os.environ["WANDB_MODE"]
    import wandb

    try:
        logged_in = bool(wandb.login(prompt=False, verify=False))
    except Exception:  # any credential problem means: stay offline
        logged_in = False
    return "online" if logged_in else "offline"


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.floating, np.integer)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class RunLogger:
    """Writes one row of metrics per epoch to W&B and ``metrics.jsonl``."""

    def __init__(self, config: Config, run_dir: Path, resume: bool) -> None:
        self.run_dir = run_dir
        self.metrics_path = run_dir / METRICS_FILE
        self.mode = wandb_mode(config.wandb)
        self.wandb_run = None
        if self.mode != "disabled":
            import wandb

            id_path = run_dir / WANDB_ID_FILE
            run_id = id_path.read_text().strip() if resume and id_path.exists() else uuid.uuid4().hex[:8]
            self.wandb_run = wandb.init(
                project=config.wandb_project, entity=config.wandb_entity, name=config.run_name, notes=config.notes,
                config=config.to_dict(), dir=str(run_dir), id=run_id, resume="allow", mode=self.mode,
                settings=wandb.Settings(silent=True, console="off"),
            )
            id_path.write_text(run_id)

    def truncate_after(self, epoch: int) -> None:
        """Drop rows of epochs after ``epoch`` (written by a run that died before its checkpoint)."""
        if not self.metrics_path.exists():
            return
        kept = [line for line in self.metrics_path.read_text().splitlines()
                if line.strip() and json.loads(line)["epoch"] <= epoch]
        temporary = self.metrics_path.with_suffix(".jsonl.tmp")
        temporary.write_text("".join(line + "\n" for line in kept))
        temporary.replace(self.metrics_path)

    def log(self, epoch: int, metrics: dict[str, Any], matrices: dict[str, np.ndarray],
            videos: dict[str, Path] | None = None) -> None:
        """Log scalars to W&B and JSONL; matrices (e.g. the acting-policy matrix) go to the JSONL row;
        videos are logged to W&B and their paths (relative to the run directory) to the JSONL row."""
        videos = videos or {}
        row = {"epoch": epoch, **{key: _jsonable(value) for key, value in metrics.items()},
               **{key: _jsonable(value) for key, value in matrices.items()},
               **{key: str(Path(path).relative_to(self.run_dir)) for key, path in videos.items()}}
        with self.metrics_path.open("a") as handle:
            handle.write(json.dumps(row) + "\n")
        if self.wandb_run is not None:
            import wandb

            media = {key: wandb.Video(str(path), format=Path(path).suffix[1:]) for key, path in videos.items()}
            self.wandb_run.log({**metrics, **media}, step=epoch)

    def close(self) -> None:
        if self.wandb_run is not None:
            self.wandb_run.finish()
            self.wandb_run = None


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """All rows of a run's ``metrics.jsonl``."""
    path = Path(run_dir) / METRICS_FILE
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def is_terminal() -> bool:
    return sys.stderr.isatty()
