"""Multi-task Soft Actor-Critic: the update of all tasks in one batched computation (SPEC §9.1-9.2).

Two loss families, as in the original:

* per-task (``dnc_sac``, ``qmp_dnc``): each task has its own networks, optimiser state and temperature;
  the batched loss is the sum over tasks of per-task means, so every task gets exactly the gradient
  of its own loss (Adam is element-wise, so one Adam over stacked parameters equals T Adams). The
  temperature loss uses log(alpha): ``-log_alpha_i * (log_pi + target_entropy)``.
* shared buffer (``sac``, ``mtsac``, ``qmp_sac``): one loss averaged over the whole mixed minibatch;
  the temperature loss uses alpha: ``-alpha_i * (log_pi + target_entropy)``. ``sac`` has one
  temperature, ``mtsac``/``qmp_sac`` one per task.

Per gradient step: critics (twin, clipped double-Q target through time limits, not through true
terminals), then the actor on the just-updated critics, then the temperature, then Polyak targets.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
from torch import nn

from learning.networks import TanhGaussianPolicy, TwinQFunction


@dataclass(frozen=True)
class SACSettings:
    """Hyperparameters of the SAC update."""

    discount: float = 0.99
    tau: float = 0.005
    reward_scale: float = 1.0
    lr: float = 3e-4
    target_entropy: float | None = None
    per_task_losses: bool = True
    """True: sum of per-task mean losses and log-alpha temperature loss (DnC family)."""
    temperature_per_task: bool = True


def make_adam(parameters, lr: float) -> torch.optim.Adam:
    """Adam with the original's settings (no weight decay), fused where torch supports it."""
    parameters = list(parameters)
    try:
        return torch.optim.Adam(parameters, lr=lr, fused=True)
    except (RuntimeError, TypeError):  # fused kernels are unavailable for this device
        return torch.optim.Adam(parameters, lr=lr)


class MultiTaskSAC(nn.Module):
    """Policies, twin critics, targets, temperatures and their optimisers for T tasks."""

    def __init__(self, policy: TanhGaussianPolicy, critic: TwinQFunction, settings: SACSettings) -> None:
        super().__init__()
        self.policy, self.critic = policy, critic
        self.target_critic = copy.deepcopy(critic).requires_grad_(False)
        self.settings = settings
        self.num_tasks, self.action_dim = policy.num_tasks, policy.action_dim
        self.target_entropy = (settings.target_entropy if settings.target_entropy is not None
                               else -float(self.action_dim))
        self.log_alpha = nn.Parameter(torch.zeros(self.num_tasks if settings.temperature_per_task else 1))
        self.policy_optimizer = make_adam(policy.parameters(), settings.lr)
        self.critic_optimizer = make_adam(critic.parameters(), settings.lr)
        self.alpha_optimizer = make_adam([self.log_alpha], settings.lr)
        self._critic_parameters = list(critic.parameters())

    def alpha(self) -> torch.Tensor:
        """Temperatures ``[T]`` (a single temperature is broadcast)."""
        return self.log_alpha.exp().expand(self.num_tasks)

    def _reduce(self, per_sample: torch.Tensor) -> torch.Tensor:
        """Per-task family: sum of per-task means; shared family: mean over all samples."""
        if self.settings.per_task_losses:
            return per_sample.mean(dim=-1).sum()
        return per_sample.mean()

    def critic_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Twin-critic Bellman loss; ``batch`` holds tensors ``[T, B, ...]``."""
        obs, action = batch["observation"], batch["action"]
        with torch.no_grad():
            next_action, next_log_prob, _, _ = self.policy.sample(batch["next_observation"])
            next_q = self.target_critic(batch["next_observation"], next_action).min(dim=0).values
            alpha = self.alpha().unsqueeze(1)
            soft_next_value = next_q - alpha * next_log_prob
            target = (batch["reward"] * self.settings.reward_scale
                      + self.settings.discount * (1.0 - batch["terminal"]) * soft_next_value)
        q = self.critic(obs, action)
        errors = (q - target.unsqueeze(0)).pow(2)
        loss = self._reduce(errors[0]) + self._reduce(errors[1])
        stats = {"Qf1Loss": errors[0].mean(-1), "Qf2Loss": errors[1].mean(-1), "Qf1": q[0].mean(-1).detach(),
                 "Qf2": q[1].mean(-1).detach(), "QTarget": target.mean(-1)}
        return loss, stats

    def actor_and_alpha_losses(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """Actor loss on the current critics (their parameters must be frozen by the caller) and
        the temperature loss."""
        action, log_prob, mean, log_std = self.policy.sample(obs)
        q = self.critic(obs, action).min(dim=0).values
        alpha = self.alpha().unsqueeze(1)
        actor_per_sample = alpha.detach() * log_prob - q
        entropy_gap = (log_prob + self.target_entropy).detach()
        if self.settings.per_task_losses:
            alpha_per_sample = -self.log_alpha.expand(self.num_tasks).unsqueeze(1) * entropy_gap
        else:
            alpha_per_sample = -alpha * entropy_gap
        gaussian_entropy = (0.5 + 0.5 * math.log(2 * math.pi) + log_std).sum(-1)
        stats = {"PolicyLoss": actor_per_sample.detach().mean(-1), "LogPi": log_prob.detach().mean(-1),
                 "Entropy": gaussian_entropy.detach().mean(-1), "AlphaLoss": alpha_per_sample.detach().mean(-1)}
        return self._reduce(actor_per_sample), self._reduce(alpha_per_sample), stats

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One gradient step for every task; returns per-task statistics ``[T]``."""
        critic_loss, stats = self.critic_loss(batch)
        self.critic_optimizer.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_optimizer.step()

        for parameter in self._critic_parameters:
            parameter.requires_grad_(False)
        actor_loss, alpha_loss, actor_stats = self.actor_and_alpha_losses(batch["observation"])
        self.policy_optimizer.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.policy_optimizer.step()
        for parameter in self._critic_parameters:
            parameter.requires_grad_(True)

        self.alpha_optimizer.zero_grad(set_to_none=True)
        alpha_loss.backward()
        self.alpha_optimizer.step()

        self.update_targets()
        stats.update(actor_stats)
        stats["AlphaTemperature"] = self.alpha().detach().clone()
        return stats

    @torch.no_grad()
    def update_targets(self) -> None:
        """Polyak averaging: target <- (1 - tau) target + tau online."""
        tau = self.settings.tau
        target_parameters = list(self.target_critic.parameters())
        torch._foreach_lerp_(target_parameters, self._critic_parameters, tau)

    def optimizer_state(self) -> dict:
        return {"policy": self.policy_optimizer.state_dict(), "critic": self.critic_optimizer.state_dict(),
                "alpha": self.alpha_optimizer.state_dict()}

    def load_optimizer_state(self, state: dict) -> None:
        self.policy_optimizer.load_state_dict(state["policy"])
        self.critic_optimizer.load_state_dict(state["critic"])
        self.alpha_optimizer.load_state_dict(state["alpha"])
