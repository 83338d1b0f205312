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
from learning.training.logger import RunLogger
from learning.training.trainer import Trainer


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
        try:
            checkpoint = load_checkpoint(run_dir / CHECKPOINT_FILE)
        except CheckpointError as error:
            raise ConfigError(str(error)) from None
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
    if (run_dir / CHECKPOINT_FILE).exists():
        raise ConfigError(f"{run_dir} already holds a run; continue it with 'python run.py resume --snapshot_dir "
                          f"{run_dir}' or choose another --name, --seed or --log_dir")
    return config, task_set, run_dir, checkpoint


def launch(config: Config, announce: Callable[[str], None] = print) -> tuple[Trainer, dict[str, float]]:
    """Run (or resume) an experiment end to end; returns the trainer and its last evaluation."""
    config, task_set, run_dir, checkpoint = prepare_run(config)
    run_dir.mkdir(parents=True, exist_ok=True)
    config.save(run_dir / CONFIG_FILE)
    parts = build_parts(config, task_set)
    if config.compile and parts.device.type != "cuda":
        announce("--compile: no-op on CPU (torch.compile applies to CUDA runs only)")
    logger = RunLogger(config, run_dir, resume=checkpoint is not None)
    trainer = Trainer(parts, run_dir, logger)
    if checkpoint is not None:
        try:
            trainer.load_state_dict(checkpoint)
        except (KeyError, ValueError, RuntimeError) as error:
            logger.close()
            raise ConfigError(f"checkpoint in {run_dir} does not match this run: {str(error).splitlines()[0]}") from None
        logger.truncate_after(trainer.next_epoch - 1)
        announce(f"resuming {config.run_name} at epoch {trainer.next_epoch} of {config.n_epochs}")
    else:
        announce(f"{config.run_name}: {task_set.num_tasks} tasks, policy parameters "
                 f"{count_parameters(parts.sac.policy)}, Q parameters {count_parameters(parts.sac.critic)}, "
                 f"W&B {logger.mode}, run directory {run_dir}")
    try:
        last = trainer.train()
    finally:
        logger.close()
        parts.sampler.close()
        parts.evaluator.close()
    return trainer, last
