"""The names of the metrics the trainer logs and the sweeps, the records and the analysis read back.

No imports: the sweep driver reads metric rows without loading torch.
"""

from __future__ import annotations

STEP_METRIC = "Train/TotalEnvSteps"
"""Env steps of all tasks together after the epoch: the x-axis of every curve and of W&B."""
EPOCH_SECONDS_METRIC = "Time/EpochSeconds"
"""Wall seconds of the epoch's collection, updates and evaluation (checkpoints not included)."""
ACTING_COUNTS_METRIC = "Train/ActingPolicyCounts"
"""``[T, C]``: how many of task i's collection steps in the epoch candidate j acted (QMP and CTPG runs)."""

EVALUATION_PREFIX = "Evaluation/"
"""Evaluation of the run's behaviour policy: the Q-switch mixture in QMP runs, the own policies otherwise."""
OWN_EVALUATION_PREFIX = "Evaluation/p/"
"""Evaluation of each task's own policy in QMP runs (the original's "p" mode, docs/fidelity.md#evaluation)."""


def comparable_prefix(is_qmp: bool, mode: str = "own") -> str:
    """Where a run's comparable evaluation lives: each task's own policy for QMP runs unless ``mode`` is
    "mixture"; the behaviour policy for every other run."""
    return OWN_EVALUATION_PREFIX if is_qmp and mode == "own" else EVALUATION_PREFIX
