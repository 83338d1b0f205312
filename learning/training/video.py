"""Episode replays and videos: offscreen frames of any task env, a text overlay, mp4 (or GIF) files.

Frames come from a MuJoCo camera on the env's model and data (every benchmark but one, whether or
not it has a render mode), or, for the 2-D point-reaching example, from a drawing of the arena whose
trail is coloured by the policy that acted. Each frame gets the overlay of the original's visualiser
(docs/fidelity.md#videos): step, reward, success, task, the acting policy, and the env's episode metrics.

:func:`replay_tasks` runs episodes of chosen tasks with any behaviour policy and records, per step,
the observation and the policy that acted (and frames, when asked); :func:`record_videos` is the
self-contained call for training-time videos (fresh envs, torch's random state left untouched).

MuJoCo picks its OpenGL backend when it is imported: call :func:`configure_headless_rendering`
first. On a machine without a display, ``MUJOCO_GL=egl`` works with Mesa's software EGL
(Debian: ``libegl1 libegl-mesa0 libgl1-mesa-dri``), and ``MUJOCO_GL=osmesa`` with ``libosmesa6``.
"""

from __future__ import annotations

import functools
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import gymnasium as gym
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from environments.base import Arena, TaskSet

if TYPE_CHECKING:
    import torch

    from learning.training.sampler import EpisodeRecord

VIDEO_FORMATS = ("auto", "mp4", "gif")
OVERLAY_BACKGROUND = (0, 0, 0, 150)
OVERLAY_TEXT = (255, 255, 255, 255)
VIDEO_CAMERAS = ("track", "top")
"""Named cameras used for videos when a model has them: Walker's torso-tracking side view, Maze's
top view. Other models (Jaco, Kitchen, Meta-World, whose named cameras are upside down) use the
free camera."""


class VideoError(RuntimeError):
    """Rendering or writing a video is impossible here; one-line message that says what to install."""


# ------------------------------------------------------------------------------------------ backends
def configure_headless_rendering() -> str:
    """Choose MuJoCo's OpenGL backend before ``mujoco`` is imported; returns the backend in use.

    An explicit ``MUJOCO_GL`` is kept; with a display MuJoCo's default (GLFW) is used; without one
    EGL is chosen (Mesa's software EGL renders on CPU-only machines).
    """
    if "MUJOCO_GL" not in os.environ and not os.environ.get("DISPLAY") and "mujoco" not in sys.modules:
        os.environ["MUJOCO_GL"] = "egl"
    return os.environ.get("MUJOCO_GL", "glfw")


@functools.lru_cache(maxsize=1)
def rendering_problem() -> str | None:
    """None when MuJoCo can render offscreen here, else a one-line reason with what to install."""
    import mujoco

    backend = os.environ.get("MUJOCO_GL", "glfw")
    model = mujoco.MjModel.from_xml_string("<mujoco><worldbody><geom size='0.1'/></worldbody></mujoco>")
    try:
        renderer = mujoco.Renderer(model, height=16, width=16)
        renderer.update_scene(mujoco.MjData(model))
        renderer.render()
        renderer.close()
    except Exception as error:  # every backend fails in its own way (ImportError, EGLError, RuntimeError...)
        return (f"MuJoCo cannot render with MUJOCO_GL={backend} ({type(error).__name__}); install Debian's "
                f"libegl1 libegl-mesa0 libgl1-mesa-dri and set MUJOCO_GL=egl, or libosmesa6 and MUJOCO_GL=osmesa")
    return None


# ------------------------------------------------------------------------------------------ naming
def candidate_names(task_set: TaskSet) -> list[str]:
    """Names of the policies a behaviour may pick: the T learned policies, then any guide policies."""
    names = [f"policy {index}" for index in range(task_set.num_tasks)]
    return names + [f"guide {guide.name}" for guide in task_set.guide_policies]


def candidate_colours(count: int) -> list[tuple[int, int, int]]:
    """One distinct RGB colour per candidate policy (matplotlib's tab10, then tab20b)."""
    from matplotlib import colormaps

    palette = [colormaps["tab10"](index)[:3] for index in range(10)] + [colormaps["tab20b"](index)[:3]
                                                                        for index in range(20)]
    return [(round(255 * r), round(255 * g), round(255 * b)) for r, g, b in (palette[index % len(palette)]
                                                                            for index in range(count))]


def file_slug(text: str) -> str:
    """A file-name-safe version of a task name."""
    return re.sub(r"[^A-Za-z0-9_.]+", "-", text).strip("-") or "task"


# ------------------------------------------------------------------------------------------ frames
def even_size(width: int, height: int) -> tuple[int, int]:
    """Video codecs (H.264 with 4:2:0 chroma) need even frame sizes."""
    return max(2, width + width % 2), max(2, height + height % 2)


def resize_frame(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    """An RGB uint8 frame resized to ``width x height``."""
    frame = np.asarray(frame)[..., :3].astype(np.uint8)
    if frame.shape[:2] == (height, width):
        return frame
    return np.asarray(Image.fromarray(frame).resize((width, height), Image.Resampling.BILINEAR))


class FrameSource(Protocol):
    """Produces one RGB frame ``[height, width, 3]`` of an env's current state."""

    def start_episode(self) -> None: ...

    def frame(self, env: gym.Env, acting: int) -> np.ndarray: ...

    def close(self) -> None: ...


def mujoco_state(env: gym.Env) -> tuple[Any, Any] | None:
    """The ``(MjModel, MjData)`` pair that simulates ``env``, or None for non-MuJoCo envs.

    Looks on the unwrapped env and on the ``simulator`` (Meta-World) or ``physics`` (Kitchen) it holds.
    """
    import mujoco

    unwrapped = env.unwrapped
    for holder in (unwrapped, getattr(unwrapped, "simulator", None), getattr(unwrapped, "physics", None)):
        model, data = getattr(holder, "model", None), getattr(holder, "data", None)
        if isinstance(model, mujoco.MjModel) and isinstance(data, mujoco.MjData):
            return model, data
    return None


class MujocoCameraFrames:
    """Frames of the env's MuJoCo model from its video camera, without shadows and reflections.

    The camera is the first of :data:`VIDEO_CAMERAS` the model has, else MuJoCo's free camera
    framing the whole model. Shadows and reflections are off: under software OpenGL (Mesa on a
    CPU) they cost several times the rest of a frame and change little. The model's offscreen
    buffer is enlarged to the frame size when it is smaller (a visual setting only; the physics is
    untouched).
    """

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self._renderer: Any = None  # a mujoco.Renderer once the first frame is drawn
        self._model: Any = None
        self._camera: str | int = -1

    def start_episode(self) -> None:
        """The camera is stateless."""

    def frame(self, env: gym.Env, acting: int) -> np.ndarray:
        import mujoco

        state = mujoco_state(env)
        if state is None:
            raise VideoError(f"{type(env.unwrapped).__name__} has no MuJoCo model to film")
        model, data = state
        if self._renderer is None or self._model is not model:
            self.close()
            model.vis.global_.offwidth = max(model.vis.global_.offwidth, self.width)
            model.vis.global_.offheight = max(model.vis.global_.offheight, self.height)
            self._renderer = mujoco.Renderer(model, height=self.height, width=self.width)
            self._model = model
            names = {model.camera(index).name for index in range(model.ncam)}
            self._camera = next((name for name in VIDEO_CAMERAS if name in names), -1)
        self._renderer.update_scene(data, camera=self._camera)
        self._renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
        self._renderer.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0
        return self._renderer.render().copy()

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
            self._model = None


class ArenaFrames:
    """A drawing of a bounded 2-D arena (the task set's ``Arena``, e.g. point reaching): goal disc, agent,
    and its trail coloured by the acting policy."""

    def __init__(self, arena: Arena, width: int, height: int, colours: Sequence[tuple[int, int, int]]) -> None:
        if arena.bounds is None or arena.position is None:
            raise VideoError("only arenas with bounds and a position are drawn")
        self.bounds, self.position, self.arena = arena.bounds, arena.position, arena
        self.width, self.height, self.colours = width, height, list(colours)
        self.trail: list[tuple[np.ndarray, int]] = []

    def start_episode(self) -> None:
        self.trail = []

    def _pixel(self, position: np.ndarray) -> tuple[float, float]:
        low, high = self.bounds
        margin = 0.08
        u = (position[0] - low) / (high - low)
        v = (position[1] - low) / (high - low)
        return ((margin + (1 - 2 * margin) * u) * self.width, (1 - margin - (1 - 2 * margin) * v) * self.height)

    def frame(self, env: gym.Env, acting: int) -> np.ndarray:
        self.trail.append((self.position(env), acting))
        image = Image.new("RGB", (self.width, self.height), (250, 250, 250))
        draw = ImageDraw.Draw(image)
        low, high = self.bounds
        draw.rectangle([self._pixel(np.array([low, high])), self._pixel(np.array([high, low]))],
                       outline=(60, 60, 60), width=2)
        goal_x, goal_y = self._pixel(self.arena.goal(env))
        radius = self.arena.success_distance / (high - low) * (1 - 2 * 0.08) * self.width
        draw.ellipse([goal_x - radius, goal_y - radius, goal_x + radius, goal_y + radius], fill=(255, 215, 120))
        for (start, _), (end, policy) in zip(self.trail, self.trail[1:]):
            draw.line([self._pixel(start), self._pixel(end)], fill=self.colours[policy % len(self.colours)], width=3)
        x, y = self._pixel(self.trail[-1][0])
        draw.ellipse([x - 6, y - 6, x + 6, y + 6], fill=self.colours[acting % len(self.colours)], outline=(0, 0, 0))
        return np.asarray(image)

    def close(self) -> None:
        """Nothing to release."""


def frame_source_for(env: gym.Env, width: int, height: int, num_candidates: int,
                     arena: Arena | None = None) -> FrameSource:
    """How to film ``env``: a drawing of its task set's ``arena`` when it is drawable (bounds and a
    position) and the env has no MuJoCo model (point reaching), else a camera on its MuJoCo model.

    Raises VideoError for an env that is neither, or when MuJoCo cannot render on this machine.
    """
    width, height = even_size(width, height)
    if arena is not None and arena.bounds is not None and arena.position is not None and mujoco_state(env) is None:
        return ArenaFrames(arena, width, height, candidate_colours(num_candidates))
    if mujoco_state(env) is None:
        raise VideoError(f"{type(env.unwrapped).__name__} has no MuJoCo model to film")
    problem = rendering_problem()
    if problem is not None:
        raise VideoError(problem)
    return MujocoCameraFrames(width, height)


def check_video_support(task_set: TaskSet, video_format: str) -> str:
    """The file format videos of ``task_set`` will have; raises VideoError (what to install) when
    they cannot be made here. Builds one env of the first task to find out how it is filmed."""
    resolved = resolve_format(video_format)
    env = task_set.make_env(0, True)
    try:
        frame_source_for(env, 16, 16, task_set.num_tasks + len(task_set.guide_policies), task_set.arena).close()
    finally:
        env.close()
    return resolved


# ------------------------------------------------------------------------------------------ overlay
def overlay_lines(task_name: str, task: int, episode: int, step: int, reward: float, episode_return: float,
                  success: bool, acting_name: str, info: dict[str, Any], metric_keys: Sequence[str]) -> list[str]:
    """The overlay's text lines (the original's fields, docs/fidelity.md#videos, plus the running return)."""
    lines = [f"task {task}: {task_name}", f"episode {episode}  step {step}",
             f"reward {reward:+.3f}  return {episode_return:+.2f}", f"success {'yes' if success else 'no'}",
             f"acting: {acting_name}"]
    for key in metric_keys:
        if key in info:
            lines.append(f"{key} {float(info[key]):.3g}")
    return lines


def draw_overlay(frame: np.ndarray, lines: Sequence[str]) -> np.ndarray:
    """The frame with ``lines`` written top-left on a translucent dark box."""
    image = Image.fromarray(np.ascontiguousarray(frame)).convert("RGBA")
    font_size = max(10, image.height // 30)
    font = ImageFont.load_default(size=font_size)
    layer = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    spacing = int(font_size * 1.25)
    width = max(draw.textlength(line, font=font) for line in lines) if lines else 0
    draw.rectangle([0, 0, width + 12, spacing * len(lines) + 8], fill=OVERLAY_BACKGROUND)
    for index, line in enumerate(lines):
        draw.text((6, 4 + index * spacing), line, font=font, fill=OVERLAY_TEXT)
    return np.asarray(Image.alpha_composite(image, layer).convert("RGB"))


# ------------------------------------------------------------------------------------------ files
def mp4_available() -> bool:
    """Whether an ffmpeg for imageio is installed (the ``imageio-ffmpeg`` wheel ships one)."""
    try:
        import imageio_ffmpeg

        return Path(imageio_ffmpeg.get_ffmpeg_exe()).exists()
    except (ImportError, RuntimeError):
        return False


def resolve_format(requested: str) -> str:
    """"auto" -> mp4 when ffmpeg is available, else gif. Raises VideoError for mp4 without ffmpeg."""
    if requested not in VIDEO_FORMATS:
        raise VideoError(f"unknown video format {requested!r}; choose one of {', '.join(VIDEO_FORMATS)}")
    if requested == "auto":
        return "mp4" if mp4_available() else "gif"
    if requested == "mp4" and not mp4_available():
        raise VideoError("mp4 needs ffmpeg: pip install imageio-ffmpeg (or choose --video_format gif)")
    return requested


class VideoWriter:
    """Appends frames to an mp4 (imageio + ffmpeg, streamed) or an animated GIF (Pillow)."""

    def __init__(self, path: Path, fps: int, video_format: str) -> None:
        self.video_format = resolve_format(video_format)
        self.path = Path(path).with_suffix(f".{self.video_format}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fps = fps
        self.frames_written = 0
        self._gif_frames: list[Image.Image] = []
        self._writer = None
        if self.video_format == "mp4":
            import imageio.v2 as imageio

            self._writer = imageio.get_writer(self.path, fps=fps, codec="libx264", macro_block_size=2,
                                              quality=7, ffmpeg_log_level="error")

    def append(self, frame: np.ndarray) -> None:
        if self._writer is not None:
            self._writer.append_data(np.ascontiguousarray(frame))
        else:  # palette images keep a long GIF's memory at a third of RGB
            self._gif_frames.append(Image.fromarray(frame).quantize(colors=255))
        self.frames_written += 1

    def close(self) -> Path:
        """Finish the file; returns its path."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        elif self._gif_frames:
            first, *rest = self._gif_frames
            first.save(self.path, save_all=True, append_images=rest, duration=max(1, round(1000 / self.fps)), loop=0)
            self._gif_frames = []
        return self.path


# ------------------------------------------------------------------------------------------ replays
@dataclass
class EpisodeTrace:
    """One replayed episode: its summary and what happened at every step."""

    record: EpisodeRecord
    raw_observations: np.ndarray
    """``[length + 1, raw_dim]``: the reset observation, then one per step."""
    acting: np.ndarray
    """``[length]``: the candidate policy that chose each step's action."""
    rewards: np.ndarray


@dataclass(frozen=True)
class VideoSettings:
    """Frame size, frame rate and file format of the videos (the original's --vis_* flags)."""

    width: int = 500
    height: int = 500
    fps: int = 40
    video_format: str = "auto"


@dataclass(frozen=True)
class ReplayContext:
    """What replaying episodes needs of a run (a trainer's or a loaded run's parts provide it)."""

    task_set: TaskSet
    network_input: Callable[[np.ndarray], np.ndarray]
    """Raw env observation -> the networks' input (the task identity hidden or one-hot)."""
    device: torch.device
    discount: float


@dataclass
class VideoRecorder:
    """Where one task's frames go: a frame source for the env and an open video file."""

    source: FrameSource
    writer: VideoWriter
    candidate_names: Sequence[str]


def run_task_episodes(context: ReplayContext, behaviour, env: gym.Env, task: int, num_episodes: int,
                      deterministic: bool, seed: int, recorder: VideoRecorder | None = None) -> list[EpisodeTrace]:
    """Run ``num_episodes`` episodes of one task on ``env`` (an env of that task).

    The first episode resets with ``seed + task`` (as the evaluator does), later ones continue the
    env's random stream. The behaviour sees a ``[T, obs]`` batch whose every row is this task's
    observation; only row ``task`` is used (rows are independent in every behaviour policy).
    """
    import torch

    from learning.training.sampler import EpisodeTracker

    task_set = context.task_set
    num_tasks = task_set.num_tasks
    network_input = context.network_input
    tracker = EpisodeTracker(num_tasks, task_set.episode_metrics, context.discount)
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
            action, acting = behaviour.act(torch.as_tensor(batch, device=context.device), deterministic=deterministic)
            candidate = int(acting[task])
            raw, reward, terminated, truncated, info = env.step(np.clip(action[task].cpu().numpy(), -1.0, 1.0))
            tracker.record_infos(np.array([task]), [float(reward)], [info])
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


def replay_tasks(context: ReplayContext, behaviour, envs: Sequence[gym.Env], tasks: Sequence[int],
                 episodes_per_task: int, deterministic: bool, seed: int, video: VideoSettings | None = None,
                 video_dir: Path | None = None,
                 ) -> tuple[dict[int, list[EpisodeTrace]], dict[int, VideoWriter]]:
    """Episodes of every task in ``tasks`` (``envs[task]`` is its env); with ``video``, one file per
    task in ``video_dir`` named ``task{k:02d}_{task name}``. Returns the traces and the closed writers.

    Raises VideoError when a video cannot be made (no GL backend, no ffmpeg for mp4...).
    """
    names = candidate_names(context.task_set)
    traces: dict[int, list[EpisodeTrace]] = {}
    writers: dict[int, VideoWriter] = {}
    for task in tasks:
        recorder = None
        if video is not None:
            source = frame_source_for(envs[task], video.width, video.height, len(names), context.task_set.arena)
            path = Path(video_dir or ".") / f"task{task:02d}_{file_slug(context.task_set.task_names[task])}"
            recorder = VideoRecorder(source, VideoWriter(path, video.fps, video.video_format), names)
            writers[task] = recorder.writer
        try:
            traces[task] = run_task_episodes(context, behaviour, envs[task], task, episodes_per_task, deterministic,
                                             seed, recorder)
        finally:
            if recorder is not None:
                recorder.source.close()
                recorder.writer.close()
    return traces, writers


def record_videos(context: ReplayContext, behaviour, video_dir: Path, video: VideoSettings, episodes_per_task: int,
                  seed: int) -> dict[int, Path]:
    """Training-time videos: deterministic episodes of every task on fresh evaluation envs, one file per
    task. The evaluator's envs, the behaviour's state and torch's random state are left as they were,
    so a run trains and evaluates the same with and without videos. Returns task -> video file."""
    import torch

    envs = [context.task_set.make_env(task, True) for task in range(context.task_set.num_tasks)]
    behaviour_state = behaviour.state_dict()
    try:
        with torch.random.fork_rng(devices=[context.device] if context.device.type == "cuda" else []):
            torch.manual_seed(seed)
            _, writers = replay_tasks(context, behaviour, envs, range(len(envs)), episodes_per_task, True, seed, video,
                                      video_dir)
    finally:
        behaviour.load_state_dict(behaviour_state)
        for env in envs:
            env.close()
    return {task: writer.path for task, writer in writers.items()}
