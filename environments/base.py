"""The contract every multi-task benchmark fulfils.

A benchmark is a :class:`TaskSet`: an ordered list of tasks, a factory that builds one gymnasium
environment per task, and the facts the learning code needs about them (episode length, how to hide
the task identity from the networks, the minimum reward used by data sharing, which env-info keys
become metrics). The learning code never imports a concrete environment; it only sees a TaskSet.

Conventions shared by all environments:

* Each task environment is a plain ``gymnasium.Env`` with a ``Box`` action space in ``[-1, 1]``,
  already wrapped in ``gymnasium.wrappers.TimeLimit(max_episode_steps)``: a time limit returns
  ``truncated=True`` (bootstrapped), a true end of the task returns ``terminated=True`` (not bootstrapped).
* The raw observation carries the task one-hot somewhere (as the original code did); the
  :class:`ObservationLayout` says where, and which other dimensions the networks must not see.
* Every step's ``info`` has ``"success"`` (bool). Other numeric info keys listed in
  ``TaskSet.episode_metrics`` are aggregated per episode ("last", "mean", "max" or "sum").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import gymnasium as gym
import numpy as np

Aggregation = Literal["last", "mean", "max", "sum"]


@dataclass(frozen=True)
class ObservationLayout:
    """Where the task identity sits in a raw observation, and what the networks see.

    ``task_id_slice`` marks the one-hot. With ``remove_task_id`` the one-hot is cut out of the
    network input (Maze, Kitchen, point reaching); otherwise it is set to zero (Jaco, Walker,
    Meta-World), unless ``include_task_id`` is requested. ``hidden_slices`` are always zeroed
    (Jaco's hand position).
    """

    raw_dim: int
    task_id_slice: slice
    remove_task_id: bool
    hidden_slices: tuple[slice, ...] = ()

    def network_dim(self, include_task_id: bool = False) -> int:
        """Dimension of the network input."""
        if self.remove_task_id and not include_task_id:
            return self.raw_dim - (self.task_id_slice.stop - self.task_id_slice.start)
        return self.raw_dim

    def task_id(self, raw: np.ndarray) -> np.ndarray:
        """Task index (argmax of the one-hot) of raw observations ``[..., raw_dim]``."""
        return np.argmax(raw[..., self.task_id_slice], axis=-1)

    def network_input(self, raw: np.ndarray, include_task_id: bool = False) -> np.ndarray:
        """Mask raw observations ``[..., raw_dim]`` into what the networks see
        (docs/fidelity.md#task-identity-and-masking)."""
        out = np.array(raw, dtype=np.float32, copy=True)
        for hidden in self.hidden_slices:
            out[..., hidden] = 0.0
        if include_task_id:
            return out
        if self.remove_task_id:
            keep = np.ones(self.raw_dim, dtype=bool)
            keep[self.task_id_slice] = False
            return out[..., keep]
        out[..., self.task_id_slice] = 0.0
        return out


@dataclass(frozen=True)
class GuidePolicy:
    """A fixed stochastic policy that QMP may pick but nobody trains (the 2-D point example).

    Actions are ``clip(mean + std * N(0, I), -1, 1)``; ``mean`` is given in action space.
    """

    name: str
    mean: tuple[float, ...]
    std: float


@dataclass(frozen=True)
class Arena:
    """A 2-D task's layout, for trajectory plots and drawn videos: the learning code draws it from here and
    never imports an environment module."""

    goal: Callable[[gym.Env], np.ndarray]
    """The (x, y) goal of an environment instance."""
    success_distance: float
    """Radius of the goal's success disc."""
    bounds: tuple[float, float] | None = None
    """``(low, high)`` of a square arena bounded on every side (point reaching); None: walls instead."""
    wall_centres: tuple[tuple[float, float], ...] = ()
    """Centres of the unit wall squares, in the coordinates of the agent's (x, y) (the maze)."""
    position: Callable[[gym.Env], np.ndarray] | None = None
    """The agent's (x, y) in an environment instance, for drawn videos (None: filmed by a camera)."""


@dataclass(frozen=True)
class TaskSet:
    """A multi-task benchmark: tasks, their environments and the facts learning needs."""

    env_id: str
    task_names: tuple[str, ...]
    make_env: Callable[[int, bool], gym.Env]
    """``make_env(task_index, evaluation)``: a new environment for one task (TimeLimit applied).
    ``evaluation=True`` builds the separate evaluation instance (Meta-World uses other variants)."""
    max_episode_steps: int
    observation_layout: ObservationLayout
    min_reward: float
    """Reward given to shared transitions by unsupervised data sharing (UDS)."""
    episode_metrics: dict[str, Aggregation] = field(default_factory=dict)
    """Env-info keys turned into per-episode metrics, e.g. ``{"stages_completed": "last"}``."""
    guide_policies: tuple[GuidePolicy, ...] = ()
    """Extra fixed candidates for the Q-switch (empty for every paper benchmark but point reaching)."""
    reward_function: Callable[[np.ndarray, np.ndarray, np.ndarray, int], np.ndarray] | None = None
    """``reward_function(raw_obs, action, raw_next_obs, task_index)`` for CDS relabelling, where the env
    has one: task ``task_index``'s reward of the transitions (s, a, s')."""
    arena: Arena | None = None
    """The 2-D layout of navigation tasks (point reaching, the maze) for plots and videos; None elsewhere."""
    completed_stages: int | None = None
    """Where episodes log ``stages_completed``: its value at the end of a completed episode (any other
    episode ends at most one below it); None elsewhere."""

    @property
    def num_tasks(self) -> int:
        return len(self.task_names)


def one_hot(index: int, size: int) -> np.ndarray:
    """A float32 one-hot vector."""
    vector = np.zeros(size, dtype=np.float32)
    vector[index] = 1.0
    return vector


def select_tasks(task_names: Sequence[str], task_name: str | None) -> list[int]:
    """Indices kept by ``--task_name "i,j,..."`` (all tasks when None or empty).

    Raises ValueError with a one-line message for indices out of range or duplicates.
    """
    if task_name is None or str(task_name).strip() in ("", "None"):
        return list(range(len(task_names)))
    try:
        indices = [int(part) for part in str(task_name).split(",") if part.strip() != ""]
    except ValueError:
        raise ValueError(f"--task_name must be a comma list of task indices, got {task_name!r}") from None
    if not indices or len(set(indices)) != len(indices):
        raise ValueError(f"--task_name must list distinct task indices, got {task_name!r}")
    for index in indices:
        if not 0 <= index < len(task_names):
            raise ValueError(f"--task_name index {index} is out of range 0..{len(task_names) - 1}")
    return indices


def _wrapper_chain(env: gym.Env) -> list[Any]:
    """The env and every wrapper below it, outermost first."""
    chain = [env]
    while hasattr(chain[-1], "env"):
        chain.append(chain[-1].env)
    return chain


def get_env_state(env: gym.Env) -> list[dict]:
    """Everything an env (and its wrappers) holds, for exact resume mid-episode.

    Each wrapper level's attributes are copied except the link to the inner env; MuJoCo's MjModel
    and MjData pickle with their full state, and so do numpy random generators. An environment
    whose state is better captured otherwise (a large model that never changes, say) defines
    ``get_checkpoint_state()``/``set_checkpoint_state(state)`` on its unwrapped class; the
    wrappers around it are still copied.
    """
    states = []
    for level in _wrapper_chain(env):
        custom = getattr(level, "get_checkpoint_state", None) if level is env.unwrapped else None
        if callable(custom):
            states.append({"__custom__": custom()})
        elif level is env.unwrapped and getattr(level, "constant_model", False):
            states.append(_simulator_state(level))
        else:
            states.append({key: value for key, value in level.__dict__.items() if key != "env"})
    return states


def _simulator_state(env: gym.Env) -> dict:
    """An env whose MuJoCo model never changes after construction (``constant_model = True``): its
    attributes without the model, and its MjData as the arrays it holds (a few kB instead of a
    pickled model and data). Restored into the env's own MjData, the simulation continues bit for bit."""
    import mujoco

    state = {}
    for key, value in env.__dict__.items():
        if isinstance(value, mujoco.MjModel):
            continue
        if isinstance(value, mujoco.MjData):
            arrays = {"time": value.time}
            for name in dir(value):
                field = getattr(value, name, None) if not name.startswith("_") else None
                if isinstance(field, np.ndarray):
                    arrays[name] = field.copy()
            state[key] = {"__mjdata__": arrays}
        else:
            state[key] = value
    return state


def independent_resets(env: gym.Env) -> bool:
    """Whether a reset of ``env`` depends only on its random generator: the reset re-initialises
    everything else and steps draw no random numbers. Then episode k + 1 starts from the generator's
    state right after episode k's reset, without running episode k, and evaluation may run an env's
    episodes side by side on copies. Environments declare it with ``independent_resets = True``."""
    return bool(getattr(env.unwrapped, "independent_resets", False))


def share_model(env: gym.Env, source: gym.Env) -> None:
    """Let a freshly built ``env`` simulate with ``source``'s MuJoCo model (and new MjData of it)
    instead of its own copy, when both are the same kind of env with ``constant_model`` (built alike,
    never changed): the evaluator's copies of one task then hold one model in memory and in the CPU
    caches. Other envs are left as they are."""
    inner: Any = env.unwrapped
    other: Any = source.unwrapped
    if getattr(inner, "constant_model", False) and type(inner) is type(other):
        import mujoco

        inner.model = other.model
        inner.data = mujoco.MjData(other.model)


def set_env_state(env: gym.Env, state: list[dict]) -> None:
    """Restore what :func:`get_env_state` captured (the env must be built the same way)."""
    chain = _wrapper_chain(env)
    if len(chain) != len(state):
        raise ValueError("environment wrappers differ from the checkpoint's")
    for level, attributes in zip(chain, state):
        if "__custom__" in attributes:
            level.set_checkpoint_state(attributes["__custom__"])
            continue
        for key, value in attributes.items():
            if isinstance(value, dict) and "__mjdata__" in value:
                _restore_data(level.__dict__[key], value["__mjdata__"])
            else:
                level.__dict__[key] = value


def _restore_data(data, arrays: dict) -> None:
    """Copy saved MjData arrays into ``data`` (arrays whose size depends on the contacts of the saved
    step are recomputed by the next step and skipped when their size differs)."""
    data.time = arrays["time"]
    for name, value in arrays.items():
        field = getattr(data, name, None) if name != "time" else None
        if isinstance(field, np.ndarray) and field.shape == value.shape and field.flags.writeable:
            field[...] = value


class LazyRenderer:
    """An offscreen ``mujoco.Renderer`` built on first use, for an env's ``render()``.

    It pickles as empty, because an OpenGL context cannot be saved: env snapshots
    (:func:`get_env_state`) stay picklable after the env has rendered.
    """

    def __init__(self, width: int = 480, height: int = 480, camera: str | int = -1) -> None:
        self.width, self.height, self.camera = width, height, camera
        self._renderer: Any = None  # a mujoco.Renderer once the first frame is drawn
        self._model: Any = None

    def render(self, model, data) -> np.ndarray:
        """An RGB frame ``[height, width, 3]`` of ``data`` seen from the camera."""
        import mujoco

        if self._renderer is None or self._model is not model:
            self.close()
            self._renderer = mujoco.Renderer(model, height=self.height, width=self.width)
            self._model = model
        self._renderer.update_scene(data, camera=self.camera)
        return self._renderer.render()

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
        self._renderer = None
        self._model = None

    def __getstate__(self) -> dict:
        return {"width": self.width, "height": self.height, "camera": self.camera}

    def __setstate__(self, state: dict) -> None:
        LazyRenderer.__init__(self, **state)
