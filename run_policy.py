"""Replay a trained run: ``python run_policy.py --snapshot_dir DIR [flags]`` (SPEC §10.5, fixed).

Loads the run's ``config.json`` and the networks of its ``checkpoint.pt``, runs episodes of **every**
task (the original stopped after the first), deterministic unless ``--stochastic``, with the
Q-switch mixture (``--mode mixture``, QMP runs only) or each task's own policy (``--mode own``),
prints a per-task table and, with ``--save_video True``, writes one video per task to
``VIDEO_ROOT/<run directory name>/``. Bad input gets one line on stderr and exit code 2.

:func:`load_run` is also used by ``python -m learning.plots trajectories``; the episode loop and the
videos live in learning/video.py.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from learning.video import (EpisodeTrace, VideoError, VideoSettings, configure_headless_rendering, replay_tasks,
                            resolve_format)

if TYPE_CHECKING:
    from learning.config import Config
    from learning.trainer import RunParts

MODES = ("mixture", "own")


class RunLoadError(RuntimeError):
    """The run directory cannot be replayed; one-line message."""


@dataclass
class LoadedRun:
    """A run's configuration and components, with the checkpoint's networks loaded."""

    run_dir: Path
    config: "Config"
    parts: "RunParts"
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
        own_key = "Evaluation/p/" if self.config.is_qmp else "Evaluation/"
        behaviour = self.parts.evaluation_behaviours["Evaluation/" if mode == "mixture" else own_key]
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
    import garage_experiments
    from learning.checkpoint import CONFIG_FILE, CheckpointError, load_checkpoint
    from learning.config import Config, ConfigError
    from learning.trainer import CHECKPOINT_FORMAT

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
        task_set = garage_experiments.build_task_set(config)
        parts = garage_experiments.build_parts(config, task_set)
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


def results_table(task_names: Sequence[str], traces_by_task: dict[int, list[EpisodeTrace]],
                  metric_keys: Sequence[str], show_own_share: bool) -> str:
    """Per-task mean return, success rate, completion (termination) rate, length and env metrics."""
    from learning.evaluation import metric_name, summarize_episodes

    num_tasks = len(task_names)
    records = [trace.record for traces in traces_by_task.values() for trace in traces]
    summary = summarize_episodes(records, num_tasks, "", metric_keys)
    columns = [("episodes", "NumEpisodes", "{:.0f}"), ("return", "AverageReturn", "{:.2f}"),
               ("success", "SuccessRate", "{:.2f}"), ("completion", "TerminationRate", "{:.2f}"),
               ("length", "AverageEpisodeLength", "{:.1f}")]
    columns += [(metric_name(key), metric_name(key), "{:.3g}") for key in metric_keys]
    own_share = {}
    for task, traces in traces_by_task.items():
        acting = np.concatenate([trace.acting for trace in traces])
        own_share[task] = float(np.mean(acting == task))
    if show_own_share:
        columns.append(("own share", None, "{:.2f}"))
    width = max(14, *(len(title) + 2 for title, _, _ in columns))
    lines = [f"{'task':<30}" + "".join(f"{title:>{width}}" for title, _, _ in columns)]
    rows = [(f"{task}: {task_names[task]}", f"Task{task}/", own_share[task]) for task in sorted(traces_by_task)]
    rows.append(("all tasks", "", float(np.mean(list(own_share.values())))))
    for label, prefix, share in rows:
        cells = []
        for _, key, fmt in columns:
            value = share if key is None else summary.get(f"{prefix}{key}", float("nan"))
            cells.append(f"{fmt.format(value):>{width}}")
        lines.append(f"{label[:29]:<30}" + "".join(cells))
    return "\n".join(lines)


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
    return tasks


class _OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise RunLoadError(message)


def build_parser() -> argparse.ArgumentParser:
    from learning.config import parse_bool

    parser = _OneLineParser(prog="run_policy.py", description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--snapshot_dir", required=True, help="run directory (holds config.json and checkpoint.pt)")
    parser.add_argument("--checkpoint", default="checkpoint.pt",
                        help="checkpoint file in the run directory (e.g. checkpoint_epoch50.pt with --snapshot_gap)")
    parser.add_argument("--num_episodes_per_task", type=int, default=1, help="episodes per task")
    parser.add_argument("--stochastic", action="store_true", help="sample actions instead of taking the mean")
    parser.add_argument("--mode", choices=MODES, default=None,
                        help="mixture: the Q-switch (QMP runs; the default there); own: each task's own policy")
    parser.add_argument("--tasks", default=None, help="comma list of task indices (default: all tasks)")
    parser.add_argument("--save_video", type=parse_bool, default=False, help="write one video per task")
    parser.add_argument("--video_root", default="videos", help="videos go to VIDEO_ROOT/<run directory name>/")
    parser.add_argument("--video_fps", type=int, default=40)
    parser.add_argument("--video_width", type=int, default=500)
    parser.add_argument("--video_height", type=int, default=500)
    parser.add_argument("--video_format", choices=("auto", "mp4", "gif"), default="auto",
                        help="auto: mp4 when imageio-ffmpeg is installed, else gif")
    parser.add_argument("--seed", type=int, default=0, help="seeds torch (stochastic actions) and the env resets")
    parser.add_argument("--gpu", type=int, default=None, help="CUDA device for the networks; CPU when absent")
    return parser


def video_format_of(args: argparse.Namespace) -> str | None:
    """The file format of the requested videos (None without --save_video). Raises RunLoadError."""
    for name in ("num_episodes_per_task", "video_fps", "video_width", "video_height"):
        if getattr(args, name) <= 0:
            raise RunLoadError(f"--{name} must be positive, got {getattr(args, name)}")
    if not args.save_video:
        return None
    configure_headless_rendering()
    try:
        return resolve_format(args.video_format)
    except VideoError as error:
        raise RunLoadError(str(error)) from None


def main(argv: Sequence[str]) -> int:
    try:
        args = build_parser().parse_args(argv)
        video_format = video_format_of(args)
        run = load_run(args.snapshot_dir, args.checkpoint, args.gpu)
    except RunLoadError as error:
        print(f"run_policy.py: error: {error}", file=sys.stderr)
        return 2
    try:
        mode = args.mode or run.default_mode()
        traces_by_task = replay(run, run.behaviour(mode), parse_tasks(args.tasks, run.parts.task_set.num_tasks),
                                args, video_format)
    except (RunLoadError, VideoError) as error:
        print(f"run_policy.py: error: {error}", file=sys.stderr)
        return 2
    finally:
        run.close()
    print(f"{run.config.run_name}: {run.epochs_trained} epochs trained, mode {mode}, "
          f"{'stochastic' if args.stochastic else 'deterministic'}, {args.num_episodes_per_task} episode(s) per task")
    print(results_table(run.task_names, traces_by_task, list(run.parts.task_set.episode_metrics),
                        show_own_share=mode == "mixture"))
    return 0


def replay(run: LoadedRun, behaviour, tasks: Sequence[int], args: argparse.Namespace,
           video_format: str | None) -> dict[int, list[EpisodeTrace]]:
    """Every requested task's episodes on the evaluation envs; a video per task when ``video_format``."""
    import torch

    torch.manual_seed(args.seed)
    video = None
    if video_format is not None:
        video = VideoSettings(args.video_width, args.video_height, args.video_fps, video_format)
    traces, writers = replay_tasks(run.parts, behaviour, run.parts.evaluator.envs, tasks, args.num_episodes_per_task,
                                   not args.stochastic, args.seed, video, Path(args.video_root) / run.run_dir.name)
    for writer in writers.values():
        print(f"video: {writer.path} ({writer.frames_written} frames)")
    return traces


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
