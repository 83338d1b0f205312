"""One launcher for every experiment name: check, build (learning/experiments.py), train, log.

``launch(config)`` validates everything that can fail before anything is written, creates the run
directory, builds the run's parts with :func:`learning.experiments.build_parts`, and trains (or
resumes) it. run.py calls it; tests call it directly.
"""

from __future__ import annotations

import os
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

from environments.base import TaskSet
from learning.experiments import build_parts, build_task_set, count_parameters, resolve_device
from learning.training.checkpoint import CHECKPOINT_FILE, CONFIG_FILE, CheckpointError, load_checkpoint
from learning.training.config import Config, ConfigError, resumed_config, validate
from learning.training.logger import METRICS_FILE, RunLogger, parse_metrics_lines
from learning.training.memory import check_memory, check_video_memory
from learning.training.replay_files import FORMAT as REPLAY_FILES_FORMAT
from learning.training.replay_files import REPLAY_DIR
from learning.training.run_guard import (
    RunLock,
    RunLockError,
    check_writable_directory,
    lock_holder,
    route_mujoco_warnings,
    write_failure,
)
from learning.training.trainer import Trainer

MUJOCO_WARNINGS_FILE = "mujoco_warnings.log"


def check_videos(config: Config, task_set: TaskSet) -> None:
    """With ``--vis_freq``, make sure videos can be rendered and encoded here and that their frames fit
    in memory. Raises ConfigError."""
    if config.vis_freq <= 0:
        return
    from learning.training.video import VideoError, check_video_support

    try:
        video_format = check_video_support(task_set, config.vis_format)
    except VideoError as error:
        raise ConfigError(str(error)) from None
    check_video_memory(config.vis_width, config.vis_height, max(config.vis_num // task_set.num_tasks, 1),
                       task_set.max_episode_steps, video_format, "--vis_width/--vis_height/--vis_num")


def check_threads(config: Config) -> None:
    """``--num_threads`` no larger than the CPUs this process may use. Raises ConfigError."""
    available = len(os.sched_getaffinity(0))
    if config.num_threads > available:
        raise ConfigError(f"--num_threads {config.num_threads} needs {config.num_threads} CPUs; this machine gives "
                          f"this process {available}")


def check_resources(config: Config, task_set: TaskSet) -> None:
    """The memory check of :func:`learning.experiments.build_parts`, without building the run (for
    ``--dry_run``): one environment tells the action size. Raises ConfigError."""
    device = resolve_device(config.gpu)
    env = task_set.make_env(0, False)
    try:
        shape = env.action_space.shape
        assert shape is not None, "task environments have Box action spaces"
        action_dim = int(shape[0])
    finally:
        env.close()
    obs_dim = task_set.observation_layout.network_dim(config.include_task_id)
    check_memory(config, task_set.num_tasks, obs_dim, action_dim, device.type, device.index)


def prepare_run(config: Config) -> tuple[Config, TaskSet, Path, dict | None]:
    """Validate everything that can fail before anything is written to disk; reads only.

    Returns the effective configuration (for resume: the saved one, with the new ``--n_epochs``), the
    task set, the run directory and, for resume, the loaded checkpoint. A resume is checked as a fresh
    run is (the same limits), and so are its metrics rows and replay chunks; :func:`launch` calls this
    holding the run directory's lock for a resume, and checks a fresh start's directory again once it
    holds the lock.
    """
    if config.experiment == "resume":
        return _prepare_resume(config)
    task_set = build_task_set(config)
    check_videos(config, task_set)
    check_threads(config)
    resolve_device(config.gpu)
    run_dir = config.run_dir
    problem = check_writable_directory(run_dir, "--log_dir")
    if problem:
        raise ConfigError(problem)
    refuse_if_locked(run_dir)
    refuse_if_holds_a_run(run_dir)
    return config, task_set, run_dir, None


def _prepare_resume(config: Config) -> tuple[Config, TaskSet, Path, dict]:
    assert config.snapshot_dir is not None  # parse_command_line requires it for resume
    run_dir = Path(config.snapshot_dir)
    config_path = run_dir / CONFIG_FILE
    if not config_path.is_file():
        raise ConfigError(f"{run_dir} holds no {CONFIG_FILE}; is it a run directory?")
    saved = Config.load(config_path)
    problem = check_writable_directory(run_dir, "--snapshot_dir")
    if problem:
        raise ConfigError(problem)
    try:
        checkpoint = load_checkpoint(run_dir / CHECKPOINT_FILE)
    except CheckpointError as error:
        raise ConfigError(str(error)) from None
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("config"), dict):
        raise ConfigError(f"{run_dir / CHECKPOINT_FILE} is not a checkpoint of this codebase")
    trained = checkpoint.get("next_epoch")
    if not isinstance(trained, int) or isinstance(trained, bool) or trained < 0:
        raise ConfigError(f"{run_dir / CHECKPOINT_FILE} is not a checkpoint of this codebase (no epoch count)")
    if 0 < config.n_epochs < trained:
        raise ConfigError(f"{run_dir} has trained {trained} epochs; --n_epochs must be at least {trained}, "
                          f"got {config.n_epochs}")
    try:
        stored = Config.from_dict(checkpoint["config"])
    except (ConfigError, TypeError) as error:
        raise ConfigError(f"{run_dir / CHECKPOINT_FILE} holds no configuration of this codebase: "
                          f"{str(error).splitlines()[0]}") from None
    if {**stored.to_dict(), "n_epochs": 0, "gpu": None} != {**saved.to_dict(), "n_epochs": 0, "gpu": None}:
        raise ConfigError(f"{run_dir / CHECKPOINT_FILE} does not belong to {config_path} (configurations differ)")
    config = resumed_config(saved, config)
    validate(config)
    check_metrics_rows(run_dir, trained)
    check_replay_chunks(run_dir, checkpoint)
    task_set = build_task_set(config)
    check_videos(config, task_set)
    resolve_device(config.gpu)
    return config, task_set, run_dir, checkpoint


def check_metrics_rows(run_dir: Path, epochs: int) -> None:
    """A resume keeps the rows of the ``epochs`` checkpointed epochs; they must all be in
    ``metrics.jsonl`` (a torn last row, what a kill leaves, is fine). Raises ConfigError."""
    if epochs == 0:
        return
    path = run_dir / METRICS_FILE
    advice = "restore it from a copy, or start the run again under another --name"
    try:
        text = path.read_bytes().decode(errors="replace")
    except FileNotFoundError:
        raise ConfigError(f"{path} is missing; it held the rows of the {epochs} checkpointed epochs and "
                          f"resuming would lose them ({advice})") from None
    except OSError as error:
        raise ConfigError(f"cannot read {path}: {error.strerror}") from None
    lines = text.splitlines()
    whole = lines[:-1] if not text.endswith("\n") else lines  # a torn last row is what a kill leaves
    logged: set[int] = set()
    for number, line in enumerate(lines, start=1):
        rows = parse_metrics_lines(line)
        if rows:
            logged.add(rows[0]["epoch"])
        elif line.strip() and number <= len(whole):
            raise ConfigError(f"{path} line {number} is not a metrics row; resuming would lose it ({advice})")
    missing = [epoch for epoch in range(epochs) if epoch not in logged]
    if missing:
        raise ConfigError(f"{path} lacks the rows of {len(missing)} checkpointed epoch(s) (first: epoch "
                          f"{missing[0]}); resuming would lose them ({advice})")


def check_replay_chunks(run_dir: Path, checkpoint: dict) -> None:
    """Every replay chunk the checkpoint names exists and is a whole zip file. Raises ConfigError."""
    buffer = checkpoint.get("buffer")
    if not isinstance(buffer, dict) or buffer.get("format") != REPLAY_FILES_FORMAT:
        return
    for name in buffer.get("chunks", []):
        path = run_dir / REPLAY_DIR / str(name)
        if not path.is_file():
            raise ConfigError(f"replay chunk {path} is missing; the run cannot continue from its checkpoint")
        try:
            with zipfile.ZipFile(path):
                pass
        except (zipfile.BadZipFile, OSError, EOFError) as error:
            raise ConfigError(f"replay chunk {path} is damaged ({str(error).splitlines()[0]}); the run cannot "
                              f"continue from its checkpoint") from None


def refuse_if_locked(run_dir: Path) -> None:
    """ConfigError when a live process holds the run directory."""
    holder = lock_holder(run_dir)
    if holder is not None:
        raise ConfigError(f"{run_dir} is in use by {holder}; wait for it to finish or stop it first")


def refuse_if_holds_a_run(run_dir: Path) -> None:
    """ConfigError when a fresh start would overwrite a run (its checkpoint exists)."""
    if (run_dir / CHECKPOINT_FILE).exists():
        raise ConfigError(f"{run_dir} already holds a run; continue it with 'python run.py resume --snapshot_dir "
                          f"{run_dir}' or choose another --name, --seed or --log_dir")


def lock_run_directory(run_dir: Path, fresh: bool) -> RunLock:
    """Lock the run directory (a fresh start creates it first) before anything in it is read or written;
    a fresh start then checks, under the lock, that no run is there: of two starts racing for one
    directory exactly one gets it. Raises ConfigError."""
    try:
        if fresh:
            run_dir.mkdir(parents=True, exist_ok=True)
        lock = RunLock(run_dir).acquire()
    except RunLockError as error:
        raise ConfigError(str(error)) from None
    except OSError as error:
        raise ConfigError(f"cannot {'create' if fresh else 'open'} the run directory {run_dir}: "
                          f"{error.strerror}") from None
    if fresh:
        try:
            refuse_if_holds_a_run(run_dir)
        except ConfigError:
            lock.release()
            raise
    return lock


def drop_stale_files(run_dir: Path, fresh: bool) -> None:
    """A fresh start drops what a run that died before its first checkpoint left (metrics rows, a
    temporary checkpoint); every start drops stale temporary files."""
    stale = [CHECKPOINT_FILE + ".tmp", METRICS_FILE + ".tmp"] + ([METRICS_FILE] if fresh else [])
    for name in stale:
        (run_dir / name).unlink(missing_ok=True)


def say(message: str) -> None:
    """Print a set-up line at once, also when stdout is a file or a pipe."""
    print(message, flush=True)


def launch(config: Config, announce: Callable[[str], None] = say) -> tuple[Trainer, dict[str, float]]:
    """Run (or resume) an experiment end to end; returns the trainer and its last evaluation.

    A resume locks its run directory first, then reads and checks it; a fresh start checks everything
    that needs no run directory, builds the run, then creates and locks the directory and checks it
    again. Nothing is written before every check has passed."""
    route_mujoco_warnings(None)  # stderr until the run directory is ours, then RUN_DIR/mujoco_warnings.log
    resume = config.experiment == "resume"
    announce(f"run directory: {config.snapshot_dir if resume else config.run_dir}")
    announce("building environments" + ("" if resume else f" ({config.env})"))
    lock = lock_run_directory(Path(str(config.snapshot_dir)), fresh=False) if resume else None
    try:
        config, task_set, run_dir, checkpoint = prepare_run(config)
        announce(f"building networks, replay buffers and samplers for {task_set.num_tasks} tasks")
        parts = build_parts(config, task_set)
        if config.compile and parts.device.type != "cuda":
            announce("--compile: no-op on CPU (torch.compile applies to CUDA runs only)")
        try:
            lock = lock or lock_run_directory(run_dir, fresh=True)
        except BaseException:
            parts.sampler.close()
            parts.evaluator.close()
            raise
        return _train(config, parts, run_dir, checkpoint, lock, announce)
    finally:
        if lock is not None:
            lock.release()


def _restore(trainer: Trainer, checkpoint: dict, run_dir: Path) -> None:
    """Load the checkpoint into the built run (reads the replay chunks); ConfigError when it does not fit."""
    try:
        trainer.load_state_dict(checkpoint)
    except (KeyError, ValueError, RuntimeError, TypeError, IndexError, EOFError, OSError, zipfile.BadZipFile,
            zlib.error) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ConfigError(f"checkpoint in {run_dir} does not match this run: {reason}") from None


def _train(config: Config, parts, run_dir: Path, checkpoint: dict | None, lock: RunLock,
           announce: Callable[[str], None]) -> tuple[Trainer, dict[str, float]]:
    """Restore (resume), then claim and write the run directory, then train."""
    logger = None
    try:
        trainer = Trainer(parts, run_dir, None)
        if checkpoint is not None:
            _restore(trainer, checkpoint, run_dir)
        try:
            lock.name_holder()
            drop_stale_files(run_dir, fresh=checkpoint is None)
            route_mujoco_warnings(run_dir / MUJOCO_WARNINGS_FILE)
            if checkpoint is None or Config.load(run_dir / CONFIG_FILE) != config:  # resume: new --n_epochs or --gpu
                config.save(run_dir / CONFIG_FILE)
            announce("starting W&B" if config.wandb else "W&B off (--wandb False)")
            logger = RunLogger(config, run_dir, resume=checkpoint is not None)
        except OSError as error:
            raise write_failure("the configuration", run_dir / CONFIG_FILE, 4096, error) from None
        trainer.logger = logger
        if checkpoint is not None:
            trainer.restore_random(checkpoint["random"])  # after W&B's start-up, as if nothing ran in between
            logger.truncate_after(trainer.next_epoch - 1)
            announce(f"resuming {config.run_name} at epoch {trainer.next_epoch} of {config.n_epochs}")
        else:
            announce(f"{config.run_name}: {parts.task_set.num_tasks} tasks, policy parameters "
                     f"{count_parameters(parts.sac.policy)}, Q parameters {count_parameters(parts.sac.critic)}, "
                     f"W&B {logger.mode}, run directory {run_dir}")
        last = trainer.train()
    finally:
        if logger is not None:
            logger.close()
        parts.sampler.close()
        parts.evaluator.close()
    return trainer, last
