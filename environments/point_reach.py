"""The paper's 2-D point-reaching example (§5.2, Figs. 4-5; docs/fidelity.md#point-reaching), ``PointReach-v0``.

A point starts at the bottom-left corner (0, 0) of a square arena and must reach the goal at the
top-right corner (10, 10) with incremental actions (dx, dy) in [-1, 1]^2. One trainable policy;
QMP may also pick fixed stochastic "guide" policies pointing in chosen directions.

The paper leaves these parts open; our choices (docs/tutorial.md, "The environment"):

* arena: positions are clipped to [0, 10]^2 (the start and the goal are its corners);
* reward: ``exp(-d / 3) - 1`` with d the distance to the goal, in (-1, 0]: dense, with a slope
  that grows toward the goal (about 0.003 per unit at the start, 0.1 at the goal);
* episode: 20 steps, never terminated early (a diagonal run needs 10 steps, a random walk covers
  about 3 units);
* success: the point came within 1 of the goal at some step of the episode;
* guide policies: Gaussians with std 0.5 around a direction whose components are -1, 0 or 1,
  actions clipped to [-1, 1]; the default set is (up, right, up-right), the paper's Fig. 4c;
* SAC (preset in learning/training/config.py): target entropy +1.0, a high-entropy SAC whose stochastic
  policy cannot follow its critic quickly: the policy-improvement gap QMP bridges (paper §5).
"""

from __future__ import annotations

from typing import cast

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.wrappers import TimeLimit

from environments.arithmetic import clip_into, clipped_float64, norm
from environments.base import Arena, GuidePolicy, ObservationLayout, TaskSet

START = np.array([0.0, 0.0])
GOAL = np.array([10.0, 10.0])
ARENA = (0.0, 10.0)
EPISODE_STEPS = 20
SUCCESS_DISTANCE = 1.0
REWARD_LENGTH_SCALE = 3.0
GUIDE_STD = 0.5

DIRECTIONS: dict[str, tuple[float, float]] = {
    "up": (0.0, 1.0), "down": (0.0, -1.0), "left": (-1.0, 0.0), "right": (1.0, 0.0),
    "up_right": (1.0, 1.0), "up_left": (-1.0, 1.0), "down_right": (1.0, -1.0), "down_left": (-1.0, -1.0),
}


def point_reward(position: np.ndarray) -> float:
    """``exp(-d / 3) - 1`` where d is the distance from ``position`` to the goal."""
    return float(np.exp(-norm(np.asarray(position) - GOAL) / REWARD_LENGTH_SCALE) - 1.0)


class PointReachEnv(gym.Env):
    """A point mass moved by incremental actions toward a fixed goal."""

    metadata = {"render_modes": []}
    independent_resets = True  # deterministic start, no randomness at all

    def __init__(self) -> None:
        self.action_space = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(3,), dtype=np.float32)
        self.position = START.copy()

    def _observation(self) -> np.ndarray:
        return np.array([*self.position, 1.0], dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.position = START.copy()
        return self._observation(), {"success": False}

    def step(self, action):
        position = self.position + clipped_float64(action, -1.0, 1.0)
        clip_into(position, position, *ARENA)
        self.position = position
        distance = norm(position - GOAL)
        info = {"success": distance <= SUCCESS_DISTANCE, "distance": distance}
        return self._observation(), point_reward(self.position), False, False, info


def parse_guide_policies(names: str) -> tuple[GuidePolicy, ...]:
    """``"up,right,up_right"`` -> guide policies; ``"none"`` -> none. Raises ValueError."""
    if names is None or names.strip().lower() in ("", "none"):
        return ()
    guides = []
    for name in (part.strip() for part in names.split(",")):
        if name not in DIRECTIONS:
            raise ValueError(f"unknown guide policy {name!r}; choose from {', '.join(DIRECTIONS)} or none")
        guides.append(GuidePolicy(name, DIRECTIONS[name], GUIDE_STD))
    return tuple(guides)


def make_point_reach_task_set(guide_policies: str = "up,right,up_right") -> TaskSet:
    """The single point-reaching task with the requested fixed guide policies."""

    def make_env(task_index: int, evaluation: bool) -> gym.Env:
        return TimeLimit(PointReachEnv(), max_episode_steps=EPISODE_STEPS)

    return TaskSet(
        env_id="PointReach-v0",
        task_names=("reach (0,0) -> (10,10)",),
        make_env=make_env,
        max_episode_steps=EPISODE_STEPS,
        observation_layout=ObservationLayout(raw_dim=3, task_id_slice=slice(2, 3), remove_task_id=True),
        min_reward=-1.0,
        episode_metrics={"distance": "last"},
        guide_policies=parse_guide_policies(guide_policies),
        arena=Arena(goal=lambda env: GOAL, success_distance=SUCCESS_DISTANCE, bounds=ARENA,
                    position=lambda env: np.array(cast(PointReachEnv, env.unwrapped).position, dtype=np.float64)),
    )
