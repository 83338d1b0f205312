"""The step arithmetic without numpy's Python wrappers (environments/arithmetic.py) gives numpy's
numbers bit for bit, and Jaco's failure path still ends an unstable step with the documented values
for each of MuJoCo's three instability warnings (its substeps now run in one ``mj_step`` call)."""

from __future__ import annotations

import math

import mujoco
import numpy as np
import pytest

from environments import make_task_set
from environments.arithmetic import clip, clip_into, mean, norm, total
from environments.jaco import make_jaco_env
from learning.training.evaluation import summarize_episodes
from learning.training.sampler import EpisodeTracker

SPECIAL = [np.nan, np.inf, -np.inf, -0.0, 0.0, -1.0, 1.0, -1.0000001, 1.0000001, 1e300, -1e300, 0.3]


def special_values(dtype) -> np.ndarray:
    with np.errstate(over="ignore"):  # +-1e300 is +-inf in float32
        return np.array(SPECIAL + list(np.random.default_rng(0).uniform(-3, 3, 200)), dtype=dtype)


@pytest.mark.parametrize("in_dtype", [np.float32, np.float64])
def test_clip_into_is_np_clip_then_assignment(in_dtype):
    values = special_values(in_dtype)
    expected = np.empty(values.shape)
    expected[:] = np.clip(values, -1.0, 1.0)
    out = np.full(values.shape, 7.0)
    clip_into(out, values, -1.0, 1.0)
    assert out.tobytes() == expected.tobytes()  # NaN stays NaN, -0.0 stays -0.0, both bounds applied
    clip_into(out, out, -0.5, 0.25)  # in place
    assert np.nanmax(out) == 0.25 and np.nanmin(out) == -0.5 and np.isnan(out[0])


def test_walker_observation_clips_velocities_before_the_float32_cast():
    env = make_task_set("Walker2dMT4-v0").make_env(0, False)
    env.reset(seed=0)
    qvel = env.unwrapped.data.qvel
    qvel[:] = [1e300, -1e300, np.nan, 10.0000001, -9.99, 0.1, -0.0, 3e38, -11.0]
    with np.errstate(over="raise"):  # casting first would overflow float32 at +-1e300
        observation = env.unwrapped._observation()
    assert observation[8:17].tobytes() == np.clip(qvel, -10.0, 10.0).astype(np.float32).tobytes()
    assert clip(qvel, -10.0, 10.0).tobytes() == np.clip(qvel, -10.0, 10.0).tobytes()


def test_total_mean_and_norm_are_numpys_to_the_last_bit():
    rng = np.random.default_rng(1)
    mismatch_of_plain_python = 0
    for size in (2, 3, 6, 9, 17):
        for _ in range(300):
            vector = rng.standard_normal(size) * 10.0 ** rng.integers(-3, 4)
            assert total(vector).hex() == float(np.sum(vector)).hex()
            assert mean(np.abs(vector)).hex() == float(np.mean(np.abs(vector))).hex()
            assert norm(vector).hex() == float(np.linalg.norm(vector)).hex()
            mismatch_of_plain_python += math.hypot(*vector) != float(np.linalg.norm(vector))
    assert mismatch_of_plain_python > 0  # the bit-for-bit comparison has teeth: hypot rounds otherwise


@pytest.fixture
def quiet_mujoco_warnings():
    previous_handler = mujoco.get_mju_user_warning()
    mujoco.set_mju_user_warning(lambda message: None)
    yield
    mujoco.set_mju_user_warning(previous_handler)


@pytest.mark.parametrize("bad_state,warning", [("qpos", mujoco.mjtWarning.mjWARN_BADQPOS),
                                               ("qvel", mujoco.mjtWarning.mjWARN_BADQVEL),
                                               ("force", mujoco.mjtWarning.mjWARN_BADQACC)])
def test_each_instability_warning_fails_the_step_and_restores_the_state(quiet_mujoco_warnings, bad_state, warning):
    env = make_jaco_env(1)  # the shifted task: reward = distance term + success bonus term - 100 - 2
    env.reset(seed=0)
    previous, _, _, _, _ = env.step(np.zeros(6))
    inner = env.unwrapped
    if bad_state == "qpos":
        inner.data.qpos[2] = 1e11
    elif bad_state == "qvel":
        inner.data.qvel[2] = 1e11
    else:
        inner.data.xfrc_applied[inner.hand_id, :3] = 1e12
    time_before, qpos_before, qvel_before = inner.data.time, inner.data.qpos.copy(), inner.data.qvel.copy()
    observation, reward, terminated, truncated, info = env.step(np.full(6, 0.5))
    assert inner.data.warning[warning].number == 1
    assert terminated and not truncated and not info["success"] and info["stages_completed"] == 0
    assert info["completed"] is False  # terminated, but the task is not finished
    assert observation.tobytes() == previous.tobytes()
    assert info["ctrl_reward"] == -100.0 and info["stage_reward"] == 0.0
    hand_distance = np.linalg.norm(previous[20:23].astype(np.float64) - inner.goals[0])
    assert info["dist_reward"] == -hand_distance
    assert reward == info["dist_reward"] + 0.0 - 100.0 - 2.0
    assert inner.data.time == time_before
    assert inner.data.qpos.tobytes() == qpos_before.tobytes() and inner.data.qvel.tobytes() == qvel_before.tobytes()


def test_a_physics_failure_terminates_but_does_not_count_as_completion(quiet_mujoco_warnings):
    """Evaluation's metrics of one failed episode of the Reacher's task 0, from the real env's infos:
    TerminationRate 1 (any termination, the original's meaning), CompletionRate 0 (not finished)."""
    task_set = make_task_set("JacoReachMT5-v1")
    env = task_set.make_env(0, True)
    env.reset(seed=0)
    tracker = EpisodeTracker(1, task_set.episode_metrics, 0.99)
    _, reward, terminated, _, info = env.step(np.zeros(6))
    tracker.record_infos(np.array([0]), np.array([reward]), [info])
    env.unwrapped.data.qvel[2] = 1e11
    _, reward, terminated, _, info = env.step(np.full(6, 0.5))
    tracker.record_infos(np.array([0]), np.array([reward]), [info])
    assert terminated
    metrics = summarize_episodes([tracker.finish(0, terminated)], 1, "Evaluation/", task_set.episode_metrics)
    assert metrics["Evaluation/Task0/TerminationRate"] == 1.0
    assert metrics["Evaluation/Task0/CompletionRate"] == 0.0
