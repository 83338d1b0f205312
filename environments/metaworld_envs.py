"""Meta-World benchmarks: MetaWorldCDS-v1 (door + drawer on one table), MetaWorldMT10-v2, MetaWorldMT50-v2.

Every task environment is a :class:`MetaWorldTaskEnv`: a light gymnasium env that builds the
underlying Meta-World env (a metaworld 3.1.1 V3 task, or one of the CDS tasks below) on its first
``reset``, keeps 50 pre-sampled object/goal placements ("variants") and cycles through them in a
random order, and appends the task one-hot to the observation (docs/fidelity.md#meta-world-cds,
#meta-world-mt10-and-mt50).

Seeding: ``reset(seed=s)`` draws the 50 variants from ``s`` (training envs) or ``s + 100``
(evaluation envs, so evaluation placements differ from training ones as in the original,
docs/fidelity.md#evaluation-variants) and the variant order from the env's ``np_random``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cached_property, partial
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import mujoco
import numpy as np
import numpy.typing as npt
from gymnasium.spaces import Box
from gymnasium.wrappers import TimeLimit
from metaworld.env_dict import MT10_V3, MT50_V3
from metaworld.envs import SawyerDoorCloseEnvV3, SawyerDoorEnvV3, SawyerDrawerCloseEnvV3, SawyerDrawerOpenEnvV3
from metaworld.sawyer_xyz_env import SawyerXYZEnv
from scipy.spatial.transform import Rotation

from environments.base import ObservationLayout, TaskSet, one_hot, select_tasks
from environments.metaworld_cds_scene import scene_path

MAX_EPISODE_STEPS = 500
NUM_VARIANTS = 50
EVALUATION_SEED_OFFSET = 100
"""Evaluation envs draw their variants from ``seed + 100`` (the original's test-task seed offset)."""
REWARD_FUNCTION_VERSION = "v2"
"""metaworld 3.1.1 ``reward_function_version``: "v2" is the shaped V2 reward in [0, 10]; "v1" is the old V1 reward."""
MT_OBSERVATION_DIM = 39
CDS_OBSERVATION_DIM = 21
CDS_TASK_NAMES = ("door-open", "door-close", "drawer-open", "drawer-close")
CDS_DOOR_RANGE = ((-0.1, 0.85, 0.15), (0.0, 0.95, 0.15))
CDS_DRAWER_RANGE = ((0.3, 0.9, 0.0), (0.4, 0.9, 0.0))
CDS_DOOR_CLOSE_HAND_START = (-0.6, 0.6, 0.2)
ORIGINAL_V2_LIST = (
    "assembly", "basketball", "bin-picking", "box-close", "button-press-topdown", "button-press-topdown-wall",
    "button-press", "button-press-wall", "coffee-button", "coffee-pull", "coffee-push", "dial-turn",
    "disassemble", "door-close", "door-lock", "door-open", "door-unlock", "hand-insert", "drawer-close",
    "drawer-open", "faucet-open", "faucet-close", "hammer", "handle-press-side", "handle-press",
    "handle-pull-side", "handle-pull", "lever-pull", "peg-insert-side", "pick-place-wall", "pick-out-of-hole",
    "reach", "push-back", "push", "pick-place", "plate-slide", "plate-slide-side", "plate-slide-back",
    "plate-slide-back-side", "peg-insert-side", "peg-unplug-side", "soccer", "stick-push", "stick-pull",
    "push-wall", "push", "reach-wall", "reach", "shelf-place", "sweep-into", "sweep", "window-open",
    "window-close",
)
"""The original's V2 ``OrderedDict`` entries in order (53: peg-insert-side, push and reach appear twice).
A repeated key keeps its first position, so the effective MT50 task order is the first occurrences."""
MT50_ORDER = tuple(f"{name}-v3" for name in dict.fromkeys(ORIGINAL_V2_LIST))
"""MetaWorldMT50-v2's task index order: the original's (V2 list, first occurrences), with V3 names."""

# MuJoCo arrays that hold the state of a running Meta-World env besides the integration state:
# model fields the tasks move at reset, and data fields whose rows tasks keep references to.
_MUTABLE_MODEL_FIELDS = ("body_pos", "body_quat", "geom_pos", "geom_quat", "site_pos", "site_quat", "eq_data")
_VIEWABLE_DATA_FIELDS = (
    "qpos", "qvel", "mocap_pos", "mocap_quat", "xpos", "xquat", "xmat", "xipos", "ximat",
    "geom_xpos", "geom_xmat", "site_xpos", "site_xmat", "subtree_com",
)
_PHYSICS_STATE = mujoco.mjtState.mjSTATE_INTEGRATION


# ----------------------------------------------------------------------------------------------
# MetaWorldCDS-v1 tasks: the stock V3 task logic on the door + drawer scene (docs/fidelity.md#meta-world-cds).


if TYPE_CHECKING:  # the mixins below read and extend the Meta-World environment they are mixed into
    _MixedIntoSawyer = SawyerXYZEnv
else:
    _MixedIntoSawyer = object


class _DoorDrawerScene(_MixedIntoSawyer):
    """Mixin for the CDS tasks: the shared scene, the 21-dim observation and a single reset pass.

    Observation: hand xyz, gripper opening, drawer handle xyz, drawer quaternion (w first), door
    handle xyz, door handle quaternion (x, y, z, w), goal xyz. No previous-frame block.
    """

    @property
    def model_name(self) -> str:
        return scene_path()

    @cached_property
    def sawyer_observation_space(self) -> Box:
        # Unbounded: Meta-World's per-step clipping to this space must not alter the CDS observation.
        return Box(-np.inf, np.inf, (CDS_OBSERVATION_DIM,), dtype=np.float64)

    def _get_curr_obs_combined_no_goal(self) -> npt.NDArray[np.float64]:
        fingers = self.data.body("rightclaw").xpos - self.data.body("leftclaw").xpos
        gripper_opening = np.clip(np.linalg.norm(fingers) / 0.1, 0.0, 1.0)
        drawer = self.data.body("drawer_link")
        door_handle = self.data.geom("handle")
        return np.hstack((
            self.get_endeff_pos(),
            gripper_opening,
            drawer.xpos + np.array([0.0, -0.16, 0.0]),
            drawer.xquat,
            door_handle.xpos,
            Rotation.from_matrix(door_handle.xmat.reshape(3, 3)).as_quat(),
        ))

    def _get_obs(self) -> npt.NDArray[np.float64]:
        return np.hstack((self._get_curr_obs_combined_no_goal(), self._get_pos_goal()))

    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[npt.NDArray[np.float64], dict]:
        """One simulator reset and one ``reset_model`` pass (V3's reset assumes the 39-dim layout).

        drawer-open's ``reset_model`` moves the drawer body without recomputing positions; the
        forward pass makes the first observation show the new placement.
        """
        self.curr_path_length = 0
        mujoco.mj_resetData(self.model, self.data)
        self.reset_model()
        mujoco.mj_forward(self.model, self.data)
        return self._get_obs(), {}


class _DoorRewardsFromDoorSlot(_MixedIntoSawyer):
    """The stock door rewards read the first object slot; on the CDS table the door is the second
    object, so its block is copied there before the reward is computed."""

    def evaluate_state(self, obs: npt.NDArray[np.float64], action: npt.NDArray[np.float32]) -> tuple[float, dict]:
        reordered = obs.copy()
        reordered[4:11] = obs[11:18]
        return super().evaluate_state(reordered, action)


class CDSDoorOpenEnv(_DoorRewardsFromDoorSlot, _DoorDrawerScene, SawyerDoorEnvV3):  # type: ignore[misc]  # Meta-World's own bases disagree on pickling
    """door-open on the CDS table: door x in [-0.1, 0], target = door + (-0.3, -0.45, 0), door starts closed."""

    def __init__(self, reward_function_version: str = REWARD_FUNCTION_VERSION) -> None:
        super().__init__(reward_function_version=reward_function_version)
        self._random_reset_space = Box(np.array(CDS_DOOR_RANGE[0]), np.array(CDS_DOOR_RANGE[1]), dtype=np.float64)


class CDSDoorCloseEnv(_DoorRewardsFromDoorSlot, _DoorDrawerScene, SawyerDoorCloseEnvV3):  # type: ignore[misc]  # Meta-World's own bases disagree on pickling
    """door-close on the CDS table: hand at (-0.6, 0.6, 0.2), door opened to -pi/2, target = door + (0.2, -0.2, 0)."""

    def __init__(self, reward_function_version: str = REWARD_FUNCTION_VERSION) -> None:
        super().__init__(reward_function_version=reward_function_version)
        self._random_reset_space = Box(np.array(CDS_DOOR_RANGE[0]), np.array(CDS_DOOR_RANGE[1]), dtype=np.float64)
        self.hand_init_pos = np.array(CDS_DOOR_CLOSE_HAND_START)
        self.init_config["hand_init_pos"] = self.hand_init_pos


class CDSDrawerOpenEnv(_DoorDrawerScene, SawyerDrawerOpenEnvV3):  # type: ignore[misc]  # Meta-World's own bases disagree on pickling
    """drawer-open on the CDS table: drawer x in [0.3, 0.4], target = drawer + (0, -0.36, 0.09), drawer closed."""

    def __init__(self, reward_function_version: str = REWARD_FUNCTION_VERSION) -> None:
        super().__init__(reward_function_version=reward_function_version)
        self._random_reset_space = Box(np.array(CDS_DRAWER_RANGE[0]), np.array(CDS_DRAWER_RANGE[1]), dtype=np.float64)


class CDSDrawerCloseEnv(_DoorDrawerScene, SawyerDrawerCloseEnvV3):  # type: ignore[misc]  # Meta-World's own bases disagree on pickling
    """drawer-close on the CDS table: drawer pulled out by 0.15, target = drawer + (0, -0.16, 0.09).

    The handle is the drawer-open one (no +0.05 z offset of stock drawer-close), as in the original.
    Success within 0.065, as stock V2 and V3: the class declares ``_TARGET_RADIUS = 0.04`` but reads
    the base class's ``TARGET_RADIUS = 0.05`` (+ 0.015), and the original's CDS subclass kept it.
    """

    def __init__(self, reward_function_version: str = REWARD_FUNCTION_VERSION) -> None:
        super().__init__(reward_function_version=reward_function_version)
        self._random_reset_space = Box(np.array(CDS_DRAWER_RANGE[0]), np.array(CDS_DRAWER_RANGE[1]), dtype=np.float64)

    def _get_pos_objects(self) -> npt.NDArray[np.float64]:
        return self.data.body("drawer_link").xpos + np.array([0.0, -0.16, 0.0])


CDS_TASK_CLASSES: tuple[type[SawyerXYZEnv], ...] = (
    CDSDoorOpenEnv, CDSDoorCloseEnv, CDSDrawerOpenEnv, CDSDrawerCloseEnv,
)


# ----------------------------------------------------------------------------------------------
# The simulator holder: lazy construction, compact and exact pickling.


def _build_simulator(simulator_class: type[SawyerXYZEnv]) -> SawyerXYZEnv:
    """A Meta-World env ready for frozen-variant resets, with the goal observable (Meta-World's MT setting)."""
    simulator = simulator_class(reward_function_version=REWARD_FUNCTION_VERSION)
    simulator._set_task_called = True
    simulator._partially_observable = False
    del simulator.sawyer_observation_space  # recomputed with the goal bounds
    return simulator


def _capture(simulator: SawyerXYZEnv) -> dict[str, Any]:
    """Everything needed to continue ``simulator`` exactly, without its MjModel/MjData (~40 MB per env)."""
    data_arrays = {name: getattr(simulator.data, name) for name in _VIEWABLE_DATA_FIELDS}
    attributes, views = {}, {}
    for name, value in simulator.__dict__.items():
        if name in ("model", "data", "mujoco_renderer"):
            continue
        attributes[name] = value
        if not isinstance(value, np.ndarray):
            continue
        for field, array in data_arrays.items():
            if np.shares_memory(value, array):
                if not value.flags.c_contiguous:
                    raise ValueError(f"cannot snapshot attribute {name!r}: a non-contiguous view of MjData.{field}")
                offset = (value.ctypes.data - array.ctypes.data) // array.itemsize
                views[name] = (field, offset, value.shape)
    physics = np.empty(mujoco.mj_stateSize(simulator.model, _PHYSICS_STATE))
    mujoco.mj_getState(simulator.model, simulator.data, physics, _PHYSICS_STATE)
    model_fields = {field: getattr(simulator.model, field).copy() for field in _MUTABLE_MODEL_FIELDS}
    return {"attributes": attributes, "views": views, "physics": physics, "model_fields": model_fields}


def _restore(simulator: SawyerXYZEnv, saved: dict[str, Any]) -> None:
    """Apply a :func:`_capture` result to a freshly built simulator of the same class."""
    simulator.__dict__.update(saved["attributes"])
    for field, value in saved["model_fields"].items():
        getattr(simulator.model, field)[...] = value
    mujoco.mj_setState(simulator.model, simulator.data, saved["physics"], _PHYSICS_STATE)
    mujoco.mj_forward(simulator.model, simulator.data)
    # mj_forward rewrites qacc_warmstart (last bits); put the saved one back for an exact continuation.
    mujoco.mj_setState(simulator.model, simulator.data, saved["physics"], _PHYSICS_STATE)
    for name, (field, offset, shape) in saved["views"].items():
        flat = getattr(simulator.data, field).reshape(-1)
        setattr(simulator, name, flat[offset : offset + int(np.prod(shape))].reshape(shape))


class _Simulator:
    """A Meta-World env built on first use.

    Pickles as a small exact state (attributes, integration state, moved model fields, which
    attributes alias MjData rows) and rebuilds the env from its XML on first use after unpickling.
    Meta-World's own pickling keeps only qpos/qvel, which does not continue an episode exactly.
    """

    def __init__(self, factory: Callable[[], SawyerXYZEnv]) -> None:
        self._factory = factory
        self._env: SawyerXYZEnv | None = None
        self._saved: dict[str, Any] | None = None

    @property
    def built(self) -> bool:
        return self._env is not None

    @property
    def env(self) -> SawyerXYZEnv:
        if self._env is None:
            self._env = self._factory()
            if self._saved is not None:
                _restore(self._env, self._saved)
                self._saved = None
        return self._env

    def __getstate__(self) -> dict[str, Any]:
        saved = self._saved if self._env is None else _capture(self._env)
        return {"factory": self._factory, "saved": saved}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._factory = state["factory"]
        self._env = None
        self._saved = state["saved"]


def _skip_hand_settling(simulator: SawyerXYZEnv, steps: int = 50) -> None:
    """Stand-in for ``_reset_hand`` while sampling variants: only records the gripper centre."""
    simulator.init_tcp = simulator.tcp_center


def sample_variants(simulator: SawyerXYZEnv, rng: np.random.Generator, count: int = NUM_VARIANTS) -> np.ndarray:
    """``count`` placement vectors drawn by the task's own ``reset_model`` (its rejection rules included).

    The 50-step hand settling of each reset is skipped (it does not affect the drawn vectors), which
    makes sampling much cheaper than Meta-World's own task construction.
    """
    simulator.np_random = rng
    simulator._freeze_rand_vec, simulator.seeded_rand_vec = False, True
    simulator._reset_hand = partial(_skip_hand_settling, simulator)  # type: ignore[method-assign]
    try:
        variants = []
        for _ in range(count):
            simulator.reset_model()
            variants.append(np.array(simulator._last_rand_vec, dtype=np.float64))
    finally:
        del simulator._reset_hand
        simulator._freeze_rand_vec, simulator.seeded_rand_vec = True, False
    return np.stack(variants)


# ----------------------------------------------------------------------------------------------
# The task environment.


class MetaWorldTaskEnv(gym.Env):
    """One Meta-World task: lazy simulator, 50 cycled variants, observation = [task obs, one-hot]."""

    metadata = {"render_modes": []}

    def __init__(
        self,
        simulator_class: type[SawyerXYZEnv],
        observation_dim: int,
        task_index: int,
        task_name: str,
        num_tasks: int,
        evaluation: bool,
    ) -> None:
        self.task_index = task_index
        self.task_name = task_name
        self.evaluation = evaluation
        self.observation_space = Box(-np.inf, np.inf, (observation_dim + num_tasks,), dtype=np.float32)
        self.action_space = Box(-1.0, 1.0, (4,), dtype=np.float32)
        self._one_hot = one_hot(task_index, num_tasks)
        self._simulator = _Simulator(partial(_build_simulator, simulator_class))
        self._variants: np.ndarray | None = None
        self._variant_order = np.empty(0, dtype=np.int64)
        self._variant_cursor = 0
        self._variant = -1

    @property
    def simulator_built(self) -> bool:
        """Whether the Meta-World env exists yet (it is built on the first reset)."""
        return self._simulator.built

    @property
    def simulator(self) -> SawyerXYZEnv:
        """The underlying Meta-World env (built on access)."""
        return self._simulator.env

    @property
    def variants(self) -> np.ndarray | None:
        """The 50 placement vectors in use (None before the first reset)."""
        return self._variants

    @property
    def variant(self) -> int:
        """Index of the current episode's variant (-1 before the first reset)."""
        return self._variant

    def _info(self, success: bool) -> dict[str, Any]:
        return {"success": success, "task_id": self.task_index, "task_name": self.task_name}

    def _observation(self, observation: npt.NDArray[np.float64]) -> np.ndarray:
        return np.concatenate((observation.astype(np.float32), self._one_hot))

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        simulator = self._simulator.env
        if seed is not None or self._variants is None:
            variant_seed = seed if seed is not None else int(self.np_random.integers(2**31 - 1))
            if self.evaluation:
                variant_seed += EVALUATION_SEED_OFFSET
            self._variants = sample_variants(simulator, np.random.default_rng(variant_seed))
            self._variant_order = np.empty(0, dtype=np.int64)
        if self._variant_cursor >= len(self._variant_order):
            self._variant_order = self.np_random.permutation(NUM_VARIANTS)
            self._variant_cursor = 0
        self._variant = int(self._variant_order[self._variant_cursor])
        self._variant_cursor += 1
        simulator._last_rand_vec = self._variants[self._variant].copy()
        observation, _ = simulator.reset()
        return self._observation(observation), self._info(False)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._variants is None:
            raise RuntimeError("call reset() before step()")
        clipped = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        observation, reward, _, truncated, info = self._simulator.env.step(clipped)
        info = {**info, **self._info(bool(info["success"]))}
        return self._observation(observation), float(reward), False, bool(truncated), info

    def close(self) -> None:
        if self._simulator.built:
            self._simulator.env.close()


# ----------------------------------------------------------------------------------------------
# Task sets.


def _make_task_env(
    simulator_classes: tuple[type[SawyerXYZEnv], ...],
    task_names: tuple[str, ...],
    observation_dim: int,
    task_index: int,
    evaluation: bool,
) -> gym.Env:
    if not 0 <= task_index < len(task_names):
        raise ValueError(f"task index {task_index} is out of range 0..{len(task_names) - 1}")
    env = MetaWorldTaskEnv(
        simulator_classes[task_index],
        observation_dim,
        task_index,
        task_names[task_index],
        len(task_names),
        evaluation,
    )
    return TimeLimit(env, MAX_EPISODE_STEPS)


def _task_set(
    env_id: str,
    all_names: Sequence[str],
    all_classes: Sequence[type[SawyerXYZEnv]],
    observation_dim: int,
    task_name: str | None,
    sparse_tasks: Sequence[int] | None,
) -> TaskSet:
    if sparse_tasks:
        raise ValueError(
            f"--sparse_tasks is not supported by {env_id} (the original never used it), got {list(sparse_tasks)}"
        )
    kept = select_tasks(all_names, task_name)
    names = tuple(all_names[index] for index in kept)
    classes = tuple(all_classes[index] for index in kept)
    return TaskSet(
        env_id=env_id,
        task_names=names,
        make_env=partial(_make_task_env, classes, names, observation_dim),
        max_episode_steps=MAX_EPISODE_STEPS,
        observation_layout=ObservationLayout(
            raw_dim=observation_dim + len(names),
            task_id_slice=slice(observation_dim, observation_dim + len(names)),
            remove_task_id=False,
        ),
        min_reward=0.0,
    )


def make_cds_task_set(task_name: str | None = None, sparse_tasks: Sequence[int] | None = ()) -> TaskSet:
    """MetaWorldCDS-v1: door-open, door-close, drawer-open, drawer-close on one table
    (docs/fidelity.md#meta-world-cds)."""
    return _task_set(
        "MetaWorldCDS-v1", CDS_TASK_NAMES, CDS_TASK_CLASSES, CDS_OBSERVATION_DIM, task_name, sparse_tasks
    )


def make_mt10_task_set(task_name: str | None = None, sparse_tasks: Sequence[int] | None = ()) -> TaskSet:
    """MetaWorldMT10-v2: metaworld 3.1.1's MT10 tasks in Meta-World's order
    (docs/fidelity.md#meta-world-mt10-and-mt50)."""
    return _task_set(
        "MetaWorldMT10-v2", tuple(MT10_V3), tuple(MT10_V3.values()), MT_OBSERVATION_DIM, task_name, sparse_tasks
    )


def make_mt50_task_set(task_name: str | None = None, sparse_tasks: Sequence[int] | None = ()) -> TaskSet:
    """MetaWorldMT50-v2: metaworld 3.1.1's 50 tasks in the original's V2 order (:data:`MT50_ORDER`,
    docs/fidelity.md#meta-world-mt10-and-mt50); envs build lazily."""
    return _task_set(
        "MetaWorldMT50-v2", MT50_ORDER, tuple(MT50_V3[name] for name in MT50_ORDER), MT_OBSERVATION_DIM,
        task_name, sparse_tasks,
    )
