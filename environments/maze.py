"""MazeLarge-10-v0: a d4rl-style point mass navigating the LARGE maze, 10 start-to-goal tasks (docs/fidelity.md#maze).

The MuJoCo model is an MJCF string generated here from the layout. Its physics follow d4rl's point maze:
a frictionless sphere (radius 0.1, density 1000) on two slide joints, pushed by two force motors
(gear 100), walls as boxes. The agent's body sits at world (1.2, 1.2) while the wall of cell (w, h) is
centred at world (w + 1, h + 1), so in the agent's own coordinates (its qpos, which is also what the
observation and the reward use) that wall covers [w - 0.7, w + 0.3] x [h - 0.7, h + 0.3]. The 0.2 offset
is d4rl's and is kept on purpose: starts and goals are the integer cell coordinates in qpos space.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium.wrappers import TimeLimit

from environments.arithmetic import clip_into
from environments.base import Arena, LazyRenderer, ObservationLayout, TaskSet, one_hot, select_tasks

ENV_ID = "MazeLarge-10-v0"
MAX_EPISODE_STEPS = 600
SUCCESS_DISTANCE = 0.5
VELOCITY_LIMIT = 5.0
MIN_REWARD = -1.0

# d4rl's LARGE_MAZE; row index = x (0..8), column index = y (0..11); '#' wall, 'O' free, 'G' free.
LARGE_MAZE_ROWS = (
    "############",
    "#OOOO#OOOOO#",
    "#O##O#O#O#O#",
    "#OOOOOO#OOO#",
    "#O####O###O#",
    "#OO#O#OOOOO#",
    "##O#O#O#O###",
    "#OO#OOO#OGO#",
    "############",
)

# World position of the agent's body when its qpos is (0, 0); walls sit at cell + WALL_OFFSET.
AGENT_BODY_OFFSET = (1.2, 1.2)
WALL_OFFSET = (1.0, 1.0)


@dataclass(frozen=True)
class MazeTask:
    """One navigation task: start and goal cells (x, y) and the original's path-length group."""

    start: tuple[int, int]
    goal: tuple[int, int]
    group: str

    def name(self, index: int) -> str:
        return f"task{index}_{self.start[0]}-{self.start[1]}_to_{self.goal[0]}-{self.goal[1]}"


# The original's task table (large_10t_train_goals.csv; docs/fidelity.md#maze), in order.
MAZE_TASKS: tuple[MazeTask, ...] = (
    MazeTask((1, 3), (5, 8), "short"),
    MazeTask((1, 10), (2, 4), "short"),
    MazeTask((4, 1), (1, 7), "short"),
    MazeTask((7, 4), (4, 10), "short"),
    MazeTask((1, 3), (7, 4), "medium"),
    MazeTask((1, 7), (7, 10), "medium"),
    MazeTask((5, 4), (7, 9), "medium"),
    MazeTask((7, 1), (2, 6), "medium"),
    MazeTask((1, 2), (3, 10), "long"),
    MazeTask((7, 2), (6, 8), "long"),
)


def wall_centres() -> tuple[tuple[float, float], ...]:
    """Centres of the large maze's wall squares in the agent's (x, y) coordinates."""
    shift = np.subtract(WALL_OFFSET, AGENT_BODY_OFFSET)
    return tuple((float(x + shift[0]), float(y + shift[1])) for x, y in zip(*np.nonzero(wall_cells())))


def wall_cells(rows: Sequence[str] = LARGE_MAZE_ROWS) -> np.ndarray:
    """Boolean array ``[x, y]``, True where the cell is a wall."""
    return np.array([[char == "#" for char in row] for row in rows], dtype=bool)


def maze_xml(goal: Sequence[float], rows: Sequence[str] = LARGE_MAZE_ROWS) -> str:
    """MJCF of the point maze for a layout (rows indexed by x, characters by y), goal marker at ``goal``.

    ``goal`` is in agent coordinates; the marker is a visual site only.
    """
    walls = wall_cells(rows)
    size_x, size_y = walls.shape
    wall_geoms = "\n".join(
        f'    <geom name="wall_{x}_{y}" type="box" pos="{x + WALL_OFFSET[0]} {y + WALL_OFFSET[1]} 0" '
        f'size="0.5 0.5 0.2" rgba="0.7 0.5 0.3 1"/>'
        for x, y in zip(*np.nonzero(walls))
    )
    # Top-down camera over the maze centre, oriented so that image rows follow x like the layout drawing.
    camera_x, camera_y = WALL_OFFSET[0] + (size_x - 1) / 2, WALL_OFFSET[1] + (size_y - 1) / 2
    camera_height = 1.25 * max(size_x, size_y)
    target_x, target_y = goal[0] + AGENT_BODY_OFFSET[0], goal[1] + AGENT_BODY_OFFSET[1]
    return f"""<mujoco model="point_maze_large">
  <compiler angle="radian" inertiafromgeom="true"/>
  <option timestep="0.01" gravity="0 0 0" iterations="20" integrator="Euler"/>
  <default>
    <joint damping="1" limited="false"/>
    <geom friction="0.5 0.1 0.1" density="1000" margin="0.002" condim="1" contype="2" conaffinity="1"/>
  </default>
  <worldbody>
    <light pos="{camera_x} {camera_y} {camera_height}" dir="0 0 -1" directional="true"/>
    <camera name="top" pos="{camera_x} {camera_y} {camera_height}" xyaxes="0 1 0 -1 0 0"/>
    <geom name="ground" type="plane" size="40 40 0.25" pos="0 0 -0.1" contype="0" conaffinity="0" rgba="0.2 0.3 0.4 1"/>
    <site name="target" pos="{target_x} {target_y} 0" size="0.2" rgba="0.9 0.2 0.2 0.6"/>
    <body name="particle" pos="{AGENT_BODY_OFFSET[0]} {AGENT_BODY_OFFSET[1]} 0">
      <geom name="particle" type="sphere" size="0.1" contype="1" rgba="0.1 0.3 0.9 1"/>
      <joint name="ball_x" type="slide" axis="1 0 0"/>
      <joint name="ball_y" type="slide" axis="0 1 0"/>
    </body>
{wall_geoms}
  </worldbody>
  <actuator>
    <motor joint="ball_x" gear="100" ctrllimited="true" ctrlrange="-1 1"/>
    <motor joint="ball_y" gear="100" ctrllimited="true" ctrlrange="-1 1"/>
  </actuator>
</mujoco>
"""


def reward_from_distance(distance: float | np.ndarray, sparse: bool) -> float | np.ndarray:
    """Per-step reward at distance ``d`` from the goal: exp(-d) - 1 (dense) or 1[d <= 0.5] (sparse)."""
    if sparse:
        return (distance <= SUCCESS_DISTANCE) * 1.0
    return np.exp(-distance) - 1.0


class PointMazeTaskEnv(gym.Env):
    """One maze task: observation (x, y, vx, vy, task one-hot), action = motor forces in [-1, 1]^2."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 100}
    independent_resets = True  # reset: mj_resetData + noise from np_random; steps draw nothing
    constant_model = True  # checkpoints keep the MjData arrays, not the model (environments.base.get_env_state)

    def __init__(
        self,
        task: MazeTask,
        task_index: int,
        num_tasks: int,
        task_name: str,
        sparse_reward: bool = False,
        render_mode: str | None = None,
    ) -> None:
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.render_mode = render_mode
        self.start = np.array(task.start, dtype=np.float64)
        self.goal = np.array(task.goal, dtype=np.float64)
        self.task_index = task_index
        self.task_name = task_name
        self.sparse_reward = sparse_reward
        self.task_one_hot = one_hot(task_index, num_tasks)
        self._observation_template = np.concatenate([np.zeros(4, np.float32), self.task_one_hot])
        self.model = mujoco.MjModel.from_xml_string(maze_xml(task.goal))
        self.data = mujoco.MjData(self.model)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(4 + num_tasks,), dtype=np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self._renderer = LazyRenderer(480, 480, camera="top")

    def set_state(self, qpos: np.ndarray, qvel: np.ndarray) -> None:
        """Place the agent at ``qpos`` (agent coordinates) with velocity ``qvel``."""
        self.data.qpos[:] = qpos
        self.data.qvel[:] = qvel
        mujoco.mj_forward(self.model, self.data)

    def _observation(self) -> np.ndarray:
        """(x, y, vx, vy, task one-hot) as float32."""
        observation = self._observation_template.copy()
        observation[:2] = self.data.qpos
        observation[2:4] = self.data.qvel
        return observation

    def _info(self, distance: float) -> dict[str, Any]:
        return {"success": distance <= SUCCESS_DISTANCE, "task_id": self.task_index, "task_name": self.task_name}

    def _distance_to_goal(self) -> float:
        x, y = self.data.qpos.tolist()
        goal_x, goal_y = self.goal.tolist()
        return math.hypot(x - goal_x, y - goal_y)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        mujoco.mj_resetData(self.model, self.data)
        qpos = self.start + self.np_random.uniform(-0.1, 0.1, size=self.model.nq)
        qvel = self.np_random.standard_normal(self.model.nv) * 0.1
        self.set_state(qpos, qvel)
        return self._observation(), self._info(self._distance_to_goal())

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        data = self.data
        clip_into(data.ctrl, action, -1.0, 1.0)
        clip_into(data.qvel, data.qvel, -VELOCITY_LIMIT, VELOCITY_LIMIT)
        mujoco.mj_step(self.model, data)
        distance = self._distance_to_goal()
        reward = float(reward_from_distance(distance, self.sparse_reward))
        info = self._info(distance)
        return self._observation(), reward, info["success"], False, info

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        return self._renderer.render(self.model, self.data)

    def close(self) -> None:
        self._renderer.close()


def make_maze_task_set(task_name: str | None = None, sparse_tasks: Sequence[int] | None = ()) -> TaskSet:
    """The MazeLarge-10-v0 task set, or the subset of task indices listed in ``task_name`` ("i,j,...").

    ``sparse_tasks`` lists indices of the full 10-task table whose reward is sparse (1 within 0.5 of
    the goal, else 0); the paper uses none.
    """
    all_names = [task.name(index) for index, task in enumerate(MAZE_TASKS)]
    kept = select_tasks(all_names, task_name)
    sparse = {int(index) for index in (sparse_tasks or ())}
    for index in sparse:
        if not 0 <= index < len(MAZE_TASKS):
            raise ValueError(f"sparse_tasks index {index} is out of range 0..{len(MAZE_TASKS) - 1}")
    goals = np.array([MAZE_TASKS[index].goal for index in kept], dtype=np.float64)
    sparse_by_position = [index in sparse for index in kept]

    def make_env(task_index: int, evaluation: bool = False) -> gym.Env:
        if not 0 <= task_index < len(kept):
            raise ValueError(f"task index {task_index} is out of range 0..{len(kept) - 1}")
        original_index = kept[task_index]
        env = PointMazeTaskEnv(
            MAZE_TASKS[original_index],
            task_index=task_index,
            num_tasks=len(kept),
            task_name=all_names[original_index],
            sparse_reward=sparse_by_position[task_index],
            render_mode="rgb_array",
        )
        return TimeLimit(env, max_episode_steps=MAX_EPISODE_STEPS)

    def reward_function(raw_obs: np.ndarray, action: np.ndarray, raw_next_obs: np.ndarray,
                        task_index: int) -> np.ndarray:
        """Task ``task_index``'s reward of (s, a, s'): the env rewards the position after the step, s'."""
        distance = np.linalg.norm(np.asarray(raw_next_obs, dtype=np.float64)[..., :2] - goals[task_index], axis=-1)
        return np.asarray(reward_from_distance(distance, sparse_by_position[task_index]), dtype=np.float64)

    return TaskSet(
        env_id=ENV_ID,
        task_names=tuple(all_names[index] for index in kept),
        make_env=make_env,
        max_episode_steps=MAX_EPISODE_STEPS,
        observation_layout=ObservationLayout(
            raw_dim=4 + len(kept), task_id_slice=slice(4, 4 + len(kept)), remove_task_id=True
        ),
        min_reward=MIN_REWARD,
        reward_function=reward_function,
        arena=Arena(goal=lambda env: cast(PointMazeTaskEnv, env.unwrapped).goal, success_distance=SUCCESS_DISTANCE,
                    wall_centres=wall_centres()),
    )
