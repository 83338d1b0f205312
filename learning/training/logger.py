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
        rows = parse_metrics_lines(self.metrics_path.read_text(errors="replace"))
        kept = [json.dumps(row) for row in rows if row["epoch"] <= epoch]
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
        append_row(self.metrics_path, json.dumps(row) + "\n")
        if self.wandb_run is not None:
            import wandb

            media = {key: wandb.Video(str(path), format=Path(path).suffix[1:]) for key, path in videos.items()}
            self.wandb_run.log({**metrics, **media}, step=epoch)

    def close(self) -> None:
        if self.wandb_run is not None:
            self.wandb_run.finish()
            self.wandb_run = None


def append_row(path: Path, line: str) -> None:
    """Append one row with one ``write`` on an O_APPEND descriptor (rows of one process never
    interleave); a failed write (a full disk) raises WriteFailure and leaves at most a torn last
    row, which :func:`parse_metrics_lines` drops."""
    from learning.training.run_guard import write_failure

    data = line.encode()
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            written = 0
            while written < len(data):
                written += os.write(descriptor, data[written:])
        finally:
            os.close(descriptor)
    except OSError as error:
        raise write_failure("a metrics row to", path, len(data), error) from None


def parse_metrics_lines(text: str) -> list[dict[str, Any]]:
    """Rows of a metrics file, without a torn row (a kill or a full disk mid-write) and keeping the
    first row of an epoch if one appears twice."""
    rows, epochs = [], set()
    for line in text.splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and isinstance(row.get("epoch"), int) and row["epoch"] not in epochs:
            epochs.add(row["epoch"])
            rows.append(row)
    return rows


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """All rows of a run's ``metrics.jsonl`` (a torn last row of a killed run is left out)."""
    path = Path(run_dir) / METRICS_FILE
    return parse_metrics_lines(path.read_text(errors="replace"))


def is_terminal() -> bool:
    return sys.stderr.isatty()
