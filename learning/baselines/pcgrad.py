"""PCGrad, gradient surgery for multi-task learning (Yu et al. 2020; docs/fidelity.md#pcgrad), for the SAC family.

Each task's loss is its mean over its own samples. With the per-task gradients g_1..g_T of a network:

1. projection: the tasks j are visited in a random order (one per update, shared by all i); for
   every task i != j whose (already projected) g_i conflicts with the original g_j (negative dot
   product), the component along g_j is removed: ``g_i <- g_i - (g_i . g_j) / |g_j|^2 g_j``;
2. merging: shared parameters get the mean of the projected gradients, parameters that belong to one
   task their sum. Which is which comes from the network's structure, as in the original (decided per
   parameter tensor, never from which gradient elements happen to be zero): a multihead network's
   heads (each head slice is one task's) and a separate network's every layer are task-specific, a
   multihead trunk and everything of a shared network are shared; per-task temperatures are
   task-specific, a single temperature is shared.

Applied to the actor and to each critic (Q1 and Q2 separately, as the original's two networks), and to
the temperature unless ``--skip_alpha_pc_grad`` (default). The T per-task gradients come from one
vectorised backward call (``is_grads_batched``), not a loop over tasks; the projection loops over the
T positions of the random order (each step depends on the previous), batched over receiving tasks.
"""

from __future__ import annotations

import torch
from torch import nn

from learning.core.networks import TanhGaussianPolicy, TwinQFunction
from learning.core.sac import MultiTaskSAC, SACSettings


def project_conflicting(grads: torch.Tensor, order: list[int]) -> torch.Tensor:
    """PCGrad's projection of per-task gradients ``[T, P]``, visiting the other tasks in ``order``."""
    projected = grads.clone()
    squared_norms = grads.pow(2).sum(dim=1).clamp_min(torch.finfo(grads.dtype).tiny)
    tasks = torch.arange(grads.shape[0], device=grads.device)
    for other in order:
        dots = projected @ grads[other]
        conflicting = (dots < 0) & (tasks != other)
        coefficients = torch.where(conflicting, dots / squared_norms[other], 0.0)
        projected -= coefficients.unsqueeze(1) * grads[other]
    return projected


def merge_projected(projected: torch.Tensor, task_specific: torch.Tensor) -> torch.Tensor:
    """One gradient ``[P]`` from projected ``[T, P]``: the sum over tasks where ``task_specific [P]``, the mean
    elsewhere."""
    return torch.where(task_specific, projected.sum(dim=0), projected.mean(dim=0))


def pcgrad(per_task_grads: list[torch.Tensor], task_specific: list[bool]) -> list[torch.Tensor]:
    """PCGrad over a network's parameters: per-task gradients ``[T, *shape]`` -> merged ``[*shape]``.

    ``task_specific[k]`` says whether parameter k belongs to one task (its projected gradients are
    summed) or is shared (averaged).
    """
    tasks = per_task_grads[0].shape[0]
    flat = torch.cat([grad.reshape(tasks, -1) for grad in per_task_grads], dim=1)
    mask = torch.cat([torch.full((grad[0].numel(),), own, dtype=torch.bool, device=flat.device)
                      for grad, own in zip(per_task_grads, task_specific)])
    order = torch.randperm(tasks).tolist()
    merged = merge_projected(project_conflicting(flat, order), mask)
    sizes = [grad[0].numel() for grad in per_task_grads]
    return [part.reshape(grad.shape[1:]) for part, grad in zip(merged.split(sizes), per_task_grads)]


def structural_split(network: TanhGaussianPolicy | TwinQFunction) -> dict[nn.Parameter, bool]:
    """Which parameters of a policy or critic belong to one task (True) or are shared (False)."""
    mlp = network.mlp
    trunk_own, head_own = {"separate": (True, True), "multihead": (False, True),
                           "shared": (False, False)}[mlp.architecture]
    head = set(mlp.head.parameters())
    return {parameter: head_own if parameter in head else trunk_own for parameter in network.parameters()}


class PCGradSAC(MultiTaskSAC):
    """The SAC family (one loss over all tasks' samples) with PCGrad on the actor and the critics."""

    def __init__(self, policy: TanhGaussianPolicy, critic: TwinQFunction, settings: SACSettings,
                 skip_alpha_pc_grad: bool = True) -> None:
        super().__init__(policy, critic, settings)
        self.skip_alpha_pc_grad = skip_alpha_pc_grad
        self.task_specific = {**structural_split(policy), **structural_split(critic),
                              self.log_alpha: self.log_alpha.numel() > 1}

    def _reduce(self, per_sample: torch.Tensor, term: str, weight: torch.Tensor | None = None) -> torch.Tensor:
        """Per-task losses ``[T]`` (the mean over each task's samples) for the terms PCGrad handles."""
        if term == "alpha" and self.skip_alpha_pc_grad:
            return super()._reduce(per_sample, term, weight)
        return self._task_means(per_sample, weight)

    def _minimise(self, optimizer: torch.optim.Optimizer, loss: torch.Tensor, term: str) -> None:
        if loss.dim() == 0:
            super()._minimise(optimizer, loss, term)
            return
        parameters = optimizer.param_groups[0]["params"]
        eye = torch.eye(loss.shape[0], device=loss.device)
        per_task = torch.autograd.grad(loss, parameters, grad_outputs=eye, is_grads_batched=True)
        task_specific = [self.task_specific[parameter] for parameter in parameters]
        if term == "critic":  # Q1 and Q2 are separate networks: one PCGrad each
            q1_grads, q2_grads = twin_halves(per_task)
            merged = [torch.cat(pair, dim=0)
                      for pair in zip(pcgrad(q1_grads, task_specific), pcgrad(q2_grads, task_specific))]
        else:
            merged = pcgrad(list(per_task), task_specific)
        optimizer.zero_grad(set_to_none=True)
        for parameter, grad in zip(parameters, merged):
            parameter.grad = grad
        optimizer.step()


def twin_halves(per_task_grads: tuple[torch.Tensor, ...]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Split twin-critic gradients ``[T, members, ...]`` into the Q1 and Q2 parts.

    A TwinQFunction's TaskMLP stores its two ensemble members first along every parameter's leading
    axis (member-major), so the first half of that axis is Q1 and the second Q2.
    """
    first, second = [], []
    for grad in per_task_grads:
        half = grad.shape[1] // 2
        first.append(grad[:, :half])
        second.append(grad[:, half:])
    return first, second
