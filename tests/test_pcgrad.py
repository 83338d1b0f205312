"""PCGrad (docs/fidelity.md#pcgrad): projection of conflicting task gradients, the merge rule, per-task gradients of
batched losses, and the twin-critic split."""

from __future__ import annotations

import pytest
import torch

from learning.baselines.pcgrad import PCGradSAC, merge_projected, project_conflicting, twin_halves
from learning.core.networks import TanhGaussianPolicy, TwinQFunction
from learning.core.sac import SACSettings

CONFLICTING = torch.tensor([[1.0, 0.0], [-1.0, 1.0]])  # dot product -1


def test_conflicting_gradients_lose_the_component_along_each_other():
    projected = project_conflicting(CONFLICTING, order=[1, 0])
    # g1 - (g1.g2 / |g2|^2) g2 = (1, 0) + 0.5 (-1, 1); g2 - (g2.g1 / |g1|^2) g1 = (-1, 1) + (1, 0).
    assert torch.allclose(projected, torch.tensor([[0.5, 0.5], [0.0, 1.0]]))
    assert projected[0] @ CONFLICTING[1] == pytest.approx(0.0, abs=1e-7)
    assert projected[1] @ CONFLICTING[0] == pytest.approx(0.0, abs=1e-7)


def test_agreeing_gradients_are_left_alone():
    grads = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    assert torch.equal(project_conflicting(grads, order=[0, 1]), grads)


def test_projection_uses_the_original_other_gradients_in_the_given_order():
    grads = torch.tensor([[1.0, 0.0, 0.0], [-1.0, 1.0, 0.0], [-1.0, 0.0, 1.0]])
    # Task 0 meets g1 first: (0.5, 0.5, 0); that still conflicts with g2 (dot -0.5): + 0.25 (-1, 0, 1).
    assert torch.allclose(project_conflicting(grads, order=[1, 2, 0])[0], torch.tensor([0.25, 0.5, 0.25]))
    # In the other order: (0.5, 0, 0.5), then against g1 (dot -0.5): + 0.25 (-1, 1, 0).
    assert torch.allclose(project_conflicting(grads, order=[2, 1, 0])[0], torch.tensor([0.25, 0.25, 0.5]))


def test_merge_averages_shared_elements_and_sums_task_specific_ones():
    projected = torch.tensor([[0.5, 0.5], [0.0, 1.0]])
    # Element 0 is shared (mean), element 1 belongs to one task (sum).
    assert torch.allclose(merge_projected(projected, torch.tensor([False, True])), torch.tensor([0.25, 1.5]))


class LinearTaskLosses(PCGradSAC):
    """A PCGradSAC whose 'actor' is a shared scalar u and a task-specific scalar v, with task losses
    L1 = u, L2 = -u + v."""

    def __init__(self) -> None:
        policy = TanhGaussianPolicy("multihead", 2, 1, 1, (2,))
        super().__init__(policy, TwinQFunction("multihead", 2, 1, 1, (2,)), SACSettings())
        self.u, self.v = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
        self.task_specific.update({self.u: False, self.v: True})
        self.policy_optimizer = torch.optim.SGD([self.u, self.v], lr=1.0)


def test_surgery_step_applies_the_merged_gradient():
    sac = LinearTaskLosses()
    losses = torch.stack([sac.u[0], -sac.u[0] + sac.v[0]])
    sac._minimise(sac.policy_optimizer, losses, "actor")
    # Per-task gradients (1, 0) and (-1, 1) conflict; merged (0.25, 1.5) whatever the order; SGD lr 1.
    assert torch.allclose(torch.cat([sac.u, sac.v]).detach(), torch.tensor([-0.25, -1.5]))


@pytest.mark.parametrize("architecture", ["multihead", "shared"])
def test_agreeing_tasks_get_the_plain_combined_gradient_whatever_is_zero(architecture):
    """Non-conflicting task gradients: PCGrad changes nothing, so the step is the gradient of the mean
    task loss on shared parameters and of the sum on task-specific ones (the multihead heads), even
    where one task's gradient is exactly zero (input slot 3 is 0 for task 2, inactive ReLU units)."""
    torch.manual_seed(0)
    tasks, obs_dim = 3, 4
    policy = TanhGaussianPolicy(architecture, tasks, obs_dim, 1, (16,))
    sac = PCGradSAC(policy, TwinQFunction(architecture, tasks, obs_dim, 1, (4,)), SACSettings(per_task_losses=False))
    with torch.no_grad():
        head = policy.mlp.head
        head.weight.copy_(head.weight[:1].expand_as(head.weight))
        head.bias.copy_(head.bias[:1].expand_as(head.bias))
    rows = torch.rand(8, obs_dim).expand(tasks, 8, obs_dim).clone()
    rows[2, :, 3] = 0.0

    def task_losses() -> torch.Tensor:
        return policy(rows)[0][..., 0].mean(dim=-1)

    parameters = list(policy.parameters())
    grads = torch.autograd.grad(task_losses(), parameters, grad_outputs=torch.eye(tasks), is_grads_batched=True)
    flat = torch.cat([grad.reshape(tasks, -1) for grad in grads], dim=1)
    assert (flat @ flat.T).min() > 0  # the tasks agree: no projection
    assert (grads[0][2, :, 3] == 0).all() and (grads[0][0, :, 3] != 0).any()  # task 2 does not touch slot 3
    mean_grads = torch.autograd.grad(task_losses().mean(), parameters)
    sum_grads = torch.autograd.grad(task_losses().sum(), parameters)
    heads = set(policy.mlp.head.parameters()) if architecture == "multihead" else set()
    expected = [sum_grad if parameter in heads else mean_grad
                for parameter, mean_grad, sum_grad in zip(parameters, mean_grads, sum_grads)]
    before = [parameter.detach().clone() for parameter in parameters]
    sac.policy_optimizer = torch.optim.SGD(parameters, lr=1.0)
    sac._minimise(sac.policy_optimizer, task_losses(), "actor")
    for old, parameter, grad in zip(before, parameters, expected):
        torch.testing.assert_close(old - parameter.detach(), grad, rtol=1e-5, atol=1e-7)


def test_twin_halves_split_q1_from_q2():
    critic = TwinQFunction("multihead", 3, 2, 1, (4,))
    obs, action = torch.randn(3, 5, 2), torch.randn(3, 5, 1)
    before = critic(obs, action)
    with torch.no_grad():
        first, _ = twin_halves(tuple(parameter.unsqueeze(0) for parameter in critic.parameters()))
        for half in first:
            half.add_(0.5)  # views into the parameters: moves the Q1 half only
    after = critic(obs, action)
    assert not torch.allclose(after[0], before[0]) and torch.equal(after[1], before[1])


@pytest.mark.parametrize("architecture, skip_alpha", [("multihead", True), ("shared", False)])
def test_pcgrad_sac_update_takes_finite_steps(architecture, skip_alpha):
    torch.manual_seed(0)
    tasks = 3
    policy = TanhGaussianPolicy(architecture, tasks, 4, 2, (8,))
    critic = TwinQFunction(architecture, tasks, 4, 2, (8,), layer_norm=True)
    sac = PCGradSAC(policy, critic, SACSettings(per_task_losses=False), skip_alpha_pc_grad=skip_alpha)
    batch = {"observation": torch.randn(tasks, 6, 4), "action": torch.rand(tasks, 6, 2) * 2 - 1,
             "reward": torch.randn(tasks, 6), "next_observation": torch.randn(tasks, 6, 4),
             "terminal": torch.zeros(tasks, 6)}
    before = [parameter.detach().clone() for parameter in sac.parameters()]
    stats = sac.update(batch)
    after = list(sac.parameters())
    assert all(torch.isfinite(parameter).all() for parameter in after)
    assert all(not torch.equal(a, b) for a, b in zip(before, after))
    assert stats["Qf1Loss"].shape == (tasks,)
