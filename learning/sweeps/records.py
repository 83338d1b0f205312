"""A sweep's run records: the part of a sweep that goes into git and outlives the machine.

A sweep folder (``data/sweeps/NAME``) holds checkpoints, replay chunks and W&B files: gigabytes, kept out
of git, and gone with the machine that ran them. A records folder keeps, for every run, exactly what the
tables and figures read, in the sweep folder's layout:

* ``sweep.json``: the manifest entries (label, experiment, env, seed, flags) of the recorded runs;
* ``runs/{run}/config.json``: the run's configuration, byte for byte;
* ``runs/{run}/metrics.jsonl.gz``: its metrics rows, gzip-compressed with a fixed header, so an
  unchanged run gives the same bytes (no diff in git) and a Reacher run of 500 epochs takes about 0.8 MB.

``python -m learning.analysis table|figure|metrics`` read a records folder as they read a sweep folder.
``sweep.py`` updates the grid's records folder (the grid's ``records`` key, or ``--records DIR``) as each
run ends and when it stops; ``python sweep.py GRID --record_only`` does it at any moment, e.g. to commit
the rows a running run has so far. A record is never shortened: a run with fewer
epochs than its record (started again from scratch on a new machine) leaves the record as it is until it
has caught up, and a run made with other flags than its record is refused.
"""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from learning.sweeps.grid import MANIFEST_FILE, RUNS_FOLDER, manifest_lock, read_manifest, save_manifest
from learning.training.checkpoint import CONFIG_FILE
from learning.training.logger import METRICS_FILE, RECORDED_METRICS_FILE, MetricsError, read_metrics
from learning.training.run_guard import write_atomically


class RecordsError(RuntimeError):
    """The records cannot be written; one-line message."""


@dataclass(frozen=True)
class RecordUpdate:
    """What happened to one run's record."""

    run_name: str
    action: str
    """"written", "unchanged", "kept" (the record has more epochs) or "refused" (other flags)."""
    epochs: int
    """Epochs in the record after the update."""
    reason: str = ""

    def describe(self) -> str:
        return f"{self.action:<10}{self.run_name}  ({self.epochs} epochs){f': {self.reason}' if self.reason else ''}"


def compressed_rows(rows: list[dict[str, Any]]) -> bytes:
    """The rows as JSON lines, gzip-compressed with no file name and time in the header (stable bytes)."""
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=9, mtime=0) as handle:
        handle.write("".join(json.dumps(row) + "\n" for row in rows).encode())
    return buffer.getvalue()


def record_run(run_dir: Path, records_dir: Path, entry: dict[str, Any] | None, previous: dict[str, Any] | None
               ) -> RecordUpdate:
    """Write (or keep) the record of the run in ``run_dir``; ``entry`` is its sweep manifest entry,
    ``previous`` its entry in the records' manifest (None: not recorded yet)."""
    name = run_dir.name
    rows = read_metrics(run_dir)
    target = records_dir / RUNS_FOLDER / name
    recorded = read_metrics(target) if target.is_dir() else []
    if previous is not None and entry is not None and previous.get("flags") != entry.get("flags"):
        return RecordUpdate(name, "refused", len(recorded), "its record was made with other flags "
                                                            f"({' '.join(previous.get('flags', [])) or 'none'})")
    if len(rows) < len(recorded):
        return RecordUpdate(name, "kept", len(recorded), f"the run has only {len(rows)} epochs so far")
    data = compressed_rows(rows)
    config = (run_dir / CONFIG_FILE).read_bytes()
    unchanged = ((target / RECORDED_METRICS_FILE).is_file() and (target / RECORDED_METRICS_FILE).read_bytes() == data
                 and (target / CONFIG_FILE).is_file() and (target / CONFIG_FILE).read_bytes() == config)
    if unchanged:
        return RecordUpdate(name, "unchanged", len(rows))
    target.mkdir(parents=True, exist_ok=True)
    write_atomically(target / CONFIG_FILE, lambda handle: handle.write(config))
    write_atomically(target / RECORDED_METRICS_FILE, lambda handle: handle.write(data))
    return RecordUpdate(name, "written", len(rows))


def update_records(sweep_dir: Path | str, records_dir: Path | str, run_names: list[str] | None = None,
                   method_order: Sequence[str] = ()) -> list[RecordUpdate]:
    """Record every run of the sweep folder that has logged an epoch (or only ``run_names``), then
    add their manifest entries to the records' ``sweep.json``, ordered by method (``method_order``: the
    grid's labels, which the tables follow) and seed. Raises RecordsError on bad input or when the
    records cannot be written (a full disk: files already written stay whole)."""
    sweep_dir, records_dir = Path(sweep_dir), Path(records_dir)
    runs_dir = sweep_dir / RUNS_FOLDER
    if not runs_dir.is_dir():
        raise RecordsError(f"{sweep_dir} holds no {RUNS_FOLDER}/ folder; is it a sweep folder of sweep.py?")
    if records_dir.resolve().is_relative_to(sweep_dir.resolve()):
        raise RecordsError("the records folder must be outside the sweep folder (tables would count its runs twice)")
    try:
        with manifest_lock(records_dir):
            return _update_locked(sweep_dir, records_dir, run_names, method_order)
    except MetricsError as error:
        raise RecordsError(str(error)) from None
    except OSError as error:
        raise RecordsError(f"cannot write the records in {records_dir}: {error.strerror or error}") from None


def _update_locked(sweep_dir: Path, records_dir: Path, run_names: list[str] | None, method_order: Sequence[str]
                   ) -> list[RecordUpdate]:
    """update_records with the records folder locked (two sweeps may record into it at once)."""
    runs_dir = sweep_dir / RUNS_FOLDER
    manifest, entries = read_manifest(sweep_dir), read_manifest(records_dir)
    names = run_names if run_names is not None else sorted(path.name for path in runs_dir.iterdir())
    updates = []
    for name in names:
        if (runs_dir / name / METRICS_FILE).is_file() and (runs_dir / name / CONFIG_FILE).is_file():
            updates.append(record_run(runs_dir / name, records_dir, manifest.get(name), entries.get(name)))
    recorded = {update.run_name for update in updates if update.action in ("written", "unchanged")}
    merged = {**entries, **{name: entry for name, entry in manifest.items() if name in recorded}}
    methods = list(method_order)

    def position(name: str) -> tuple[int, int]:
        label = merged[name].get("label")
        return (methods.index(label) if label in methods else len(methods), int(merged[name].get("seed", 0)))

    new_entries = {name: merged[name] for name in sorted(merged, key=position)}
    if list(new_entries.items()) != list(entries.items()) or not (records_dir / MANIFEST_FILE).is_file():
        save_manifest(records_dir, new_entries)
    return updates
