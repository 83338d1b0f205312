"""Walker2dMT4-v0: the 4-task planar walker (forward, backward, balance, crawl), docs/fidelity.md#walker.

The model is gymnasium's installed ``walker2d.xml``, which is the original walker_v1 compiled to local
coordinates (docs/envs/walker.md#base-model). The crawl task adds walker_v2's obstacles with ``mujoco.MjSpec``
before compiling, with the long ceiling already at its crawl placement (docs/envs/walker.md#crawl-obstacles,
#moving-a-world-geom-in-mujoco-3: a geom moved after compiling loses its collisions in mujoco 3.3.0).

Raw observation (21): ``qpos[1:]`` (8), ``clip(qvel, ±10)`` (9), task one-hot (4); networks see the
one-hot zeroed (docs/fidelity.md#task-identity-and-masking). Surviving 1000 steps is a time limit (truncated,
``success=True``), not a terminal as in the original (docs/fidelity.md#walker-survival-terminal).
"""

from __future__ import annotations

import os

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium import spaces
from gymnasium.wrappers import TimeLimit

from environments.arithmetic import clip, clipped_float64, total
from environments.base import LazyRenderer, ObservationLayout, TaskSet, one_hot

ENV_ID = "Walker2dMT4-v0"
TASK_NAMES: tuple[str, ...] = ("forward", "backward", "balance", "crawl")
FORWARD, BACKWARD, BALANCE, CRAWL = range(len(TASK_NAMES))
MAX_EPISODE_STEPS = 1000
FRAME_SKIP = 4
WARMUP_STEPS: tuple[int, ...] = (5, 5, 10, 5)
RESET_NOISE = 0.01
QVEL_CLIP = 10.0
TARGET_SPEED = 3.0
FALL_HEIGHT = 0.8
CRAWL_FALL_HEIGHT = 0.3
TARGET_HEIGHT_GAP = 1.1
CEILING_PENALTY = 10.0
CONTROL_COST = 1e-3
EXTERNAL_FORCE_MAGNITUDES: tuple[float, ...] = (100.0, 100.0, 400.0, 300.0)
EXTERNAL_FORCE_PROBABILITY = 0.01
"""Chance per control step of a push when ``external_forces=True``; the original gives none (it used 0)."""

OBSERVATION_DIM = 8 + 9 + len(TASK_NAMES)
OBSERVATION_LAYOUT = ObservationLayout(
    raw_dim=OBSERVATION_DIM, task_id_slice=slice(17, OBSERVATION_DIM), remove_task_id=False
)
WALKER_XML_PATH = os.path.join(os.path.dirname(gym.__file__), "envs", "mujoco", "assets", "walker2d.xml")

TORSO_BODY, RIGHT_FOOT_BODY, LEFT_FOOT_BODY = 1, 4, 7
RIGHT_FOOT_JOINT_QPOS, LEFT_FOOT_JOINT_QPOS = 5, 8

# walker_v2's world boxes (docs/envs/walker.md#crawl-obstacles): name, half-size, centre. ceiling_long is compiled at
# its crawl placement, spanning x in [2, 14] with its underside at z 0.9.
CRAWL_OBSTACLES: tuple[tuple[str, tuple[float, float, float], tuple[float, float, float]], ...] = (
    *((f"curb{k}", (0.1, 2.0, 0.2), (-5.0, 0.0, 0.2)) for k in range(1, 6)),
    ("ceiling1", (1.5, 2.0, 0.1), (-10.0, 0.0, 1.0)),
    ("ceiling2", (1.5, 2.0, 0.1), (-10.0, 0.0, 1.0)),
    ("ceiling_long", (6.0, 2.0, 0.1), (8.0, 0.0, 1.0)),
)

RENDER_SIZE = 480


def build_walker_model(with_crawl_obstacles: bool) -> mujoco.MjModel:
    """Compile gymnasium's walker2d.xml, with walker_v2's curbs and ceilings added for the crawl task."""
    spec = mujoco.MjSpec.from_file(WALKER_XML_PATH)
    if with_crawl_obstacles:
        for name, half_size, centre in CRAWL_OBSTACLES:
            geom = spec.worldbody.add_geom()
            geom.name = name
            geom.type = mujoco.mjtGeom.mjGEOM_BOX
            geom.size = half_size
            geom.pos = centre
            geom.conaffinity = 1
            geom.rgba = (0.5, 0.5, 0.55, 1.0)
    return spec.compile()


class WalkerTaskEnv(gym.Env):
    """One Walker2dMT4 task (no time limit of its own; the TaskSet adds TimeLimit(1000))."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 125}
    constant_model = True  # checkpoints keep the MjData arrays, not the model (environments.base.get_env_state)

    def __init__(self, task_index: int, external_force_probability: float = 0.0, render_mode: str | None = None):
        if not 0 <= task_index < len(TASK_NAMES):
            raise ValueError(f"walker task index {task_index} is out of range 0..{len(TASK_NAMES) - 1}")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.task_index = task_index
        self.external_force_probability = external_force_probability
        self.independent_resets = external_force_probability <= 0.0  # pushes draw from np_random in steps
        self.render_mode = render_mode
        self.task_one_hot = one_hot(task_index, len(TASK_NAMES))
        self._observation_template = np.concatenate([np.zeros(17, np.float32), self.task_one_hot])
        self.model = build_walker_model(with_crawl_obstacles=task_index == CRAWL)
        self.data = mujoco.MjData(self.model)
        self.dt = self.model.opt.timestep * FRAME_SKIP
        self.ceiling_geom_ids = frozenset(
            geom_id for geom_id in range(self.model.ngeom) if "ceiling" in self.model.geom(geom_id).name
        )
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(OBSERVATION_DIM,), dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(self.model.nu,), dtype=np.float32)
        self.elapsed_steps = 0
        self._renderer = LazyRenderer(RENDER_SIZE, RENDER_SIZE, camera="track")

    def set_state(self, qpos: np.ndarray, qvel: np.ndarray) -> None:
        """Set joint positions and velocities and recompute the derived quantities."""
        self.data.qpos[:] = qpos
        self.data.qvel[:] = qvel
        mujoco.mj_forward(self.model, self.data)

    def _simulate(self, action: np.ndarray) -> None:
        self.data.ctrl[:] = action
        mujoco.mj_step(self.model, self.data, nstep=FRAME_SKIP)

    def _observation(self) -> np.ndarray:
        """qpos[1:], clip(qvel, ±10), task one-hot, as float32."""
        observation = self._observation_template.copy()
        observation[:8] = self.data.qpos[1:]
        observation[8:17] = clip(self.data.qvel, -QVEL_CLIP, QVEL_CLIP)
        return observation

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        """Default pose ± U(0.01) on qpos and qvel, then unrecorded random-action warm-up steps."""
        super().reset(seed=seed)
        mujoco.mj_resetData(self.model, self.data)
        qpos = self.model.qpos0 + self.np_random.uniform(-RESET_NOISE, RESET_NOISE, size=self.model.nq)
        qvel = self.np_random.uniform(-RESET_NOISE, RESET_NOISE, size=self.model.nv)
        self.set_state(qpos, qvel)
        for _ in range(WARMUP_STEPS[self.task_index]):
            self._simulate(self.np_random.uniform(-1.0, 1.0, size=self.model.nu))
        self.elapsed_steps = 0
        return self._observation(), {"success": False}

    def _push_external_force(self) -> None:
        """With the configured probability, push a random walker body in a random in-plane direction."""
        if self.external_force_probability <= 0.0 or self.np_random.random() >= self.external_force_probability:
            return
        body = int(self.np_random.integers(TORSO_BODY, self.model.nbody))
        angle = self.np_random.uniform(0.0, 2.0 * np.pi)
        magnitude = EXTERNAL_FORCE_MAGNITUDES[self.task_index]
        self.data.xfrc_applied[body, :3] = magnitude * np.array([np.cos(angle), 0.0, np.sin(angle)])

    def _touches_ceiling(self) -> bool:
        contact_geoms = self.data.contact.geom[: self.data.ncon]
        return not self.ceiling_geom_ids.isdisjoint(contact_geoms.ravel().tolist())

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        action = clipped_float64(action, -1.0, 1.0)
        qpos_before = self.data.qpos.tolist()
        self._push_external_force()
        self._simulate(action)
        self.data.xfrc_applied[:] = 0.0
        self.elapsed_steps += 1

        qpos = self.data.qpos.tolist()
        x_velocity = (qpos[0] - qpos_before[0]) / self.dt
        height = qpos[1]
        upright = 0.1 * np.cos(qpos[2])
        body_heights = self.data.xpos[:, 2].tolist()
        height_gap = body_heights[TORSO_BODY] - max(body_heights[RIGHT_FOOT_BODY], body_heights[LEFT_FOOT_BODY])
        foot_speed = (
            abs(qpos[RIGHT_FOOT_JOINT_QPOS] - qpos_before[RIGHT_FOOT_JOINT_QPOS])
            + abs(qpos[LEFT_FOOT_JOINT_QPOS] - qpos_before[LEFT_FOOT_JOINT_QPOS])
        ) / self.dt
        control = -CONTROL_COST * total(action**2)
        alive = 1.0

        if self.task_index == FORWARD:
            speed_term = TARGET_SPEED - abs(x_velocity - TARGET_SPEED)
            reward = speed_term + upright - abs(TARGET_HEIGHT_GAP - height_gap) - 0.01 * foot_speed + alive + control
            velocity_info, fell = speed_term, height < FALL_HEIGHT
        elif self.task_index == BACKWARD:
            speed_term = TARGET_SPEED - abs(-x_velocity - TARGET_SPEED)
            reward = speed_term + upright - abs(TARGET_HEIGHT_GAP - height_gap) - 0.01 * foot_speed + alive + control
            velocity_info, fell = -speed_term, height < FALL_HEIGHT
        elif self.task_index == BALANCE:
            reward = -abs(x_velocity) + upright - 0.5 * abs(TARGET_HEIGHT_GAP - height_gap) + alive + control
            velocity_info, fell = x_velocity, height < FALL_HEIGHT
        else:
            speed_term = TARGET_SPEED - abs(x_velocity - TARGET_SPEED)
            touches_ceiling = self._touches_ceiling()
            reward = 2.0 * speed_term + upright - 0.01 * foot_speed + alive + control
            reward -= CEILING_PENALTY if touches_ceiling else 0.0
            velocity_info, fell = speed_term, height < CRAWL_FALL_HEIGHT or touches_ceiling

        success = not fell and self.elapsed_steps >= MAX_EPISODE_STEPS
        info = {"success": bool(success), "x_velocity": float(velocity_info)}
        return self._observation(), float(reward), bool(fell), False, info

    def render(self) -> np.ndarray | None:
        """An RGB side view (480 x 480) following the torso, when ``render_mode="rgb_array"``."""
        if self.render_mode != "rgb_array":
            return None
        return self._renderer.render(self.model, self.data)

    def close(self) -> None:
        self._renderer.close()


def make_walker_task_set(external_forces: bool = False) -> TaskSet:
    """Walker2dMT4-v0 as a TaskSet; ``external_forces`` turns on the paper's random pushes (original: off)."""
    force_probability = EXTERNAL_FORCE_PROBABILITY if external_forces else 0.0

    def make_env(task_index: int, evaluation: bool) -> gym.Env:
        del evaluation  # the original evaluates on the same task definitions (docs/fidelity.md#evaluation-variants)
        return TimeLimit(
            WalkerTaskEnv(task_index, external_force_probability=force_probability, render_mode="rgb_array"),
            MAX_EPISODE_STEPS,
        )

    return TaskSet(
        env_id=ENV_ID,
        task_names=TASK_NAMES,
        make_env=make_env,
        max_episode_steps=MAX_EPISODE_STEPS,
        observation_layout=OBSERVATION_LAYOUT,
        min_reward=0.0,
        episode_metrics={"x_velocity": "mean"},
    )
