"""Walker2dMT4-v0 against the facts of docs/fidelity.md#walker, #task-identity-and-masking, #walker-external-forces,
#walker-survival-terminal and docs/envs/walker.md#model-facts."""

from __future__ import annotations

import os
import pickle

import mujoco
import numpy as np
import pytest
from gymnasium.utils import seeding

from environments import make_task_set
from environments.base import get_env_state, set_env_state
from environments.walker import (
    BACKWARD,
    BALANCE,
    CRAWL,
    EXTERNAL_FORCE_PROBABILITY,
    FORWARD,
    WalkerTaskEnv,
    make_walker_task_set,
)

DT = 0.008
TASKS = (FORWARD, BACKWARD, BALANCE, CRAWL)
STANDING_QPOS = np.array([0.0, 1.25, 0, 0, 0, 0, 0, 0, 0])


def spec_reward(task: int, qpos_before: np.ndarray, qpos_after: np.ndarray, xpos: np.ndarray, action: np.ndarray,
                touches_ceiling: bool) -> float:
    """The original's reward table (docs/fidelity.md#walker), written out term by term."""
    v = (qpos_after[0] - qpos_before[0]) / DT
    upright = 0.1 * np.cos(qpos_after[2])
    height_gap = xpos[1, 2] - max(xpos[4, 2], xpos[7, 2])
    foot = abs(qpos_after[5] - qpos_before[5]) / DT + abs(qpos_after[8] - qpos_before[8]) / DT
    control = -0.001 * np.sum(np.square(action))
    if task == FORWARD:
        return (3 - abs(v - 3)) + upright - abs(1.1 - height_gap) - 0.01 * foot + 1 + control
    if task == BACKWARD:
        return (3 - abs(-v - 3)) + upright - abs(1.1 - height_gap) - 0.01 * foot + 1 + control
    if task == BALANCE:
        return -abs(v) + upright - 0.5 * abs(1.1 - height_gap) + 1 + control
    return 2 * (3 - abs(v - 3)) + upright - 0.01 * foot + 1 + control - (10 if touches_ceiling else 0)


def ceiling_contact(env: WalkerTaskEnv) -> bool:
    """Whether the last step left a contact with a geom whose name contains "ceiling"."""
    model, data = env.model, env.data
    return any(
        "ceiling" in model.geom(int(g)).name for c in data.contact[: data.ncon] for g in (c.geom1, c.geom2)
    )


def set_pose(env: WalkerTaskEnv, qpos: np.ndarray, qvel: np.ndarray | None = None) -> None:
    env.set_state(np.asarray(qpos, dtype=np.float64), np.zeros(9) if qvel is None else np.asarray(qvel, dtype=np.float64))


def lying_qpos(height: float, x: float = 0.0) -> np.ndarray:
    """The walker rotated to horizontal (legs towards -x) with the torso at ``height``; lowest point height - 0.26."""
    qpos = STANDING_QPOS.copy()
    qpos[0], qpos[1], qpos[2] = x, height, np.pi / 2
    return qpos


def fresh_env(task: int, **kwargs) -> WalkerTaskEnv:
    env = WalkerTaskEnv(task, **kwargs)
    env.reset(seed=0)
    return env


def test_task_set_facts():
    task_set = make_task_set("Walker2dMT4-v0")
    assert task_set.env_id == "Walker2dMT4-v0"
    assert task_set.task_names == ("forward", "backward", "balance", "crawl")
    assert task_set.max_episode_steps == 1000
    assert task_set.min_reward == 0.0
    assert task_set.episode_metrics == {"x_velocity": "mean"}
    env = task_set.make_env(CRAWL, True)
    assert env._max_episode_steps == 1000
    assert env.action_space.shape == (6,)
    np.testing.assert_array_equal(env.action_space.low, -1.0)
    np.testing.assert_array_equal(env.action_space.high, 1.0)
    assert env.observation_space.shape == (21,)


def test_model_is_walker_v1_with_crawl_obstacles():
    forward, crawl = fresh_env(FORWARD), fresh_env(CRAWL)
    for env in (forward, crawl):
        model = env.model
        assert env.dt == pytest.approx(DT)
        assert model.opt.integrator == mujoco.mjtIntegrator.mjINT_RK4
        assert [model.body(b).name for b in range(model.nbody)] == [
            "world", "torso", "thigh", "leg", "foot", "thigh_left", "leg_left", "foot_left"]
        assert model.geom("foot_geom").friction[0] == pytest.approx(0.9)
        assert model.geom("foot_left_geom").friction[0] == pytest.approx(1.9)
        np.testing.assert_allclose(model.actuator_gear[:, 0], 100.0)
    assert not any("ceiling" in forward.model.geom(g).name or "curb" in forward.model.geom(g).name
                   for g in range(forward.model.ngeom))
    ceiling = crawl.model.geom("ceiling_long")
    low_x, high_x = ceiling.pos[0] - ceiling.size[0], ceiling.pos[0] + ceiling.size[0]
    assert (low_x, high_x) == pytest.approx((2.0, 14.0))
    assert ceiling.pos[2] - ceiling.size[2] == pytest.approx(0.9)
    assert ceiling.conaffinity == 1 and ceiling.contype == 1


def test_standing_at_rest_rewards():
    """At rest, v = 0, θ = 0 and Δh = 1.25 (docs/envs/walker.md#foot-frame), so every term is known."""
    expected = {FORWARD: 0 + 0.1 - 0.15 + 1, BACKWARD: 0 + 0.1 - 0.15 + 1, BALANCE: 0 + 0.1 - 0.075 + 1, CRAWL: 0 + 0.1 + 1}
    for task, reward_at_rest in expected.items():
        env = fresh_env(task)
        set_pose(env, STANDING_QPOS)
        _, reward, terminated, truncated, info = env.step(np.zeros(6))
        assert reward == pytest.approx(reward_at_rest, abs=1e-3)
        assert not terminated and not truncated and info["success"] is False


@pytest.mark.parametrize("velocity", [3.0, -3.0])
def test_rewards_and_x_velocity_at_set_speed(velocity: float):
    """Walker in the air translating at ±3 m/s: exact speed terms and the per-task x_velocity info."""
    qpos = STANDING_QPOS.copy()
    qpos[1] = 1.5
    qvel = np.zeros(9)
    qvel[0] = velocity
    forward_speed = 3 - abs(velocity - 3)
    backward_speed = 3 - abs(-velocity - 3)
    expected = {
        FORWARD: (forward_speed + 0.1 - 0.15 + 1, forward_speed),
        BACKWARD: (backward_speed + 0.1 - 0.15 + 1, -backward_speed),
        BALANCE: (-abs(velocity) + 0.1 - 0.075 + 1, velocity),
        CRAWL: (2 * forward_speed + 0.1 + 1, forward_speed),
    }
    for task, (reward_expected, x_velocity_expected) in expected.items():
        env = fresh_env(task)
        set_pose(env, qpos, qvel)
        _, reward, terminated, _, info = env.step(np.zeros(6))
        assert reward == pytest.approx(reward_expected, abs=1e-6)
        assert info["x_velocity"] == pytest.approx(x_velocity_expected, abs=1e-6)
        assert not terminated


@pytest.mark.parametrize("task", TASKS)
def test_reward_matches_formula_along_random_rollout(task: int):
    env = fresh_env(task)
    rng = np.random.default_rng(task)
    for _ in range(60):
        action = rng.uniform(-1, 1, size=6)
        qpos_before = env.data.qpos.copy()
        _, reward, terminated, _, _ = env.step(action)
        expected = spec_reward(task, qpos_before, env.data.qpos, env.data.xpos, action, ceiling_contact(env))
        assert reward == pytest.approx(expected, abs=1e-9)
        if terminated:
            env.reset()


def test_actions_are_clipped_to_bounds():
    rewards = []
    for action in (np.full(6, 2.0), np.ones(6)):
        env = fresh_env(FORWARD)
        set_pose(env, STANDING_QPOS)
        rewards.append(env.step(action)[1])
    assert rewards[0] == rewards[1]


@pytest.mark.parametrize(("task", "fall_height"), [(FORWARD, 0.8), (BACKWARD, 0.8), (BALANCE, 0.8), (CRAWL, 0.3)])
def test_fall_height(task: int, fall_height: float):
    for height, falls in ((fall_height - 0.01, True), (fall_height + 0.01, False), (0.5, task != CRAWL)):
        env = fresh_env(task)
        set_pose(env, lying_qpos(height))
        _, _, terminated, truncated, info = env.step(np.zeros(6))
        assert terminated is falls, height
        assert not truncated and info["success"] is False


def test_crawl_ceiling_contact_ends_episode_with_penalty():
    for x, touches in ((1.5, False), (2.1, True), (5.0, True), (13.9, True), (14.2, False), (-10.0, True)):
        env = fresh_env(CRAWL)
        qpos = STANDING_QPOS.copy()
        qpos[0] = x
        set_pose(env, qpos)
        qpos_before = env.data.qpos.copy()
        _, reward, terminated, _, info = env.step(np.zeros(6))
        assert ceiling_contact(env) is touches, x
        assert terminated is touches and info["success"] is False
        assert reward == pytest.approx(spec_reward(CRAWL, qpos_before, env.data.qpos, env.data.xpos, np.zeros(6), touches))
        no_penalty = spec_reward(CRAWL, qpos_before, env.data.qpos, env.data.xpos, np.zeros(6), False)
        assert reward == pytest.approx(no_penalty - (10.0 if touches else 0.0))


def test_crawl_low_walker_passes_under_ceiling_and_curbs_do_not_end_episode():
    env = fresh_env(CRAWL)
    set_pose(env, lying_qpos(0.5, x=8.0))
    assert not env.step(np.zeros(6))[2]
    env = fresh_env(CRAWL)
    qpos = STANDING_QPOS.copy()
    qpos[0] = -5.0
    set_pose(env, qpos)
    terminated = env.step(np.zeros(6))[2]
    touched = {env.model.geom(int(g)).name for c in env.data.contact[: env.data.ncon] for g in (c.geom1, c.geom2)}
    assert any(name.startswith("curb") for name in touched)
    assert not terminated


def test_forward_task_has_no_ceiling():
    env = fresh_env(FORWARD)
    qpos = STANDING_QPOS.copy()
    qpos[0] = 5.0
    set_pose(env, qpos)
    assert not env.step(np.zeros(6))[2]


@pytest.mark.parametrize("task", TASKS)
def test_observation_layout_and_masking(task: int):
    task_set = make_walker_task_set()
    env = task_set.make_env(task, False)
    env.reset(seed=1)
    inner = env.unwrapped
    qvel = np.zeros(9)
    qvel[3], qvel[6] = 50.0, -50.0
    set_pose(inner, inner.data.qpos.copy(), qvel)
    obs, *_ = env.step(np.zeros(6))
    assert obs.shape == (21,) and obs.dtype == np.float32
    np.testing.assert_allclose(obs[:8], inner.data.qpos[1:], rtol=1e-6)
    np.testing.assert_allclose(obs[8:17], np.clip(inner.data.qvel, -10, 10), rtol=1e-6)
    assert obs[8 + 3] == 10.0 and obs[8 + 6] == -10.0 and inner.data.qvel[3] > 10.0
    np.testing.assert_array_equal(obs[17:], np.eye(4)[task])
    layout = task_set.observation_layout
    assert layout.task_id(obs) == task
    assert layout.network_dim() == 21
    masked = layout.network_input(obs)
    np.testing.assert_array_equal(masked[17:], 0.0)
    np.testing.assert_array_equal(masked[:17], obs[:17])


def test_survived_1000_steps_is_truncation_with_success():
    """Gravity off and the walker held still: it never falls, so the time limit ends the episode.

    Two episodes per env: warm-up steps are not counted and the counter restarts at every reset.
    """
    for task in TASKS:
        env = make_walker_task_set().make_env(task, False)
        inner = env.unwrapped
        inner.model.opt.gravity[:] = 0.0
        for seed in (2, 3):
            env.reset(seed=seed)
            set_pose(inner, inner.data.qpos.copy())
            for step in range(1, 1001):
                _, _, terminated, truncated, info = env.step(np.zeros(6))
                assert not terminated
                assert truncated is (step == 1000) and info["success"] is (step == 1000)


@pytest.mark.parametrize(("task", "warmup_steps"), [(FORWARD, 5), (BACKWARD, 5), (BALANCE, 10), (CRAWL, 5)])
def test_reset_noise_and_random_warmup_steps(task: int, warmup_steps: int):
    """Reset = default ± U(0.01) on qpos and qvel, then uniformly random actions from env.np_random."""
    env = WalkerTaskEnv(task)
    obs, info = env.reset(seed=7)
    assert info["success"] is False
    model = env.model
    replayed = {}
    for steps in (warmup_steps - 1, warmup_steps, warmup_steps + 1):
        rng, _ = seeding.np_random(7)
        data = mujoco.MjData(model)
        data.qpos[:] = STANDING_QPOS + rng.uniform(-0.01, 0.01, size=9)
        data.qvel[:] = rng.uniform(-0.01, 0.01, size=9)
        for _ in range(steps):
            data.ctrl[:] = rng.uniform(-1, 1, size=6)
            mujoco.mj_step(model, data, nstep=4)
        replayed[steps] = np.concatenate([data.qpos[1:], np.clip(data.qvel, -10, 10)]).astype(np.float32)
    np.testing.assert_allclose(obs[:17], replayed[warmup_steps], atol=1e-6)
    assert not np.allclose(obs[:17], replayed[warmup_steps - 1], atol=1e-4)
    assert not np.allclose(obs[:17], replayed[warmup_steps + 1], atol=1e-4)


@pytest.mark.parametrize("external_forces", [False, True])
def test_same_seed_same_episode(external_forces: bool):
    task_set = make_walker_task_set(external_forces=external_forces)
    trajectories = []
    for _ in range(2):
        env = task_set.make_env(BALANCE, False)
        obs, _ = env.reset(seed=11)
        rng = np.random.default_rng(0)
        observations = [obs]
        for _ in range(100):
            observations.append(env.step(rng.uniform(-1, 1, size=6))[0])
        trajectories.append(np.stack(observations))
    np.testing.assert_array_equal(trajectories[0], trajectories[1])
    other = task_set.make_env(BALANCE, False)
    assert not np.array_equal(other.reset(seed=12)[0], trajectories[0][0])


@pytest.mark.parametrize("task", [BALANCE, CRAWL])
def test_env_state_round_trip(task: int):
    env = make_walker_task_set().make_env(task, False)
    env.unwrapped.external_force_probability = 0.5
    env.reset(seed=3)
    rng = np.random.default_rng(1)
    for _ in range(20):
        env.step(rng.uniform(-1, 1, size=6))
    snapshot = pickle.dumps(get_env_state(env))
    actions = rng.uniform(-1, 1, size=(30, 6))
    first = [env.step(a) for a in actions]
    set_env_state(env, pickle.loads(snapshot))
    second = [env.step(a) for a in actions]
    for (obs1, r1, te1, tr1, _), (obs2, r2, te2, tr2, _) in zip(first, second):
        np.testing.assert_array_equal(obs1, obs2)
        assert (r1, te1, tr1) == (r2, te2, tr2)
    assert env._elapsed_steps == 50


def linear_momentum(env: WalkerTaskEnv) -> np.ndarray:
    """Total linear momentum of the walker at the current state."""
    mujoco.mj_forward(env.model, env.data)
    mujoco.mj_subtreeVel(env.model, env.data)
    return env.model.body_subtreemass[1] * env.data.subtree_linvel[1].copy()


@pytest.mark.parametrize(("task", "magnitude"), [(FORWARD, 100.0), (BACKWARD, 100.0), (BALANCE, 400.0), (CRAWL, 300.0)])
def test_external_force_impulse(task: int, magnitude: float):
    """In the air, momentum changes by gravity plus the push: |Δp - M g dt| = magnitude · dt (or 0 when off)."""
    for probability, expected_impulse in ((0.0, 0.0), (1.0, magnitude * DT)):
        env = fresh_env(task, external_force_probability=probability)
        qpos = STANDING_QPOS.copy()
        qpos[1] = 3.0
        set_pose(env, qpos)
        for _ in range(3):
            before = linear_momentum(env)
            env.step(np.zeros(6))
            change = linear_momentum(env) - before
            change -= env.model.body_subtreemass[1] * env.model.opt.gravity * DT
            assert change[1] == pytest.approx(0.0, abs=1e-9)
            assert np.linalg.norm(change) == pytest.approx(expected_impulse, abs=1e-6)
            np.testing.assert_array_equal(env.data.xfrc_applied, 0.0)


def test_external_forces_off_by_default_on_with_flag():
    assert make_walker_task_set().make_env(BALANCE, False).unwrapped.external_force_probability == 0.0
    assert make_task_set("Walker2dMT4-v0", external_forces=True).make_env(BALANCE, False).unwrapped.external_force_probability == (
        EXTERNAL_FORCE_PROBABILITY
    )
    assert 0.0 < EXTERNAL_FORCE_PROBABILITY <= 1.0


@pytest.mark.skipif(
    os.environ.get("MUJOCO_GL") not in ("egl", "osmesa") and not os.environ.get("DISPLAY"),
    reason="no OpenGL backend: set MUJOCO_GL=egl (or osmesa) to test rendering",
)
def test_rgb_rendering_and_checkpoint_after_rendering():
    env = make_walker_task_set().make_env(CRAWL, False)
    env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (480, 480, 3) and frame.dtype == np.uint8
    assert frame.std() > 0
    snapshot = pickle.dumps(get_env_state(env))
    set_env_state(env, pickle.loads(snapshot))
    assert env.render().shape == (480, 480, 3)
    env.close()
