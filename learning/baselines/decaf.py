"""DECAF critics: each task's Q is a learned, state-action dependent mixture of every task's Q
(Glatt et al. 2020; docs/fidelity.md#decaf, #decaf-frozen-targets), on the task axis.

For task i and each critic family (Q1 and Q2): a weighting network on [s, a] gives T logits, a
softmax turns them into weights w_i(s, a), and ``Q_i^DECAF(s, a) = sum_k w_ik(s, a) Q_k(s, a)`` over
the base critics Q_k. Task i's loss trains its weighting network and its own base critic Q_i; the
other tasks' Q_k enter without gradient. The whole module (weighting networks and every base critic)
is one parameter set, so the target network, a copy of it, follows the online networks through the
usual Polyak update: the original's targets kept the other tasks' Q_k frozen at their initial weights
(docs/fidelity.md#decaf-frozen-targets); here they are averaged like every other parameter.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from learning.core.networks import TaskMLP, TwinQFunction


class DecafTwinQFunction(nn.Module):
    """Twin DECAF critics ``(obs, act) [T, B, .] -> [2, T, B]``, called like :class:`TwinQFunction`."""

    own: torch.Tensor
    """``[1, T, T, 1]``: critic k is task i's own (a buffer)."""

    def __init__(self, num_tasks: int, obs_dim: int, action_dim: int, hidden_sizes: Sequence[int],
                 layer_norm: bool = False) -> None:
        super().__init__()
        self.num_tasks = num_tasks
        self.base = TwinQFunction("separate", num_tasks, obs_dim, action_dim, hidden_sizes, layer_norm)
        self.weighting = TaskMLP("separate", num_tasks, obs_dim + action_dim, hidden_sizes, num_tasks, ensemble=2,
                                 layer_norm=layer_norm, init="xavier_normal")
        self.register_buffer("own", torch.eye(num_tasks, dtype=torch.bool).reshape(1, num_tasks, num_tasks, 1),
                             persistent=False)

    def mixture_weights(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Weights ``[2, T (task i), B, T (critic k)]``: softmax over k of task i's weighting network."""
        return torch.softmax(self.weighting(torch.cat([obs, action], dim=-1)), dim=-1)

    def base_values(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Every base critic on every task's rows: ``[2, T (critic k), T (task i), B]``, with gradient
        only where k = i."""
        tasks, batch = obs.shape[:2]
        pairs = torch.cat([obs, action], dim=-1).reshape(1, tasks * batch, -1).expand(tasks, -1, -1)
        values = self.base.mlp(pairs)[..., 0].reshape(2, tasks, tasks, batch)
        return torch.where(self.own, values, values.detach())

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        weights = self.mixture_weights(obs, action).permute(0, 3, 1, 2)
        return (weights * self.base_values(obs, action)).sum(dim=1)
