"""The SAC losses on a tiny batch against a hand computation (docs/fidelity.md#networks-and-sac)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from learning.core.networks import TanhGaussianPolicy, TwinQFunction
from learning.core.sac import MultiTaskSAC, SACSettings

T, B, OBS, ACT, HIDDEN = 2, 5, 3, 2, 4


def make_sac(per_task_losses: bool) -> MultiTaskSAC:
    torch.manual_seed(0)
    policy = TanhGaussianPolicy("separate", T, OBS, ACT, (HIDDEN,))
    critic = TwinQFunction("separate", T, OBS, ACT, (HIDDEN,))
    settings = SACSettings(discount=0.9, tau=0.1, reward_scale=2.0, lr=1e-3, per_task_losses=per_task_losses)
    sac = MultiTaskSAC(policy, critic, settings)
    with torch.no_grad():
        sac.log_alpha.copy_(torch.tensor([0.1, -0.3]))
        for parameter in sac.target_critic.parameters():  # targets differ from the online critics
            parameter.add_(0.05 * torch.randn_like(parameter))
    return sac


def batch() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(3)
    return {"observation": torch.randn(T, B, OBS, generator=generator),
            "action": torch.rand(T, B, ACT, generator=generator) * 2 - 1,
            "reward": torch.randn(T, B, generator=generator),
            "next_observation": 0.3 * torch.randn(T, B, OBS, generator=generator),  # away from tanh saturation
            "terminal": torch.tensor([[0.0, 1.0, 0.0, 0.0, 1.0], [1.0, 0.0, 0.0, 0.0, 0.0]])}


def mlp(module, index: int, x: np.ndarray) -> np.ndarray:
    """Member ``index`` of a TaskMLP computed by hand in float64."""
    for layer in module.hidden:
        x = np.maximum(x @ layer.weight[index].detach().double().numpy() + layer.bias[index, 0].detach().double().numpy(), 0)
    return x @ module.head.weight[index].detach().double().numpy() + module.head.bias[index, 0].detach().double().numpy()


def policy_by_hand(sac, task: int, obs: np.ndarray, eps: np.ndarray):
    out = mlp(sac.policy.mlp, task, obs)
    mean, log_std = out[:, :ACT], np.clip(out[:, ACT:], -20, 2)
    pre = mean + np.exp(log_std) * eps
    action = np.tanh(pre)
    log_prob = (-0.5 * eps ** 2 - log_std - 0.5 * np.log(2 * np.pi)).sum(-1)
    log_prob -= np.log(np.clip(1 - action ** 2, 0, 1) + 1e-6).sum(-1)
    return action, log_prob


def q_by_hand(critic, member: int, task: int, obs: np.ndarray, action: np.ndarray) -> np.ndarray:
    return mlp(critic.mlp, member * T + task, np.concatenate([obs, action], -1))[:, 0]


@pytest.mark.parametrize("per_task_losses", [True, False])
def test_critic_loss_matches_hand_computation(per_task_losses):
    sac, data = make_sac(per_task_losses), batch()
    torch.manual_seed(7)
    loss, _ = sac.critic_loss(data)
    torch.manual_seed(7)
    eps = torch.randn(T, B, ACT).double().numpy()
    d = {k: v.double().numpy() for k, v in data.items()}
    alpha = np.exp([0.1, -0.3])
    per_task = []
    for t in range(T):
        next_action, next_log_prob = policy_by_hand(sac, t, d["next_observation"][t], eps[t])
        target_q = np.minimum(q_by_hand(sac.target_critic, 0, t, d["next_observation"][t], next_action),
                              q_by_hand(sac.target_critic, 1, t, d["next_observation"][t], next_action))
        y = 2.0 * d["reward"][t] + 0.9 * (1 - d["terminal"][t]) * (target_q - alpha[t] * next_log_prob)
        q1 = q_by_hand(sac.critic, 0, t, d["observation"][t], d["action"][t])
        q2 = q_by_hand(sac.critic, 1, t, d["observation"][t], d["action"][t])
        per_task.append(((q1 - y) ** 2).mean() + ((q2 - y) ** 2).mean())
    expected = sum(per_task) if per_task_losses else np.mean(per_task)
    assert loss.item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("per_task_losses", [True, False])
def test_actor_and_temperature_losses_match_hand_computation(per_task_losses):
    sac, data = make_sac(per_task_losses), batch()
    torch.manual_seed(8)
    actor_loss, alpha_loss, _ = sac.actor_and_alpha_losses(data["observation"])
    torch.manual_seed(8)
    eps = torch.randn(T, B, ACT).double().numpy()
    obs = data["observation"].double().numpy()
    log_alpha = np.array([0.1, -0.3])
    actor, temperature = [], []
    for t in range(T):
        action, log_prob = policy_by_hand(sac, t, obs[t], eps[t])
        q = np.minimum(q_by_hand(sac.critic, 0, t, obs[t], action), q_by_hand(sac.critic, 1, t, obs[t], action))
        actor.append((np.exp(log_alpha[t]) * log_prob - q).mean())
        gap = log_prob + (-ACT)  # default target entropy -|A|
        # DnC family: -log(alpha) * gap; SAC family: -alpha * gap (docs/fidelity.md#loss-families).
        coefficient = log_alpha[t] if per_task_losses else np.exp(log_alpha[t])
        temperature.append((-coefficient * gap).mean())
    reduce = sum if per_task_losses else np.mean
    assert actor_loss.item() == pytest.approx(reduce(actor), rel=1e-5)
    assert alpha_loss.item() == pytest.approx(reduce(temperature), rel=1e-5)


def test_update_steps_all_tasks_and_polyak_averages_targets():
    sac, data = make_sac(True), batch()
    target_before = [p.detach().clone() for p in sac.target_critic.parameters()]
    policy_before = [p.detach().clone() for p in sac.policy.parameters()]
    stats = sac.update(data)
    for before, target, online in zip(target_before, sac.target_critic.parameters(), sac.critic.parameters()):
        assert torch.allclose(target, 0.9 * before + 0.1 * online, atol=1e-7)
    assert all(not torch.equal(a, b) for a, b in zip(policy_before, sac.policy.parameters()))
    assert stats["Qf1Loss"].shape == (T,) and stats["AlphaTemperature"].shape == (T,)


def test_per_task_update_equals_updating_each_task_alone():
    """A batched step of the per-task family moves task 0 exactly as a step on task 0's loss alone."""
    sac_all, sac_alone, data = make_sac(True), make_sac(True), batch()
    torch.manual_seed(5)
    loss_all, _ = sac_all.critic_loss(data)
    torch.manual_seed(5)
    loss_alone, _ = sac_alone.critic_loss(data)
    sac_all.critic_optimizer.zero_grad()
    loss_all.backward()
    per_task_grad = [p.grad[[0, T]].clone() for p in sac_all.critic.mlp.hidden[0].parameters()]
    # Recompute task 0's own loss only by zeroing task 1's contribution through its mask.
    sac_alone.critic_optimizer.zero_grad()
    torch.manual_seed(5)
    q = sac_alone.critic(data["observation"], data["action"])
    with torch.no_grad():
        next_action, next_log_prob, _, _ = sac_alone.policy.sample(data["next_observation"])
        next_q = sac_alone.target_critic(data["next_observation"], next_action).min(0).values
        y = data["reward"] * 2.0 + 0.9 * (1 - data["terminal"]) * (next_q - sac_alone.alpha()[:, None] * next_log_prob)
    task0 = ((q[:, 0] - y[0]) ** 2).mean(-1).sum()
    task0.backward()
    own_grad = [p.grad[[0, T]] for p in sac_alone.critic.mlp.hidden[0].parameters()]
    for a, b in zip(per_task_grad, own_grad):
        assert torch.allclose(a, b, atol=1e-6)
