"""The lean SAC update gives bit-identical parameters, optimiser states and statistics to the plain
sequence of the three optimiser steps (critic; actor on frozen critics; temperature), with or
without statistics, for every architecture."""

from __future__ import annotations

import copy

import pytest
import torch

from learning.core.networks import TanhGaussianPolicy, TwinQFunction
from learning.core.sac import MultiTaskSAC, SACSettings

T, B, OBS, ACT = 3, 8, 5, 2


def reference_update(sac: MultiTaskSAC, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The update as three separate backward passes and optimiser steps, statistics every step."""
    critic_loss, stats = sac.critic_loss(batch)
    sac.critic_optimizer.zero_grad(set_to_none=True)
    critic_loss.backward()
    sac.critic_optimizer.step()
    for parameter in sac.critic.parameters():
        parameter.requires_grad_(False)
    actor_loss, alpha_loss, actor_stats = sac.actor_and_alpha_losses(batch["observation"], batch.get("weight"))
    sac.policy_optimizer.zero_grad(set_to_none=True)
    actor_loss.backward()
    sac.policy_optimizer.step()
    for parameter in sac.critic.parameters():
        parameter.requires_grad_(True)
    sac.alpha_optimizer.zero_grad(set_to_none=True)
    alpha_loss.backward()
    sac.alpha_optimizer.step()
    sac.update_targets()
    stats.update(actor_stats)
    stats["AlphaTemperature"] = sac.alpha().detach().clone()
    return stats


def make_batch(generator: torch.Generator) -> dict[str, torch.Tensor]:
    return {"observation": torch.randn(T, B, OBS, generator=generator),
            "action": torch.rand(T, B, ACT, generator=generator) * 2 - 1,
            "reward": torch.randn(T, B, generator=generator),
            "next_observation": torch.randn(T, B, OBS, generator=generator),
            "terminal": (torch.rand(T, B, generator=generator) < 0.2).float()}


@pytest.mark.parametrize("architecture,layer_norm,per_task", [
    ("separate", False, True), ("multihead", True, False), ("shared", False, False)])
def test_lean_update_is_bit_identical_to_separate_steps(architecture, layer_norm, per_task):
    torch.manual_seed(0)
    policy = TanhGaussianPolicy(architecture, T, OBS, ACT, (16, 16))
    critic = TwinQFunction(architecture, T, OBS, ACT, (16, 16), layer_norm=layer_norm)
    lean = MultiTaskSAC(policy, critic, SACSettings(lr=3e-3, per_task_losses=per_task))
    reference = copy.deepcopy(lean)
    generator = torch.Generator().manual_seed(1)
    for step in range(6):
        batch = make_batch(generator)
        torch.manual_seed(100 + step)
        with_stats = step % 3 == 2
        lean_stats = lean.update(batch, with_stats=with_stats)
        torch.manual_seed(100 + step)
        reference_stats = reference_update(reference, batch)
        if with_stats:
            assert lean_stats.keys() == reference_stats.keys()
            for name, value in reference_stats.items():
                assert torch.equal(lean_stats[name], value), name
        else:
            assert lean_stats == {}
    lean_state, reference_state = lean.state_dict(), reference.state_dict()
    assert lean_state.keys() == reference_state.keys()
    for name, value in reference_state.items():
        assert torch.equal(lean_state[name], value), name
    for lean_optimizer, reference_optimizer in ((lean.policy_optimizer, reference.policy_optimizer),
                                                (lean.alpha_optimizer, reference.alpha_optimizer)):
        for key, state in reference_optimizer.state_dict()["state"].items():
            for name, value in state.items():
                assert torch.equal(lean_optimizer.state_dict()["state"][key][name], value)
    assert all(parameter.requires_grad for parameter in lean.critic.parameters())


def test_whole_weight_layers_take_no_slice_view():
    """The batched layer uses its weight as is when every member is asked for: its gradient is the
    weight's own, not a zero-filled copy scattered through a slice view."""
    torch.manual_seed(0)
    critic = TwinQFunction("separate", T, OBS, ACT, (16,))
    q = critic(torch.randn(T, B, OBS), torch.rand(T, B, ACT))
    node = q.grad_fn
    seen = set()
    stack = [node]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        stack.extend(next_node for next_node, _ in node.next_functions)
    names = {type(node).__name__ for node in seen}
    assert "BaddbmmBackward0" in names
    assert not any(name.startswith(("SliceBackward", "AsStridedBackward")) for name in names), names


def test_compile_is_a_noted_no_op_on_cpu(tmp_path):
    import garage_experiments
    from learning.training.config import parse_command_line

    argv = ["dnc_sac", "--env=PointReach-v0", "--wandb", "False", "--n_epochs", "1", "--batch_size", "20",
            "--min_buffer_size", "20", "--gradient_steps_per_itr", "2", "--hidden_sizes", "8", "--num_evaluation_episodes", "1",
            "--log_dir", str(tmp_path)]
    messages: list[str] = []
    trainer, _ = garage_experiments.launch(parse_command_line([*argv, "--compile", "True"]), announce=messages.append)
    assert "--compile: no-op on CPU (torch.compile applies to CUDA runs only)" in messages
    assert type(trainer.parts.sac).critic_loss is MultiTaskSAC.critic_loss  # nothing wrapped
    assert "critic_loss" not in vars(trainer.parts.sac)
