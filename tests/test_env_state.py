"""Environment checkpoints hold the simulator state (MjData arrays, random generator, counters), not
pickled MuJoCo models: a fresh env restored mid-episode continues bit for bit."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from environments import make_task_set
from environments.base import get_env_state, set_env_state


@pytest.mark.parametrize("env_id,task", [("MazeLarge-10-v0", 3), ("JacoReachMT5-v1", 2), ("Walker2dMT4-v0", 1)])
def test_restored_env_continues_bit_for_bit(env_id, task):
    task_set = make_task_set(env_id)
    env = task_set.make_env(task, False)
    env.reset(seed=11)
    actions = np.random.default_rng(0).uniform(-1, 1, (60, env.action_space.shape[0]))
    for action in actions[:25]:
        env.step(action)
    saved = pickle.dumps(get_env_state(env))
    assert len(saved) < 100_000  # no pickled model (the Reacher's was 2 MB, its MjData pickle another 2 MB)
    restored = task_set.make_env(task, False)
    set_env_state(restored, pickle.loads(saved))
    for step, action in enumerate(actions[25:]):
        expected, got = env.step(action), restored.step(action)
        assert np.array_equal(expected[0], got[0]), f"observation differs at step {step}"
        assert expected[1:4] == got[1:4], f"reward or flags differ at step {step}"
    assert env.unwrapped.np_random.bit_generator.state == restored.unwrapped.np_random.bit_generator.state
    assert np.array_equal(env.reset()[0], restored.reset()[0])
