"""QMP's wiring between parts: a transition the Q-switch collected in task i goes to task i's buffer
(whichever policy acted), and Parameters + QMP (``qmp_sac``) trains exactly as Parameters (``mtsac``):
QMP changes data collection only."""

from __future__ import annotations

import numpy as np
import torch

from learning import experiments
from learning.training.config import parse_command_line
from learning.training.trainer import Trainer

MAZE_TASKS = ["--env=MazeLarge-10-v0", "--task_name", "0,3,6,9", "--n_policies", "4", "--wandb", "False"]
MULTIHEAD = ["--policy_architecture", "multihead", "--Q_architecture", "multihead"]


def build(tmp_path, experiment: str, *flags: str):
    config = parse_command_line([experiment, *MAZE_TASKS, "--hidden_sizes", "16", "--log_dir", str(tmp_path),
                                 *flags])
    return config, experiments.build_parts(config, experiments.build_task_set(config))


def test_a_transition_is_stored_under_the_task_it_was_collected_in(tmp_path):
    """Replaying row i's stored actions in a fresh copy of task i's environment (same seed) gives back
    row i's stored rewards and observations, although other tasks' policies chose many of the actions."""
    steps = 40  # within the first episode of every task (600 steps)
    config, parts = build(tmp_path, "qmp_dnc", "--min_buffer_size", str(steps), "--gradient_steps_per_itr", "1")
    try:
        _, acting_counts, _ = Trainer(parts, tmp_path, logger=None).run_iteration()
        stored = {name: tensor.cpu().numpy() for name, tensor in parts.buffer.gather(
            torch.arange(steps).expand(parts.buffer.num_tasks, steps)).items()}
    finally:
        parts.sampler.close()
        parts.evaluator.close()
    num_tasks = parts.task_set.num_tasks
    off_diagonal = acting_counts.sum() - np.trace(acting_counts)
    assert acting_counts.sum() == num_tasks * steps and off_diagonal > steps  # the Q-switch shared behaviour
    layout = parts.task_set.observation_layout
    for task in range(num_tasks):
        env = parts.task_set.make_env(task, False)
        raw = env.reset(seed=config.seed + task)[0]
        for step in range(steps):
            assert np.array_equal(stored["observation"][task, step], layout.network_input(raw[None])[0])
            raw, reward, terminated, truncated, _ = env.step(stored["action"][task, step])
            assert not (terminated or truncated)
            assert stored["reward"][task, step] == np.float32(reward)
            assert np.array_equal(stored["next_observation"][task, step], layout.network_input(raw[None])[0])
        env.close()
    assert len({float(stored["reward"][task, -1]) for task in range(num_tasks)}) == num_tasks  # distinct goals


def test_parameters_plus_qmp_trains_exactly_as_parameters(tmp_path):
    """From the same initial networks and the same batches, ``qmp_sac``'s update gives ``mtsac``'s
    parameters and its per-task temperatures, to the last bit."""
    _, parameters = build(tmp_path / "mtsac", "mtsac", *MULTIHEAD)
    _, parameters_qmp = build(tmp_path / "qmp_sac", "qmp_sac", *MULTIHEAD)
    algorithms = [parameters.sac, parameters_qmp.sac]
    for parts in (parameters, parameters_qmp):
        parts.sampler.close()
        parts.evaluator.close()
    num_tasks = parameters.task_set.num_tasks
    obs_dim = parameters.task_set.observation_layout.network_dim()
    generator = torch.Generator().manual_seed(0)
    for _ in range(3):
        batch = {"observation": torch.randn(num_tasks, 32, obs_dim, generator=generator),
                 "action": torch.rand(num_tasks, 32, 2, generator=generator) * 2 - 1,
                 "reward": torch.arange(num_tasks, dtype=torch.float32)[:, None].expand(num_tasks, 32).clone(),
                 "next_observation": torch.randn(num_tasks, 32, obs_dim, generator=generator),
                 "terminal": torch.zeros(num_tasks, 32)}
        for sac in algorithms:
            torch.manual_seed(1)
            sac.update(batch)
    mtsac, qmp_sac = (dict(sac.named_parameters()) for sac in algorithms)
    assert mtsac.keys() == qmp_sac.keys()
    assert all(torch.equal(mtsac[name], qmp_sac[name]) for name in mtsac)
    assert qmp_sac["log_alpha"].shape == (num_tasks,)  # one temperature per task, as mtsac
    assert len(set(qmp_sac["log_alpha"].tolist())) == num_tasks
