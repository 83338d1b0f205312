"""The Q-switch on hand-built policies and critics (docs/fidelity.md#q-switch and the paper's ablation options)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from environments.base import GuidePolicy
from learning.behaviour.own_policy import OwnPolicyBehaviour
from learning.behaviour.qswitch import QSwitchBehaviour, QSwitchOptions
from learning.core.networks import TanhGaussianPolicy, TwinQFunction

T, OBS, ACT = 3, 2, 2


def fixed_policy(pre_tanh_means: list[list[float]], log_std: float = -3.0) -> TanhGaussianPolicy:
    """Separate policies that ignore the observation: policy j has pre-tanh mean ``pre_tanh_means[j]``."""
    policy = TanhGaussianPolicy("separate", len(pre_tanh_means), OBS, ACT, (4,))
    with torch.no_grad():
        policy.mlp.head.weight.zero_()
        policy.mlp.head.bias[:, 0, :ACT] = torch.tensor(pre_tanh_means)
        policy.mlp.head.bias[:, 0, ACT:] = log_std
    return policy


class HandCritic(nn.Module):
    """A hand-built twin critic answering the calls the Q-switch makes."""

    def q1(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self(obs, action)[0]


class TargetCritic(HandCritic):
    """Q1_i(s, a) = -||a - target_i||^2 and Q2 = Q1 + q2_bias * a_y."""

    def __init__(self, targets: list[list[float]], q2_bias: float = 0.0) -> None:
        super().__init__()
        self.targets = torch.tensor(targets)
        self.q2_bias = q2_bias
        self.calls = 0

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        q1 = -(action - self.targets[:, None, :]).pow(2).sum(-1)
        q2 = q1 + self.q2_bias * action[..., 1]
        return torch.stack([q1, q2])


MEANS = [[2.0, 0.0], [0.0, 2.0], [-2.0, -2.0]]  # tanh: (0.96, 0), (0, 0.96), (-0.96, -0.96)
DEFAULT_OPTIONS = QSwitchOptions()


def switch(targets, options=DEFAULT_OPTIONS, guides=(), means=MEANS, log_std=-3.0, q2_bias=0.0) -> QSwitchBehaviour:
    return QSwitchBehaviour(fixed_policy(means, log_std), TargetCritic(targets, q2_bias),
                            lambda: torch.ones(len(targets)), options, guides)


def act(behaviour, deterministic=False):
    obs = torch.zeros(T, OBS)
    actions, acting = behaviour.act(obs, deterministic)
    return actions, acting.numpy()


def test_argmax_picks_the_candidate_the_task_critic_prefers():
    behaviour = switch([[0.0, 1.0], [-1.0, -1.0], [1.0, 0.0]])
    behaviour.episode_start(np.ones(T, bool))
    actions, acting = act(behaviour)
    assert acting.tolist() == [1, 2, 0]
    means = torch.tanh(torch.tensor(MEANS))
    assert torch.allclose(actions, means[[1, 2, 0]], atol=0.2)  # sampled around the chosen policy's mean
    assert behaviour.critic.calls == 1  # one batched critic call for all tasks


def test_own_policy_is_a_candidate():
    behaviour = switch([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]])
    behaviour.episode_start(np.ones(T, bool))
    assert act(behaviour)[1].tolist() == [0, 1, 2]


def test_ties_go_to_the_lowest_index():
    behaviour = switch([[0.0, 0.0]] * T, means=[[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    behaviour.episode_start(np.ones(T, bool))
    assert act(behaviour)[1].tolist() == [0, 0, 0]


def test_deterministic_executes_the_chosen_mean():
    behaviour = switch([[0.0, 1.0], [-1.0, -1.0], [1.0, 0.0]])
    behaviour.episode_start(np.ones(T, bool))
    actions, acting = act(behaviour, deterministic=True)
    assert torch.equal(actions, torch.tanh(torch.tensor(MEANS))[[1, 2, 0]])


def test_selection_is_held_for_h_steps():
    behaviour = switch([[0.0, 1.0], [0.0, 1.0], [0.0, 1.0]], QSwitchOptions(sampling_freq=3))
    behaviour.episode_start(np.ones(T, bool))
    assert act(behaviour)[1].tolist() == [1, 1, 1]
    behaviour.critic.targets = torch.tensor([[1.0, 0.0]] * T)  # the critics change their mind
    assert act(behaviour)[1].tolist() == [1, 1, 1]
    assert act(behaviour)[1].tolist() == [1, 1, 1]
    assert act(behaviour)[1].tolist() == [0, 0, 0]  # step 3: re-selection
    behaviour.critic.targets = torch.tensor([[-1.0, -1.0]] * T)
    behaviour.episode_start(np.array([True, False, False]))  # task 0's episode restarts
    assert act(behaviour)[1].tolist() == [2, 0, 0]


def test_warmup_acts_with_own_policy_only():
    behaviour = switch([[0.0, 1.0]] * T, QSwitchOptions(warmup_iterations=2))
    behaviour.episode_start(np.ones(T, bool))
    behaviour.begin_iteration(1)
    assert act(behaviour)[1].tolist() == [0, 1, 2]
    behaviour.begin_iteration(2)
    assert act(behaviour)[1].tolist() == [1, 1, 1]
    behaviour.begin_iteration(0)
    assert act(behaviour, deterministic=True)[1].tolist() == [1, 1, 1]  # evaluation ignores warm-up


def test_own_policy_probability():
    torch.manual_seed(0)
    behaviour = switch([[0.0, 1.0]] * T, QSwitchOptions(own_policy_prob=0.7))
    counts = np.zeros((T, T))
    for _ in range(2000):
        behaviour.episode_start(np.ones(T, bool))
        _, acting = act(behaviour)
        counts[np.arange(T), acting] += 1
    shares = counts / 2000
    assert shares[0, 0] == pytest.approx(0.7, abs=0.04)  # own policy, never preferred by the critic
    assert shares[0, 1] == pytest.approx(0.3, abs=0.04)
    assert shares[1, 1] == 1.0  # own policy is also the switch's choice
    assert shares[2, 2] == pytest.approx(0.7, abs=0.04)


def test_min_of_twin_critics_can_change_the_choice():
    targets = [[0.0, 1.0]] * T
    # Q2 = Q1 - 10 a_y penalises the upward policy 1 that Q1 prefers.
    means = [[2.0, 0.0], [0.0, 0.3], [-1.0, 0.0]]  # tanh: (0.96, 0), (0, 0.29), (-0.76, 0)
    q1_choice = act(switch(targets, QSwitchOptions(score_critic="q1"), means=means, q2_bias=-10.0))[1]
    min_choice = act(switch(targets, QSwitchOptions(score_critic="min"), means=means, q2_bias=-10.0))[1]
    assert q1_choice.tolist() == [1, 1, 1]  # Q1: -0.50 vs -1.92 and -1.58
    assert min_choice.tolist() == [2, 2, 2]  # min: -3.4 for policy 1, -1.58 for policy 2


def test_sampled_scoring_sees_the_spread_the_mean_hides():
    # Policy 0: mean tanh(0)=0 but std e^1 -> samples spread to +-1; policy 1: mean 0.3 with no noise.
    # The critic rewards |a_x| near 1: Q = -(|a_x| - 1)^2 via target (1, 0) evaluated on |a|.
    class AbsCritic(HandCritic):
        def forward(self, obs, action):
            q = -(action[..., 0].abs() - 1.0).pow(2)
            return torch.stack([q, q])

    policy = fixed_policy([[0.0, 0.0], [0.3, 0.0]], log_std=0.0)
    with torch.no_grad():
        policy.mlp.head.bias[0, 0, ACT:] = 1.0
        policy.mlp.head.bias[1, 0, ACT:] = -20.0
    torch.manual_seed(0)
    mean_scoring = QSwitchBehaviour(policy, AbsCritic(), lambda: torch.ones(2), QSwitchOptions())
    sampled_scoring = QSwitchBehaviour(policy, AbsCritic(), lambda: torch.ones(2), QSwitchOptions(action_samples=64))
    obs = torch.zeros(2, OBS)
    assert mean_scoring.act(obs, False)[1].tolist() == [1, 1]
    assert sampled_scoring.act(obs, False)[1].tolist() == [0, 0]


def test_entropy_term_breaks_a_q_tie_toward_the_wider_policy():
    class FlatCritic(HandCritic):
        def forward(self, obs, action):
            return torch.zeros(2, *action.shape[:-1])

    policy = fixed_policy([[0.0, 0.0], [0.0, 0.0]], log_std=-2.0)
    with torch.no_grad():
        policy.mlp.head.bias[1, 0, ACT:] = 0.0  # policy 1 is wider
    torch.manual_seed(0)
    without = QSwitchBehaviour(policy, FlatCritic(), lambda: torch.ones(2), QSwitchOptions())
    with_entropy = QSwitchBehaviour(policy, FlatCritic(), lambda: torch.ones(2),
                                    QSwitchOptions(entropy_term=True, action_samples=32))
    obs = torch.zeros(2, OBS)
    assert without.act(obs, False)[1].tolist() == [0, 0]
    assert with_entropy.act(obs, False)[1].tolist() == [1, 1]


def test_guide_policies_are_extra_candidates():
    guides = (GuidePolicy("up_right", (1.0, 1.0), 0.1),)
    behaviour = switch([[1.0, 1.0], [0.0, 1.0], [1.0, 1.0]], guides=guides)
    behaviour.episode_start(np.ones(T, bool))
    actions, acting = act(behaviour)
    assert behaviour.num_candidates == T + 1
    assert acting.tolist() == [3, 1, 3]
    assert (actions[0].abs() <= 1.0).all() and actions[0].min() > 0.6


def test_own_policy_behaviour_acts_with_each_task_policy():
    policy = fixed_policy(MEANS)
    actions, acting = OwnPolicyBehaviour(policy).act(torch.zeros(T, OBS), deterministic=True)
    assert acting.tolist() == [0, 1, 2]
    assert torch.equal(actions, torch.tanh(torch.tensor(MEANS)))


@pytest.mark.parametrize("options", [QSwitchOptions(action_samples=1), QSwitchOptions(entropy_term=True),
                                     QSwitchOptions(action_samples=4, entropy_term=True, sampling_freq=2)],
                         ids=["samples", "entropy", "both"])
def test_evaluation_of_sampled_scores_is_deterministic(options):
    """Three equally good, wide candidates: sampled scores differ from call to call in training, but the
    evaluated choice (and action) must be the same at every call."""
    behaviour = switch([[0.0, 0.0]] * T, options, means=[[0.5, 0.0], [-0.5, 0.0], [0.0, 0.5]], log_std=0.0)
    torch.manual_seed(0)
    evaluated, trained = set(), set()
    for _ in range(20):
        behaviour.episode_start(np.ones(T, bool))
        actions, acting = act(behaviour, deterministic=True)
        evaluated.add((tuple(acting), tuple(actions.flatten().tolist())))
        behaviour.episode_start(np.ones(T, bool))
        trained.add(tuple(act(behaviour)[1]))
    assert len(evaluated) == 1
    assert len(trained) > 1  # the scores are noisy: without fixed evaluation noise the choice would vary


@pytest.mark.parametrize("architecture", ["separate", "multihead"])
@pytest.mark.parametrize("score_critic", ["q1", "min"])
def test_batched_switch_equals_a_naive_loop_over_tasks_and_policies(architecture, score_critic):
    """Real networks, a distinct state per task: in task i every policy j proposes its mean action at task
    i's state s_i, task i's critic scores it at s_i, the arg-max acts (docs/fidelity.md#q-switch), computed one by
    one."""
    tasks, obs_dim, action_dim = 4, 3, 2
    torch.manual_seed(1)
    policy = TanhGaussianPolicy(architecture, tasks, obs_dim, action_dim, (16,))
    critic = TwinQFunction(architecture, tasks, obs_dim, action_dim, (16,))
    behaviour = QSwitchBehaviour(policy, critic, lambda: torch.ones(tasks), QSwitchOptions(score_critic=score_critic))
    chosen_others = 0
    for _ in range(5):
        obs = torch.randn(tasks, obs_dim) * 2.0
        behaviour.episode_start(np.ones(tasks, bool))
        actions, acting = behaviour.act(obs, deterministic=True)
        for i in range(tasks):
            at_state_i = obs[i].expand(tasks, 1, obs_dim)  # every network's row sees s_i
            proposals = torch.tanh(policy(at_state_i)[0][:, 0])  # [policy j, A]: pi_j's mean action at s_i
            scores = []
            for j in range(tasks):
                q = critic(at_state_i, proposals[j].expand(tasks, 1, action_dim))[:, i, 0]  # task i's critics
                scores.append(q[0] if score_critic == "q1" else q.min())
            expected = int(torch.stack(scores).argmax())
            assert acting[i].item() == expected
            torch.testing.assert_close(actions[i], proposals[expected])
            chosen_others += expected != i
    assert chosen_others > 0  # the check covers choices of other tasks' policies
