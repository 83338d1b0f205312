"""Task-axis networks: shapes, which parameters tasks share, initialisation, tanh-Gaussian log-prob."""

from __future__ import annotations

import math

import pytest
import torch

from learning.core.networks import (
    LOG_STD_MAX,
    LOG_STD_MIN,
    TanhGaussianPolicy,
    TaskMLP,
    TwinQFunction,
    tanh_gaussian_log_prob,
)

T, B, OBS, ACT = 3, 5, 4, 2


@pytest.mark.parametrize("architecture", ["separate", "multihead", "shared"])
def test_output_shapes(architecture):
    policy = TanhGaussianPolicy(architecture, T, OBS, ACT, (16, 16))
    critic = TwinQFunction(architecture, T, OBS, ACT, (16, 16), layer_norm=True)
    mean, log_std = policy(torch.randn(T, B, OBS))
    assert mean.shape == log_std.shape == (T, B, ACT)
    assert critic(torch.randn(T, B, OBS), torch.randn(T, B, ACT)).shape == (2, T, B)
    all_mean, _ = policy.all_policies(torch.randn(7, OBS))
    assert all_mean.shape == (T, 7, ACT)


def _rows_after_changing(mlp: TaskMLP, parameter: torch.nn.Parameter, index: tuple) -> torch.Tensor:
    x = torch.randn(T, B, OBS).abs()  # positive inputs keep ReLUs active
    before = mlp(x)
    with torch.no_grad():
        parameter[index] += 1.0
    return (mlp(x) - before).abs().sum(dim=(0, 2, 3))


def test_separate_tasks_share_nothing():
    mlp = TaskMLP("separate", T, OBS, (8,), 3)
    changed = _rows_after_changing(mlp, mlp.hidden[0].bias, (1, 0, slice(None)))
    assert changed[1] > 0 and changed[0] == 0 and changed[2] == 0


def test_multihead_shares_the_trunk_but_not_the_heads():
    mlp = TaskMLP("multihead", T, OBS, (8,), 3)
    assert (_rows_after_changing(mlp, mlp.hidden[0].bias, (0, 0, slice(None))) > 0).all()
    changed = _rows_after_changing(mlp, mlp.head.bias, (2, 0, slice(None)))
    assert changed[2] > 0 and changed[0] == 0 and changed[1] == 0


def test_shared_network_answers_all_tasks_alike():
    mlp = TaskMLP("shared", T, OBS, (8,), 3)
    x = torch.randn(1, B, OBS).expand(T, B, OBS)
    out = mlp(x)[0]
    assert torch.allclose(out[0], out[1]) and torch.allclose(out[0], out[2])


def test_separate_ensemble_equals_a_loop_of_independent_mlps():
    mlp = TaskMLP("separate", T, OBS, (8, 8), 3, ensemble=2)
    x = torch.randn(T, B, OBS)
    out = mlp(x)
    for member in range(2):
        for task in range(T):
            index = member * T + task
            h = x[task]
            for layer in mlp.hidden:
                h = torch.relu(h @ layer.weight[index] + layer.bias[index])
            expected = h @ mlp.head.weight[index] + mlp.head.bias[index]
            assert torch.allclose(out[member, task], expected, atol=1e-6)


def test_xavier_initialisation_and_zero_biases():
    torch.manual_seed(0)
    policy = TanhGaussianPolicy("separate", 50, 200, 3, (300,))
    weight = policy.mlp.hidden[0].weight
    bound = math.sqrt(6.0 / (200 + 300))
    assert weight.abs().max() <= bound and weight.abs().max() > 0.99 * bound  # uniform
    critic = TwinQFunction("separate", 50, 197, 3, (300,))
    assert abs(critic.mlp.hidden[0].weight.std().item() - math.sqrt(2.0 / 500)) < 2e-3  # normal
    assert all(float(layer.bias.detach().abs().max()) == 0.0 for layer in [*policy.mlp.hidden, policy.mlp.head])


def test_log_std_is_clamped():
    policy = TanhGaussianPolicy("separate", 1, 1, 1, (4,))
    with torch.no_grad():
        policy.mlp.head.bias[..., 1] = 50.0
    assert policy(torch.zeros(1, 1, 1))[1].item() == LOG_STD_MAX
    with torch.no_grad():
        policy.mlp.head.bias[..., 1] = -50.0
    assert policy(torch.zeros(1, 1, 1))[1].item() == LOG_STD_MIN


def test_tanh_gaussian_log_prob_matches_change_of_variables():
    torch.manual_seed(1)
    mean, log_std = torch.randn(T, B, ACT), torch.randn(T, B, ACT) * 0.3
    pre_tanh = mean + log_std.exp() * torch.randn(T, B, ACT)
    action = torch.tanh(pre_tanh)
    normal = torch.distributions.Normal(mean, log_std.exp())
    expected = (normal.log_prob(pre_tanh) - torch.log(1 - action.pow(2) + 1e-6)).sum(-1)
    assert torch.allclose(tanh_gaussian_log_prob(mean, log_std, pre_tanh, action), expected, atol=1e-5)


@pytest.mark.parametrize("architecture", ["separate", "multihead", "shared"])
def test_first_critic_alone_equals_the_first_of_the_twins(architecture):
    critic = TwinQFunction(architecture, T, OBS, ACT, (16, 16), layer_norm=True)
    obs, action = torch.randn(T, B, OBS), torch.randn(T, B, ACT)
    assert torch.allclose(critic.q1(obs, action), critic(obs, action)[0], atol=1e-6)


@pytest.mark.parametrize("architecture", ["separate", "multihead", "shared"])
def test_all_policies_equals_each_policy_on_every_row(architecture):
    policy = TanhGaussianPolicy(architecture, T, OBS, ACT, (16, 16))
    obs = torch.randn(7, OBS)
    mean, log_std = policy.all_policies(obs)
    expected_mean, expected_log_std = policy(obs.unsqueeze(0).expand(T, 7, OBS))
    assert torch.allclose(mean, expected_mean, atol=1e-6) and torch.allclose(log_std, expected_log_std, atol=1e-6)


def test_layer_norm_comes_before_each_hidden_linear_as_in_garage():
    """garage's MLP with layer_normalization: LayerNorm(in) -> Linear -> ReLU -> LayerNorm(h1) -> Linear -> ReLU
    -> output Linear, the raw [obs, action] input normalised too, no LayerNorm before the output layer."""
    torch.manual_seed(0)
    critic = TwinQFunction("separate", 1, OBS, ACT, (16, 8), layer_norm=True)
    mlp = critic.mlp
    with torch.no_grad():
        for norm in mlp.norms:
            norm.weight.uniform_(0.5, 1.5)
            norm.bias.uniform_(-0.5, 0.5)
    obs, action = torch.randn(1, B, OBS), torch.randn(1, B, ACT)
    for member in range(2):
        x = torch.cat([obs[0], action[0]], dim=-1)
        for norm, layer in zip(mlp.norms, mlp.hidden):
            normalised = torch.nn.functional.layer_norm(x, (x.shape[-1],), norm.weight[member, 0], norm.bias[member, 0])
            x = torch.relu(normalised @ layer.weight[member] + layer.bias[member, 0])
        expected = (x @ mlp.head.weight[member] + mlp.head.bias[member, 0])[:, 0]
        torch.testing.assert_close(critic(obs, action)[member, 0], expected)
