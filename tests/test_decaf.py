"""DECAF critics (docs/fidelity.md#decaf, #decaf-frozen-targets): the softmax mixture of every task's critic, where
gradients go, and targets that follow every online base critic (the original froze the other tasks' ones)."""

from __future__ import annotations

import numpy as np
import torch

from learning.baselines.decaf import DecafTwinQFunction
from learning.core.networks import TanhGaussianPolicy
from learning.core.sac import MultiTaskSAC, SACSettings

T, OBS, ACT = 3, 2, 1
LOGITS = np.array([[[0.0, 1.0, 2.0], [3.0, 0.0, 0.0], [-1.0, 0.5, 0.0]],
                   [[1.0, 1.0, 1.0], [0.0, 0.0, 4.0], [2.0, -2.0, 0.0]]])  # [family, task i, critic k]
BASE_VALUES = np.array([[10.0, 20.0, 40.0], [1.0, 2.0, 3.0]])  # [family, critic k]


def constant_decaf() -> DecafTwinQFunction:
    """Weighting networks that output LOGITS and base critics that output BASE_VALUES, whatever the input."""
    critic = DecafTwinQFunction(T, OBS, ACT, (4,))
    with torch.no_grad():
        critic.weighting.head.weight.zero_()
        critic.weighting.head.bias.copy_(torch.tensor(LOGITS, dtype=torch.float32).reshape(2 * T, 1, T))
        critic.base.mlp.head.weight.zero_()
        critic.base.mlp.head.bias.copy_(torch.tensor(BASE_VALUES, dtype=torch.float32).reshape(2 * T, 1, 1))
    return critic


def test_each_task_q_is_the_softmax_weighted_sum_of_all_critics():
    q = constant_decaf()(torch.randn(T, 4, OBS), torch.randn(T, 4, ACT))
    weights = np.exp(LOGITS) / np.exp(LOGITS).sum(-1, keepdims=True)
    expected = (weights * BASE_VALUES[:, None, :]).sum(-1)  # [family, task]
    assert q.shape == (2, T, 4)
    assert np.allclose(q.detach().numpy(), expected[:, :, None], rtol=1e-5)


def test_task_loss_trains_its_weighting_and_its_own_critic_only():
    critic = DecafTwinQFunction(T, OBS, ACT, (4,))
    critic(torch.randn(T, 4, OBS), torch.randn(T, 4, ACT))[:, 1].sum().backward()  # task 1's DECAF Qs
    base_head = critic.base.mlp.head.weight.grad.reshape(2, T, -1)  # [family, critic k, ...]
    weighting_head = critic.weighting.head.weight.grad.reshape(2, T, -1)
    for k in range(T):
        assert (base_head[:, k].abs().sum() > 0) == (k == 1)
        assert (weighting_head[:, k].abs().sum() > 0) == (k == 1)


def test_targets_follow_every_online_base_critic():
    torch.manual_seed(0)
    policy = TanhGaussianPolicy("separate", T, OBS, ACT, (4,))
    sac = MultiTaskSAC(policy, DecafTwinQFunction(T, OBS, ACT, (4,)), SACSettings(tau=0.1))
    batch = {"observation": torch.randn(T, 8, OBS), "action": torch.rand(T, 8, ACT) * 2 - 1,
             "reward": torch.randn(T, 8), "next_observation": torch.randn(T, 8, OBS), "terminal": torch.zeros(T, 8)}
    initial_head = sac.target_critic.base.mlp.head.weight.detach().clone()
    for _ in range(3):
        target_before = [parameter.detach().clone() for parameter in sac.target_critic.parameters()]
        sac.update(batch)
        for before, target, online in zip(target_before, sac.target_critic.parameters(), sac.critic.parameters()):
            assert torch.allclose(target, 0.9 * before + 0.1 * online, atol=1e-7)
    # Every task's target base critic moved (the original kept the other tasks' copies at their init).
    moved = sac.target_critic.base.mlp.head.weight - initial_head  # members: (family, critic k)
    assert all(moved[member].abs().sum() > 0 for member in range(2 * T))
