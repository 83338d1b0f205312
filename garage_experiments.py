"""One launcher for every experiment name: check, build (learning/experiments.py), train, log.

``launch(config)`` validates everything that can fail before anything is written, creates the run
directory, builds the run's parts with :func:`learning.experiments.build_parts`, and trains (or
resumes) it. run.py calls it; tests call it directly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from environments.base import TaskSet
from learning.experiments import build_parts, build_task_set, count_parameters, resolve_device
from learning.training.checkpoint import CHECKPOINT_FILE, CONFIG_FILE, CheckpointError, load_checkpoint
from learning.training.config import Config, ConfigError
from learning.training.logger import METRICS_FILE, RunLogger
from learning.training.run_guard import (RunLock, RunLockError, check_writable_directory, lock_holder,
                                         route_mujoco_warnings, write_failure)
from learning.training.trainer import Trainer

MUJOCO_WARNINGS_FILE = "mujoco_warnings.log"


def check_videos(config: Config, task_set: TaskSet) -> None:
    """With ``--vis_freq``, make sure videos can be rendered and encoded here. Raises ConfigError."""
    if config.vis_freq <= 0:
        return
    from learning.training.video import VideoError, check_video_support

    try:
        check_video_support(task_set, config.vis_format)
    except VideoError as error:
        raise ConfigError(str(error)) from None


def prepare_run(config: Config) -> tuple[Config, TaskSet, Path, dict | None]:
    """Validate everything that can fail before anything is written to disk.

    Returns the effective configuration (for resume: the saved one), the task set, the run
    directory and, for resume, the loaded checkpoint.
    """
    checkpoint = None
    if config.experiment == "resume":
        run_dir = Path(config.snapshot_dir)
        config_path = run_dir / CONFIG_FILE
        if not config_path.is_file():
            raise ConfigError(f"{run_dir} holds no {CONFIG_FILE}; is it a run directory?")
        saved = Config.load(config_path)
        refuse_if_locked(run_dir)
        problem = check_writable_directory(run_dir, "--snapshot_dir")
        if problem:
            raise ConfigError(problem)
        try:
            checkpoint = load_checkpoint(run_dir / CHECKPOINT_FILE)
        except CheckpointError as error:
            raise ConfigError(str(error)) from None
        if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("config"), dict):
            raise ConfigError(f"{run_dir / CHECKPOINT_FILE} is not a checkpoint of this codebase")
        trained = int(checkpoint.get("next_epoch", 0))
        if 0 < config.n_epochs < trained:
            raise ConfigError(f"{run_dir} has trained {trained} epochs; --n_epochs must be at least {trained}, "
                              f"got {config.n_epochs}")
        stored = Config.from_dict(checkpoint["config"])
        if {**stored.to_dict(), "n_epochs": 0} != {**saved.to_dict(), "n_epochs": 0}:
            raise ConfigError(f"{run_dir / CHECKPOINT_FILE} does not belong to {config_path} (configurations differ)")
        n_epochs = config.n_epochs if config.n_epochs > 0 else saved.n_epochs
        config = Config.from_dict({**saved.to_dict(), "n_epochs": n_epochs})
        task_set = build_task_set(config)
        check_videos(config, task_set)
        return config, task_set, run_dir, checkpoint
    task_set = build_task_set(config)
    check_videos(config, task_set)
    resolve_device(config.gpu)
    run_dir = config.run_dir
    problem = check_writable_directory(run_dir, "--log_dir")
    if problem:
        raise ConfigError(problem)
    refuse_if_locked(run_dir)
    if (run_dir / CHECKPOINT_FILE).exists():
        raise ConfigError(f"{run_dir} already holds a run; continue it with 'python run.py resume --snapshot_dir "
                          f"{run_dir}' or choose another --name, --seed or --log_dir")
    return config, task_set, run_dir, checkpoint


def refuse_if_locked(run_dir: Path) -> None:
    """ConfigError when a live process holds the run directory."""
    holder = lock_holder(run_dir)
    if holder is not None:
        raise ConfigError(f"{run_dir} is in use by {holder}; wait for it to finish or stop it first")


def claim_run_directory(run_dir: Path, fresh: bool) -> RunLock:
    """Create and lock the run directory; a fresh start drops what a run that died before its first
    checkpoint left (metrics rows, a temporary checkpoint); every start drops a stale temporary file."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        lock = RunLock(run_dir).acquire()
    except RunLockError as error:
        raise ConfigError(str(error)) from None
    except OSError as error:
        raise ConfigError(f"cannot create the run directory {run_dir}: {error.strerror}") from None
    stale = [CHECKPOINT_FILE + ".tmp", METRICS_FILE + ".tmp"] + ([METRICS_FILE] if fresh else [])
    for name in stale:
        (run_dir / name).unlink(missing_ok=True)
    return lock


def say(message: str) -> None:
    """Print a set-up line at once, also when stdout is a file or a pipe."""
    print(message, flush=True)


def launch(config: Config, announce: Callable[[str], None] = say) -> tuple[Trainer, dict[str, float]]:
    """Run (or resume) an experiment end to end; returns the trainer and its last evaluation."""
    route_mujoco_warnings(None)  # stderr until the run directory is ours, then RUN_DIR/mujoco_warnings.log
    announce(f"run directory: {config.snapshot_dir if config.experiment == 'resume' else config.run_dir}")
    announce("building environments" + ("" if config.experiment == "resume" else f" ({config.env})"))
    config, task_set, run_dir, checkpoint = prepare_run(config)
    announce(f"building networks, replay buffers and samplers for {task_set.num_tasks} tasks")
    parts = build_parts(config, task_set)
    if config.compile and parts.device.type != "cuda":
        announce("--compile: no-op on CPU (torch.compile applies to CUDA runs only)")
    try:
        lock = claim_run_directory(run_dir, fresh=checkpoint is None)
    except BaseException:
        parts.sampler.close()
        parts.evaluator.close()
        raise
    try:
        return _train(config, parts, run_dir, checkpoint, announce)
    finally:
        lock.release()


def _train(config: Config, parts, run_dir: Path, checkpoint: dict | None,
           announce: Callable[[str], None]) -> tuple[Trainer, dict[str, float]]:
    route_mujoco_warnings(run_dir / MUJOCO_WARNINGS_FILE)
    try:
        if checkpoint is None or Config.load(run_dir / CONFIG_FILE).n_epochs != config.n_epochs:
            config.save(run_dir / CONFIG_FILE)
        announce("starting W&B" if config.wandb else "W&B off (--wandb False)")
        logger = RunLogger(config, run_dir, resume=checkpoint is not None)
    except BaseException as error:
        parts.sampler.close()
        parts.evaluator.close()
        if isinstance(error, OSError):
            raise write_failure("the configuration", run_dir / CONFIG_FILE, 4096, error) from None
        raise
    trainer = Trainer(parts, run_dir, logger)
    task_set = parts.task_set
    try:
        if checkpoint is not None:
            try:
                trainer.load_state_dict(checkpoint)
            except (KeyError, ValueError, RuntimeError) as error:
                raise ConfigError(f"checkpoint in {run_dir} does not match this run: "
                                  f"{str(error).splitlines()[0]}") from None
            logger.truncate_after(trainer.next_epoch - 1)
            announce(f"resuming {config.run_name} at epoch {trainer.next_epoch} of {config.n_epochs}")
        else:
            announce(f"{config.run_name}: {task_set.num_tasks} tasks, policy parameters "
                     f"{count_parameters(parts.sac.policy)}, Q parameters {count_parameters(parts.sac.critic)}, "
                     f"W&B {logger.mode}, run directory {run_dir}")
        last = trainer.train()
    finally:
        logger.close()
        parts.sampler.close()
        parts.evaluator.close()
    return trainer, last
