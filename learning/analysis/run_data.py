"""A run directory as the analysis reads it: the saved configuration and the metric rows (learning/
training/logger.py writes them; records keep them gzip-compressed), and the readings that both the run
figures (plots.py) and the sweep tables and figures (results.py, figures.py) take from them: the
paper's method name, the comparable evaluation, per-task scores over training, who acted.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from learning.experiment_table import DATA_SHARING, DNC_FLAGS, EXPERIMENT_TABLE, QSWITCH, Experiment
from learning.training.checkpoint import CONFIG_FILE
from learning.training.logger import metrics_file, read_metrics
from learning.training.metric_names import ACTING_COUNTS_METRIC, STEP_METRIC, comparable_prefix


def method_names() -> dict[str, str]:
    """Experiment -> the paper's method name, the default legend label (the experiment table's
    ``method_name``; DnC, CDS and the mixture ablations are recognised from the configuration)."""
    return {name: row.method_name for name, row in EXPERIMENT_TABLE.items() if row.method_name is not None}


_READ: dict[tuple[str, int, int], list[dict[str, Any]]] = {}
"""Metric rows already read in this process, by metrics file, modification time and size: ``docs`` runs
dozens of commands over the same records, and decoding their JSON is most of each command's time."""
_READ_LIMIT = 64


def metric_rows(run_dir: Path) -> list[dict[str, Any]]:
    """``read_metrics(run_dir)``, read once per process while the file is unchanged (the rows are shared:
    callers must not change them)."""
    path = metrics_file(run_dir)
    if path is None:
        return []
    status = path.stat()
    key = (str(path.resolve()), status.st_mtime_ns, status.st_size)
    if key not in _READ:
        if len(_READ) >= _READ_LIMIT:
            _READ.pop(next(iter(_READ)))
        _READ[key] = read_metrics(run_dir)
    return _READ[key]


@dataclass
class RunData:
    """One run directory's configuration (as saved) and metric rows."""

    run_dir: Path
    config: dict[str, Any]
    rows: list[dict[str, Any]]

    @classmethod
    def load(cls, run_dir: Path, env_steps: float | None = None) -> RunData:
        """The run's saved configuration and metric rows (live or recorded), only the rows up to
        ``env_steps`` (all tasks together) when given."""
        rows = metric_rows(run_dir)
        if env_steps is not None:
            rows = [row for row in rows if row.get(STEP_METRIC) is not None and float(row[STEP_METRIC]) <= env_steps]
        return cls(run_dir, json.loads((run_dir / CONFIG_FILE).read_text()), rows)

    @property
    def env(self) -> str:
        return str(self.config.get("env"))

    @property
    def experiment(self) -> str:
        return str(self.config.get("experiment"))

    @property
    def spec(self) -> Experiment | None:
        """The experiment's row of the experiment table (None for a name it does not have)."""
        return EXPERIMENT_TABLE.get(self.experiment)

    @property
    def is_qmp(self) -> bool:
        """Did the Q-switch collect the run's data?"""
        return self.spec is not None and self.spec.behaviour == QSWITCH

    def default_label(self) -> str:
        """The key ``--label`` renames: the experiment, or ``experiment:name`` for a named run."""
        name = str(self.config.get("name", "None"))
        return self.experiment if name == "None" else f"{self.experiment}:{name}"

    def method_name(self) -> str:
        """The paper's name of the run's method (e.g. "Separated + QMP", "DnC"), the run's --name in
        parentheses when it has one."""
        config = self.config
        spec = self.spec
        base = method_names().get(self.experiment, self.experiment)
        if spec is not None and DNC_FLAGS in spec.flag_groups and (
                any(value != 0 for value in config.get("kl_coeff") or [0]) or config.get("distillation_period")):
            base = base.replace("Separated", "DnC")
        if spec is not None and spec.update == DATA_SHARING and config.get("unsupervised") is False:
            base = base.replace("UDS", "CDS")
        if self.is_qmp and config.get("qmp_mixture", "qswitch") != "qswitch":
            base = base.replace("QMP", f"{config['qmp_mixture']} mixture")
        name = str(config.get("name", "None"))
        return base if name == "None" else f"{base} ({name})"

    def evaluation_prefix(self, mode: str) -> str:
        """Where this run's comparable evaluation lives: own policy of QMP runs unless mode is mixture."""
        return comparable_prefix(self.is_qmp, mode)

    def series(self, key: str) -> dict[int, tuple[float, float]]:
        """Epoch -> (total env steps, value) over the rows that have ``key``."""
        return {int(row["epoch"]): (float(row[STEP_METRIC]), float(row[key])) for row in self.rows
                if row.get(key) is not None and row.get(STEP_METRIC) is not None}

    def metric_keys(self, metric: str, mode: str) -> tuple[str, str]:
        """The all-task key and the per-task key template (``{task}``) of ``metric``: a ``Train/`` metric
        of data collection, or an evaluation metric of the run's comparable evaluation."""
        if metric.startswith("Train/"):
            return metric, f"Train/LocalPolicy{{task}}/{metric[len('Train/'):]}"
        prefix = self.evaluation_prefix(mode)
        return f"{prefix}{metric}", f"{prefix}Task{{task}}/{metric}"

    def metric_names(self, mode: str) -> set[str]:
        """What ``--metric`` accepts for this run: its evaluation metrics and its ``Train/`` metrics."""
        prefix = self.evaluation_prefix(mode)
        names = set()
        for row in self.rows:
            for key in row:
                rest = key[len(prefix):] if key.startswith(prefix) else None
                if rest is not None and (match := re.fullmatch(r"(?:Task\d+/)?([^/]+)", rest)):
                    names.add(match.group(1))
                elif match := re.fullmatch(r"Train/(?:LocalPolicy\d+/)?([^/]+)", key):
                    names.add(f"Train/{match.group(1)}")
        return names - {ACTING_COUNTS_METRIC}


def task_count(rows: Sequence[dict[str, Any]], template: str) -> int:
    """Tasks 0, 1, ... that have the per-task key ``template`` (``{task}`` in it) in some row."""
    count = 0
    while any(template.format(task=count) in row for row in rows):
        count += 1
    return count


def task_scores(rows: Sequence[dict[str, Any]], template: str) -> tuple[np.ndarray, np.ndarray]:
    """Env steps ``[E]`` and per-task values ``[E, T]`` of the rows that hold the per-task key ``template``
    (``{task}`` in it, e.g. ``Evaluation/p/Task{task}/SuccessRate``) for every one of the ``task_count``
    tasks."""
    tasks = task_count(rows, template)
    kept = [row for row in rows if row.get(STEP_METRIC) is not None
            and all(row.get(template.format(task=task)) is not None for task in range(tasks))]
    if not tasks or not kept:
        return np.zeros(0), np.zeros((0, 0))
    steps = np.array([float(row[STEP_METRIC]) for row in kept])
    values = np.array([[float(row[template.format(task=task)]) for task in range(tasks)] for row in kept])
    return steps, values


def acting_counts(rows: Sequence[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """Env steps ``[M]`` and acting-policy counts ``[M, T, C]`` of the epochs that logged them."""
    logged = [row for row in rows if row.get(ACTING_COUNTS_METRIC) is not None and row.get(STEP_METRIC) is not None]
    if not logged:
        return np.zeros(0), np.zeros((0, 0, 0))
    return (np.array([float(row[STEP_METRIC]) for row in logged]),
            np.array([row[ACTING_COUNTS_METRIC] for row in logged], dtype=float))


def summed_acting(per_run: Sequence[tuple[np.ndarray, np.ndarray]], env_steps: float = np.inf,
                  after: float = 0.0) -> np.ndarray | None:
    """``[runs, T, C]``: each run's acting counts (``acting_counts``) summed over its epochs that end
    after ``after`` and at most at ``env_steps`` env steps, for the runs that logged any; None when none
    did or their shapes differ."""
    totals = [counts[(steps > after) & (steps <= env_steps)].sum(axis=0) for steps, counts in per_run if counts.size]
    if not totals or len({total.shape for total in totals}) != 1:
        return None
    return np.stack(totals)
