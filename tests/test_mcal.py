"""MCAL (docs/fidelity.md#mcal): one multihead actor scored by every task's own critics, one temperature, and the
original's number of actor steps (one per task per gradient step)."""

from __future__ import annotations

import pytest
import torch

from learning.baselines.mcal import MultiCriticActorSAC
from learning.core.networks import TanhGaussianPolicy, TwinQFunction
from learning.core.sac import SACSettings

T, OBS, ACT, B = 3, 2, 2, 6
CRITIC_VALUES = [1.0, -2.0, 5.0]


def make_mcal() -> MultiCriticActorSAC:
    torch.manual_seed(0)
    policy = TanhGaussianPolicy("multihead", T, OBS, ACT, (8,))
    critic = TwinQFunction("separate", T, OBS, ACT, (8,))
    return MultiCriticActorSAC(policy, critic, SACSettings(per_task_losses=True, temperature_per_task=False))


def batch() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(2)
    return {"observation": torch.randn(T, B, OBS, generator=generator),
            "action": torch.rand(T, B, ACT, generator=generator) * 2 - 1, "reward": torch.randn(T, B, generator=generator),
            "next_observation": torch.randn(T, B, OBS, generator=generator), "terminal": torch.zeros(T, B)}


def test_each_task_sample_is_scored_by_its_own_critic():
    sac = make_mcal()
    with torch.no_grad():  # task k's critics answer CRITIC_VALUES[k] everywhere
        sac.critic.mlp.head.weight.zero_()
        sac.critic.mlp.head.bias.copy_(torch.tensor(CRITIC_VALUES * 2).reshape(2 * T, 1, 1))
        sac.log_alpha.fill_(-1.0)
    _, _, stats = sac.actor_and_alpha_losses(batch()["observation"])
    expected = torch.exp(torch.tensor(-1.0)) * stats["LogPi"] - torch.tensor(CRITIC_VALUES)
    assert torch.allclose(stats["PolicyLoss"], expected, atol=1e-5)


def test_actor_and_temperature_losses_average_over_all_samples_critics_per_task():
    sac = make_mcal()
    per_sample = torch.tensor([[1.0, 2.0], [3.0, 10.0], [0.0, 0.0]])
    assert sac._reduce(per_sample, "actor").item() == pytest.approx(16.0 / 6)
    assert sac._reduce(per_sample, "alpha").item() == pytest.approx(16.0 / 6)
    assert sac._reduce(per_sample, "critic").item() == pytest.approx(1.5 + 6.5 + 0.0)
    assert sac.log_alpha.shape == (1,)  # one temperature for the one actor


class RecordingMCAL(MultiCriticActorSAC):
    def actor_and_alpha_losses(self, obs, weight=None):
        self.seen.append(obs.clone())
        return super().actor_and_alpha_losses(obs, weight)


def test_one_update_takes_one_critic_step_and_t_actor_steps_on_slices_of_every_task():
    torch.manual_seed(0)
    policy = TanhGaussianPolicy("multihead", T, OBS, ACT, (8,))
    sac = RecordingMCAL(policy, TwinQFunction("separate", T, OBS, ACT, (8,)),
                        SACSettings(per_task_losses=True, temperature_per_task=False))
    sac.seen = []
    data = batch()
    sac.update(data)
    assert len(sac.seen) == T and all(obs.shape == (T, B // T, OBS) for obs in sac.seen)
    assert torch.equal(torch.cat(sac.seen, dim=1), data["observation"])  # the slices cover every task's batch
    step = {name: optimizer.state_dict()["state"][0]["step"].item() for name, optimizer in
            (("policy", sac.policy_optimizer), ("critic", sac.critic_optimizer), ("alpha", sac.alpha_optimizer))}
    assert step == {"policy": T, "critic": 1, "alpha": T}
