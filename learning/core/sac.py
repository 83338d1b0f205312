"""Multi-task Soft Actor-Critic: the update of all tasks in one batched computation (docs/fidelity.md#networks-and-sac).

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

The baselines extend this class instead of copying the update (docs/baselines.md): DnC adds a term to
the actor loss and a distillation at the end of epochs (learning/baselines/dnc.py), data sharing augments the
batch with weighted samples of other tasks (learning/baselines/data_sharing.py), PCGrad replaces the gradient
step (learning/baselines/pcgrad.py), MCAL the actor step (learning/baselines/mcal.py), DECAF the critic module
(learning/baselines/decaf.py).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
from torch import nn

from learning.core.networks import TanhGaussianPolicy, TwinQFunction


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
        self.with_stats = True
        """Whether the losses also return per-task statistics; the trainer asks only on an epoch's last step."""

    def alpha(self) -> torch.Tensor:
        """Temperatures ``[T]`` (a single temperature is broadcast)."""
        return self.log_alpha.exp().expand(self.num_tasks)

    @staticmethod
    def _task_means(per_sample: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        """Per-task means ``[T]`` of per-sample values ``[T, B]``; weighted means where ``weight`` is given."""
        if weight is None:
            return per_sample.mean(dim=-1)
        return (per_sample * weight).sum(dim=-1) / weight.sum(dim=-1)

    def _reduce(self, per_sample: torch.Tensor, term: str, weight: torch.Tensor | None = None) -> torch.Tensor:
        """The loss of one ``term`` ("critic", "actor" or "alpha") from per-sample values ``[T, B]``.

        Per-task family: sum of per-task means; shared family: mean over all samples. A ``weight``
        ``[T, B]`` (data sharing: 1 own, 1 or 0 offered by other tasks) makes the per-task means weighted.
        """
        if weight is not None:
            task_means = self._task_means(per_sample, weight)
            return task_means.sum() if self.settings.per_task_losses else task_means.mean()
        if self.settings.per_task_losses:
            return per_sample.mean(dim=-1).sum()
        return per_sample.mean()

    def critic_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Twin-critic Bellman loss; ``batch`` holds tensors ``[T, B, ...]`` (and optionally ``weight [T, B]``)."""
        obs, action, weight = batch["observation"], batch["action"], batch.get("weight")
        with torch.no_grad():
            next_action, next_log_prob, _, _ = self.policy.sample(batch["next_observation"])
            next_q = self.target_critic(batch["next_observation"], next_action).min(dim=0).values
            alpha = self.alpha().unsqueeze(1)
            soft_next_value = next_q - alpha * next_log_prob
            target = (batch["reward"] * self.settings.reward_scale
                      + self.settings.discount * (1.0 - batch["terminal"]) * soft_next_value)
        q = self.critic(obs, action)
        errors = (q - target.unsqueeze(0)).pow(2)
        loss = self._reduce(errors[0], "critic", weight) + self._reduce(errors[1], "critic", weight)
        if not self.with_stats:
            return loss, {}
        means = self._task_means
        stats = {"Qf1Loss": means(errors[0], weight), "Qf2Loss": means(errors[1], weight),
                 "Qf1": means(q[0], weight).detach(), "Qf2": means(q[1], weight).detach(),
                 "QTarget": means(target, weight)}
        return loss, stats

    def actor_and_alpha_losses(self, obs: torch.Tensor, weight: torch.Tensor | None = None
                               ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
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
        actor_loss = self._reduce(actor_per_sample, "actor", weight)
        alpha_loss = self._reduce(alpha_per_sample, "alpha", weight)
        if not self.with_stats:
            return actor_loss, alpha_loss, {}
        gaussian_entropy = (0.5 + 0.5 * math.log(2 * math.pi) + log_std).sum(-1)
        means = self._task_means
        stats = {"PolicyLoss": means(actor_per_sample.detach(), weight), "LogPi": means(log_prob.detach(), weight),
                 "Entropy": means(gaussian_entropy.detach(), weight),
                 "AlphaLoss": means(alpha_per_sample.detach(), weight)}
        return actor_loss, alpha_loss, stats

    def update(self, batch: dict[str, torch.Tensor], with_stats: bool = True) -> dict[str, torch.Tensor]:
        """One gradient step for every task; returns per-task statistics ``[T]`` (empty unless ``with_stats``)."""
        self.with_stats = with_stats
        try:
            stats = self.critic_step(batch)
            stats.update(self.actor_and_temperature_step(batch["observation"], batch.get("weight")))
        finally:
            self.with_stats = True
        self.update_targets()
        if with_stats:
            stats["AlphaTemperature"] = self.alpha().detach().clone()
        return stats

    def critic_step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One optimiser step of the twin critics."""
        critic_loss, stats = self.critic_loss(batch)
        self._minimise(self.critic_optimizer, critic_loss, "critic")
        return stats

    def actor_and_temperature_step(self, obs: torch.Tensor, weight: torch.Tensor | None = None
                                   ) -> dict[str, torch.Tensor]:
        """One optimiser step of the actor on the frozen critics, then one of the temperature."""
        for parameter in self._critic_parameters:
            parameter.requires_grad_(False)
        actor_loss, alpha_loss, stats = self.actor_and_alpha_losses(obs, weight)
        if type(self)._minimise is MultiTaskSAC._minimise:
            # One backward for both: the actor loss sees alpha detached and the temperature loss sees
            # log pi detached, so each optimiser gets exactly the gradient of its own loss.
            self.policy_optimizer.zero_grad(set_to_none=True)
            self.alpha_optimizer.zero_grad(set_to_none=True)
            (actor_loss + alpha_loss).backward()
            for parameter in self._critic_parameters:
                parameter.requires_grad_(True)
            self.policy_optimizer.step()
            self.alpha_optimizer.step()
            return stats
        self._minimise(self.policy_optimizer, actor_loss, "actor")
        for parameter in self._critic_parameters:
            parameter.requires_grad_(True)
        self._minimise(self.alpha_optimizer, alpha_loss, "alpha")
        return stats

    def _minimise(self, optimizer: torch.optim.Optimizer, loss: torch.Tensor, term: str) -> None:
        """One optimiser step on ``loss`` (PCGrad replaces this with gradient surgery)."""
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def compile_losses(self) -> None:
        """Wrap the critic loss and the actor + temperature losses in ``torch.compile`` (``--compile``).
        Meant for CUDA: on the CPU the compiled update is slower than the eager one (``bench_update
        --compile``; numbers in docs/performance.md), so the launcher applies it on CUDA only."""
        self.critic_loss = torch.compile(self.critic_loss)  # type: ignore[method-assign]
        self.actor_and_alpha_losses = torch.compile(self.actor_and_alpha_losses)  # type: ignore[method-assign]

    def end_of_epoch(self, epoch: int) -> dict[str, float]:
        """Called by the trainer after each epoch's evaluation; returns metrics to log (DnC distils here)."""
        return {}

    @torch.no_grad()
    def update_targets(self) -> None:
        """Polyak averaging: target <- (1 - tau) target + tau online."""
        tau = self.settings.tau
        target_parameters = list(self.target_critic.parameters())
        torch._foreach_lerp_(target_parameters, self._critic_parameters, tau)  # type: ignore[arg-type]

    def optimizer_state(self) -> dict:
        return {"policy": self.policy_optimizer.state_dict(), "critic": self.critic_optimizer.state_dict(),
                "alpha": self.alpha_optimizer.state_dict()}

    def load_optimizer_state(self, state: dict) -> None:
        self.policy_optimizer.load_state_dict(state["policy"])
        self.critic_optimizer.load_state_dict(state["critic"])
        self.alpha_optimizer.load_state_dict(state["alpha"])
