"""The GPU path (``--gpu ID``, ``--compile``): skipped where there is no CUDA device.

CI has no GPU; these run in ``benchmarks/gpu_check.sh`` on a GPU machine (docs/performance.md: what
they check, and where they last ran). Each compares the CUDA path with the CPU path it must agree with,
or checks a property only CUDA has (no host synchronisation inside the update loop).
"""

from __future__ import annotations

import copy
import os

import numpy as np
import pytest
import torch

import garage_experiments
from learning.behaviour.qswitch import QSwitchBehaviour, QSwitchOptions
from learning.core.networks import TanhGaussianPolicy, TwinQFunction
from learning.core.replay_buffer import TaskReplayBuffer, Transitions
from learning.core.sac import MultiTaskSAC, SACSettings
from learning.experiments import build_parts, build_task_set
from learning.training.config import parse_command_line
from learning.training.logger import read_metrics

# QMP_TEST_DEVICE=cpu runs these tests' code on the CPU (to check the tests themselves where no GPU is);
# the no-synchronisation test needs CUDA and is skipped then.
DEVICE = torch.device(os.environ.get("QMP_TEST_DEVICE", "cuda:0"))
pytestmark = pytest.mark.skipif(DEVICE.type == "cuda" and not torch.cuda.is_available(), reason="no CUDA device")
GPU_FLAGS = ["--gpu", str(DEVICE.index or 0)] if DEVICE.type == "cuda" else []

TWO_MAZE_TASKS = ["--env=MazeLarge-10-v0", "--task_name", "0,4", "--n_policies", "2"]  # T = 2: tasks share
TINY = ["--wandb", "False", "--n_epochs", "2", "--batch_size", "100", "--min_buffer_size", "20",
        "--gradient_steps_per_itr", "20", "--buffer_batch_size", "16", "--hidden_sizes", "16", "16",
        "--num_evaluation_episodes", "10"]


def filled_buffer(tasks: int, obs_dim: int, action_dim: int, device: torch.device, size: int = 256) -> TaskReplayBuffer:
    rng = np.random.default_rng(0)
    buffer = TaskReplayBuffer(tasks, obs_dim, action_dim, size, device)
    buffer.add(Transitions(rng.standard_normal((tasks, size, obs_dim), np.float32),
                           rng.uniform(-1, 1, (tasks, size, action_dim)).astype(np.float32),
                           rng.standard_normal((tasks, size), np.float32),
                           rng.standard_normal((tasks, size, obs_dim), np.float32),
                           (rng.random((tasks, size)) < 0.1).astype(np.float32)))
    return buffer


def test_an_update_on_the_gpu_matches_the_same_update_on_the_cpu(monkeypatch):
    """Same networks, batch and policy noise: the same losses and parameters on both devices."""
    draw_from = torch.Generator()

    def cpu_noise(like: torch.Tensor) -> torch.Tensor:  # the two devices' generators draw different numbers
        return torch.randn(like.shape, generator=draw_from).to(like.device)

    monkeypatch.setattr(torch, "randn_like", cpu_noise)
    torch.manual_seed(0)
    tasks, obs_dim, action_dim = 3, 5, 2
    on_cpu = MultiTaskSAC(TanhGaussianPolicy("separate", tasks, obs_dim, action_dim, (32, 32)),
                          TwinQFunction("separate", tasks, obs_dim, action_dim, (32, 32)), SACSettings())
    on_gpu = copy.deepcopy(on_cpu).to(DEVICE)
    batch = filled_buffer(tasks, obs_dim, action_dim, torch.device("cpu")).sample(64)
    for step in range(3):
        draw_from.manual_seed(step)
        stats_cpu = on_cpu.update(batch)
        draw_from.manual_seed(step)
        stats_gpu = on_gpu.update({name: value.to(DEVICE) for name, value in batch.items()})
    moved = [name for name, tensor in on_gpu.state_dict().items() if torch.is_tensor(tensor) and tensor.device != DEVICE]
    assert not moved, f"left on another device: {moved}"
    for name in ("Qf1Loss", "PolicyLoss", "AlphaLoss"):
        assert float(stats_gpu[name].detach().mean()) == pytest.approx(float(stats_cpu[name].detach().mean()), rel=1e-3, abs=1e-4)
    reference = dict(on_cpu.named_parameters())
    for name, parameter in on_gpu.named_parameters():
        assert torch.allclose(parameter.cpu(), reference[name], atol=1e-4), name


@pytest.mark.skipif(DEVICE.type != "cuda", reason="host synchronisation exists only with CUDA")
@pytest.mark.parametrize("experiment, extra", [
    ("dnc_sac", []), ("dnc_sac", ["--kl_coeff", "0.001"]), ("uds_dnc", []),
    ("mtsac", ["--policy_architecture", "multihead", "--Q_architecture", "multihead", "--use_pc_grad", "True"]),
    ("sac", ["--policy_architecture", "shared", "--Q_architecture", "shared"]),
])
def test_gradient_steps_do_not_wait_for_the_gpu(tmp_path, experiment, extra):
    """Sampling a minibatch and updating never copies to the host (the inner loop stays asynchronous)."""
    config = parse_command_line([experiment, *TWO_MAZE_TASKS, *TINY, *extra, *GPU_FLAGS,
                                 "--log_dir", str(tmp_path)])
    parts = build_parts(config, build_task_set(config))
    try:
        parts.buffer.add(parts.sampler.collect(64).transitions)
        parts.sac.update(parts.buffer.sample(16), with_stats=False)  # first call: lazy allocations
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            for _ in range(3):
                parts.sac.update(parts.buffer.sample(16), with_stats=False)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    finally:
        parts.sampler.close()


def test_the_qswitch_on_the_gpu_picks_what_it_picks_on_the_cpu():
    torch.manual_seed(0)
    tasks, obs_dim, action_dim = 4, 6, 2
    policy = TanhGaussianPolicy("separate", tasks, obs_dim, action_dim, (32, 32))
    critic = TwinQFunction("separate", tasks, obs_dim, action_dim, (32, 32))
    options = QSwitchOptions(sampling_freq=1)  # every call selects afresh
    on_cpu = QSwitchBehaviour(policy, critic, lambda: torch.ones(tasks), options)
    on_gpu = QSwitchBehaviour(copy.deepcopy(policy).to(DEVICE), copy.deepcopy(critic).to(DEVICE),
                              lambda: torch.ones(tasks, device=DEVICE), options)
    obs = torch.randn(tasks, obs_dim) * 3
    picks_cpu = [on_cpu.act(obs + shift, deterministic=True)[1] for shift in range(5)]
    picks_gpu = [on_gpu.act((obs + shift).to(DEVICE), deterministic=True)[1] for shift in range(5)]
    assert [p.tolist() for p in picks_gpu] == [p.tolist() for p in picks_cpu]
    assert len({tuple(p.tolist()) for p in picks_cpu}) > 1  # distinct states, not one constant choice


def run(argv: list[str], log_dir) -> object:
    config = parse_command_line([*argv, *GPU_FLAGS, "--log_dir", str(log_dir)])
    garage_experiments.launch(config, announce=lambda message: None)
    return config


def comparable(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if not k.startswith("Time/")} for row in rows]


@pytest.mark.parametrize("experiment", ["qmp_dnc", "ctpg_dnc"])
def test_a_gpu_run_resumes_exactly(tmp_path, experiment):
    argv = [experiment, *TWO_MAZE_TASKS, *TINY, "--batch_size", "700"]  # episodes cut mid-way by iterations
    straight = run([*argv, "--n_epochs", "3", "--name", "straight"], tmp_path)
    stopped = run([*argv, "--n_epochs", "2", "--name", "stopped"], tmp_path)
    resumed = parse_command_line(["resume", "--snapshot_dir", str(stopped.run_dir), "--n_epochs", "3"])
    garage_experiments.launch(resumed, announce=lambda message: None)
    rows = read_metrics(straight.run_dir)
    assert len(rows) == 3 and rows[-1]["Train/TotalEnvSteps"] > rows[0]["Train/TotalEnvSteps"]
    assert comparable(read_metrics(stopped.run_dir)) == comparable(rows)


def test_compile_trains_like_eager(tmp_path, monkeypatch):
    """``--compile True`` changes how the losses run, not what they compute (with the compiled code
    drawing its policy noise from the same generator as eager code; by default it draws its own)."""
    import torch._inductor.config

    monkeypatch.setattr(torch._inductor.config, "fallback_random", True)
    argv = ["dnc_sac", "--env=PointReach-v0", *TINY]
    eager = read_metrics(run([*argv, "--name", "eager"], tmp_path).run_dir)
    compiled = read_metrics(run([*argv, "--name", "compiled", "--compile", "True"], tmp_path).run_dir)
    for key in ("Train/Qf1Loss", "Train/PolicyLoss", "Evaluation/AverageReturn"):
        assert compiled[-1][key] == pytest.approx(eager[-1][key], rel=1e-2, abs=1e-3), key
