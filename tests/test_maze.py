"""Facts of MazeLarge-10-v0 (docs/fidelity.md#maze, #task-identity-and-masking, #presets)."""

from __future__ import annotations

import os
import pickle
from collections import deque

import mujoco
import numpy as np
import pytest

from environments import make_task_set
from environments.base import get_env_state, set_env_state
from environments.maze import LARGE_MAZE_ROWS, MAZE_TASKS, PointMazeTaskEnv, make_maze_task_set

# The original's task table (docs/fidelity.md#maze): (start cell, goal cell) in (x, y).
ORIGINAL_TASKS = [
    ((1, 3), (5, 8)),
    ((1, 10), (2, 4)),
    ((4, 1), (1, 7)),
    ((7, 4), (4, 10)),
    ((1, 3), (7, 4)),
    ((1, 7), (7, 10)),
    ((5, 4), (7, 9)),
    ((7, 1), (2, 6)),
    ((1, 2), (3, 10)),
    ((7, 2), (6, 8)),
]
PARTICLE_RADIUS = 0.1


def is_wall(cell: tuple[int, int]) -> bool:
    return LARGE_MAZE_ROWS[cell[0]][cell[1]] == "#"


def place(env, position, velocity=(0.0, 0.0)) -> PointMazeTaskEnv:
    maze = env.unwrapped
    maze.set_state(np.array(position, dtype=np.float64), np.array(velocity, dtype=np.float64))
    return maze


def push(env, action, steps: int) -> np.ndarray:
    """Positions visited while applying a constant action."""
    positions = []
    for _ in range(steps):
        observation, *_ = env.step(np.array(action, dtype=np.float32))
        positions.append(observation[:2])
    return np.array(positions)


def shortest_cell_path(start: tuple[int, int], goal: tuple[int, int]) -> list[tuple[int, int]]:
    """Breadth-first search over free cells of the layout (4-neighbourhood)."""
    parents = {start: start}
    queue = deque([start])
    while queue:
        cell = queue.popleft()
        if cell == goal:
            break
        for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            neighbour = (cell[0] + dx, cell[1] + dy)
            if neighbour not in parents and not is_wall(neighbour):
                parents[neighbour] = cell
                queue.append(neighbour)
    path = [goal]
    while path[-1] != start:
        path.append(parents[path[-1]])
    return path[::-1]


def test_layout_and_task_table_match_spec():
    assert len(LARGE_MAZE_ROWS) == 9 and all(len(row) == 12 for row in LARGE_MAZE_ROWS)
    assert [(task.start, task.goal) for task in MAZE_TASKS] == ORIGINAL_TASKS
    assert [task.group for task in MAZE_TASKS] == ["short"] * 4 + ["medium"] * 4 + ["long"] * 2
    for start, goal in ORIGINAL_TASKS:
        assert not is_wall(start) and not is_wall(goal)


def test_model_physics_facts():
    """Maze physics as in docs/fidelity.md#maze: Euler at 0.01 s, 20 iterations, no gravity, 4.19 kg particle, damping
    1, gear 100."""
    env = make_maze_task_set().make_env(6, False)
    env.reset(seed=0)
    model = env.unwrapped.model
    assert model.opt.timestep == 0.01 and model.opt.iterations == 20
    assert model.opt.integrator == mujoco.mjtIntegrator.mjINT_EULER
    np.testing.assert_array_equal(model.opt.gravity, 0.0)
    assert model.body("particle").mass[0] == pytest.approx(1000 * 4 / 3 * np.pi * PARTICLE_RADIUS**3)
    np.testing.assert_array_equal(model.body("particle").pos, [1.2, 1.2, 0.0])
    np.testing.assert_array_equal(model.dof_damping, [1.0, 1.0])
    assert not model.jnt_limited.any()
    np.testing.assert_array_equal(model.actuator_gear[:, 0], [100.0, 100.0])
    np.testing.assert_array_equal(model.actuator_ctrlrange, [[-1.0, 1.0], [-1.0, 1.0]])
    wall_count = sum(row.count("#") for row in LARGE_MAZE_ROWS)
    assert sum(model.geom(i).name.startswith("wall_") for i in range(model.ngeom)) == wall_count
    np.testing.assert_array_equal(model.geom("wall_2_3").pos, [3.0, 4.0, 0.0])
    np.testing.assert_array_equal(model.geom("wall_2_3").size, [0.5, 0.5, 0.2])
    # The goal marker is drawn where the agent's body is when its qpos equals the goal.
    np.testing.assert_allclose(env.unwrapped.data.site("target").xpos[:2], np.add(MAZE_TASKS[6].goal, 1.2))


def test_path_length_groups_match_shortest_paths():
    """The original's grouping: short <= 9 cells, medium 10-12, long >= 13 (BFS moves)."""
    bounds = {"short": (0, 9), "medium": (10, 12), "long": (13, 100)}
    for task in MAZE_TASKS:
        moves = len(shortest_cell_path(task.start, task.goal)) - 1
        low, high = bounds[task.group]
        assert low <= moves <= high, (task, moves)


def test_registry_builds_ten_tasks_with_spec_facts():
    task_set = make_task_set("MazeLarge-10-v0")
    assert task_set.num_tasks == 10
    assert task_set.max_episode_steps == 600
    assert task_set.min_reward == -1.0
    layout = task_set.observation_layout
    assert layout.raw_dim == 14 and layout.remove_task_id
    assert layout.network_dim() == 4 and layout.network_dim(include_task_id=True) == 14


def test_observation_layout_and_masking():
    task_set = make_maze_task_set()
    env = task_set.make_env(3, False)
    observation, info = env.reset(seed=0)
    assert observation.dtype == np.float32 and observation.shape == (14,)
    assert env.observation_space.shape == (14,)
    assert env.action_space.shape == (2,)
    assert np.all(env.action_space.low == -1.0) and np.all(env.action_space.high == 1.0)
    maze = env.unwrapped
    np.testing.assert_allclose(observation[:2], maze.data.qpos, rtol=1e-6)
    np.testing.assert_allclose(observation[2:4], maze.data.qvel, rtol=1e-6)
    np.testing.assert_array_equal(observation[4:], np.eye(10, dtype=np.float32)[3])
    layout = task_set.observation_layout
    assert layout.task_id(observation) == 3
    network_input = layout.network_input(observation[None])
    assert network_input.shape == (1, 4)
    np.testing.assert_array_equal(network_input[0], observation[:4])
    assert info == {"success": False, "task_id": 3, "task_name": task_set.task_names[3]}


def test_reset_distribution_around_start_cell():
    env = make_maze_task_set().make_env(8, False)
    starts, velocities = [], []
    for seed in range(200):
        observation, _ = env.reset(seed=seed)
        starts.append(observation[:2])
        velocities.append(observation[2:4])
    offsets = np.array(starts) - np.array(MAZE_TASKS[8].start)
    assert np.all(np.abs(offsets) <= 0.1) and np.abs(offsets).max() > 0.09
    assert 0.08 < np.std(velocities) < 0.12
    assert abs(np.mean(velocities)) < 0.03


@pytest.mark.parametrize(
    "action, axis, wall_cell, resting",
    [
        # Start (1, 3) of task 0: walls (0, 3) at -x, (2, 3) at +x, (1, 5) at +y. A wall cell (w, h)
        # covers [w - 0.7, w + 0.3] in agent coordinates, so the particle centre rests one radius off that face.
        ((-1.0, 0.0), 0, (0, 3), 0.3 + PARTICLE_RADIUS),
        ((1.0, 0.0), 0, (2, 3), 2 - 0.7 - PARTICLE_RADIUS),
        ((0.0, 1.0), 1, (1, 5), 5 - 0.7 - PARTICLE_RADIUS),
    ],
)
def test_walls_stop_the_particle_at_the_offset_faces(action, axis, wall_cell, resting):
    assert is_wall(wall_cell)
    env = make_maze_task_set().make_env(0, False)
    env.reset(seed=0)
    place(env, (1.0, 3.0))
    positions = push(env, action, 300)
    low, high = wall_cell[axis] - 0.7, wall_cell[axis] + 0.3
    assert not np.any((positions[:, axis] > low) & (positions[:, axis] < high))
    assert positions[-1, axis] == pytest.approx(resting, abs=0.01)
    assert positions[-1, 1 - axis] == pytest.approx(3.0 if axis == 0 else 1.0, abs=1e-6)


def test_free_corridor_lets_the_particle_pass():
    """From (1, 3) moving +y, cell (1, 4) is free: the particle crosses y = 3.5 before stopping."""
    env = make_maze_task_set().make_env(0, False)
    env.reset(seed=0)
    place(env, (1.0, 3.0))
    positions = push(env, (0.0, 1.0), 100)
    assert positions[:, 1].max() > 4.0


def test_reward_success_and_termination_at_known_positions():
    env = make_maze_task_set().make_env(0, False)
    env.reset(seed=0)
    goal = np.array(MAZE_TASKS[0].goal, dtype=np.float64)
    still = np.zeros(2, dtype=np.float32)
    cases = [
        (goal, 0.0, True),
        (goal + (0.0, 1.0), np.exp(-1.0) - 1.0, False),
        (goal + (0.0, 0.5), np.exp(-0.5) - 1.0, True),
        (goal + (0.0, 0.51), np.exp(-0.51) - 1.0, False),
        (goal + (-0.3, 0.3), np.exp(-np.hypot(0.3, 0.3)) - 1.0, True),
    ]
    for position, expected_reward, at_goal in cases:
        place(env, position)
        _, reward, terminated, truncated, info = env.step(still)
        assert reward == pytest.approx(expected_reward, abs=1e-9)
        assert terminated is at_goal and info["success"] is at_goal and not truncated
        assert info["task_id"] == 0 and info["task_name"] == "task0_1-3_to_5-8"


def test_reward_function_matches_env_reward():
    task_set = make_maze_task_set()
    env = task_set.make_env(5, False)
    observation, _ = env.reset(seed=1)
    for _ in range(20):
        action = env.action_space.sample()
        next_observation, reward, *_ = env.step(action)
        relabelled = task_set.reward_function(observation[None], action[None], next_observation[None], 5)[0]
        assert relabelled == pytest.approx(reward, abs=1e-6)  # the env rewards s', the position after the step
        observation = next_observation


def test_sparse_tasks():
    task_set = make_maze_task_set(sparse_tasks=[0])
    env = task_set.make_env(0, False)
    env.reset(seed=0)
    goal = np.array(MAZE_TASKS[0].goal, dtype=np.float64)
    place(env, goal + (0.0, 0.4))
    assert env.step(np.zeros(2, dtype=np.float32))[1] == 1.0
    place(env, goal + (0.0, 1.0))
    assert env.step(np.zeros(2, dtype=np.float32))[1] == 0.0
    dense_env = task_set.make_env(1, False)
    dense_env.reset(seed=0)
    place(dense_env, np.array(MAZE_TASKS[1].goal) + (0.0, 1.0))
    assert dense_env.step(np.zeros(2, dtype=np.float32))[1] == pytest.approx(np.exp(-1.0) - 1.0)
    with pytest.raises(ValueError, match="sparse_tasks"):
        make_maze_task_set(sparse_tasks=[10])


def test_truncation_at_600_steps():
    env = make_maze_task_set().make_env(0, False)
    env.reset(seed=0)
    for step in range(1, 601):
        _, _, terminated, truncated, info = env.step(np.zeros(2, dtype=np.float32))
        assert not terminated and info["success"] is False
        assert truncated is (step == 600)


def test_action_is_clipped_and_velocity_is_clipped_before_each_step():
    env = make_maze_task_set().make_env(0, False)
    env.reset(seed=0)
    maze = place(env, (1.0, 3.0), velocity=(12.0, -12.0))
    observation, *_ = env.step(np.zeros(2, dtype=np.float32))
    # Clipped to 5 before the step; one 0.01 s step of damping 1 on a 4.19 kg mass barely slows it.
    np.testing.assert_allclose(observation[2:4], [5.0, -5.0], atol=0.02)
    np.testing.assert_allclose(observation[:2], [1.05, 2.95], atol=2e-4)
    place(env, (1.0, 3.0))
    env.step(np.array([7.0, -3.0], dtype=np.float32))
    np.testing.assert_array_equal(maze.data.ctrl, [1.0, -1.0])


def test_same_seed_same_episode_and_separate_instances():
    task_set = make_maze_task_set()
    actions = np.random.default_rng(0).uniform(-1, 1, size=(50, 2)).astype(np.float32)

    def rollout(evaluation: bool) -> np.ndarray:
        env = task_set.make_env(2, evaluation)
        observations = [env.reset(seed=7)[0]]
        observations += [env.step(action)[0] for action in actions]
        return np.array(observations)

    train = rollout(False)
    np.testing.assert_array_equal(train, rollout(False))
    np.testing.assert_array_equal(train, rollout(True))
    other_seed = task_set.make_env(2, False).reset(seed=8)[0]
    assert not np.array_equal(train[0], other_seed)
    assert task_set.make_env(2, False).unwrapped is not task_set.make_env(2, True).unwrapped


def test_state_round_trip_mid_episode():
    env = make_maze_task_set().make_env(4, False)
    env.reset(seed=3)
    rng = np.random.default_rng(1)
    for _ in range(30):
        env.step(rng.uniform(-1, 1, 2).astype(np.float32))
    snapshot = pickle.dumps(get_env_state(env))
    actions = rng.uniform(-1, 1, size=(40, 2)).astype(np.float32)
    first = [env.step(action) for action in actions]
    first_reset = env.reset()[0]
    set_env_state(env, pickle.loads(snapshot))
    second = [env.step(action) for action in actions]
    for (obs_a, reward_a, *_), (obs_b, reward_b, *_) in zip(first, second):
        np.testing.assert_array_equal(obs_a, obs_b)
        assert reward_a == reward_b
    assert env._elapsed_steps == 70
    np.testing.assert_array_equal(first_reset, env.reset()[0])


def test_task_name_subsets():
    task_set = make_task_set("MazeLarge-10-v0", task_name="2,7,0", sparse_tasks=[])
    assert task_set.task_names == ("task2_4-1_to_1-7", "task7_7-1_to_2-6", "task0_1-3_to_5-8")
    layout = task_set.observation_layout
    assert layout.raw_dim == 7 and layout.network_dim() == 4
    env = task_set.make_env(1, True)
    observation, info = env.reset(seed=0)
    assert observation.shape == (7,)
    np.testing.assert_array_equal(observation[4:], [0.0, 1.0, 0.0])
    assert np.all(np.abs(observation[:2] - MAZE_TASKS[7].start) <= 0.1)
    assert info["task_id"] == 1 and info["task_name"] == "task7_7-1_to_2-6"
    assert make_maze_task_set(task_name=None).num_tasks == 10
    assert make_maze_task_set(task_name="").num_tasks == 10


@pytest.mark.parametrize("task_name", ["10", "1,1", "a,b", "-1"])
def test_task_name_errors(task_name):
    with pytest.raises(ValueError, match="--task_name"):
        make_maze_task_set(task_name=task_name)


def test_make_env_rejects_out_of_range_index():
    with pytest.raises(ValueError, match="out of range"):
        make_maze_task_set(task_name="0,1").make_env(2, False)


def test_waypoint_controller_solves_a_short_task():
    """A PD controller through BFS cell centres reaches task 0's goal well within 600 steps."""
    task = MAZE_TASKS[0]
    env = make_maze_task_set().make_env(0, False)
    observation, _ = env.reset(seed=0)
    # A free cell (w, h) spans [w - 0.7, w + 0.3] in agent coordinates: its centre is (w - 0.2, h - 0.2).
    waypoints = [np.array(cell, dtype=np.float64) - 0.2 for cell in shortest_cell_path(task.start, task.goal)[1:-1]]
    waypoints.append(np.array(task.goal, dtype=np.float64))
    target = 0
    for step in range(1, 601):  # noqa: B007 (the step count is read after the loop)
        position, velocity = observation[:2], observation[2:4]
        if target < len(waypoints) - 1 and np.linalg.norm(waypoints[target] - position) < 0.3:
            target += 1
        action = np.clip(2.0 * (waypoints[target] - position) - 0.3 * velocity, -1.0, 1.0).astype(np.float32)
        observation, reward, terminated, truncated, info = env.step(action)
        if terminated:
            break
    assert terminated and info["success"] and not truncated
    assert reward > np.exp(-0.5) - 1.0
    assert step < 300


@pytest.mark.skipif(
    os.environ.get("MUJOCO_GL") not in ("egl", "osmesa") and not os.environ.get("DISPLAY"),
    reason="no OpenGL backend: set MUJOCO_GL=egl (or osmesa) to test rendering",
)
def test_rgb_rendering_from_the_top_camera():
    env = make_maze_task_set().make_env(0, False)
    env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (480, 480, 3) and frame.dtype == np.uint8
    assert frame.std() > 0
    pickle.dumps(get_env_state(env))
    env.close()
