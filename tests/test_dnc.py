"""DnC (docs/fidelity.md#dnc): the KL between pre-tanh Gaussians, the coefficient matrix, the states each sampling
type uses, the representation penalty, and distillation into a centroid policy."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch.distributions import Normal, kl_divergence

from learning.baselines.dnc import DnCSAC, coefficient_matrix, gaussian_kl
from learning.core.networks import TanhGaussianPolicy, TwinQFunction
from learning.core.replay_buffer import TaskReplayBuffer, Transitions
from learning.core.sac import SACSettings

T, OBS, ACT = 3, 2, 2
STATES = np.array([[0.5, -1.0], [1.5, 0.3], [-0.7, 2.0]], dtype=np.float32)  # the one stored state of each task


def buffer_with(states: np.ndarray, actions: np.ndarray) -> TaskReplayBuffer:
    """Per-task buffers holding the transitions ``states [T, n, obs]``, ``actions [T, n, act]``."""
    tasks, count = states.shape[:2]
    buffer = TaskReplayBuffer(tasks, states.shape[-1], actions.shape[-1], 1000)
    buffer.add(Transitions(states, actions, np.zeros((tasks, count), np.float32), states,
                           np.zeros((tasks, count), np.float32)))
    return buffer


def make_dnc(kl_coeff=(1.0,), sampling_type="all", regularize_representation=False, distillation_period=None,
             buffer=None, batch_size=6, lr=1e-3, distillation_steps=3) -> DnCSAC:
    torch.manual_seed(0)
    policy = TanhGaussianPolicy("separate", T, OBS, ACT, (8,))
    critic = TwinQFunction("separate", T, OBS, ACT, (8,))
    buffer = buffer or buffer_with(STATES[:, None, :], np.zeros((T, 1, ACT), np.float32))
    return DnCSAC(policy, critic, SACSettings(lr=lr), buffer, batch_size, kl_coeff, sampling_type,
                  regularize_representation, distillation_period, distillation_steps)


def test_kl_of_two_known_gaussians():
    # KL(N(1, 1) || N(0, 2^2)) = log 2 + (1 + 1) / 8 - 1/2; KL of a Gaussian with itself is 0.
    kl = gaussian_kl(torch.tensor([1.0, 0.3]), torch.tensor([0.0, -0.5]), torch.tensor([0.0, 0.3]),
                     torch.tensor([math.log(2.0), -0.5]))
    assert kl[0].item() == pytest.approx(math.log(2.0) + 0.25 - 0.5, rel=1e-6)
    assert kl[1].item() == pytest.approx(0.0, abs=1e-7)


def test_kl_is_per_dimension_and_matches_torch_distributions():
    generator = torch.Generator().manual_seed(1)
    mean_p, mean_q = torch.randn(5, 4, generator=generator), torch.randn(5, 4, generator=generator)
    log_std_p, log_std_q = torch.randn(5, 4, generator=generator), torch.randn(5, 4, generator=generator)
    expected = kl_divergence(Normal(mean_p, log_std_p.exp()), Normal(mean_q, log_std_q.exp()))
    assert torch.allclose(gaussian_kl(mean_p, log_std_p, mean_q, log_std_q), expected, atol=1e-5)


def test_coefficient_matrix_rows_are_receiving_policies():
    values = [float(v) for v in range(1, 10)]  # "1->1 2->1 3->1 1->2 ...": row = receiver, column = source
    matrix = coefficient_matrix(values, 3)
    assert matrix.tolist() == [[0.0, 2.0, 3.0], [4.0, 0.0, 6.0], [7.0, 8.0, 0.0]]
    assert coefficient_matrix([0.5], 3).tolist() == [[0.0, 0.5, 0.5], [0.5, 0.0, 0.5], [0.5, 0.5, 0.0]]
    with pytest.raises(ValueError, match="1 or 9 values"):
        coefficient_matrix([1.0, 2.0], 3)


def test_penalty_gradient_reaches_only_the_receiving_policy():
    beta = np.zeros((T, T))
    beta[0, 1] = 1.0  # policy 0 is pulled toward policy 1, nobody else is penalised
    dnc = make_dnc(kl_coeff=beta.reshape(-1).tolist())
    before = dnc.pairwise_divergence()[0, 1].item()
    _, _, stats = dnc.actor_and_alpha_losses(torch.zeros(T, 4, OBS))
    assert stats["BetaKL"].tolist() == [0.5, 0.0, 0.0]  # mean off-diagonal coefficient of each row
    penalty = (dnc.kl_coefficients * dnc.pairwise_divergence()).sum()
    dnc.policy.zero_grad()
    penalty.backward()
    head = dnc.policy.mlp.head.weight.grad
    assert head[0].abs().sum() > 0 and head[1].abs().sum() == 0 and head[2].abs().sum() == 0
    optimizer = torch.optim.Adam(dnc.policy.parameters(), lr=1e-2)
    for _ in range(50):
        optimizer.zero_grad()
        (dnc.kl_coefficients * dnc.pairwise_divergence()).sum().backward()
        optimizer.step()
    assert dnc.pairwise_divergence()[0, 1].item() < 0.5 * before


def hand_divergence(policy: TanhGaussianPolicy, receiver: int, source: int, states: np.ndarray) -> float:
    """Mean over states and action dimensions of KL(pi_source || pi_receiver), with torch.distributions."""
    obs = torch.as_tensor(states).unsqueeze(0).expand(T, len(states), OBS)
    with torch.no_grad():
        mean, log_std = policy(obs)
    return kl_divergence(Normal(mean[source], log_std[source].exp()),
                         Normal(mean[receiver], log_std[receiver].exp())).mean().item()


@pytest.mark.parametrize("sampling_type", ["all", "i", "j", "i+j"])
def test_sampling_type_selects_the_states_of_the_penalty(sampling_type):
    dnc = make_dnc(sampling_type=sampling_type)
    divergence = dnc.pairwise_divergence().detach().numpy()
    for i in range(T):
        for j in range(T):
            on = {"all": STATES, "i": STATES[[i]], "j": STATES[[j]], "i+j": None}[sampling_type]
            if on is None:
                expected = 0.5 * (hand_divergence(dnc.policy, i, j, STATES[[i]])
                                  + hand_divergence(dnc.policy, i, j, STATES[[j]]))
            else:
                expected = hand_divergence(dnc.policy, i, j, on)
            assert divergence[i, j] == pytest.approx(expected, rel=1e-4, abs=1e-6), (i, j)


def test_representation_penalty_is_the_squared_distance_of_last_hidden_layers():
    dnc = make_dnc(regularize_representation=True)
    hidden = dnc.policy.mlp.last_hidden(torch.as_tensor(STATES).unsqueeze(0).expand(T, T, OBS))[0].detach()
    divergence = dnc.pairwise_divergence().detach()
    assert divergence[2, 0].item() == pytest.approx((hidden[0] - hidden[2]).pow(2).mean().item(), rel=1e-5)


def mixture_buffer() -> TaskReplayBuffer:
    """Two tasks at the same state: task 0 stored pre-tanh actions +-0.2 around 0.5, task 1 around -0.5."""
    pre_tanh = np.array([[0.3, 0.7], [-0.7, -0.3]], dtype=np.float32)[:, :, None].repeat(ACT, axis=2)
    return buffer_with(np.ones((2, 2, OBS), np.float32), np.tanh(pre_tanh))


def test_distillation_fits_the_maximum_likelihood_gaussian_and_overwrites_every_policy():
    torch.manual_seed(0)
    policy = TanhGaussianPolicy("separate", 2, OBS, ACT, (8,))
    critic = TwinQFunction("separate", 2, OBS, ACT, (8,))
    buffer = mixture_buffer()
    dnc = DnCSAC(policy, critic, SACSettings(lr=0.02), buffer, buffer_batch_size=512, distillation_period=2,
                 distillation_steps=400)
    data = buffer.sample(500)
    # The maximum-likelihood Gaussian of the pre-tanh values {0.3, 0.7, -0.7, -0.3}: mean 0, variance 0.29.
    optimum = Normal(0.0, math.sqrt(0.29))
    pre_tanh = torch.atanh(data["action"].clamp(-1 + 1e-6, 1 - 1e-6))
    jacobian = torch.log(1 - data["action"].pow(2) + 1e-6).sum(-1)
    best_nll = -(optimum.log_prob(pre_tanh).sum(-1) - jacobian).mean().item()
    nll_before = -dnc.centroid_log_likelihood(data["observation"], data["action"]).mean().item()
    assert dnc.end_of_epoch(1) == {}  # not a distillation epoch
    metrics = dnc.end_of_epoch(2)
    nll_after = -dnc.centroid_log_likelihood(data["observation"], data["action"]).mean().item()
    assert nll_before - best_nll > 0.5 and nll_after - best_nll < 0.02
    assert metrics["Train/DistillationLoss"] == pytest.approx(best_nll, abs=0.1)
    mean, log_std = dnc.policy(torch.ones(2, 1, OBS))
    assert torch.allclose(mean, torch.zeros_like(mean), atol=0.05)
    assert torch.allclose(log_std.exp(), torch.full_like(log_std, math.sqrt(0.29)), atol=0.03)
    for task_parameter, centroid_parameter in zip(dnc.policy.parameters(), dnc.centroid.parameters()):
        assert torch.equal(task_parameter[0], centroid_parameter[0])
        assert torch.equal(task_parameter[1], centroid_parameter[0])


def test_distillation_epochs_follow_the_period():
    dnc = make_dnc(kl_coeff=(0.0,), distillation_period=3, distillation_steps=1)
    distilled = [epoch for epoch in range(10) if dnc.end_of_epoch(epoch)]
    assert distilled == [3, 6, 9]  # never at epoch 0 (docs/fidelity.md#dnc)


def test_centroid_and_its_optimiser_are_checkpointed():
    dnc = make_dnc(distillation_period=1)
    dnc.end_of_epoch(1)
    restored = make_dnc(distillation_period=1)
    restored.load_state_dict(copy.deepcopy(dnc.state_dict()))  # as through a checkpoint file
    restored.load_optimizer_state(copy.deepcopy(dnc.optimizer_state()))
    for a, b in zip(dnc.centroid.parameters(), restored.centroid.parameters()):
        assert torch.equal(a, b)
    torch.manual_seed(3)
    dnc.distil()
    torch.manual_seed(3)
    restored.distil()
    for a, b in zip(dnc.centroid.parameters(), restored.centroid.parameters()):
        assert torch.equal(a, b)


class RecordingBuffer(TaskReplayBuffer):
    """A real buffer that records how many transitions per task each ``sample`` call asked for."""

    requested: list[int]

    def sample(self, batch_per_task: int, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        self.requested.append(batch_per_task)
        return super().sample(batch_per_task, generator)


@pytest.mark.parametrize("sampling_type, per_task", [("all", 4), ("i", 4), ("j", 12), ("i+j", 6)])
def test_distillation_samples_per_task_as_the_original_for_the_sampling_type(sampling_type, per_task):
    """The original's sample_all_transitions: B // T rows of every task for all (and i), B for j, B // 2 for i+j."""
    buffer = RecordingBuffer(T, OBS, ACT, 100)
    buffer.add(Transitions(STATES[:, None, :], np.zeros((T, 1, ACT), np.float32), np.zeros((T, 1), np.float32),
                           STATES[:, None, :], np.zeros((T, 1), np.float32)))
    buffer.requested = []
    dnc = make_dnc(kl_coeff=(0.0,), sampling_type=sampling_type, distillation_period=1, buffer=buffer,
                   batch_size=12, distillation_steps=2)
    dnc.end_of_epoch(1)
    assert buffer.requested == [per_task, per_task]
