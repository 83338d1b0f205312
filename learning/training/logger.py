"""Where metrics go: Weights & Biases, a local JSONL file, and the terminal (docs/fidelity.md#metrics).

W&B runs online when the user is logged in, offline otherwise, and not at all with ``--wandb False``.
The W&B step is the epoch; every metric's default x-axis is ``Train/TotalEnvSteps`` (define_metric)
and ``epoch`` is logged too. The standard W&B environment variables are honoured (WANDB_DIR,
WANDB_PROJECT, WANDB_ENTITY, WANDB_RUN_GROUP, WANDB_TAGS, WANDB_NOTES, WANDB_MODE); a typed flag wins
over them. Every epoch also appends one JSON row to ``metrics.jsonl`` in the run directory, whatever
W&B does, so runs can be compared and plotted without any service. Acting-policy matrices go to the
JSONL row as they are and to W&B, at evaluation epochs, as a heatmap image and a table.

A run's record (learning/sweeps/records.py) keeps the same rows gzip-compressed as
``metrics.jsonl.gz``; :func:`read_metrics` and :func:`run_dirs_under` read either.
"""

from __future__ import annotations

import gzip
import json
import math
import os
import sys
import uuid
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from learning.training.checkpoint import CONFIG_FILE
from learning.training.config import Config
from learning.training.metric_names import STEP_METRIC

METRICS_FILE = "metrics.jsonl"
RECORDED_METRICS_FILE = "metrics.jsonl.gz"
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


def wandb_init_kwargs(config: Config, run_dir: Path, run_id: str, mode: str) -> dict[str, Any]:
    """Arguments of ``wandb.init``: a typed flag wins, then the W&B environment variable, then our
    default. Group: WANDB_RUN_GROUP or ``{experiment}_{env}``; tags: experiment, env and WANDB_TAGS;
    files under WANDB_DIR when set, else the run directory."""
    typed = set(config.explicit_flags)

    def choose(flag: str, variable: str, default: Any) -> Any:
        return getattr(config, flag) if flag in typed else os.environ.get(variable) or default

    extra_tags = [tag.strip() for tag in os.environ.get("WANDB_TAGS", "").split(",") if tag.strip()]
    return dict(
        project=choose("wandb_project", "WANDB_PROJECT", config.wandb_project),
        entity=choose("wandb_entity", "WANDB_ENTITY", config.wandb_entity),
        notes=choose("notes", "WANDB_NOTES", config.notes),
        name=os.environ.get("WANDB_NAME") or config.run_name,
        group=os.environ.get("WANDB_RUN_GROUP") or f"{config.experiment}_{config.env}",
        tags=list(dict.fromkeys([config.experiment, config.env, *extra_tags])),
        dir=os.environ.get("WANDB_DIR") or str(run_dir),
        config=config.to_dict(), id=run_id, resume="allow", mode=mode,
    )


def row_shares(counts: np.ndarray) -> np.ndarray:
    """Acting counts ``[..., T, C]`` as shares of each task's steps (over the last axis); a task without
    steps keeps shares of 0."""
    counts = np.asarray(counts, dtype=float)
    return counts / np.maximum(counts.sum(axis=-1, keepdims=True), 1)


def acting_matrix_media(counts: np.ndarray, epoch: int) -> tuple[Any, Any]:
    """A ``[T, C]`` acting-count matrix as a W&B heatmap image (row shares, epoch in the title) and a
    W&B table with one row per (task, acting policy): steps and share of the task's steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import wandb

    counts = np.asarray(counts, dtype=float)
    shares = row_shares(counts)
    tasks, candidates = shares.shape
    figure, axis = plt.subplots(figsize=(max(3.6, 2.0 + 0.25 * candidates), max(2.8, 1.6 + 0.25 * tasks)),
                                layout="constrained")
    image = axis.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    axis.set(xlabel="acting policy j", ylabel="task i")
    axis.set_title(f"share of task i's steps acted by j\nepoch {epoch}", fontsize=9)
    axis.set_xticks(range(candidates))
    axis.set_yticks(range(tasks))
    axis.tick_params(labelsize=6)
    figure.colorbar(image, ax=axis, fraction=0.046)
    heatmap = wandb.Image(figure)
    plt.close(figure)
    table = wandb.Table(columns=["task", "acting_policy", "steps", "share"],
                        data=[[task, candidate, int(counts[task, candidate]), float(shares[task, candidate])]
                              for task in range(tasks) for candidate in range(candidates)])
    return heatmap, table


class RunLogger:
    """Writes one row of metrics per epoch to W&B and ``metrics.jsonl``."""

    def __init__(self, config: Config, run_dir: Path, resume: bool) -> None:
        self.run_dir = run_dir
        self.metrics_path = run_dir / METRICS_FILE
        self.mode = wandb_mode(config.wandb)
        self.media_every = config.evaluation_frequency
        self.wandb_run = None
        if self.mode != "disabled":
            import wandb

            id_path = run_dir / WANDB_ID_FILE
            run_id = id_path.read_text().strip() if resume and id_path.exists() else uuid.uuid4().hex[:8]
            kwargs = wandb_init_kwargs(config, run_dir, run_id, self.mode)
            Path(kwargs["dir"]).mkdir(parents=True, exist_ok=True)
            self.wandb_run = wandb.init(**kwargs, settings=wandb.Settings(silent=True, console="auto"))
            self.wandb_run.define_metric(STEP_METRIC)
            self.wandb_run.define_metric("epoch")
            self.wandb_run.define_metric("*", step_metric=STEP_METRIC)
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

            media = {key: wandb.Video(str(path), format=Path(path).suffix[1:]) for key, path in videos.items()}  # type: ignore[arg-type]
            if epoch % self.media_every == 0:
                for key, matrix in matrices.items():
                    media[f"{key}/Heatmap"], media[f"{key}/Table"] = acting_matrix_media(matrix, epoch)
            self.wandb_run.log({**metrics, **media, "epoch": epoch}, step=epoch)

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


def metrics_file(run_dir: Path) -> Path | None:
    """A run directory's metrics: the live ``metrics.jsonl``, else a record's ``metrics.jsonl.gz``."""
    for name in (METRICS_FILE, RECORDED_METRICS_FILE):
        if (Path(run_dir) / name).is_file():
            return Path(run_dir) / name
    return None


class MetricsError(ValueError):
    """A metrics file that cannot be read (a truncated or foreign ``.gz``); one-line message."""


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """All rows of a run's metrics file (a torn last row of a killed run is left out); [] without one.
    Raises MetricsError when the file cannot be read or decompressed."""
    path = metrics_file(run_dir)
    if path is None:
        return []
    try:
        data = path.read_bytes()
        if path.name == RECORDED_METRICS_FILE:
            data = gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error).splitlines()[0]
        raise MetricsError(f"cannot read the metrics {path}: {reason or type(error).__name__}") from None
    return parse_metrics_lines(data.decode(errors="replace"))


def run_dirs_under(root: Path) -> list[Path]:
    """``root`` if it is a run directory (``config.json`` and a metrics file), else every run directory
    below it, sorted."""
    root = Path(root)
    if (root / CONFIG_FILE).is_file() and metrics_file(root):
        return [root]
    found = {metrics.parent for name in (METRICS_FILE, RECORDED_METRICS_FILE) for metrics in root.rglob(name)}
    return sorted(run_dir for run_dir in found if (run_dir / CONFIG_FILE).is_file())


def is_terminal() -> bool:
    """Is stderr a terminal that can show a progress bar? A terminal reporting 0 columns or 0 lines
    (e.g. under ``script``; tqdm then draws nothing) gets the line-per-epoch output instead."""
    if not sys.stderr.isatty():
        return False
    try:
        size = os.get_terminal_size(sys.stderr.fileno())
    except OSError:
        return False
    return size.columns > 0 and size.lines > 0
