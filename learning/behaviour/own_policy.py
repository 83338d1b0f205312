"""The default behaviour policy: task i acts with policy i (the original's MultiPolicyWrapper).

Every behaviour policy answers the same calls (``BehaviourPolicy`` in learning/behaviour/protocol.py):
``act(obs [T, obs], deterministic)`` returns the actions ``[T, A]`` and the index of the candidate
policy that acted in each task ``[T]``; ``episode_start``, ``begin_iteration``, ``state_dict`` and
``load_state_dict`` carry what it holds across steps (the Q-switch's held choice, for example).
"""

from __future__ import annotations

import numpy as np
import torch

from learning.core.networks import TanhGaussianPolicy


class OwnPolicyBehaviour:
    """Each task acts with its own policy: a sample, or ``tanh(mean)`` when deterministic."""

    def __init__(self, policy: TanhGaussianPolicy) -> None:
        self.policy = policy
        self.num_candidates = policy.num_tasks

    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std = self.policy(obs.unsqueeze(1))
        action = torch.tanh(mean) if deterministic else torch.tanh(mean + log_std.exp() * torch.randn_like(mean))
        return action[:, 0], torch.arange(obs.shape[0], device=obs.device)

    lockstep_evaluation = True

    @torch.no_grad()
    def act_rows(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Deterministic actions ``[T, E, A]`` for E states per task ``[T, E, obs]`` (lockstep evaluation)."""
        mean, _ = self.policy(obs)
        tasks, rows = obs.shape[:2]
        return torch.tanh(mean), torch.arange(tasks, device=obs.device).unsqueeze(1).expand(tasks, rows)

    def episode_start(self, started: np.ndarray) -> None:
        """Nothing is held across steps."""

    def begin_iteration(self, iteration: int) -> None:
        """Nothing depends on the iteration."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Stateless."""
