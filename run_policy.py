"""Replay a trained run: ``python run_policy.py --snapshot_dir DIR [flags]`` (SPEC §10.5, fixed).

Loads the run's ``config.json`` and the networks of its ``checkpoint.pt``, runs episodes of **every**
task (the original stopped after the first), deterministic unless ``--stochastic``, with the
Q-switch mixture (``--mode mixture``, QMP runs only) or each task's own policy (``--mode own``),
prints a per-task table and, with ``--save_video True``, writes one video per task to
``VIDEO_ROOT/<run directory name>/``. Bad input gets one line on stderr and exit code 2.

The functions here (:func:`load_run`, :func:`run_task_episodes`) are also used by
``python -m learning.plots trajectories``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

if TYPE_CHECKING:
    from learning.config import Config
    from learning.sampler import EpisodeRecord
    from learning.trainer import RunParts
    from learning.video import FrameSource, VideoWriter

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
    except (ConfigError, CheckpointError, ValueError) as error:
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


@dataclass
class EpisodeTrace:
    """One replayed episode: its summary and what happened at every step."""

    record: "EpisodeRecord"
    raw_observations: np.ndarray
    """``[length + 1, raw_dim]``: the reset observation, then one per step."""
    acting: np.ndarray
    """``[length]``: the candidate policy that chose each step's action."""
    rewards: np.ndarray


@dataclass
class VideoRecorder:
    """Where one task's frames go: a frame source for the env and an open video file."""

    source: "FrameSource"
    writer: "VideoWriter"
    candidate_names: Sequence[str]


def run_task_episodes(run: LoadedRun, behaviour, task: int, num_episodes: int, deterministic: bool, seed: int,
                      recorder: VideoRecorder | None = None) -> list[EpisodeTrace]:
    """Run ``num_episodes`` episodes of one task on its evaluation env.

    The first episode resets with ``seed + task`` (as the evaluator does), later ones continue the
    env's random stream. The behaviour sees a ``[T, obs]`` batch whose every row is this task's
    observation; only row ``task`` is used (rows are independent in every behaviour policy).
    """
    import torch

    from learning.sampler import EpisodeTracker
    from learning.video import draw_overlay, overlay_lines

    parts = run.parts
    task_set, env = parts.task_set, parts.evaluator.envs[task]
    num_tasks = task_set.num_tasks
    network_input = parts.evaluator.network_input
    tracker = EpisodeTracker(num_tasks, task_set.episode_metrics, run.config.discount)
    started = np.zeros(num_tasks, dtype=bool)
    started[task] = True
    traces = []
    for episode in range(num_episodes):
        raw, info = env.reset(seed=seed + task if episode == 0 else None)
        behaviour.episode_start(started)
        if recorder is not None:
            recorder.source.start_episode()
        observations, acting_steps, rewards = [raw], [], []
        done, terminated = False, False
        while not done:
            batch = np.repeat(network_input(raw)[None], num_tasks, axis=0)
            action, acting = behaviour.act(torch.as_tensor(batch, device=parts.device), deterministic=deterministic)
            action = np.clip(action[task].cpu().numpy(), -1.0, 1.0)
            candidate = int(acting[task])
            raw, reward, terminated, truncated, info = env.step(action)
            tracker.record_step(task, float(reward), info)
            observations.append(raw)
            acting_steps.append(candidate)
            rewards.append(float(reward))
            done = bool(terminated or truncated)
            if recorder is not None:
                lines = overlay_lines(task_set.task_names[task], task, episode, len(rewards), float(reward),
                                      float(sum(rewards)), bool(tracker.success[task]),
                                      recorder.candidate_names[candidate], info, list(task_set.episode_metrics))
                recorder.writer.append(draw_overlay(recorder.source.frame(env, candidate), lines))
        record = tracker.finish(task, bool(terminated))
        traces.append(EpisodeTrace(record, np.array(observations), np.array(acting_steps, dtype=np.int64),
                                   np.array(rewards)))
    return traces


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


def main(argv: Sequence[str]) -> int:
    video_format = None
    try:
        args = build_parser().parse_args(argv)
        if args.num_episodes_per_task <= 0:
            raise RunLoadError(f"--num_episodes_per_task must be positive, got {args.num_episodes_per_task}")
        if args.save_video:
            from learning.video import VideoError, configure_headless_rendering, resolve_format

            configure_headless_rendering()
            try:
                video_format = resolve_format(args.video_format)
            except VideoError as error:
                raise RunLoadError(str(error)) from None
        run = load_run(args.snapshot_dir, args.checkpoint, args.gpu)
    except RunLoadError as error:
        print(f"run_policy.py: error: {error}", file=sys.stderr)
        return 2
    try:
        mode = args.mode or run.default_mode()
        behaviour = run.behaviour(mode)
        tasks = parse_tasks(args.tasks, run.parts.task_set.num_tasks)
    except RunLoadError as error:
        run.close()
        print(f"run_policy.py: error: {error}", file=sys.stderr)
        return 2
    from learning.video import VideoError

    try:
        traces_by_task = replay(run, behaviour, tasks, args, video_format)
    except VideoError as error:
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
    """Run every requested task's episodes, writing a video per task when ``video_format`` is set."""
    import torch

    from learning.video import VideoWriter, candidate_names, file_slug, frame_source_for

    torch.manual_seed(args.seed)
    task_set = run.parts.task_set
    names = candidate_names(task_set)
    traces_by_task = {}
    for task in tasks:
        recorder = None
        if video_format is not None:
            env = run.parts.evaluator.envs[task]
            path = Path(args.video_root) / run.run_dir.name / f"task{task:02d}_{file_slug(task_set.task_names[task])}"
            recorder = VideoRecorder(frame_source_for(env, args.video_width, args.video_height, len(names)),
                                     VideoWriter(path, args.video_fps, video_format), names)
        try:
            traces_by_task[task] = run_task_episodes(run, behaviour, task, args.num_episodes_per_task,
                                                     not args.stochastic, args.seed, recorder)
        finally:
            if recorder is not None:
                recorder.source.close()
                recorder.writer.close()
        if recorder is not None:
            print(f"video: {recorder.writer.path} ({recorder.writer.frames_written} frames)")
    return traces_by_task


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
