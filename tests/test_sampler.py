"""The lockstep sampler: terminal vs time-limit flags, final observations, episode statistics."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.wrappers import TimeLimit

from environments.base import ObservationLayout, TaskSet
from learning.behaviour.own_policy import OwnPolicyBehaviour
from learning.core.networks import TanhGaussianPolicy
from learning.training.sampler import LockstepSampler

TIME_LIMIT = 5


class CountdownEnv(gym.Env):
    """Observation = (steps taken, task one-hot); task 0 reaches its goal (terminates) at step 3,
    task 1 never does and is cut by the time limit. Reward = steps taken; success at the goal."""

    def __init__(self, task: int) -> None:
        self.task = task
        self.action_space = spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(3,), dtype=np.float32)
        self.count = 0

    def _obs(self) -> np.ndarray:
        return np.array([self.count, self.task == 0, self.task == 1], dtype=np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.count = 0
        return self._obs(), {"success": False}

    def step(self, action):
        self.count += 1
        goal = self.task == 0 and self.count == 3
        return self._obs(), float(self.count), goal, False, {"success": goal, "progress": float(self.count)}


def countdown_task_set() -> TaskSet:
    return TaskSet(
        env_id="Countdown", task_names=("goal at 3", "no goal"),
        make_env=lambda task, evaluation: TimeLimit(CountdownEnv(task), TIME_LIMIT),
        max_episode_steps=TIME_LIMIT,
        observation_layout=ObservationLayout(raw_dim=3, task_id_slice=slice(1, 3), remove_task_id=True),
        min_reward=0.0, episode_metrics={"progress": "max"},
    )


def make_sampler(policy: TanhGaussianPolicy | None = None) -> LockstepSampler:
    task_set = countdown_task_set()
    layout = task_set.observation_layout
    policy = policy or TanhGaussianPolicy("separate", 2, 1, 1, (4,))
    return LockstepSampler(task_set, OwnPolicyBehaviour(policy), layout.network_input, torch.device("cpu"),
                           seed=0, discount=0.5)


def test_terminal_only_for_true_ends_and_final_observations_kept():
    sampler = make_sampler()
    batch = sampler.collect(7)
    transitions = batch.transitions
    assert transitions.observation.shape == (2, 7, 1)  # one-hot removed for the networks
    # Task 0: counts 0,1,2 | 0,1,2 | 0 -> terminal on its 3rd and 6th step.
    assert transitions.observation[0, :, 0].tolist() == [0, 1, 2, 0, 1, 2, 0]
    assert transitions.next_observation[0, :, 0].tolist() == [1, 2, 3, 1, 2, 3, 1]
    assert transitions.terminal[0].tolist() == [0, 0, 1, 0, 0, 1, 0]
    # Task 1: cut by the time limit after 5 steps: bootstrapped (terminal 0), final observation 5.
    assert transitions.next_observation[1, :, 0].tolist() == [1, 2, 3, 4, 5, 1, 2]
    assert transitions.terminal[1].tolist() == [0] * 7
    assert transitions.reward[1].tolist() == [1, 2, 3, 4, 5, 1, 2]


def test_episode_statistics_continue_across_iterations():
    sampler = make_sampler()
    first = sampler.collect(4)
    second = sampler.collect(4)
    task0 = [e for e in first.episodes + second.episodes if e.task == 0]
    task1 = [e for e in first.episodes + second.episodes if e.task == 1]
    assert [(e.length, e.total_return, e.success, e.terminated) for e in task0] == [(3, 6.0, True, True)] * 2
    assert [(e.length, e.total_return, e.success, e.terminated) for e in task1] == [(5, 15.0, False, False)]
    assert task1[0].discounted_return == sum(0.5 ** k * (k + 1) for k in range(5))
    assert task1[0].metrics["progress"] == 5.0
    assert sampler.env_steps_per_task.tolist() == [8, 8] and sampler.total_env_steps == 16
    assert first.acting_counts.tolist() == [[4, 0], [0, 4]]


def test_state_round_trip_continues_identically():
    sampler = make_sampler()
    sampler.collect(4)
    state = sampler.state_dict()
    torch.manual_seed(1)
    expected = sampler.collect(4).transitions
    restored = make_sampler(sampler.behaviour.policy)
    restored.load_state_dict(state)
    torch.manual_seed(1)
    got = restored.collect(4).transitions
    for name in ("observation", "action", "reward", "next_observation", "terminal"):
        assert np.array_equal(getattr(expected, name), getattr(got, name)), name


def test_checkpointed_buffer_holds_only_the_filled_part(tmp_path):
    from learning.core.replay_buffer import TaskReplayBuffer, Transitions
    from learning.training.checkpoint import load_checkpoint, save_checkpoint

    buffer = TaskReplayBuffer(num_tasks=2, obs_dim=1000, action_dim=1, capacity_per_task=100_000, initial_capacity=4096)
    buffer.add(Transitions(
        observation=np.ones((2, 3, 1000), np.float32), action=np.zeros((2, 3, 1), np.float32),
        reward=np.zeros((2, 3), np.float32), next_observation=np.ones((2, 3, 1000), np.float32),
        terminal=np.zeros((2, 3), np.float32)))
    save_checkpoint(tmp_path / "buffer.pt", buffer.state_dict())
    assert (tmp_path / "buffer.pt").stat().st_size < 200_000  # 3 transitions, not 4096 allocated
    restored = TaskReplayBuffer(num_tasks=2, obs_dim=1000, action_dim=1, capacity_per_task=100_000)
    restored.load_state_dict(load_checkpoint(tmp_path / "buffer.pt"))
    assert restored.size == 3 and float(restored.sample(4)["observation"].min()) == 1.0
