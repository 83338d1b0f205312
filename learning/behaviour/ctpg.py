"""**CTPG** (Cross-Task Policy Guidance, He et al., NeurIPS 2024): a learned guide picks who acts.

Per task i a guide policy Pi^g_i(j | s), a discrete soft actor-critic over the C candidates (the T
control policies, plus any fixed guide policies of the environment), picks a candidate at the
start of every episode and then every K steps; the chosen control policy acts in task i for that
segment (its *sampled* action). Two gates (the official code's ``mtrl/agent/guide_sac.py``; docs/ctpg.md):

* policy filter: a candidate passes when its comparable guide value ``Q^comp_i(s, j)`` is at least
  ``V_i(s)``, task i's own soft value estimated from 5 samples of pi_i with its control critic; when
  no candidate passes, task i acts with its own policy. "masked" samples the guide over the passing
  candidates (the paper), "unmasked" over all of them (the vendored official code), "off" disables it.
* guide block: tasks whose control ``log alpha_i`` exceeds the mean are not guided (they act with
  their own policy); refreshed every ``block_gate_freq`` environment steps of each task (the
  learner's schedule, independent of evaluation), effective at each task's next episode.

All T guides are one batched module with the task axis first (``GuideNetworks``); the learner is in
learning/behaviour/ctpg_learner.py. The behaviour keeps a log of every collected step (acting
candidate, segment start, segment end) that the learner moves into its aligned segment store.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from environments.base import GuidePolicy
from learning.behaviour.options import CTPGOptions
from learning.core.networks import TanhGaussianPolicy, TaskMLP, TwinQFunction


class GuideNetworks(nn.Module):
    """The T guides as one module: actor logits, twin guide critic, twin comparable critic, their
    targets and the per-task guide temperatures. Every network maps ``[T, B, obs]`` to ``[.., T, B, C]``."""

    def __init__(self, architecture: str, num_tasks: int, obs_dim: int, num_candidates: int,
                 hidden_sizes: tuple[int, ...]) -> None:
        super().__init__()
        self.num_tasks, self.num_candidates = num_tasks, num_candidates
        self.actor = TaskMLP(architecture, num_tasks, obs_dim, hidden_sizes, num_candidates, init="xavier_uniform")
        self.critic = TaskMLP(architecture, num_tasks, obs_dim, hidden_sizes, num_candidates, ensemble=2,
                              init="xavier_normal")
        self.comparable = TaskMLP(architecture, num_tasks, obs_dim, hidden_sizes, num_candidates, ensemble=2,
                                  init="xavier_normal")
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.target_comparable = copy.deepcopy(self.comparable).requires_grad_(False)
        self.log_alpha = nn.Parameter(torch.zeros(num_tasks))  # initial temperature 1.0 (official)

    def logits(self, obs: torch.Tensor) -> torch.Tensor:
        """Guide logits ``[T, B, C]``."""
        return self.actor(obs)[0]

    def alpha(self) -> torch.Tensor:
        return self.log_alpha.exp()


def fixed_guide_tensors(guide_policies: tuple[GuidePolicy, ...], device: torch.device
                        ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Means ``[G, A]`` and standard deviations ``[G]`` of the environment's fixed guide policies."""
    if not guide_policies:
        return None, None
    means = torch.tensor([g.mean for g in guide_policies], dtype=torch.float32, device=device)
    stds = torch.tensor([g.std for g in guide_policies], dtype=torch.float32, device=device)
    return means, stds


@torch.no_grad()
def own_soft_value(policy: TanhGaussianPolicy, critic: TwinQFunction, alpha: torch.Tensor, obs: torch.Tensor,
                   samples: int) -> torch.Tensor:
    """``V_i(s) = mean_k[(Q1_i + Q2_i)/2 (s, a_k)] - alpha_i * mean_k log pi_i(a_k|s)``, ``a_k ~ pi_i``.

    ``obs [T, N, obs] -> [T, N]`` (the official ``v_sample_time`` estimate)."""
    tasks, rows, features = obs.shape
    repeated = obs.unsqueeze(2).expand(tasks, rows, samples, features).reshape(tasks, rows * samples, features)
    action, log_prob, _, _ = policy.sample(repeated)
    q = critic(repeated, action).mean(dim=0).reshape(tasks, rows, samples).mean(dim=-1)
    return q - alpha.unsqueeze(1) * log_prob.reshape(tasks, rows, samples).mean(dim=-1)


def filter_mask(comparable_q: torch.Tensor, own_value: torch.Tensor) -> torch.Tensor:
    """Policy-filter gate: candidate j passes in task i when ``Q^comp_i(s, j) >= V_i(s)``.

    ``comparable_q [T, C]`` (mean of the twin comparable critics), ``own_value [T]`` -> mask ``[T, C]``."""
    return comparable_q >= own_value.unsqueeze(-1)


def gated_choice(logits: torch.Tensor, mask: torch.Tensor | None, masked: bool, own: torch.Tensor) -> torch.Tensor:
    """Sample the guide's candidate ``[T]`` from ``logits [T, C]`` under the filter ``mask [T, C]``.

    ``masked``: sample among passing candidates only (paper); otherwise from all logits (vendored
    code). Either way a task where no candidate passes acts with its own policy ``own [T]``."""
    if mask is None:
        return torch.distributions.Categorical(logits=logits).sample()
    passes = mask.any(dim=-1)
    if masked:
        logits = torch.where(mask | ~passes.unsqueeze(-1), logits, torch.full_like(logits, -math.inf))
    choice = torch.distributions.Categorical(logits=logits).sample()
    return torch.where(passes, choice, own)


def block_gate(log_alpha: torch.Tensor) -> torch.Tensor:
    """Guide-block gate: task i is not guided when ``log alpha_i > mean_k log alpha_k``. ``[T] -> [T] bool``."""
    return log_alpha > log_alpha.mean()


class CTPGBehaviour:
    """Collection with the guides; evaluation (``deterministic=True``) acts with each task's own policy."""

    def __init__(self, policy: TanhGaussianPolicy, critic: TwinQFunction, alpha: Callable[[], torch.Tensor],
                 guide: GuideNetworks, options: CTPGOptions, guide_policies: tuple[GuidePolicy, ...] = ()) -> None:
        self.policy, self.critic, self.alpha, self.guide, self.options = policy, critic, alpha, guide, options
        self.num_tasks = policy.num_tasks
        self.num_candidates = self.num_tasks + len(guide_policies)
        self.device = next(policy.parameters()).device
        self.guide_means, self.guide_stds = fixed_guide_tensors(guide_policies, self.device)
        self.own = torch.arange(self.num_tasks, device=self.device)
        self.held_choice = self.own.clone()
        self.steps_in_segment = np.zeros(self.num_tasks, dtype=np.int64)
        self.needs_decision = np.ones(self.num_tasks, dtype=bool)
        self.blocked = np.zeros(self.num_tasks, dtype=bool)
        """Tasks not guided in their current episode."""
        self.blocked_next = np.zeros(self.num_tasks, dtype=bool)
        """The latest refresh of the block gate; a task adopts it at its next episode start."""
        self.env_steps = 0
        """Collection steps per task since the run started, warm-up included."""
        self.trained_steps = 0
        """Collection steps per task after the warm-up (the learner counts them): the filter's clock."""
        self._log: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.gate_counts = self._empty_gate_counts()

    def _empty_gate_counts(self) -> dict[str, np.ndarray]:
        zeros = lambda: np.zeros(self.num_tasks, dtype=np.float64)  # noqa: E731
        return {"decisions": zeros(), "filtered_decisions": zeros(), "passed": zeros(), "fallback": zeros(),
                "blocked_decisions": zeros()}

    # ------------------------------------------------------------------------------ the episode clock
    def begin_iteration(self, iteration: int) -> None:
        """Nothing depends on the iteration (the filter and the block gate run on environment steps)."""

    def episode_start(self, started: np.ndarray) -> None:
        """Tasks whose episode (re)started decide at their next step and adopt the latest block gate;
        the step that ended their episode ends its segment."""
        started = np.asarray(started, dtype=bool)
        self.needs_decision |= started
        self.blocked[started] = self.blocked_next[started]
        if self._log:
            self._log[-1][2][started] = True

    def set_block(self, blocked: np.ndarray) -> None:
        """Refresh the block gate (effective at each task's next episode)."""
        self.blocked_next = np.asarray(blocked, dtype=bool).copy()

    # ------------------------------------------------------------------------------ acting
    def filter_active(self) -> bool:
        return self.options.filter_gate != "off" and self.trained_steps >= self.options.filter_start_steps

    @torch.no_grad()
    def decide(self, obs: torch.Tensor) -> torch.Tensor:
        """Every task's guide decision ``[T]`` at ``obs [T, obs]`` (gates applied); updates the gate counts."""
        logits = self.guide.logits(obs.unsqueeze(1))[:, 0]
        mask = None
        if self.filter_active():
            value = own_soft_value(self.policy, self.critic, self.alpha(), obs.unsqueeze(1),
                                   self.options.value_samples)[:, 0]
            comparable = self.guide.comparable(obs.unsqueeze(1)).mean(dim=0)[:, 0]
            mask = filter_mask(comparable, value)
        choice = gated_choice(logits, mask, self.options.filter_gate == "masked", self.own)
        blocked = torch.as_tensor(self.blocked, device=obs.device)
        choice = torch.where(blocked, self.own, choice)
        deciding = self.needs_decision & ~self.blocked
        counts = self.gate_counts
        counts["decisions"] += self.needs_decision
        counts["blocked_decisions"] += self.needs_decision & self.blocked
        if mask is not None:
            counts["filtered_decisions"] += deciding
            counts["passed"] += deciding * mask.float().mean(dim=-1).cpu().numpy()
            counts["fallback"] += deciding & ~mask.any(dim=-1).cpu().numpy()
        return choice

    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Actions ``[T, A]`` and acting candidate ``[T]``; in training also logs the step."""
        if deterministic:  # CTPG evaluates each task's own policy
            mean, _ = self.policy(obs.unsqueeze(1))
            return torch.tanh(mean[:, 0]), self.own.clone()
        if self.needs_decision.any():
            choice = self.decide(obs)
            self.held_choice = torch.where(torch.as_tensor(self.needs_decision, device=obs.device), choice,
                                           self.held_choice)
            self.steps_in_segment[self.needs_decision] = 0
        starts = self.needs_decision.copy()
        self.needs_decision[:] = False
        action = self._sampled_actions(obs)
        self.steps_in_segment += 1
        ends = self.steps_in_segment >= self.options.guide_step
        self.needs_decision |= ends
        self._log.append((self.held_choice.cpu().numpy().copy(), starts, ends.copy()))
        self.env_steps += 1
        return action, self.held_choice.clone()

    def _sampled_actions(self, obs: torch.Tensor) -> torch.Tensor:
        """The held candidate's sampled action in every task ``[T, A]``."""
        mean, log_std = self.policy.all_policies(obs)  # [T (policy), T (task), A]
        sampled = torch.tanh(mean + log_std.exp() * torch.randn_like(mean))
        if self.guide_means is not None and self.guide_stds is not None:
            guides = self.guide_means.shape[0]
            noise = torch.randn(guides, self.num_tasks, mean.shape[-1], device=obs.device)
            fixed = (self.guide_means[:, None, :] + self.guide_stds[:, None, None] * noise).clamp(-1.0, 1.0)
            sampled = torch.cat([sampled, fixed], dim=0)
        return sampled[self.held_choice, self.own]

    def drain_log(self) -> dict[str, np.ndarray]:
        """The steps logged since the last drain: ``guide_action [T, n]``, ``segment_start``, ``segment_end``."""
        if not self._log:
            empty = np.zeros((self.num_tasks, 0))
            return {"guide_action": empty.astype(np.int64), "segment_start": empty.astype(bool),
                    "segment_end": empty.astype(bool)}
        actions, starts, ends = (np.stack(column, axis=1) for column in zip(*self._log))
        self._log = []
        return {"guide_action": actions, "segment_start": starts, "segment_end": ends}

    def drain_gate_counts(self) -> dict[str, np.ndarray]:
        counts, self.gate_counts = self.gate_counts, self._empty_gate_counts()
        return counts

    # ------------------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict:
        return {"held_choice": self.held_choice.cpu(), "steps_in_segment": self.steps_in_segment.copy(),
                "needs_decision": self.needs_decision.copy(), "blocked": self.blocked.copy(),
                "blocked_next": self.blocked_next.copy(), "env_steps": self.env_steps,
                "trained_steps": self.trained_steps,
                "log": [tuple(np.copy(part) for part in entry) for entry in self._log],
                "gate_counts": {k: v.copy() for k, v in self.gate_counts.items()}}

    def load_state_dict(self, state: dict) -> None:
        self.held_choice = state["held_choice"].to(self.device)
        self.steps_in_segment = np.array(state["steps_in_segment"], dtype=np.int64)
        self.needs_decision = np.array(state["needs_decision"], dtype=bool)
        self.blocked = np.array(state["blocked"], dtype=bool)
        self.blocked_next = np.array(state["blocked_next"], dtype=bool)
        self.env_steps = int(state["env_steps"])
        self.trained_steps = int(state["trained_steps"])
        self._log = [tuple(np.copy(part) for part in entry) for entry in state["log"]]  # type: ignore[misc]
        self.gate_counts = {k: np.array(v) for k, v in state["gate_counts"].items()}
