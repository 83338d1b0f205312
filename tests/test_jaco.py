"""Facts of JacoReachMT5-v1 (docs/fidelity.md#jaco, #task-identity-and-masking, #mixture-ablations, #uds-and-cds;
docs/envs/jaco.md#model-facts)."""

from __future__ import annotations

import pickle
import threading

import gymnasium as gym
import mujoco
import numpy as np
import pytest

from environments import make_task_set
from environments.base import get_env_state, set_env_state
from environments.jaco import (
    HAND_SLICE,
    QPOS_SLICE,
    QVEL_SLICE,
    STAGE_SLICE,
    SUB_GOALS,
    TASK_SLICE,
    domain_mixture_probabilities,
    make_jaco_env,
    make_jaco_task_set,
    stay_point,
)
from environments.jaco_model import DEFAULT_QPOS, FRAME_SKIP, HAND_BODY, build_jaco_model

# Sub-goal sequences of the original's table (docs/fidelity.md#jaco); None is the stay task.
SEQUENCES = {0: "ABC", 1: "ABD", 2: "BDC", 3: "BCA", 4: None}
# docs/envs/jaco.md#reference-hand-positions: the original's hand at qpos0, and after one zero-action control step read
# as mujoco-py did.
ORIGINAL_HAND_AT_RESET = np.array([0.410000, 0.119189, 0.239430])
ORIGINAL_HAND_AFTER_ONE_STEP = np.array([0.404903, 0.117177, 0.220971])
ORIGINAL_HAND_AFTER_ONE_STEP_FORWARD = np.array([0.406902, 0.115463, 0.212277])
MM = 1e-3


def goals_of(task_index: int) -> list[np.ndarray]:
    sequence = SEQUENCES[task_index]
    return [stay_point()] * 3 if sequence is None else [SUB_GOALS[name] for name in sequence]


def inverse_kinematics(model: mujoco.MjModel, point: np.ndarray, start: np.ndarray,
                       iterations: int = 300) -> np.ndarray:
    """Joint angles (within range) that put the hand body origin at ``point``: damped least squares on mj_jac."""
    data = mujoco.MjData(model)
    hand = model.body(HAND_BODY).id
    low, high = model.jnt_range[:, 0], model.jnt_range[:, 1]
    jacobian = np.zeros((3, model.nv))
    qpos = np.clip(start, low, high)
    for _ in range(iterations):
        data.qpos[:] = qpos
        mujoco.mj_kinematics(model, data)
        mujoco.mj_comPos(model, data)
        mujoco.mj_jacBody(model, data, jacobian, None, hand)
        error = point - data.xpos[hand]
        qpos = np.clip(qpos + jacobian.T @ np.linalg.solve(jacobian @ jacobian.T + 1e-4 * np.eye(3), error), low, high)
    return qpos


def place_hand_and_step(env: gym.Env, point: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict, np.ndarray]:
    """Set qpos so the hand is at ``point`` (at rest), step with the gravity-compensating action."""
    inner = env.unwrapped
    inner.data.qpos[:] = inverse_kinematics(inner.model, point, inner.data.qpos)
    inner.data.qvel[:] = 0.0
    mujoco.mj_forward(inner.model, inner.data)
    action = np.clip(inner.data.qfrc_bias / inner.model.actuator_gear[:, 0], -1.0, 1.0)
    return (*env.step(action), action)


def expected_terms(task_index: int, distance: float, stage_after: int) -> tuple[float, float]:
    """(distance term, stage term) written out from the original's table (docs/fidelity.md#jaco)."""
    if task_index in (0, 2):
        return -distance, -0.4 * (3 - stage_after)
    if task_index == 1:
        return -distance, 200.0 if distance < 0.05 else 0.0
    if task_index == 3:
        return 0.0, -0.4 * (3 - stage_after)
    return -distance, 0.0


def check_step_terms(env: gym.Env, task_index: int, observation: np.ndarray, reward: float, info: dict,
                     action: np.ndarray, goal: np.ndarray) -> float:
    """The step's reward terms equal the original's formulas (docs/fidelity.md#jaco) at the observed hand; returns d."""
    data = env.unwrapped.data
    distance = float(np.linalg.norm(observation[HAND_SLICE] - goal))
    distance_term, stage_term = expected_terms(task_index, distance, info["stages_completed"])
    control_term = -0.01 * np.sum(action ** 2) - 0.001 * np.mean(np.abs(data.qvel)) - 1e-5 * np.mean(np.abs(data.qacc))
    shift = -2.0 if task_index == 1 else 0.0
    assert info["dist_reward"] == pytest.approx(distance_term, abs=1e-5)
    assert info["stage_reward"] == pytest.approx(stage_term, abs=1e-9)
    assert info["ctrl_reward"] == pytest.approx(control_term, rel=1e-9)
    assert reward == pytest.approx(distance_term + stage_term + control_term + shift, abs=1e-5)
    assert info["success"] == (distance < 0.05)
    assert info["task_id"] == task_index
    return distance


# --- the model (docs/envs/jaco.md#model-facts) ---------------------------------------------------------------


def test_model_options_joints_actuators():
    model = build_jaco_model()
    assert (model.nq, model.nv, model.nu) == (6, 6, 6)
    assert model.opt.timestep == 0.01 and model.opt.integrator == mujoco.mjtIntegrator.mjINT_EULER
    assert model.opt.iterations == 10 and np.allclose(model.opt.gravity, [0, 0, -9.8])
    assert np.allclose(model.actuator_gear[:, 0], [5, 10, 10, 10, 10, 10])
    assert np.allclose(model.actuator_ctrlrange, [[-1, 1]] * 6)
    assert np.allclose(model.jnt_range, [[-0.8, 0.8], [-1.5, 0.7]] + [[-0.698132, 0.698132]] * 4)
    assert np.allclose(model.qpos0, DEFAULT_QPOS)
    assert np.allclose(model.dof_damping, 0.5) and np.allclose(model.dof_armature, 0.01)
    arm = [model.body(f"jaco_link_{name}").id for name in ("base", "1", "2", "3", "4", "5", "hand")]
    assert model.body_mass[arm].sum() == pytest.approx(4.990241, abs=1e-6)
    # Inertials are the original's, not derived from the stand-in meshes (docs/envs/jaco.md#bodies-and-inertials).
    assert np.allclose(model.body("jaco_link_2").inertia, [0.0402753, 0.0398125, 0.00121953])
    assert np.allclose(model.body("jaco_link_hand").inertia, [0.000817146, 0.000671192, 0.000606807])
    assert np.allclose(model.body("jaco_link_hand").ipos, [0.0036132, -6.2241e-5, -0.0583749])
    assert model.body("target").mocapid[0] == 0


def test_hand_reference_positions_match_the_original():
    model = build_jaco_model()
    data = mujoco.MjData(model)
    hand = model.body(HAND_BODY).id
    mujoco.mj_forward(model, data)
    assert np.linalg.norm(data.xpos[hand] - ORIGINAL_HAND_AT_RESET) < MM
    for _ in range(FRAME_SKIP):
        mujoco.mj_step(model, data)
    assert np.linalg.norm(data.xpos[hand] - ORIGINAL_HAND_AFTER_ONE_STEP) < MM
    assert data.qpos[4] == pytest.approx(-1.406, abs=1e-3)
    mujoco.mj_forward(model, data)
    assert np.linalg.norm(data.xpos[hand] - ORIGINAL_HAND_AFTER_ONE_STEP_FORWARD) < MM


def test_arm_cannot_hold_its_reset_pose_and_hand_hits_floor_at_step_four():
    model = build_jaco_model()
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    assert abs(data.qfrc_bias[1]) == pytest.approx(10.72, abs=0.01)
    assert abs(data.qfrc_bias[1]) > model.actuator_gear[1, 0]
    floor = model.geom("ground").id
    first_contact = None
    for control_step in range(1, 11):
        for _ in range(FRAME_SKIP):
            mujoco.mj_step(model, data)
        touching = any(floor in (contact.geom1, contact.geom2) for contact in data.contact[: data.ncon])
        if touching and first_contact is None:
            first_contact = control_step
    assert first_contact == 4


# --- observation, reset, contract ----------------------------------------------------------------


def test_task_set_contract_and_observation_layout():
    task_set = make_task_set("JacoReachMT5-v1")
    assert task_set.env_id == "JacoReachMT5-v1" and task_set.num_tasks == 5
    assert task_set.max_episode_steps == 200 and task_set.min_reward == -5.0
    assert task_set.episode_metrics == {"stages_completed": "last", "completed": "max"}
    assert task_set.completed_stages == 3
    layout = task_set.observation_layout
    assert layout.raw_dim == 23 and layout.network_dim() == 23 and layout.network_dim(include_task_id=True) == 23
    for task_index in range(5):
        env = task_set.make_env(task_index, False)
        assert isinstance(env, gym.wrappers.TimeLimit)
        assert np.all(env.action_space.low == -1) and np.all(env.action_space.high == 1)
        observation, info = env.reset(seed=task_index)
        assert observation.shape == (23,) and observation.dtype == np.float32
        assert info["success"] is False and info["stages_completed"] == 0 and info["completed"] is False
        data = env.unwrapped.data
        assert np.allclose(observation[QPOS_SLICE], data.qpos) and np.allclose(observation[QVEL_SLICE], data.qvel)
        assert np.array_equal(observation[STAGE_SLICE], [1, 0, 0])
        assert np.array_equal(observation[TASK_SLICE], np.eye(5)[task_index])
        assert np.allclose(observation[HAND_SLICE], data.xpos[env.unwrapped.model.body(HAND_BODY).id])
        assert layout.task_id(observation) == task_index
        masked = layout.network_input(observation)
        assert masked.shape == (23,)
        assert np.all(masked[HAND_SLICE] == 0) and np.all(masked[TASK_SLICE] == 0)
        assert np.array_equal(masked[:15], observation[:15])
        with_id = layout.network_input(observation, include_task_id=True)
        assert np.all(with_id[HAND_SLICE] == 0) and np.array_equal(with_id[TASK_SLICE], observation[TASK_SLICE])


def test_reset_noise_and_target():
    env = make_jaco_env(0)
    observation, _ = env.reset(seed=3)
    assert np.all(np.abs(observation[QPOS_SLICE] - DEFAULT_QPOS) <= 0.01)
    assert np.all(np.abs(observation[QVEL_SLICE]) <= 0.001)
    assert not np.allclose(observation[QPOS_SLICE], DEFAULT_QPOS)
    assert np.allclose(env.unwrapped.data.mocap_pos[0], SUB_GOALS["A"])
    again, _ = make_jaco_env(0).reset(seed=3)
    other, _ = make_jaco_env(0).reset(seed=4)
    assert np.array_equal(observation, again) and not np.array_equal(observation, other)


def test_time_limit_truncates_at_200_steps():
    env = make_jaco_env(4)
    env.reset(seed=0)
    for step in range(1, 201):
        _, _, terminated, truncated, info = env.step(np.zeros(6))
        assert not terminated and isinstance(info["success"], bool)
        assert truncated == (step == 200)


# --- rewards and stages --------------------------------------------------------------------------


@pytest.mark.parametrize("task_index", [0, 1, 2, 3])
def test_rewards_stage_progression_and_termination(task_index: int):
    """Hand placed away from, then onto, each sub-goal in turn (the original's rewards, stages and termination:
    docs/fidelity.md#jaco)."""
    env = make_jaco_env(task_index)
    env.reset(seed=0)
    goals = goals_of(task_index)
    away_points = [SUB_GOALS["B"] if np.allclose(goal, SUB_GOALS["A"]) else SUB_GOALS["A"] for goal in goals]
    for stage, (goal, away) in enumerate(zip(goals, away_points)):
        assert np.allclose(env.unwrapped.data.mocap_pos[0], goal)
        observation, reward, terminated, _, info, action = place_hand_and_step(env, away)
        distance = check_step_terms(env, task_index, observation, reward, info, action, goal)
        assert distance > 0.2 and not terminated and info["stages_completed"] == stage
        assert np.linalg.norm(observation[HAND_SLICE] - away) < 0.01
        assert np.array_equal(observation[STAGE_SLICE], np.eye(3)[stage])

        observation, reward, terminated, _, info, action = place_hand_and_step(env, goal)
        distance = check_step_terms(env, task_index, observation, reward, info, action, goal)
        assert distance < 0.01 and info["success"] and info["stages_completed"] == stage + 1
        # The observation is taken before the stage update: it still shows the old stage.
        assert np.array_equal(observation[STAGE_SLICE], np.eye(3)[stage])
        assert terminated == (stage == 2)
        if task_index in (0, 2, 3) and stage == 2:
            assert info["stage_reward"] == 0.0
    assert np.allclose(env.unwrapped.data.mocap_pos[0], goals[2])


def test_stay_task_goal_success_and_termination_after_90_successes():
    assert np.linalg.norm(stay_point() - ORIGINAL_HAND_AFTER_ONE_STEP) < MM
    env = make_jaco_env(4)
    env.reset(seed=0)
    inner = env.unwrapped
    assert np.allclose(inner.data.mocap_pos[0], stay_point())
    observation, reward, terminated, _, info, action = place_hand_and_step(env, SUB_GOALS["B"])
    check_step_terms(env, 4, observation, reward, info, action, stay_point())
    assert not info["success"]
    stay = stay_point()
    for success_count in range(1, 91):
        # qpos0 at rest, zero action: one control step puts the hand exactly on the stay point.
        inner.data.qpos[:] = DEFAULT_QPOS
        inner.data.qvel[:] = 0.0
        observation, reward, terminated, _, info = env.step(np.zeros(6))
        distance = check_step_terms(env, 4, observation, reward, info, np.zeros(6), stay)
        assert distance < 1e-6 and info["success"]
        assert info["stages_completed"] == success_count // 30
        assert terminated == (success_count == 90) and info["completed"] == (success_count == 90)


def test_shifted_task_success_bonus_and_sparse_task_has_no_distance_term():
    env = make_jaco_env(1)
    env.reset(seed=0)
    _, reward, _, _, info, _ = place_hand_and_step(env, SUB_GOALS["A"])
    assert info["success"] and info["stage_reward"] == 200.0
    assert reward == pytest.approx(200.0 - 2.0 + info["dist_reward"] + info["ctrl_reward"])
    env = make_jaco_env(3)
    env.reset(seed=0)
    _, reward, _, _, info, _ = place_hand_and_step(env, SUB_GOALS["D"])
    assert info["dist_reward"] == 0.0 and info["stage_reward"] == pytest.approx(-1.2)


@pytest.fixture
def mujoco_warnings():
    """MuJoCo warnings collected in a list (instead of printed and appended to MUJOCO_LOG.TXT)."""
    messages: list[str] = []
    previous_handler = mujoco.get_mju_user_warning()
    mujoco.set_mju_user_warning(messages.append)
    yield messages
    mujoco.set_mju_user_warning(previous_handler)


def test_unstable_physics_ends_the_episode_with_the_previous_observation(mujoco_warnings):
    env = make_jaco_env(0)
    env.reset(seed=0)
    previous, _, _, _, _ = env.step(np.zeros(6))
    env.unwrapped.data.qvel[:] = 1e12
    observation, reward, terminated, truncated, info = env.step(np.zeros(6))
    assert any("unstable" in message for message in mujoco_warnings)
    assert terminated and not truncated and not info["success"]
    assert info["ctrl_reward"] == -100.0
    assert np.array_equal(observation, previous)
    assert reward == pytest.approx(info["dist_reward"] + info["stage_reward"] - 100.0)


# --- a scripted controller completes goal-reaching tasks -------------------------------------------

FOLDED_WRIST = np.array([0.698, -0.698, 0.698])
"""Joints 3-5 folded: the joint-2 gravity load drops below the motor's limit
(docs/envs/jaco.md#gravity-load-and-reachability)."""


def scripted_episode(task_index: int, seed: int) -> tuple[int, dict]:
    """Inverse kinematics + joint PD with gravity compensation, lifting with the wrist folded first.

    A plain PD toward the IK pose stalls (joint 2 saturates; docs/envs/jaco.md#gravity-load-and-reachability): for every
    sub-goal the arm first swings joints 1-2 to the IK pose with joints 3-5 folded, then unfolds.
    """
    env = make_jaco_env(task_index)
    env.reset(seed=seed)
    inner = env.unwrapped
    gear = inner.model.actuator_gear[:, 0]
    mass_matrix = np.zeros((6, 6))
    stiffness, damping = 64.0, 11.2
    stage, info = -1, {}
    for step in range(1, 201):
        if inner.stage != stage:
            stage, folded = inner.stage, True
            goal_pose = inverse_kinematics(inner.model, inner.current_goal(), inner.data.qpos)
        target = goal_pose.copy()
        if folded:
            target[2:5] = FOLDED_WRIST
            folded = abs(inner.data.qpos[1] - target[1]) >= 0.15
        mujoco.mj_fullM(inner.model, mass_matrix, inner.data.qM)
        torque = np.diag(mass_matrix) * (stiffness * (target - inner.data.qpos) - damping * inner.data.qvel)
        action = np.clip((torque + inner.data.qfrc_bias) / gear, -1.0, 1.0)
        _, _, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            return step, info
    return 200, info


@pytest.mark.parametrize("task_index,seed", [(0, 0), (0, 1), (3, 0), (3, 1)])
def test_scripted_controller_completes_all_three_stages(task_index: int, seed: int):
    steps, info = scripted_episode(task_index, seed)
    assert info["stages_completed"] == 3 and info["completed"] is True and steps < 200


# --- CDS relabelling and QMP-Domain -----------------------------------------------------------------


def test_cds_reward_function_is_vectorised_and_follows_the_formulas():
    task_set = make_jaco_task_set()
    rng = np.random.default_rng(0)
    batch = 64
    observations = rng.normal(size=(batch, 23)).astype(np.float32)
    stages = rng.integers(0, 3, size=batch)
    observations[:, STAGE_SLICE] = np.eye(3)[stages]
    actions = rng.uniform(-1, 1, size=(batch, 6))
    for task_index in range(5):
        goals = np.array(goals_of(task_index))
        hands = goals[stages] + rng.uniform(-0.2, 0.2, size=(batch, 3))
        hands[:16] = goals[stages[:16]] + rng.uniform(-0.02, 0.02, size=(16, 3))
        observations[:, HAND_SLICE] = hands
        rewards = task_set.reward_function(observations, actions, -observations, task_index)  # s' unread
        assert rewards.shape == (batch,)
        for row in range(batch):
            distance = np.linalg.norm(observations[row, HAND_SLICE] - goals[stages[row]])
            distance_term, stage_term = expected_terms(task_index, distance, stages[row])
            shift = -2.0 if task_index == 1 else 0.0
            expected = distance_term + stage_term - 0.01 * np.sum(actions[row] ** 2) + shift
            assert rewards[row] == pytest.approx(expected, abs=1e-5)
        if task_index == 1:
            assert np.sum(rewards > 100) >= 16


def test_domain_mixture_matches_the_paper():
    expected = np.array([
        [2 / 3, 1 / 3, 0, 0, 0],
        [1 / 3, 2 / 3, 0, 0, 0],
        [0, 0, 5 / 6, 1 / 6, 0],
        [0, 0, 1 / 6, 5 / 6, 0],
        [0, 0, 0, 0, 1],
    ])
    assert np.allclose(domain_mixture_probabilities(), expected)


# --- determinism and resume --------------------------------------------------------------------------


def test_determinism_and_env_state_round_trip():
    actions = np.random.default_rng(1).uniform(-1, 1, size=(60, 6))
    first, second = make_jaco_env(2), make_jaco_env(2)
    first.reset(seed=7)
    second.reset(seed=7)
    for action in actions[:20]:
        assert np.array_equal(first.step(action)[0], second.step(action)[0])
    snapshot = pickle.dumps(get_env_state(first))
    after_snapshot = [first.step(action) for action in actions[20:]]
    set_env_state(first, pickle.loads(snapshot))
    for action, (observation, reward, terminated, truncated, info) in zip(actions[20:], after_snapshot):
        replay = first.step(action)
        assert np.array_equal(replay[0], observation) and replay[1] == reward
        assert replay[2:4] == (terminated, truncated) and replay[4] == info



def test_snapshot_stays_picklable_while_a_renderer_is_held():
    env = make_jaco_env(0, render_mode="rgb_array")
    env.reset(seed=0)
    env.unwrapped.renderer._renderer = threading.Lock()  # stands in for an OpenGL renderer, which cannot pickle
    restored = pickle.loads(pickle.dumps(get_env_state(env)))
    assert restored[-1]["renderer"]._renderer is None
