"""Fast learning checks (seconds) on a one-step problem with two tasks, where the actor must learn and
the tasks' rows must stay apart, and a data-sharing check where only the other task's data can teach.

Every episode is one step from the same state; task t's reward is ``-(a - target_t)^2`` (times
``reward_scale``), terminal, so Q_t(s, a) is the reward and the best action is ``target_t``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from learning.baselines.data_sharing import DataSharingSAC, RewardTableReplayBuffer
from learning.core.networks import TanhGaussianPolicy, TwinQFunction
from learning.core.replay_buffer import TaskReplayBuffer, Transitions
from learning.core.sac import MultiTaskSAC, SACSettings

T, OBS, N = 2, 2, 128
SETTINGS = dict(lr=1e-2, reward_scale=10.0)


def one_step_transitions(actions: np.ndarray, targets: np.ndarray) -> Transitions:
    """Terminal one-step transitions from the all-ones state, rewarded by each task's own target."""
    obs = np.ones((T, actions.shape[1], OBS), np.float32)
    rewards = (-(actions[..., 0] - targets[:, None]) ** 2).astype(np.float32)
    terminal = np.ones(rewards.shape, np.float32)
    return Transitions(obs, actions, rewards, obs, terminal, obs, obs)


def deterministic_actions(sac: MultiTaskSAC) -> np.ndarray:
    mean, _ = sac.policy(torch.ones(T, 1, OBS))
    return torch.tanh(mean[:, 0, 0]).detach().numpy()


@pytest.mark.parametrize("architecture, per_task_losses", [("separate", True), ("multihead", False)],
                         ids=["per-task family", "shared-buffer family"])
def test_plain_sac_actor_learns_each_tasks_own_target(architecture, per_task_losses):
    """Opposite targets (+0.6, -0.6) from uniform data: each task's actor must move to its own side (a
    frozen actor stays near its initial ~0, mixed task rows cannot satisfy both)."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    targets = np.array([0.6, -0.6])
    buffer = TaskReplayBuffer(T, OBS, 1, N)
    buffer.add(one_step_transitions(rng.uniform(-1, 1, (T, N, 1)).astype(np.float32), targets))
    sac = MultiTaskSAC(TanhGaussianPolicy(architecture, T, OBS, 1, (16,)),
                       TwinQFunction(architecture, T, OBS, 1, (16,)),
                       SACSettings(per_task_losses=per_task_losses, temperature_per_task=True, **SETTINGS))
    before = deterministic_actions(sac)
    for _ in range(100):
        sac.update(buffer.sample(32))
    after = deterministic_actions(sac)
    assert abs(before).max() < 0.4
    assert after[0] > 0.5 and after[1] < -0.5, after


def test_cds_teaches_a_task_the_reward_of_actions_only_the_other_task_tried():
    """Task 1 only tried actions in [-1, 0]; its best action 0.2 lies in task 0's data. With CDS
    relabelling (share everything) task 1's critic must rank 0.2 above 0.9 by its own reward (0 vs -4.9):
    its own data alone extrapolates upward, and task 0's rewards would rank 0.9 first."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    targets = np.array([0.9, 0.2])

    def reward_function(raw_obs, action, raw_next_obs, task_index):
        return -(action[..., 0] - targets[task_index]) ** 2

    actions = np.stack([rng.uniform(0.0, 1.0, N), rng.uniform(-1.0, 0.0, N)])[..., None].astype(np.float32)
    buffer = RewardTableReplayBuffer(T, OBS, 1, N, reward_function)
    buffer.add(one_step_transitions(actions, targets))
    sac = DataSharingSAC(TanhGaussianPolicy("separate", T, OBS, 1, (32,)), TwinQFunction("separate", T, OBS, 1, (32,)),
                         SACSettings(**SETTINGS), buffer, sharing_quantile=0.0, min_reward=None)
    for _ in range(200):
        sac.update(buffer.sample(64))
    q = sac.critic.q1(torch.ones(T, 2, OBS), torch.tensor([[[0.2], [0.9]]] * T)).detach()
    assert q[1, 0] > q[1, 1] + 2.0, q  # task 1: Q(0.2) ~ 0 > Q(0.9) ~ -4.9
    assert q[0, 1] > q[0, 0] + 2.0, q  # task 0 (its own data): Q(0.9) ~ 0 > Q(0.2) ~ -4.9
