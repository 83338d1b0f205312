"""**The Q-switch**: QMP's behaviour policy, who acts in task i at state s (docs/fidelity.md#q-switch).

In task i at state s every candidate policy j proposes
  an action; task i's critic scores each proposal; the best candidate acts (paper Eq. 3). All
  tasks are handled in two batched calls per environment step: all policies on all tasks'
  observations (``[P, T, A]``), then each task's critic on its candidates (``[T, P]`` scores).
  The paper's mixture ablations (§7.4, appendix H.1) replace the arg-max: a uniform choice over
  all candidates, a fixed domain-knowledge table (docs/fidelity.md#mixture-ablations), or a softmax over the scores.

Like every behaviour policy (learning/behaviour/own_policy.py), it returns the actions ``[T, A]`` and
the index of the policy that acted in each task ``[T]``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from environments.base import GuidePolicy
from learning.behaviour.options import MIXTURES, QSwitchOptions
from learning.behaviour.protocol import best_candidate
from learning.core.networks import TanhGaussianPolicy, TwinQFunction, tanh_gaussian_log_prob

EVALUATION_NOISE_SEED = 0
"""Seed of the score noise in evaluation (``--qmp_action_samples``, ``--qmp_entropy_term``): the same
noise at every call makes the evaluated choice a function of the state and the networks only."""


class QSwitchBehaviour:
    """QMP's behaviour policy over the T learned policies plus optional fixed guide policies.

    Candidate index j < T is learned policy j; j >= T is guide policy j - T. In training
    (``deterministic=False``) the chosen candidate's *sampled* action is executed; in evaluation
    (``deterministic=True``) its mean action, and warm-up and own-policy probability do not apply.
    In evaluation the scores of sampled actions and entropy estimates use the same noise at every call
    (:data:`EVALUATION_NOISE_SEED`), so the arg-max is deterministic; the stochastic mixtures (uniform,
    domain, softmax) draw the candidate in evaluation too.
    ``mixture_probabilities [T, T]`` (row i = receiving task, column j = policy j) is the "domain"
    mixture's table.
    """

    def __init__(self, policy: TanhGaussianPolicy, critic: TwinQFunction, alpha: Callable[[], torch.Tensor],
                 options: QSwitchOptions, guide_policies: tuple[GuidePolicy, ...] = (),
                 mixture_probabilities: np.ndarray | None = None) -> None:
        self.policy, self.critic, self.alpha, self.options = policy, critic, alpha, options
        self.num_tasks = policy.num_tasks
        self.num_candidates = self.num_tasks + len(guide_policies)
        device = next(policy.parameters()).device
        if options.mixture not in MIXTURES:
            raise ValueError(f"unknown mixture {options.mixture!r}; choose one of {', '.join(MIXTURES)}")
        self.mixture_probabilities = None
        if options.mixture == "domain":
            if mixture_probabilities is None:
                raise ValueError("the domain mixture needs a table of mixture probabilities")
            table = torch.zeros(self.num_tasks, self.num_candidates, device=device)
            table[:, : self.num_tasks] = torch.as_tensor(np.asarray(mixture_probabilities), dtype=torch.float32)
            self.mixture_probabilities = table
        self.guide_means: torch.Tensor | None
        self.guide_stds: torch.Tensor | None
        if guide_policies:
            self.guide_means = torch.tensor([g.mean for g in guide_policies], dtype=torch.float32, device=device)
            self.guide_stds = torch.tensor([g.std for g in guide_policies], dtype=torch.float32, device=device)
        else:
            self.guide_means = self.guide_stds = None
        self.held_choice = torch.arange(self.num_tasks, device=device)
        self.steps_since_selection = np.zeros(self.num_tasks, dtype=np.int64)
        self.iteration = 0
        self.lean = (options.mixture == "qswitch" and options.score_critic == "q1" and options.action_samples == 0
                     and not options.entropy_term and not guide_policies)
        """Whether :meth:`act` takes the straight path of the default scoring (same selections, fewer ops)."""
        self._own = torch.arange(self.num_tasks, device=device)

    def begin_iteration(self, iteration: int) -> None:
        """Tell the switch which training iteration is running (for the mixture warm-up)."""
        self.iteration = iteration

    def episode_start(self, started: np.ndarray) -> None:
        """Tasks whose episode (re)started re-select at their next step."""
        self.steps_since_selection[np.asarray(started, dtype=bool)] = 0

    def _candidates(self, obs: torch.Tensor, samples: int, generator: torch.Generator | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Candidate actions of every candidate policy for every task.

        Returns sampled actions ``[C, T, samples, A]``, mean actions ``[C, T, A]`` and the entropy
        estimates ``[C, T]`` (minus the mean log-probability of the samples). The noise comes from
        ``generator`` when given.
        """
        mean, log_std = self.policy.all_policies(obs)  # [T (policy), T (task), A]
        pre_tanh = mean.unsqueeze(2) + log_std.exp().unsqueeze(2) * torch.randn(
            *mean.shape[:2], samples, mean.shape[-1], device=obs.device, generator=generator)
        sampled = torch.tanh(pre_tanh)
        means = torch.tanh(mean)
        entropy = None
        if self.options.entropy_term:
            log_prob = tanh_gaussian_log_prob(mean.unsqueeze(2), log_std.unsqueeze(2), pre_tanh, sampled)
            entropy = -log_prob.mean(dim=2)
        if self.guide_means is not None and self.guide_stds is not None:
            guides, tasks, actions = self.guide_means.shape[0], self.num_tasks, mean.shape[-1]
            guide_mean = self.guide_means[:, None, :].expand(guides, tasks, actions)
            noise = torch.randn(guides, tasks, samples, actions, device=obs.device, generator=generator)
            guide_sampled = (guide_mean.unsqueeze(2) + self.guide_stds[:, None, None, None] * noise).clamp(-1.0, 1.0)
            sampled = torch.cat([sampled, guide_sampled], dim=0)
            means = torch.cat([means, guide_mean], dim=0)
            if entropy is not None:
                gaussian_entropy = actions * (0.5 * math.log(2 * math.pi * math.e) + torch.log(self.guide_stds))
                entropy = torch.cat([entropy, gaussian_entropy[:, None].expand(guides, tasks)], dim=0)
        return sampled, means, entropy

    def scores(self, obs: torch.Tensor, sampled: torch.Tensor, means: torch.Tensor,
               entropy: torch.Tensor | None) -> torch.Tensor:
        """Score ``[T, C]``: task i's critic on the candidates of every policy at task i's state."""
        candidates, tasks, samples, actions = sampled.shape
        if self.options.action_samples > 0:
            proposals = sampled.permute(1, 0, 2, 3).reshape(tasks, candidates * samples, actions)
        else:
            proposals = means.permute(1, 0, 2)  # [T, C, A]
        states = obs.unsqueeze(1).expand(tasks, proposals.shape[1], obs.shape[-1])
        if self.options.score_critic == "q1":
            value = self.critic.q1(states, proposals)  # [T, C(*k)]
        else:
            value = self.critic(states, proposals).min(dim=0).values
        if self.options.action_samples > 0:
            value = value.reshape(tasks, candidates, samples).mean(dim=-1)
        if entropy is not None:
            value = value + self.alpha().unsqueeze(1) * entropy.transpose(0, 1)
        return value

    def choose(self, obs: torch.Tensor, sampled: torch.Tensor, means: torch.Tensor,
               entropy: torch.Tensor | None) -> torch.Tensor:
        """The candidate ``[T]`` each task selects, by the configured mixture."""
        tasks, mixture = obs.shape[0], self.options.mixture
        if mixture == "uniform":
            return torch.randint(self.num_candidates, (tasks,), device=obs.device)
        if mixture == "domain":
            assert self.mixture_probabilities is not None  # set by __init__ for the domain mixture
            return torch.multinomial(self.mixture_probabilities, 1).squeeze(1)
        scores = self.scores(obs, sampled, means, entropy)
        if mixture == "softmax":  # Gumbel-max: the arg-max of logits + Gumbel noise samples their softmax
            gumbel = -torch.log(-torch.log(torch.rand_like(scores).clamp_min(torch.finfo(scores.dtype).tiny)))
            return best_candidate(scores / self.options.softmax_temperature + gumbel)
        return best_candidate(scores)

    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Actions ``[T, A]`` and acting candidate ``[T]`` for the observations ``[T, obs]``."""
        if self.lean:
            with torch.inference_mode():
                return self._act_lean(obs, deterministic)
        tasks = obs.shape[0]
        own = torch.arange(tasks, device=obs.device)
        reselect_np = self.steps_since_selection % self.options.sampling_freq == 0
        samples = max(self.options.action_samples, 1)
        generator = None
        if deterministic and (self.options.action_samples > 0 or self.options.entropy_term):
            generator = torch.Generator(device=obs.device).manual_seed(EVALUATION_NOISE_SEED)
        sampled, means, entropy = self._candidates(obs, samples, generator)
        if reselect_np.any():
            reselect = torch.as_tensor(reselect_np, device=obs.device)
            if not deterministic and self.iteration < self.options.warmup_iterations:
                choice = own
            else:
                choice = self.choose(obs, sampled, means, entropy)
                if not deterministic and self.options.own_policy_prob > 0:
                    keep_own = torch.rand(tasks, device=obs.device) < self.options.own_policy_prob
                    choice = torch.where(keep_own, own, choice)
            self.held_choice = torch.where(reselect, choice, self.held_choice)
        self.steps_since_selection += 1
        acting = self.held_choice
        action = means[acting, own] if deterministic else sampled[acting, own, 0]
        return action, acting.clone()

    def _act_lean(self, obs: torch.Tensor, deterministic: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`act` for the default scoring (task i's Q1 on every policy's mean action, arg-max):
        the same tensor operations on the same shapes as the general path, without its branches.
        Training draws the same random numbers in the same order; evaluation draws none."""
        tasks = obs.shape[0]
        own = self._own
        mean, log_std = self.policy.all_policies(obs)  # [T (policy), T (task), A]
        if not deterministic:
            noise = torch.randn(tasks, tasks, 1, mean.shape[-1], device=obs.device)
            sampled = torch.tanh(mean.unsqueeze(2) + log_std.exp().unsqueeze(2) * noise)
        means = torch.tanh(mean)
        reselect = self.steps_since_selection % self.options.sampling_freq == 0
        if reselect.any():
            if not deterministic and self.iteration < self.options.warmup_iterations:
                choice = own
            else:
                states = obs.unsqueeze(1).expand(tasks, tasks, obs.shape[-1])
                choice = best_candidate(self.critic.q1(states, means.permute(1, 0, 2)))
                if not deterministic and self.options.own_policy_prob > 0:
                    keep_own = torch.rand(tasks, device=obs.device) < self.options.own_policy_prob
                    choice = torch.where(keep_own, own, choice)
            if reselect.all():
                self.held_choice = choice
            else:
                self.held_choice = torch.where(torch.as_tensor(reselect, device=obs.device), choice, self.held_choice)
        self.steps_since_selection += 1
        acting = self.held_choice
        action = means[acting, own] if deterministic else sampled[acting, own, 0]
        return action, acting

    @property
    def lockstep_evaluation(self) -> bool:
        """Whether :meth:`act_rows` serves evaluation: the default scoring, re-selecting at every step."""
        return self.lean and self.options.sampling_freq == 1

    @torch.inference_mode()
    def act_rows(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Deterministic Q-switch for E states per task ``[T, E, obs]``: actions ``[T, E, A]`` and the
        acting candidate ``[T, E]``; every row selects, as :meth:`act` does with ``sampling_freq`` 1."""
        tasks, rows, obs_dim = obs.shape
        mean, _ = self.policy.all_policies(obs.reshape(tasks * rows, obs_dim))  # [C, T * E, A]
        candidates, action_dim = mean.shape[0], mean.shape[-1]
        means = torch.tanh(mean).reshape(candidates, tasks, rows, action_dim).permute(1, 2, 0, 3)  # [T, E, C, A]
        states = obs.unsqueeze(2).expand(tasks, rows, candidates, obs_dim).reshape(tasks, rows * candidates, obs_dim)
        scores = self.critic.q1(states, means.reshape(tasks, rows * candidates, action_dim))
        choice = best_candidate(scores.reshape(tasks, rows, candidates))
        index = choice[:, :, None, None].expand(tasks, rows, 1, action_dim)
        return torch.take_along_dim(means, index, dim=2).squeeze(2), choice

    def state_dict(self) -> dict:
        return {"held_choice": self.held_choice.cpu(), "steps_since_selection": self.steps_since_selection.copy(),
                "iteration": self.iteration}

    def load_state_dict(self, state: dict) -> None:
        self.held_choice = state["held_choice"].to(self.held_choice.device)
        self.steps_since_selection = np.array(state["steps_since_selection"], dtype=np.int64)
        self.iteration = int(state["iteration"])
