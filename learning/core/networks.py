"""Networks with the task axis first: tanh-Gaussian policies and twin Q-functions (docs/fidelity.md#networks).

Every network takes inputs shaped ``[T, B, features]`` (row t belongs to task t) and answers for
all tasks in one computation, whatever the architecture:

* ``separate``: T independent MLPs stored as one batched ensemble (weights ``[T, in, out]``, one
  ``baddbmm`` per layer), never T modules in a Python loop;
* ``multihead``: one shared trunk, T output heads (head t answers for row t);
* ``shared``: one MLP for every row, no task identity.

Hidden activation is ReLU (the original's choice; the paper says tanh, docs/fidelity.md#activation).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

LOG_STD_MIN = -20.0
LOG_STD_MAX = 2.0


class BatchedLinear(nn.Module):
    """``members`` independent linear layers applied to ``[members, B, in]`` in one call."""

    def __init__(self, members: int, in_features: int, out_features: int, init: str) -> None:
        super().__init__()
        self.members, self.in_features, self.out_features = members, in_features, out_features
        self.weight = nn.Parameter(torch.empty(members, in_features, out_features))
        self.bias = nn.Parameter(torch.zeros(members, 1, out_features))
        bound = math.sqrt(6.0 / (in_features + out_features))
        with torch.no_grad():
            if init == "xavier_uniform":
                self.weight.uniform_(-bound, bound)
            elif init == "xavier_normal":
                self.weight.normal_(0.0, math.sqrt(2.0 / (in_features + out_features)))
            else:
                raise ValueError(f"unknown init {init!r}")

    def forward(self, x: torch.Tensor, members: slice = slice(None)) -> torch.Tensor:
        """``x [members, B, in] -> [members, B, out]``; ``members`` selects a subset of the layers."""
        if members == slice(None):  # indexing would add a view whose backward zero-fills a weight-sized gradient
            return torch.baddbmm(self.bias, x, self.weight)
        return torch.baddbmm(self.bias[members], x, self.weight[members])


class BatchedLayerNorm(nn.Module):
    """Layer normalisation with one affine transform per ensemble member."""

    def __init__(self, members: int, features: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(members, 1, features))
        self.bias = nn.Parameter(torch.zeros(members, 1, features))

    def forward(self, x: torch.Tensor, members: slice = slice(None)) -> torch.Tensor:
        if members == slice(None):
            return F.layer_norm(x, x.shape[-1:]) * self.weight + self.bias
        return F.layer_norm(x, x.shape[-1:]) * self.weight[members] + self.bias[members]


class TaskMLP(nn.Module):
    """An MLP over the task axis: ``[T, B, in] -> [ensemble, T, B, out]``.

    ``ensemble`` stacks independent copies (2 for twin critics). The architecture decides which
    parameters tasks share (module docstring).
    """

    def __init__(
        self,
        architecture: str,
        num_tasks: int,
        in_features: int,
        hidden_sizes: Sequence[int],
        out_features: int,
        ensemble: int = 1,
        layer_norm: bool = False,
        init: str = "xavier_uniform",
    ) -> None:
        super().__init__()
        if architecture not in ("separate", "multihead", "shared"):
            raise ValueError(f"unknown architecture {architecture!r}")
        self.architecture, self.num_tasks, self.ensemble = architecture, num_tasks, ensemble
        self.out_features = out_features
        trunk_members = ensemble * num_tasks if architecture == "separate" else ensemble
        head_members = ensemble if architecture == "shared" else ensemble * num_tasks
        sizes = [in_features, *hidden_sizes]
        self.hidden = nn.ModuleList(
            BatchedLinear(trunk_members, a, b, init) for a, b in zip(sizes[:-1], sizes[1:])
        )
        # As garage's MLP module: LayerNorm before each hidden Linear, on its input (the raw input first).
        self.norms = nn.ModuleList(BatchedLayerNorm(trunk_members, a) for a in sizes[:-1]) if layer_norm else None
        self.head = BatchedLinear(head_members, sizes[-1], out_features, init)

    def _trunk(self, x: torch.Tensor, members: slice) -> torch.Tensor:
        for index, layer in enumerate(self.hidden):
            if self.norms is not None:
                x = self.norms[index](x, members)
            x = torch.relu_(layer(x, members))  # a fresh layer output that no backward needs
        return x

    def every_task_on_rows(self, x: torch.Tensor) -> torch.Tensor:
        """Every task's network on the same rows: ``[N, in] -> [ensemble, T, N, out]``.

        A shared trunk (multihead, shared) runs once on the N rows instead of T times.
        """
        rows, features = x.shape
        if self.architecture == "separate":
            return self(x.unsqueeze(0).expand(self.num_tasks, rows, features))
        e = self.ensemble
        h = self._trunk(x.unsqueeze(0).expand(e, rows, features), slice(None))
        if self.architecture == "shared":
            out = self.head(h)
            return out.unsqueeze(1).expand(e, self.num_tasks, rows, self.out_features)
        h = h.unsqueeze(1).expand(e, self.num_tasks, rows, h.shape[-1]).reshape(e * self.num_tasks, rows, h.shape[-1])
        return self.head(h).reshape(e, self.num_tasks, rows, self.out_features)

    def last_hidden(self, x: torch.Tensor) -> torch.Tensor:
        """The last hidden layer ``[ensemble, T, B, hidden]`` (DnC's representation regulariser)."""
        return self._forward(x, with_head=False)

    def forward(self, x: torch.Tensor, member: int | None = None) -> torch.Tensor:
        """``[T, B, in] -> [ensemble, T, B, out]``, or ``[1, T, B, out]`` for one ensemble ``member``."""
        return self._forward(x, with_head=True, member=member)

    def _forward(self, x: torch.Tensor, with_head: bool, member: int | None = None) -> torch.Tensor:
        tasks, batch, features = x.shape
        if tasks != self.num_tasks:
            raise ValueError(f"expected {self.num_tasks} task rows, got input of shape {tuple(x.shape)}")
        e = self.ensemble if member is None else 1
        per_member = slice(None) if member is None else slice(member, member + 1)
        per_task_member = slice(None) if member is None else slice(member * tasks, (member + 1) * tasks)
        if self.architecture == "separate":
            h = self._trunk(x.unsqueeze(0).expand(e, tasks, batch, features).reshape(e * tasks, batch, features),
                            per_task_member)
            out = self.head(h, per_task_member) if with_head else h
            return out.reshape(e, tasks, batch, out.shape[-1])
        h = self._trunk(x.reshape(1, tasks * batch, features).expand(e, tasks * batch, features), per_member)
        if not with_head:
            return h.reshape(e, tasks, batch, h.shape[-1])
        if self.architecture == "shared":
            return self.head(h, per_member).reshape(e, tasks, batch, self.out_features)
        out = self.head(h.reshape(e * tasks, batch, h.shape[-1]), per_task_member)
        return out.reshape(e, tasks, batch, self.out_features)


class TanhGaussianPolicy(nn.Module):
    """Per-task tanh-squashed diagonal Gaussian policies (docs/fidelity.md#networks), one tanh everywhere.

    ``forward(obs [T, B, obs])`` returns the pre-tanh mean and the clamped log-std, ``[T, B, act]``.
    """

    def __init__(self, architecture: str, num_tasks: int, obs_dim: int, action_dim: int,
                 hidden_sizes: Sequence[int]) -> None:
        super().__init__()
        self.num_tasks, self.action_dim = num_tasks, action_dim
        self.mlp = TaskMLP(architecture, num_tasks, obs_dim, hidden_sizes, 2 * action_dim, init="xavier_uniform")

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.mlp(obs)[0]
        mean, log_std = out[..., : self.action_dim], out[..., self.action_dim:]
        return mean, log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)

    def sample(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Reparameterised sample: (action, log-prob, pre-tanh mean, log-std)."""
        mean, log_std = self(obs)
        action, log_prob = sample_tanh_gaussian(mean, log_std)
        return action, log_prob, mean, log_std

    def all_policies(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Every policy on every row: ``obs [N, obs] -> mean, log_std [T (policy), N, act]``."""
        out = self.mlp.every_task_on_rows(obs)[0]
        mean, log_std = out[..., : self.action_dim], out[..., self.action_dim:]
        return mean, log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)


class TwinQFunction(nn.Module):
    """Twin per-task Q-functions Q1, Q2 as one ensemble: ``(obs, act) [T, B, .] -> [2, T, B]``."""

    def __init__(self, architecture: str, num_tasks: int, obs_dim: int, action_dim: int,
                 hidden_sizes: Sequence[int], layer_norm: bool = False) -> None:
        super().__init__()
        self.num_tasks = num_tasks
        self.mlp = TaskMLP(architecture, num_tasks, obs_dim + action_dim, hidden_sizes, 1, ensemble=2,
                           layer_norm=layer_norm, init="xavier_normal")

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.mlp(torch.cat([obs, action], dim=-1))[..., 0]

    def q1(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """The first critic only, ``[T, B]`` (the Q-switch's score, at half the cost)."""
        return self.mlp(torch.cat([obs, action], dim=-1), member=0)[0, ..., 0]


def sample_tanh_gaussian(mean: torch.Tensor, log_std: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Reparameterised ``a = tanh(mean + std * eps)`` and its log-probability (summed over actions)."""
    pre_tanh = mean + log_std.exp() * torch.randn_like(mean)
    action = torch.tanh(pre_tanh)
    return action, tanh_gaussian_log_prob(mean, log_std, pre_tanh, action)


def tanh_gaussian_log_prob(mean: torch.Tensor, log_std: torch.Tensor, pre_tanh: torch.Tensor,
                           action: torch.Tensor) -> torch.Tensor:
    """log pi(a|s) of a tanh-Gaussian, with the original's Jacobian term ``log(1 - a^2 + 1e-6)``."""
    normal_log_prob = (-0.5 * ((pre_tanh - mean) / log_std.exp()) ** 2 - log_std
                       - 0.5 * math.log(2 * math.pi)).sum(-1)
    jacobian = torch.log((1.0 - action.pow(2)).clamp(0.0, 1.0) + 1e-6).sum(-1)
    return normal_log_prob - jacobian
