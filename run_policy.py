"""Replay a trained run: ``python run_policy.py --snapshot_dir DIR [flags]`` (the original's, with its bugs fixed:
docs/fidelity.md#replay-bugs).

Loads the run's ``config.json`` and the networks of its ``checkpoint.pt``, runs episodes of **every**
task (the original stopped after the first), deterministic unless ``--stochastic``, with the
Q-switch mixture (``--mode mixture``, QMP runs only) or each task's own policy (``--mode own``),
prints a per-task table and, with ``--save_video True``, writes one video per task to
``VIDEO_ROOT/<run directory name>/``. Bad input gets one line on stderr and exit code 2.

Loading a run lives in learning/analysis/runs.py (shared with ``python -m learning.analysis trajectories``); the
episode loop and the videos in learning/training/video.py (shared with training-time videos).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from learning.training.config import MAX_SEED, MAX_VIDEO_SIDE
from learning.training.run_guard import (
    Terminated,
    check_writable_directory,
    install_termination_handler,
    interruption_exit_code,
    interruption_name,
    route_mujoco_warnings,
)

if TYPE_CHECKING:  # the library (torch, MuJoCo) loads after the arguments are parsed
    from learning.analysis.runs import LoadedRun
    from learning.training.video import EpisodeTrace

MODES = ("mixture", "own")  # learning.analysis.runs.MODES


class UsageError(ValueError):
    """A bad command line; one-line message."""


def results_table(task_names: Sequence[str], traces_by_task: dict[int, list[EpisodeTrace]],
                  metric_keys: Sequence[str], show_own_share: bool) -> str:
    """Per-task mean return, success rate, completion (termination) rate, length and env metrics."""
    import numpy as np

    from learning.training.evaluation import metric_name, summarize_episodes

    num_tasks = len(task_names)
    records = [trace.record for traces in traces_by_task.values() for trace in traces]
    summary = summarize_episodes(records, num_tasks, "", metric_keys)
    columns: list[tuple[str, str | None, str]] = [
        ("episodes", "NumEpisodes", "{:.0f}"), ("return", "AverageReturn", "{:.2f}"),
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


def build_parser() -> argparse.ArgumentParser:
    from learning.training.config import BOOL_FLAG, OneLineParser

    parser = OneLineParser(prog="run_policy.py", error_type=UsageError,
                           description="Replay a trained run's checkpoint on every task: a per-task table, "
                                       "optionally videos. Boolean flags take True or False; a bare flag means True.",
                           allow_abbrev=False)
    parser.add_argument("--snapshot_dir", required=True, help="run directory (holds config.json and checkpoint.pt)")
    parser.add_argument("--checkpoint", default="checkpoint.pt",
                        help="checkpoint file in the run directory, e.g. checkpoint_epoch50.pt written with "
                             "--snapshot_gap [default: checkpoint.pt]")
    parser.add_argument("--num_episodes_per_task", type=int, default=1, help="episodes per task [default: 1]")
    parser.add_argument("--stochastic", **BOOL_FLAG, default=False,
                        help="sample actions (the training behaviour) instead of taking the mean [default: False]")
    parser.add_argument("--mode", choices=MODES, default=None,
                        help="mixture: the Q-switch over all policies (QMP runs only); own: each task's own policy "
                             "[default: mixture for QMP runs, own otherwise]")
    parser.add_argument("--tasks", default=None, help="comma list of task indices [default: all tasks]")
    parser.add_argument("--save_video", **BOOL_FLAG, default=False, help="write one video per task [default: False]")
    parser.add_argument("--video_root", default="videos",
                        help="videos go to VIDEO_ROOT/<run directory name>/ [default: videos]")
    parser.add_argument("--video_fps", type=int, default=40, help="video frames per second [default: 40]")
    parser.add_argument("--video_width", type=int, default=500, help="video width in pixels [default: 500]")
    parser.add_argument("--video_height", type=int, default=500, help="video height in pixels [default: 500]")
    parser.add_argument("--video_format", choices=("auto", "mp4", "gif"), default="auto",
                        help="auto: mp4 when imageio-ffmpeg is installed, else gif [default: auto]")
    parser.add_argument("--seed", type=int, default=0,
                        help="seeds torch (stochastic actions) and the first reset of task k's env (seed + k) "
                             "[default: 0]")
    parser.add_argument("--gpu", type=int, default=None,
                        help="CUDA device for the networks [default: CPU, also for runs trained on a GPU]")
    return parser


def reject_repeated_options(argv: Sequence[str]) -> None:
    """An option typed twice is an error (argparse would silently keep the last value)."""
    names = [token[2:].split("=", 1)[0] for token in argv if token.startswith("--")]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise UsageError(f"--{repeated[0]} is given more than once")


def video_format_of(args: argparse.Namespace) -> str | None:
    """The file format of the requested videos (None without --save_video). Raises UsageError."""
    from learning.training.video import VideoError, configure_headless_rendering, resolve_format

    for name in ("num_episodes_per_task", "video_fps", "video_width", "video_height"):
        if getattr(args, name) <= 0:
            raise UsageError(f"--{name} must be positive, got {getattr(args, name)}")
    if not 0 <= args.seed <= MAX_SEED:
        raise UsageError(f"--seed must be in [0, {MAX_SEED}], got {args.seed}")
    if max(args.video_width, args.video_height) > MAX_VIDEO_SIDE:
        raise UsageError(f"--video_width and --video_height must be at most {MAX_VIDEO_SIDE}, got {args.video_width} x "
                         f"{args.video_height}")
    if not args.save_video:
        return None
    problem = check_writable_directory(Path(args.video_root) / Path(args.snapshot_dir).name, "--video_root")
    if problem:
        raise UsageError(problem)
    configure_headless_rendering()
    try:
        return resolve_format(args.video_format)
    except VideoError as error:
        raise UsageError(str(error)) from None


def main(argv: Sequence[str]) -> int:
    install_termination_handler()
    try:
        return _main(argv)
    except (KeyboardInterrupt, Terminated) as error:
        print(f"run_policy.py: {interruption_name(error)}", file=sys.stderr)
        return interruption_exit_code(error)


def _main(argv: Sequence[str]) -> int:
    try:
        reject_repeated_options(argv)
        args = build_parser().parse_args(argv)
        video_format = video_format_of(args)
    except UsageError as error:
        print(f"run_policy.py: error: {error}", file=sys.stderr)
        return 2
    from learning.analysis.runs import RunLoadError, load_run, parse_tasks
    from learning.training.config import ConfigError
    from learning.training.memory import check_video_memory
    from learning.training.video import VideoError

    try:
        run = load_run(args.snapshot_dir, args.checkpoint, args.gpu)
        route_mujoco_warnings(None)
    except RunLoadError as error:
        print(f"run_policy.py: error: {error}", file=sys.stderr)
        return 2
    if video_format is not None:
        try:
            check_video_memory(args.video_width, args.video_height, args.num_episodes_per_task,
                               run.parts.task_set.max_episode_steps, video_format,
                               "--video_width/--video_height/--num_episodes_per_task")
        except ConfigError as error:
            run.close()
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

    from learning.training.video import VideoSettings, replay_tasks

    torch.manual_seed(args.seed)
    video = None
    if video_format is not None:
        video = VideoSettings(args.video_width, args.video_height, args.video_fps, video_format)
    traces, writers = replay_tasks(run.parts.replay_context, behaviour, run.parts.evaluator.envs, tasks,
                                   args.num_episodes_per_task, not args.stochastic, args.seed, video,
                                   Path(args.video_root) / run.run_dir.name)
    for writer in writers.values():
        print(f"video: {writer.path} ({writer.frames_written} frames)")
    return traces


if __name__ == "__main__":
    from learning.training.run_guard import tolerate_closed_pipes

    tolerate_closed_pipes()  # `python run_policy.py ... | head`: the rest of the table is dropped, no traceback
    sys.exit(main(sys.argv[1:]))
