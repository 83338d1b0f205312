"""KitchenMTEasy-v0: ten single-object Franka Kitchen tasks (docs/fidelity.md#kitchen).

The scene is gymnasium-robotics' Franka Kitchen model, loaded from the installed package (never
copied). The robot is driven as in d4rl's kitchen and gymnasium-robotics' FrankaKitchen-v1: a 9-D
action in [-1, 1] is a joint velocity (x2), integrated over one control step (frame skip 40 on the
model's 0.002 s timestep = 0.08 s) from the last *observed* joint positions into position targets for
the model's position actuators. The raw observation is ``[robot qpos 9, object qpos 21, goal 30,
task one-hot]``; the networks get it with the one-hot removed. See docs/envs/kitchen.md.
"""

from __future__ import annotations

import functools
import importlib.util
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium.wrappers import TimeLimit

from environments.base import ObservationLayout, TaskSet, one_hot, select_tasks

ENV_ID = "KitchenMTEasy-v0"
MAX_EPISODE_STEPS = 140
REWARD_SCALE = 20.0
SUCCESS_BONUS = REWARD_SCALE * MAX_EPISODE_STEPS
"""Reward of the step that reaches the goal (it also ends the episode): 20 x 140 = 2800."""
MIN_REWARD = -REWARD_SCALE
"""Reward given to shared transitions by UDS (docs/fidelity.md#uds-and-cds)."""
IN_PLACE_WEIGHT = 0.4
REACH_WEIGHT = 0.6
REACH_TOLERANCE = 0.08
VALUE_AT_MARGIN = 0.1
GAUSSIAN_SCALE = math.sqrt(-2.0 * math.log(VALUE_AT_MARGIN))

FRAME_SKIP = 40
ACTION_SCALE = 2.0
"""A unit action asks for 2 rad/s (2 m/s for the fingers), as d4rl's act_amp."""
ROBOT_NOISE_RATIO = 0.1
OBJECT_NOISE_RATIO = ROBOT_NOISE_RATIO
"""Observation noise ratios, times the config's per-joint amplitudes: d4rl's ``KitchenV0`` sets
``robot_noise_ratio = 0.1`` and its robot ``get_obs`` applies it to robot and object joints alike."""

NUM_ROBOT_JOINTS = 9
STATE_DIM = 30
"""Joint positions observed: robot 9 + objects 21 (the kettle's free joint counts 7)."""
GOAL_DIM = 30
OBSERVATION_DIM = STATE_DIM + GOAL_DIM
ROBOT_SLICE = slice(0, NUM_ROBOT_JOINTS)
OBJECT_SLICE = slice(NUM_ROBOT_JOINTS, STATE_DIM)
GOAL_SLICE = slice(STATE_DIM, OBSERVATION_DIM)

_SPEC = importlib.util.find_spec("gymnasium_robotics")
assert _SPEC is not None and _SPEC.origin is not None, "gymnasium-robotics is a requirement"
_PACKAGE_DIR = Path(_SPEC.origin).parent
KITCHEN_ASSETS = _PACKAGE_DIR / "envs" / "assets" / "kitchen_franka"
MODEL_PATH = KITCHEN_ASSETS / "kitchen_assets" / "kitchen_env_model.xml"
ROBOT_CONFIG_PATH = KITCHEN_ASSETS / "franka_assets" / "franka_config.xml"
LEFT_FINGER_BODY = "panda0_leftfinger"
RIGHT_FINGER_BODY = "panda0_rightfinger"
END_EFFECTOR_SITE = "end_effector"
PHYSICS_STATE = mujoco.mjtState.mjSTATE_INTEGRATION

INITIAL_STATE = np.array([
    1.48388023e-01, -1.76848573e00, 1.84390296e00, -2.47685760e00, 2.60252026e-01, 7.12533105e-01,
    1.59515394e00, 4.79267505e-02, 3.71350919e-02, -2.66279850e-04, -5.18043486e-05, 3.12877220e-05,
    -4.51199853e-05, -3.90842156e-06, -4.22629655e-05, 6.28065475e-05, 4.04984708e-05, 4.62730939e-04,
    -2.26906415e-04, -4.65501369e-04, -6.44129196e-03, -1.77048263e-03, 1.08009684e-03, -2.69397440e-01,
    3.50383255e-01, 1.61944683e00, 1.00618764e00, 4.06395120e-03, -6.62095997e-03, -2.68278933e-04,
])
"""d4rl's kitchen reset configuration (qpos): every element closed or off, the kettle on a burner."""


@dataclass(frozen=True)
class KitchenElement:
    """A kitchen object: its joint indices in the 30-D state, the site reached for, its open/on value."""

    name: str
    indices: tuple[int, ...]
    site: str
    on_value: tuple[float, ...]

    @property
    def off_value(self) -> np.ndarray:
        return INITIAL_STATE[list(self.indices)].copy()


SLIDE_CABINET = KitchenElement("slide cabinet", (19,), "slide_site", (0.37,))
HINGE_CABINET = KitchenElement("hinge cabinet", (20, 21), "hinge_site2", (0.0, 1.45))
BOTTOM_BURNER = KitchenElement("bottom burner", (11, 12), "knob2_site", (-0.88, -0.01))
TOP_BURNER = KitchenElement("top burner", (15, 16), "knob4_site", (-0.92, -0.01))
LIGHT_SWITCH = KitchenElement("light switch", (17, 18), "light_site", (-0.69, -0.05))

GOAL_SLOT_OVERRIDES: tuple[tuple[tuple[int, ...], tuple[float, ...]], ...] = (
    ((22,), (-0.75,)),
    ((23, 24, 25, 26, 27, 28, 29), (-0.23, 0.75, 1.62, 0.99, 0.0, 0.0, -0.06)),
    (BOTTOM_BURNER.indices, BOTTOM_BURNER.on_value),
    (LIGHT_SWITCH.indices, LIGHT_SWITCH.on_value),
)
"""Goal-vector slots the original overwrote after writing the task's goal (docs/fidelity.md#kitchen-goal-inversion):
microwave open, kettle pushed, bottom burner on, light switch on."""


@dataclass(frozen=True)
class KitchenTask:
    """One row of the original's task table (docs/fidelity.md#kitchen): move ``element`` to on/open (or back
    off/closed)."""

    name: str
    element: KitchenElement
    turns_on: bool
    threshold: float

    @property
    def initial(self) -> np.ndarray:
        return self.element.off_value if self.turns_on else np.array(self.element.on_value)

    @property
    def goal(self) -> np.ndarray:
        return np.array(self.element.on_value) if self.turns_on else self.element.off_value


TASKS: tuple[KitchenTask, ...] = (
    KitchenTask("slide cabinet-open", SLIDE_CABINET, True, 0.1),
    KitchenTask("slide cabinet-close", SLIDE_CABINET, False, 0.1),
    KitchenTask("hinge cabinet-open", HINGE_CABINET, True, 0.1),
    KitchenTask("hinge cabinet-close", HINGE_CABINET, False, 0.3),
    KitchenTask("bottom burner-on", BOTTOM_BURNER, True, 0.3),
    KitchenTask("bottom burner-off", BOTTOM_BURNER, False, 0.3),
    KitchenTask("top burner-on", TOP_BURNER, True, 0.3),
    KitchenTask("top burner-off", TOP_BURNER, False, 0.3),
    KitchenTask("light switch-on", LIGHT_SWITCH, True, 0.3),
    KitchenTask("light switch-off", LIGHT_SWITCH, False, 0.3),
)
TASK_NAMES = tuple(task.name for task in TASKS)


def observed_goal(task: KitchenTask, corrected: bool = False) -> np.ndarray:
    """The 30-D goal vector in the observation.

    As the original, the task's goal is written first and four slots are then overwritten, so the
    two "off" tasks whose element is overwritten (bottom burner-off, light switch-off) observe the
    *on* value. ``corrected`` writes the task's own goal last instead.
    """
    goal = np.zeros(GOAL_DIM)
    goal[list(task.element.indices)] = task.goal
    for indices, values in GOAL_SLOT_OVERRIDES:
        goal[list(indices)] = values
    if corrected:
        goal[list(task.element.indices)] = task.goal
    return goal


def tolerance(distance: float, bound: float, margin: float) -> float:
    """Meta-World's tolerance on [0, bound]: 1 inside, a Gaussian tail worth 0.1 at ``bound + margin``."""
    if distance <= bound:
        return 1.0
    if margin == 0.0:
        return 0.0
    scaled = (distance - bound) / margin
    return math.exp(-0.5 * (scaled * GAUSSIAN_SCALE) ** 2)


def dense_reward(goal_distance: float, reach_distance: float, initial_goal_distance: float,
                 initial_reach_distance: float, threshold: float) -> float:
    """r = 20 (0.4 in_place + 0.6 reach - 1), in [-20, 0] (docs/fidelity.md#kitchen)."""
    in_place = tolerance(goal_distance, threshold, abs(initial_goal_distance - threshold))
    reach = tolerance(reach_distance, REACH_TOLERANCE, abs(initial_reach_distance - REACH_TOLERANCE))
    return REWARD_SCALE * (IN_PLACE_WEIGHT * in_place + REACH_WEIGHT * reach - 1.0)


@dataclass(frozen=True)
class RobotConfig:
    """Joint limits and noise amplitudes from the installed franka_config.xml (per qpos index)."""

    position_bounds: np.ndarray
    """[9, 2] clip range of the robot's position targets."""
    velocity_bounds: np.ndarray
    """[9, 2] clip range of the commanded joint velocities."""
    noise_amplitudes: np.ndarray
    """[30] amplitude of the uniform observation noise of each observed joint position."""


@functools.cache
def robot_config() -> RobotConfig:
    """Read gymnasium-robotics' Franka configuration file (entries qpos0..qpos29)."""
    root = ElementTree.parse(ROBOT_CONFIG_PATH).getroot()
    entries = [root.find(f"qpos{index}") for index in range(STATE_DIM)]

    def values(attribute: str) -> np.ndarray:
        return np.array([[float(number) for number in entry.get(attribute).split()]  # type: ignore[union-attr]
                         for entry in entries])

    return RobotConfig(
        position_bounds=values("pos_bound")[:NUM_ROBOT_JOINTS],
        velocity_bounds=values("vel_bound")[:NUM_ROBOT_JOINTS],
        noise_amplitudes=values("pos_noise_amp")[:, 0],
    )


@functools.cache
def kitchen_model() -> mujoco.MjModel:
    """gymnasium-robotics' kitchen model, loaded once per process and shared (envs only read it)."""
    return mujoco.MjModel.from_xml_path(str(MODEL_PATH))


class KitchenPhysics:
    """One environment's simulation: the shared model, its own MjData, a renderer built on first use.

    It pickles as the MjData integration state only: the model with its textures pickles to ~64 MB
    (and MjData carries a copy of it), which env snapshots (environments.base.get_env_state) must not hold.
    """

    def __init__(self) -> None:
        self.model = kitchen_model()
        self.data = mujoco.MjData(self.model)
        self._renderer: mujoco.Renderer | None = None

    def render(self) -> np.ndarray:
        if self._renderer is None:
            self._renderer = mujoco.Renderer(self.model, height=480, width=480)
        self._renderer.update_scene(self.data)
        return self._renderer.render()

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
        self._renderer = None

    def __getstate__(self) -> dict:
        state = np.empty(mujoco.mj_stateSize(self.model, PHYSICS_STATE))
        mujoco.mj_getState(self.model, self.data, state, PHYSICS_STATE)
        return {"physics_state": state}

    def __setstate__(self, state: dict) -> None:
        type(self).__init__(self)
        mujoco.mj_setState(self.model, self.data, state["physics_state"], PHYSICS_STATE)
        mujoco.mj_kinematics(self.model, self.data)


class KitchenTaskEnv(gym.Env):
    """One Franka Kitchen task: raw observation [robot 9, objects 21, goal 30, task one-hot]."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 12}

    def __init__(
        self,
        task: KitchenTask,
        task_index: int,
        num_tasks: int,
        corrected_goal: bool = False,
        robot_noise_ratio: float = ROBOT_NOISE_RATIO,
        object_noise_ratio: float = OBJECT_NOISE_RATIO,
        render_mode: str | None = None,
    ) -> None:
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.render_mode = render_mode
        self.task = task
        self.task_index = task_index
        self.physics = KitchenPhysics()
        self.control_timestep = FRAME_SKIP * self.model.opt.timestep
        self.element_indices = np.array(task.element.indices)
        self.initial_qpos = INITIAL_STATE.copy()
        self.initial_qpos[self.element_indices] = task.initial
        self.initial_goal_distance = float(np.linalg.norm(task.initial - task.goal))
        self.initial_reach_distance = 0.0
        self.goal_suffix = np.concatenate([observed_goal(task, corrected_goal), one_hot(task_index, num_tasks)])
        config = robot_config()
        self.position_bounds = config.position_bounds
        self.velocity_bounds = config.velocity_bounds
        self.noise_amplitudes = config.noise_amplitudes * np.where(
            np.arange(STATE_DIM) < NUM_ROBOT_JOINTS, robot_noise_ratio, object_noise_ratio)
        self.observed_robot_qpos = INITIAL_STATE[ROBOT_SLICE].copy()
        self.site_id = self.model.site(task.element.site).id
        self.end_effector_id = self.model.site(END_EFFECTOR_SITE).id
        self.finger_ids = [self.model.body(LEFT_FINGER_BODY).id, self.model.body(RIGHT_FINGER_BODY).id]
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(NUM_ROBOT_JOINTS,), dtype=np.float32)
        self.observation_space = gym.spaces.Box(
            -np.inf, np.inf, shape=(OBSERVATION_DIM + num_tasks,), dtype=np.float32)

    @property
    def model(self) -> mujoco.MjModel:
        return self.physics.model

    @property
    def data(self) -> mujoco.MjData:
        return self.physics.data

    def control_targets(self, action: np.ndarray) -> np.ndarray:
        """Position targets: last observed robot qpos + clip(2 a, velocity bounds) x 0.08 s, clipped to position
        bounds."""
        velocity = ACTION_SCALE * np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        velocity = np.clip(velocity, self.velocity_bounds[:, 0], self.velocity_bounds[:, 1])
        targets = self.observed_robot_qpos + velocity * self.control_timestep
        return np.clip(targets, self.position_bounds[:, 0], self.position_bounds[:, 1])

    def gripper_position(self) -> np.ndarray:
        """Midpoint of the two finger bodies."""
        return self.data.xpos[self.finger_ids].mean(axis=0)

    def _observe(self) -> tuple[np.ndarray, dict]:
        """Noisy joint readings + goal + one-hot, and the step's distances and success."""
        noise = self.np_random.uniform(-1.0, 1.0, size=STATE_DIM)
        state = self.data.qpos[:STATE_DIM] + self.noise_amplitudes * noise
        self.observed_robot_qpos = state[ROBOT_SLICE].copy()
        goal_distance = float(np.linalg.norm(state[self.element_indices] - self.task.goal))
        reach_distance = float(np.linalg.norm(self.data.site_xpos[self.site_id] - self.gripper_position()))
        info = {"success": goal_distance < self.task.threshold, "goal_distance": goal_distance,
                "reach_distance": reach_distance}
        return np.concatenate([state, self.goal_suffix]).astype(np.float32), info

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        mujoco.mj_resetData(self.model, self.data)
        self.data.qpos[:] = self.initial_qpos
        mujoco.mj_forward(self.model, self.data)
        self.initial_reach_distance = float(np.linalg.norm(
            self.data.site_xpos[self.site_id] - self.data.site_xpos[self.end_effector_id]))
        return self._observe()

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.data.ctrl[:] = self.control_targets(action)
        mujoco.mj_step(self.model, self.data, nstep=FRAME_SKIP)
        mujoco.mj_kinematics(self.model, self.data)
        observation, info = self._observe()
        if info["success"]:
            reward = SUCCESS_BONUS
        else:
            reward = dense_reward(info["goal_distance"], info["reach_distance"], self.initial_goal_distance,
                                  self.initial_reach_distance, self.task.threshold)
        return observation, reward, info["success"], False, info

    def render(self) -> np.ndarray | None:
        """An RGB frame (render_mode "rgb_array"; needs an OpenGL backend, see MUJOCO_GL)."""
        if self.render_mode != "rgb_array":
            return None
        return self.physics.render()

    def close(self) -> None:
        self.physics.close()


def make_kitchen_task_set(
    task_name: str | None = None,
    sparse_tasks: Sequence[int] | None = (),
    corrected_kitchen_goal: bool = False,
) -> TaskSet:
    """The KitchenMTEasy-v0 task set, or the subset of task indices listed in ``task_name`` ("i,j,...").

    ``corrected_kitchen_goal`` observes the true goal of bottom burner-off and light switch-off
    (the original observes the *on* value there). Sparse rewards are not supported: a non-empty
    ``sparse_tasks`` raises ValueError (the original never used its sparse option, and one UDS
    minimum reward could not fit dense and 0/1 tasks together).
    """
    if sparse_tasks:
        raise ValueError(f"{ENV_ID} has no sparse reward option (got sparse_tasks={list(sparse_tasks)}); "
                         "leave --sparse_tasks empty")
    kept = select_tasks(TASK_NAMES, task_name)

    def make_env(task_index: int, evaluation: bool = False) -> gym.Env:
        if not 0 <= task_index < len(kept):
            raise ValueError(f"task index {task_index} is out of range 0..{len(kept) - 1}")
        env = KitchenTaskEnv(TASKS[kept[task_index]], task_index, len(kept),
                             corrected_goal=corrected_kitchen_goal, render_mode="rgb_array")
        return TimeLimit(env, max_episode_steps=MAX_EPISODE_STEPS)

    return TaskSet(
        env_id=ENV_ID,
        task_names=tuple(TASK_NAMES[index] for index in kept),
        make_env=make_env,
        max_episode_steps=MAX_EPISODE_STEPS,
        observation_layout=ObservationLayout(
            raw_dim=OBSERVATION_DIM + len(kept),
            task_id_slice=slice(OBSERVATION_DIM, OBSERVATION_DIM + len(kept)),
            remove_task_id=True,
        ),
        min_reward=MIN_REWARD,
    )
