"""Facts of the Meta-World benchmarks (docs/fidelity.md#meta-world-cds, #meta-world-mt10-and-mt50,
#task-identity-and-masking; docs/envs/metaworld.md#model-facts)."""

from __future__ import annotations

import pickle

import mujoco
import numpy as np
import pytest
from metaworld.env_dict import MT50_V3

from environments import make_task_set
from environments.base import get_env_state, set_env_state
from environments.metaworld_cds_scene import scene_path
from environments.metaworld_envs import make_cds_task_set, make_mt10_task_set, make_mt50_task_set

DRAWER_SLIDE, DOOR_HINGE = 9, 10
DOOR_XML_POSITION = (-0.1, 0.9, 0.15)
DRAWER_XML_POSITION = (0.4, 0.9, 0.0)
# Closed-drawer handle relative to the drawer body: drawercase_link (0, 0, 0.084) + drawer_link
# (0, -0.01, 0.006) + the observation's handle offset (0, -0.16, 0).
CLOSED_HANDLE_OFFSET = np.array([0.0, -0.17, 0.09])


def random_actions(count: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1.0, 1.0, size=(count, 4)).astype(np.float32)


def set_joint(env, index: int, value: float) -> None:
    """Put one joint of the running simulator at ``value`` (at rest)."""
    simulator = env.unwrapped.simulator
    qpos = simulator.data.qpos.copy()
    qpos[index] = value
    simulator.set_state(qpos, np.zeros_like(simulator.data.qvel))


def test_scene_compiles_to_the_original_composition():
    model = mujoco.MjModel.from_xml_path(scene_path())
    assert (model.nq, model.nv, model.nu, model.nbody, model.ngeom, model.nmesh) == (11, 11, 2, 40, 68, 22)
    assert model.joint(DRAWER_SLIDE).name == "goal_slidey" and model.joint(DOOR_HINGE).name == "doorjoint"
    np.testing.assert_array_equal(model.jnt_range[DRAWER_SLIDE], [-0.16, 0.0])
    np.testing.assert_array_equal(model.jnt_range[DOOR_HINGE], [-2.0, 0.0])
    np.testing.assert_array_equal(model.body("drawer").pos, DRAWER_XML_POSITION)
    np.testing.assert_array_equal(model.body("door").pos, DOOR_XML_POSITION)
    assert model.opt.timestep == 0.0025 and model.opt.iterations == 50
    assert model.opt.solver == mujoco.mjtSolver.mjSOL_NEWTON and model.opt.cone == mujoco.mjtCone.mjCONE_ELLIPTIC
    np.testing.assert_array_equal(model.actuator_gainprm[:, 0], [400.0, 400.0])


def test_task_sets_layouts_and_orders():
    cds = make_task_set("MetaWorldCDS-v1", task_name=None, sparse_tasks=[])
    assert cds.task_names == ("door-open", "door-close", "drawer-open", "drawer-close")
    mt10 = make_task_set("MetaWorldMT10-v2", task_name=None, sparse_tasks=[])
    assert [name.rsplit("-", 1)[0] for name in mt10.task_names] == [
        "reach", "push", "pick-place", "door-open", "drawer-open", "drawer-close",
        "button-press-topdown", "peg-insert-side", "window-open", "window-close",
    ]
    mt50 = make_mt50_task_set()
    assert mt50.num_tasks == 50 and len(set(mt50.task_names)) == 50
    for task_set, observation_dim in ((cds, 21), (mt10, 39), (mt50, 39)):
        layout = task_set.observation_layout
        assert layout.raw_dim == observation_dim + task_set.num_tasks
        assert layout.task_id_slice == slice(observation_dim, layout.raw_dim)
        assert not layout.remove_task_id and layout.network_dim() == layout.raw_dim
        assert task_set.max_episode_steps == 500 and task_set.min_reward == 0.0
    raw_dims = [task_set.observation_layout.raw_dim for task_set in (cds, mt10, mt50)]
    assert raw_dims == [25, 49, 89]


def test_mt50_follows_the_original_v2_order():
    """The original's V2 OrderedDict lists peg-insert-side, push and reach twice; a repeated key keeps its
    first position, so indices 28-43 differ from V3's list (which dropped the repeats elsewhere)."""
    mt50 = make_mt50_task_set()
    names = [name.rsplit("-", 1)[0] for name in mt50.task_names]
    assert names[:28] == [name.rsplit("-", 1)[0] for name in list(MT50_V3)[:28]]
    assert names[27:46] == [
        "lever-pull", "peg-insert-side", "pick-place-wall", "pick-out-of-hole", "reach", "push-back", "push",
        "pick-place", "plate-slide", "plate-slide-side", "plate-slide-back", "plate-slide-back-side",
        "peg-unplug-side", "soccer", "stick-push", "stick-pull", "push-wall", "reach-wall", "shelf-place",
    ]
    assert names[46:] == ["sweep-into", "sweep", "window-open", "window-close"]
    subset = make_mt50_task_set(task_name="31,28")  # --task_name indices are the original's
    assert subset.task_names == ("reach-v3", "peg-insert-side-v3")
    env = subset.make_env(0, False)
    env.reset(seed=0)
    assert type(env.unwrapped.simulator).__name__ == "SawyerReachEnvV3"


def test_task_name_and_sparse_tasks_arguments():
    subset = make_mt10_task_set(task_name="5,3")
    assert subset.task_names == ("drawer-close-v3", "door-open-v3")
    env = subset.make_env(1, False)
    observation, info = env.reset(seed=0)
    np.testing.assert_array_equal(observation[39:], [0.0, 1.0])
    assert info == {"success": False, "task_id": 1, "task_name": "door-open-v3"}
    with pytest.raises(ValueError, match="--task_name"):
        make_mt50_task_set(task_name="50")
    with pytest.raises(ValueError, match="--sparse_tasks"):
        make_cds_task_set(sparse_tasks=[0])
    with pytest.raises(ValueError, match="out of range"):
        make_cds_task_set(task_name="0,1").make_env(2, False)


@pytest.mark.parametrize(
    ("task_index", "moved_body", "still_body", "still_position", "target_offset", "joint", "joint_start", "hand"),
    [
        (0, "door", "drawer", DRAWER_XML_POSITION, (-0.3, -0.45, 0.0), DOOR_HINGE, 0.0, (0.0, 0.6, 0.2)),
        (1, "door", "drawer", DRAWER_XML_POSITION, (0.2, -0.2, 0.0), DOOR_HINGE, -1.5708, (-0.6, 0.6, 0.2)),
        (2, "drawer", "door", DOOR_XML_POSITION, (0.0, -0.36, 0.09), DRAWER_SLIDE, 0.0, (0.0, 0.6, 0.2)),
        (3, "drawer", "door", DOOR_XML_POSITION, (0.0, -0.16, 0.09), DRAWER_SLIDE, -0.15, (0.0, 0.6, 0.2)),
    ],
)
def test_cds_reset_placements_and_observation(
    task_index, moved_body, still_body, still_position, target_offset, joint, joint_start, hand
):
    ranges = {"door": ((-0.1, 0.85, 0.15), (0.0, 0.95, 0.15)), "drawer": ((0.3, 0.9, 0.0), (0.4, 0.9, 0.0))}
    env = make_cds_task_set().make_env(task_index, False)
    for episode in range(3):
        observation, info = env.reset(seed=11) if episode == 0 else env.reset()
        simulator = env.unwrapped.simulator
        position = simulator.model.body(moved_body).pos
        low, high = ranges[moved_body]
        assert np.all(position >= low) and np.all(position <= high)
        np.testing.assert_array_equal(simulator.model.body(still_body).pos, still_position)
        assert observation.shape == (25,) and observation.dtype == np.float32 and info["success"] is False
        np.testing.assert_allclose(observation[18:21], position + np.array(target_offset), atol=1e-6)  # goal
        joints_at_start = {DRAWER_SLIDE: 0.0, DOOR_HINGE: 0.0, joint: joint_start}
        for index, value in joints_at_start.items():
            assert simulator.data.qpos[index] == pytest.approx(value, abs=1e-9)
        np.testing.assert_allclose(observation[:3], hand, atol=0.02)
        assert 0.0 <= observation[3] <= 1.0
        drawer_position = simulator.model.body("drawer").pos
        drawer_slide = simulator.data.qpos[DRAWER_SLIDE]
        drawer_handle = drawer_position + CLOSED_HANDLE_OFFSET + [0.0, drawer_slide, 0.0]
        np.testing.assert_allclose(observation[4:7], drawer_handle, atol=1e-6)
        np.testing.assert_allclose(np.linalg.norm(observation[7:11]), 1.0, atol=1e-6)
        np.testing.assert_allclose(np.linalg.norm(observation[14:18]), 1.0, atol=1e-6)
        np.testing.assert_allclose(observation[11:14], simulator.data.geom("handle").xpos, atol=1e-6)
        np.testing.assert_array_equal(observation[21:], np.eye(4)[task_index])


def door_x_error(observation: np.ndarray) -> float:
    return abs(observation[11] - observation[18])


def door_distance(observation: np.ndarray) -> float:
    return float(np.linalg.norm(observation[11:14] - observation[18:21]))


def drawer_distance(observation: np.ndarray) -> float:
    return float(np.linalg.norm(observation[4:7] - observation[18:21]))


@pytest.mark.parametrize(
    ("task_index", "joint", "start", "goal", "metric", "threshold"),
    [
        (0, DOOR_HINGE, 0.0, -np.pi / 2, door_x_error, 0.08),
        (1, DOOR_HINGE, -np.pi / 2, 0.0, door_distance, 0.08),
        (2, DRAWER_SLIDE, 0.0, -0.18, drawer_distance, 0.03),  # fully open (the slide limit is -0.16)
        (3, DRAWER_SLIDE, -0.15, 0.0, drawer_distance, 0.065),
    ],
)
def test_cds_success_thresholds(task_index, joint, start, goal, metric, threshold):
    env = make_cds_task_set().make_env(task_index, False)
    env.reset(seed=3)
    outcomes = []
    for value in np.linspace(start, goal, 7):
        env.reset()
        set_joint(env, joint, value)
        observation, reward, terminated, truncated, info = env.step(np.zeros(4, dtype=np.float32))
        distance = metric(observation)
        if abs(distance - threshold) > 2e-3:
            assert info["success"] == (distance <= threshold)
        assert isinstance(info["success"], bool) and not terminated and 0.0 <= reward <= 10.0
        outcomes.append(info["success"])
    assert outcomes[0] is False and outcomes[-1] is True


@pytest.mark.parametrize("task_index", [0, 1, 2, 3])
def test_cds_rewards_bounded_and_truncation_at_500(task_index):
    env = make_cds_task_set().make_env(task_index, False)
    env.reset(seed=task_index)
    for step, action in enumerate(random_actions(500, seed=task_index), start=1):
        _, reward, terminated, truncated, info = env.step(action)
        assert 0.0 <= reward <= 10.0 and not terminated and "success" in info
        assert truncated == (step == 500)


def test_mt_observation_truncation_and_success_from_env_info():
    env = make_mt10_task_set().make_env(5, False)  # drawer-close-v3
    observation, _ = env.reset(seed=0)
    assert observation.shape == (49,)
    np.testing.assert_array_equal(observation[18:36], observation[:18])  # previous frame = current at reset
    assert np.any(observation[36:39] != 0.0)  # goal observable (MT setting)
    np.testing.assert_array_equal(observation[39:], np.eye(10)[5])
    previous = observation
    for step, action in enumerate(random_actions(500), start=1):
        observation, reward, terminated, truncated, info = env.step(action)
        np.testing.assert_array_equal(observation[18:36], previous[:18])
        assert 0.0 <= reward <= 10.0 and not terminated and isinstance(info["success"], bool)
        assert truncated == (step == 500)
        previous = observation
    env.reset()
    set_joint(env, DRAWER_SLIDE, 0.0)
    assert env.step(np.zeros(4, dtype=np.float32))[4]["success"] is True


@pytest.mark.parametrize("task_set, task_index, goal", [(make_cds_task_set, 3, slice(18, 21)),
                                                        (make_mt10_task_set, 5, slice(36, 39))], ids=["cds", "mt10"])
def test_drawer_close_succeeds_within_0_065(task_set, task_index, goal):
    """Stock V2 drawer-close read the base class's TARGET_RADIUS 0.05: success within 0.05 + 0.015, for CDS and MT."""
    env = task_set().make_env(task_index, False)
    env.reset(seed=0)
    near_threshold = []
    for slide in np.linspace(-0.1, 0.0, 41):
        env.reset()
        set_joint(env, DRAWER_SLIDE, slide)
        observation, _, _, _, info = env.step(np.zeros(4, dtype=np.float32))
        distance = float(np.linalg.norm(observation[4:7] - observation[goal]))
        if abs(distance - 0.065) > 1e-3:
            assert info["success"] == (distance <= 0.065), (slide, distance)
        if 0.057 < distance < 0.063:
            near_threshold.append(info["success"])
    assert near_threshold and all(near_threshold)


def test_variants_reproducible_cycled_and_different_for_evaluation():
    task_set = make_cds_task_set()
    train, same_seed, evaluation = (task_set.make_env(2, is_evaluation) for is_evaluation in (False, False, True))
    train.reset(seed=5)
    same_seed.reset(seed=5)
    evaluation.reset(seed=5)
    np.testing.assert_array_equal(train.unwrapped.variants, same_seed.unwrapped.variants)
    assert train.unwrapped.variants.shape == (50, 3)
    pairwise_equal = np.isclose(train.unwrapped.variants[:, None], evaluation.unwrapped.variants[None])
    assert not np.any(np.all(pairwise_equal, axis=-1))
    seen = [train.unwrapped.variant]
    for _ in range(49):
        observation, _ = train.reset()
        np.testing.assert_array_equal(observation, same_seed.reset()[0])
        seen.append(train.unwrapped.variant)
    assert sorted(seen) == list(range(50))
    train.reset(seed=6)
    assert not np.array_equal(train.unwrapped.variants, same_seed.unwrapped.variants)


def test_mt50_builds_lazily():
    task_set = make_mt50_task_set()
    envs = [task_set.make_env(index, evaluation) for index in range(50) for evaluation in (False, True)]
    assert not any(env.unwrapped.simulator_built for env in envs)
    for env in (envs[0], envs[-1]):
        observation, _ = env.reset(seed=1)
        assert env.unwrapped.simulator_built and observation.shape == (89,)
        _, reward, _, _, info = env.step(np.zeros(4, dtype=np.float32))
        assert 0.0 <= reward <= 10.0 and isinstance(info["success"], bool)


@pytest.mark.parametrize(("task_set", "task_index"), [(make_cds_task_set, 1), (make_mt10_task_set, 2)])
def test_state_round_trip_into_a_fresh_env(task_set, task_index):
    tasks = task_set()
    env = tasks.make_env(task_index, False)
    env.reset(seed=3)
    for action in random_actions(30, seed=1):
        env.step(action)
    snapshot = pickle.dumps(get_env_state(env))
    assert len(snapshot) < 1_000_000  # not the ~40 MB of a pickled MjModel + MjData
    actions = random_actions(40, seed=2)
    first = [env.step(action) for action in actions]
    first_reset = env.reset()[0]
    restored = tasks.make_env(task_index, False)
    set_env_state(restored, pickle.loads(snapshot))
    second = [restored.step(action) for action in actions]
    for (obs_a, reward_a, *_, info_a), (obs_b, reward_b, *_, info_b) in zip(first, second):
        np.testing.assert_array_equal(obs_a, obs_b)
        assert reward_a == reward_b and info_a == info_b
    assert restored._elapsed_steps == 70
    np.testing.assert_array_equal(first_reset, restored.reset()[0])


def test_state_round_trip_before_first_reset():
    tasks = make_cds_task_set()
    env = tasks.make_env(0, True)
    snapshot = pickle.dumps(get_env_state(env))
    restored = tasks.make_env(0, True)
    set_env_state(restored, pickle.loads(snapshot))
    assert not restored.unwrapped.simulator_built
    np.testing.assert_array_equal(env.reset(seed=4)[0], restored.reset(seed=4)[0])
