"""Facts of KitchenMTEasy-v0 (docs/fidelity.md#kitchen, #task-identity-and-masking, #presets,
#kitchen-goal-inversion)."""

from __future__ import annotations

import math
import pickle

import gymnasium as gym
import mujoco
import numpy as np
import pytest

from environments import make_task_set
from environments.base import get_env_state, set_env_state
from environments.kitchen import TASKS, KitchenTaskEnv, make_kitchen_task_set, robot_config

# The original's task table (docs/fidelity.md#kitchen): name, element qpos indices, site, threshold, initial value, goal
# value.
ORIGINAL_TASKS = [
    ("slide cabinet-open", (19,), "slide_site", 0.1, (-4.655e-4,), (0.37,)),
    ("slide cabinet-close", (19,), "slide_site", 0.1, (0.37,), (-4.655e-4,)),
    ("hinge cabinet-open", (20, 21), "hinge_site2", 0.1, (-6.441e-3, -1.770e-3), (0.0, 1.45)),
    ("hinge cabinet-close", (20, 21), "hinge_site2", 0.3, (0.0, 1.45), (-6.441e-3, -1.770e-3)),
    ("bottom burner-on", (11, 12), "knob2_site", 0.3, (3.129e-5, -4.512e-5), (-0.88, -0.01)),
    ("bottom burner-off", (11, 12), "knob2_site", 0.3, (-0.88, -0.01), (3.129e-5, -4.512e-5)),
    ("top burner-on", (15, 16), "knob4_site", 0.3, (6.281e-5, 4.050e-5), (-0.92, -0.01)),
    ("top burner-off", (15, 16), "knob4_site", 0.3, (-0.92, -0.01), (6.281e-5, 4.050e-5)),
    ("light switch-on", (17, 18), "light_site", 0.3, (4.627e-4, -2.269e-4), (-0.69, -0.05)),
    ("light switch-off", (17, 18), "light_site", 0.3, (-0.69, -0.05), (4.627e-4, -2.269e-4)),
]
# Goal-vector slots the original overwrites for every task (docs/fidelity.md#kitchen).
MICROWAVE_GOAL = {22: -0.75}
KETTLE_GOAL = dict(zip(range(23, 30), (-0.23, 0.75, 1.62, 0.99, 0.0, 0.0, -0.06)))
BOTTOM_BURNER_ON = {11: -0.88, 12: -0.01}
LIGHT_SWITCH_ON = {17: -0.69, 18: -0.05}
ORIGINAL_ROUNDING = dict(rtol=1e-3, atol=1e-7)


@pytest.fixture(scope="module")
def task_set():
    return make_kitchen_task_set()


@pytest.fixture(scope="module")
def envs(task_set):
    return [task_set.make_env(index, False) for index in range(task_set.num_tasks)]


def spec_tolerance(distance: float, bound: float, margin: float) -> float:
    """Gaussian tolerance on [0, bound], 0.1 at bound + margin (Meta-World's reward utility)."""
    if distance <= bound:
        return 1.0
    return math.exp(-0.5 * ((distance - bound) / margin) ** 2 * (-2.0 * math.log(0.1)))


def test_task_table_matches_spec_and_gymnasium_robotics():
    from gymnasium_robotics.envs.franka_kitchen.kitchen_env import OBS_ELEMENT_GOALS, OBS_ELEMENT_INDICES

    assert len(TASKS) == 10
    for task, (name, indices, site, threshold, initial, goal) in zip(TASKS, ORIGINAL_TASKS):
        assert (task.name, task.element.indices, task.element.site, task.threshold) == (name, indices, site, threshold)
        np.testing.assert_allclose(task.initial, initial, **ORIGINAL_ROUNDING)
        np.testing.assert_allclose(task.goal, goal, **ORIGINAL_ROUNDING)
        element = name.split("-")[0]
        np.testing.assert_array_equal(OBS_ELEMENT_INDICES[element], indices)
        np.testing.assert_array_equal(OBS_ELEMENT_GOALS[element], goal if task.turns_on else initial)


def test_registry_facts_and_observation_layout(task_set, envs):
    assert make_task_set("KitchenMTEasy-v0").task_names == tuple(row[0] for row in ORIGINAL_TASKS)
    assert task_set.max_episode_steps == 140 and task_set.min_reward == -20.0
    layout = task_set.observation_layout
    assert layout.raw_dim == 70 and layout.task_id_slice == slice(60, 70) and layout.remove_task_id
    assert layout.network_dim() == 60
    for index, env in enumerate(envs):
        assert env.action_space.shape == (9,)
        np.testing.assert_array_equal(env.action_space.low, -1.0)
        np.testing.assert_array_equal(env.action_space.high, 1.0)
        observation, info = env.reset(seed=index)
        assert observation.shape == env.observation_space.shape == (70,) and observation.dtype == np.float32
        assert info["success"] is False
        np.testing.assert_array_equal(observation[60:], np.eye(10)[index])
        assert layout.task_id(observation) == index
        np.testing.assert_array_equal(layout.network_input(observation), observation[:60])
        # Robot joints 9 and object joints 21 are the sim's qpos up to the observation noise (at most 0.1 x 0.1).
        np.testing.assert_allclose(observation[:30], env.unwrapped.data.qpos[:30], atol=1.01e-2)


def test_task_subset_has_its_own_one_hot():
    subset = make_kitchen_task_set(task_name="3,7")
    assert subset.task_names == ("hinge cabinet-close", "top burner-off")
    assert subset.observation_layout.raw_dim == 62 and subset.observation_layout.network_dim() == 60
    env = subset.make_env(1, False)
    observation, _ = env.reset(seed=0)
    np.testing.assert_array_equal(observation[60:], [0.0, 1.0])
    np.testing.assert_allclose(env.unwrapped.data.qpos[[15, 16]], ORIGINAL_TASKS[7][4])
    with pytest.raises(ValueError, match="out of range"):
        make_kitchen_task_set(task_name="10")


def test_sparse_tasks_are_rejected_with_a_clear_error():
    with pytest.raises(ValueError, match="sparse"):
        make_kitchen_task_set(sparse_tasks=[0])
    assert make_kitchen_task_set(sparse_tasks=[]).num_tasks == 10


def test_reset_is_deterministic_with_each_tasks_initial_state(envs):
    envs[0].reset(seed=0)
    base_qpos = envs[0].unwrapped.data.qpos.copy()  # the configuration all tasks share outside their element
    for env, (_name, indices, *_rest, initial, _goal) in zip(envs, ORIGINAL_TASKS):
        first, _ = env.reset(seed=3)
        qpos = env.unwrapped.data.qpos.copy()
        np.testing.assert_allclose(qpos[list(indices)], initial, **ORIGINAL_ROUNDING)
        others = np.setdiff1d(np.arange(30), indices)
        np.testing.assert_array_equal(qpos[others], base_qpos[others])
        np.testing.assert_array_equal(env.unwrapped.data.qvel, 0.0)
        again, _ = env.reset(seed=3)
        np.testing.assert_array_equal(first, again)
        other_seed, _ = env.reset(seed=4)
        assert not np.array_equal(first, other_seed)  # only the observation noise differs
        np.testing.assert_array_equal(env.unwrapped.data.qpos, qpos)


def test_observation_noise_is_d4rls_ratio_on_robot_and_object_joints(envs):
    """d4rl's KitchenV0: noise U(-1, 1) x 0.1 x pos_noise_amp[i] on the 9 robot and the 21 object joints."""
    env = envs[0]
    amplitudes = robot_config().noise_amplitudes
    ratios = []
    for seed in range(3):
        observation, _ = env.reset(seed=seed)
        ratios.append((observation[:30] - env.unwrapped.data.qpos[:30]) / amplitudes)
    ratios = np.abs(np.array(ratios))
    assert ratios.max() <= 0.1 + 1e-3
    assert ratios[:, :9].max() > 0.08 and ratios[:, 9:].max() > 0.08  # 10x / 200x above FrankaKitchen-v1's


def expected_goal_vector(task_index: int, corrected: bool) -> np.ndarray:
    name, indices, _site, _threshold, _initial, goal = ORIGINAL_TASKS[task_index]
    vector = np.zeros(30)
    vector[list(indices)] = goal
    for slots in (MICROWAVE_GOAL, KETTLE_GOAL, BOTTOM_BURNER_ON, LIGHT_SWITCH_ON):
        vector[list(slots)] = list(slots.values())
    if corrected:
        vector[list(indices)] = goal
    return vector


@pytest.mark.parametrize("corrected", [False, True])
def test_goal_vector_per_task(corrected):
    task_set = make_task_set("KitchenMTEasy-v0", corrected_kitchen_goal=corrected)
    for index in range(10):
        observation, _ = task_set.make_env(index, False).reset(seed=0)
        np.testing.assert_allclose(observation[30:60], expected_goal_vector(index, corrected), **ORIGINAL_ROUNDING)
    # The quirk (docs/fidelity.md#kitchen-goal-inversion): the two "off" tasks whose slots are overwritten observe the
    # "on" value.
    quirk = make_kitchen_task_set().make_env(5, False).reset(seed=0)[0]
    np.testing.assert_allclose(quirk[[41, 42]], [-0.88, -0.01])
    quirk = make_kitchen_task_set().make_env(9, False).reset(seed=0)[0]
    np.testing.assert_allclose(quirk[[47, 48]], [-0.69, -0.05])


def test_setting_the_element_to_its_goal_succeeds_and_terminates_with_the_bonus(envs):
    for env, (name, indices, _site, _threshold, _initial, goal) in zip(envs, ORIGINAL_TASKS):
        env.reset(seed=0)
        kitchen = env.unwrapped
        kitchen.data.qpos[list(indices)] = goal
        mujoco.mj_forward(kitchen.model, kitchen.data)
        _, reward, terminated, truncated, info = env.step(np.zeros(9, dtype=np.float32))
        assert (terminated, truncated, info["success"], reward) == (True, False, True, 2800.0), name


def test_dense_reward_formula_and_bounds(envs):
    rng = np.random.default_rng(0)
    for task_index in (2, 8):
        env = envs[task_index]
        name, indices, site, threshold, initial, goal = ORIGINAL_TASKS[task_index]
        env.reset(seed=1)
        kitchen = env.unwrapped
        data = kitchen.data
        initial_reach = np.linalg.norm(data.site(site).xpos - data.site("end_effector").xpos)
        initial_goal = np.linalg.norm(np.subtract(initial, goal))
        # Half way to the goal: in_place is strictly between its margin value and 1.
        data.qpos[list(indices)] = np.add(initial, goal) / 2
        mujoco.mj_forward(kitchen.model, data)
        for _ in range(15):
            observation, reward, terminated, truncated, info = env.step(rng.uniform(-1, 1, 9).astype(np.float32))
            assert not terminated and not truncated and not info["success"]
            assert -20.0 <= reward <= 0.0
            goal_distance = np.linalg.norm(observation[list(indices)].astype(np.float64) - goal)
            gripper = (data.body("panda0_leftfinger").xpos + data.body("panda0_rightfinger").xpos) / 2
            reach_distance = np.linalg.norm(data.site(site).xpos - gripper)
            in_place = spec_tolerance(goal_distance, threshold, abs(initial_goal - threshold))
            reach = spec_tolerance(reach_distance, 0.08, abs(initial_reach - 0.08))
            assert 0.1 < in_place < 1.0
            assert reward == pytest.approx(20 * (0.4 * in_place + 0.6 * reach - 1), abs=1e-4)


def test_horizon_truncates_at_140_steps(envs):
    env = envs[6]
    env.reset(seed=0)
    for step in range(1, 141):
        _, reward, terminated, truncated, _ = env.step(np.zeros(9, dtype=np.float32))
        assert not terminated and truncated == (step == 140)
        assert -20.0 <= reward <= 0.0


def test_unit_action_moves_position_targets_by_0_16_rad(envs):
    """Velocity-style control: targets = observed qpos + 2 rad/s x (40 x 0.002 s), clipped to the joint bounds."""
    kitchen = envs[0].unwrapped
    observation, _ = envs[0].reset(seed=0)
    assert kitchen.model.opt.timestep == 0.002
    action = np.array([1, -1, 0.5, -0.5, 0, 0, 0, 0, -0.1], dtype=np.float32)
    targets = kitchen.control_targets(action)
    free = [0, 2, 3, 4, 5, 6, 8]
    np.testing.assert_allclose(targets[free] - observation[free], 2 * action[free] * 0.08, atol=1e-6)
    # Joint 2 starts at -1.768: one step down would pass its -1.8 bound. Finger 1 starts beyond its 0.04 bound.
    assert observation[1] - 0.16 < -1.8 and targets[1] == -1.8
    assert observation[7] > 0.04 and targets[7] == 0.04


def test_control_matches_gymnasium_robotics_franka_kitchen():
    import gymnasium_robotics

    gym.register_envs(gymnasium_robotics)
    reference = gym.make("FrankaKitchen-v1", robot_noise_ratio=0.0, object_noise_ratio=0.0).unwrapped
    kitchen = KitchenTaskEnv(TASKS[0], 0, 10, robot_noise_ratio=0.0, object_noise_ratio=0.0)
    reference.reset(seed=0)
    kitchen.reset(seed=0)
    for action in np.random.default_rng(0).uniform(-1, 1, size=(10, 9)):
        reference.step(action)
        kitchen.step(action)
    np.testing.assert_array_equal(kitchen.data.qpos, reference.data.qpos)
    reference.close()


def test_env_state_round_trip(task_set):
    env = task_set.make_env(4, False)
    env.reset(seed=0)
    actions = np.random.default_rng(0).uniform(-1, 1, size=(12, 9)).astype(np.float32)
    for action in actions[:6]:
        env.step(action)
    snapshot = pickle.dumps(get_env_state(env))
    assert len(snapshot) < 100_000  # the ~64 MB model is not part of a snapshot
    expected = [env.step(action) for action in actions[6:]]
    for target in (env, task_set.make_env(4, False)):
        set_env_state(target, pickle.loads(snapshot))
        for action, (observation, reward, terminated, truncated, _) in zip(actions[6:], expected):
            result = target.step(action)
            np.testing.assert_array_equal(result[0], observation)
            assert result[1:4] == (reward, terminated, truncated)
        assert target._elapsed_steps == 12
