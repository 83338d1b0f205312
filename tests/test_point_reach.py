"""The 2-D point-reaching example: arena, reward, success, guide policies (the choices in docs/tutorial.md)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from environments import make_task_set
from environments.point_reach import EPISODE_STEPS, GOAL, point_reward


def test_reward_is_exp_of_minus_distance_over_three_minus_one():
    assert point_reward(GOAL) == 0.0
    assert point_reward(np.array([10.0, 7.0])) == pytest.approx(math.exp(-1.0) - 1.0)
    assert point_reward(np.zeros(2)) == pytest.approx(math.exp(-math.hypot(10, 10) / 3) - 1.0)


def test_episode_moves_clips_and_reports_success():
    task_set = make_task_set("PointReach-v0")
    env = task_set.make_env(0, False)
    obs, info = env.reset(seed=0)
    assert obs.tolist() == [0.0, 0.0, 1.0] and info["success"] is False
    assert task_set.observation_layout.network_input(obs).tolist() == [0.0, 0.0]
    obs, reward, terminated, truncated, info = env.step(np.array([-1.0, 3.0]))
    assert obs[:2].tolist() == [0.0, 1.0]  # clipped to the arena and to the action bounds
    assert reward == pytest.approx(point_reward(np.array([0.0, 1.0])))
    for _ in range(9):
        obs, reward, terminated, truncated, info = env.step(np.array([1.0, 1.0]))
    assert obs[:2].tolist() == [9.0, 10.0] and info["success"] is True and not terminated
    steps = 10
    while not truncated:
        obs, reward, terminated, truncated, info = env.step(np.array([1.0, 1.0]))
        steps += 1
    assert steps == EPISODE_STEPS and not terminated and obs[:2].tolist() == [10.0, 10.0]


def test_guide_policy_sets():
    default = make_task_set("PointReach-v0").guide_policies
    assert [(g.name, g.mean) for g in default] == [("up", (0.0, 1.0)), ("right", (1.0, 0.0)), ("up_right", (1.0, 1.0))]
    other = make_task_set("PointReach-v0", guide_policies="up,right,down_left").guide_policies
    assert other[2].mean == (-1.0, -1.0)
    assert make_task_set("PointReach-v0", guide_policies="none").guide_policies == ()
    with pytest.raises(ValueError, match="unknown guide policy"):
        make_task_set("PointReach-v0", guide_policies="up,sideways")
