"""A finished (or running) run, loaded from disk: its configuration and networks, ready to replay.

:func:`load_run` rebuilds a run's parts from ``config.json`` (learning/experiments.py) and loads the
networks of a checkpoint. run_policy.py and ``python -m learning.analysis trajectories`` use it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from learning.training.config import Config
from learning.training.metric_names import comparable_prefix
from learning.training.trainer import RunParts

MODES = ("mixture", "own")


class RunLoadError(RuntimeError):
    """The run directory cannot be replayed; one-line message."""


@dataclass
class LoadedRun:
    """A run's configuration and components, with the checkpoint's networks loaded."""

    run_dir: Path
    config: Config
    parts: RunParts
    epochs_trained: int
    iteration: int

    @property
    def task_names(self) -> tuple[str, ...]:
        return self.parts.task_set.task_names

    def default_mode(self) -> str:
        """The original's default: the Q-switch mixture for QMP runs, the own policy otherwise."""
        return "mixture" if self.config.is_qmp else "own"

    def behaviour(self, mode: str):
        """The behaviour policy of ``mode``; raises RunLoadError for a mixture of a non-QMP run."""
        if mode not in MODES:
            raise RunLoadError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
        if mode == "mixture" and not self.config.is_qmp:
            raise RunLoadError(f"--mode mixture needs a QMP run; {self.config.experiment} has no Q-switch "
                               f"(use --mode own)")
        behaviour = self.parts.evaluation_behaviours[comparable_prefix(self.config.is_qmp, mode)]
        behaviour.begin_iteration(self.iteration)
        return behaviour

    def close(self) -> None:
        self.parts.sampler.close()
        self.parts.evaluator.close()


def load_run(run_dir: Path | str, checkpoint_name: str = "checkpoint.pt", gpu: int | None = None) -> LoadedRun:
    """Build a run's components from ``config.json`` and load the networks of its checkpoint.

    Raises RunLoadError when the directory, the configuration or the checkpoint is missing or
    does not fit. ``gpu`` None loads on the CPU whatever device the run trained on.
    """
    from learning.experiments import build_parts, build_task_set
    from learning.training.checkpoint import CONFIG_FILE, CheckpointError, load_checkpoint
    from learning.training.config import ConfigError
    from learning.training.trainer import CHECKPOINT_FORMAT

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunLoadError(f"--snapshot_dir {str(run_dir)!r} is not a directory")
    config_path = run_dir / CONFIG_FILE
    if not config_path.is_file():
        raise RunLoadError(f"{run_dir} holds no {CONFIG_FILE}; is it a run directory?")
    try:
        config = Config.load(config_path)
        checkpoint = load_checkpoint(run_dir / checkpoint_name)
    except (CheckpointError, ValueError) as error:  # ConfigError and JSON errors are ValueErrors
        raise RunLoadError(str(error)) from None
    if checkpoint.get("format") != CHECKPOINT_FORMAT or "networks" not in checkpoint or "config" not in checkpoint:
        raise RunLoadError(f"{run_dir / checkpoint_name} is not a checkpoint of this codebase's format "
                           f"{CHECKPOINT_FORMAT}")
    try:
        stored = Config.from_dict(checkpoint["config"])
    except (ConfigError, TypeError) as error:
        raise RunLoadError(f"{run_dir / checkpoint_name}: {error}") from None
    if dataclasses.replace(stored, n_epochs=0) != dataclasses.replace(config, n_epochs=0):
        raise RunLoadError(f"{run_dir / checkpoint_name} does not belong to {config_path} (configurations differ)")
    config = dataclasses.replace(config, gpu=gpu)
    try:
        task_set = build_task_set(config)
        parts = build_parts(config, task_set)
    except ConfigError as error:
        raise RunLoadError(str(error)) from None
    try:
        parts.sac.load_state_dict(checkpoint["networks"])
    except (KeyError, RuntimeError) as error:
        parts.sampler.close()
        parts.evaluator.close()
        raise RunLoadError(f"checkpoint networks do not match {config_path}: {str(error).splitlines()[0]}") from None
    parts.sac.eval()
    return LoadedRun(run_dir, config, parts, int(checkpoint.get("next_epoch", 0)), int(checkpoint.get("iteration", 0)))


def parse_tasks(text: str | None, num_tasks: int) -> list[int]:
    """``"0,3"`` -> [0, 3]; None -> every task. Raises RunLoadError."""
    if text is None:
        return list(range(num_tasks))
    try:
        tasks = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise RunLoadError(f"--tasks must be a comma list of task indices, got {text!r}") from None
    bad = [task for task in tasks if not 0 <= task < num_tasks]
    if not tasks or bad:
        raise RunLoadError(f"--tasks must list indices in 0..{num_tasks - 1}, got {text!r}")
    if len(set(tasks)) != len(tasks):
        raise RunLoadError(f"--tasks names a task twice, got {text!r}")
    return tasks
