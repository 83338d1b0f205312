"""QMP's wiring between parts: a transition the Q-switch collected in task i goes to task i's buffer
(whichever policy acted), and each QMP method of Fig. 7 trains exactly as its base method (Parameters,
Data-Sharing, Separated): QMP changes data collection only."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from learning import experiments
from learning.core.replay_buffer import Transitions
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


@pytest.mark.parametrize("base, with_qmp, flags", [
    ("mtsac", "qmp_sac", MULTIHEAD),                           # Parameters vs Parameters + QMP
    ("uds_dnc", "qmp_uds_dnc", ("--sharing_quantile", "0")),   # Data vs Data + QMP (shares from the buffer)
    ("dnc_sac", "qmp_dnc", ()),                                # Separated vs Separated + QMP
])
def test_each_fig7_pair_trains_exactly_as_its_base_method(tmp_path, base, with_qmp, flags):
    """From the same initial networks, the same buffer contents and the same random state, the QMP
    method's update gives its base method's parameters and per-task temperatures to the last bit
    (Data-Sharing draws other tasks' transitions from the buffer inside its update)."""
    _, base_parts = build(tmp_path / base, base, *flags)
    _, qmp_parts = build(tmp_path / with_qmp, with_qmp, *flags)
    for parts in (base_parts, qmp_parts):
        parts.sampler.close()
        parts.evaluator.close()
    num_tasks = base_parts.task_set.num_tasks
    obs_dim = base_parts.task_set.observation_layout.network_dim()
    generator = np.random.default_rng(0)
    steps = 64
    transitions = Transitions(
        observation=generator.standard_normal((num_tasks, steps, obs_dim), dtype=np.float32),
        action=generator.uniform(-1, 1, (num_tasks, steps, 2)).astype(np.float32),
        reward=np.broadcast_to(np.arange(num_tasks, dtype=np.float32)[:, None], (num_tasks, steps)).copy(),
        next_observation=generator.standard_normal((num_tasks, steps, obs_dim), dtype=np.float32),
        terminal=np.zeros((num_tasks, steps), dtype=np.float32))
    base_parts.sac.load_state_dict(qmp_parts.sac.state_dict())  # the same initial networks
    for parts in (base_parts, qmp_parts):
        parts.buffer.add(transitions)
        torch.manual_seed(1)
        for _ in range(3):
            parts.sac.update(parts.buffer.sample(parts.budget.minibatch_per_task))
    plain, qmp = (dict(parts.sac.named_parameters()) for parts in (base_parts, qmp_parts))
    assert plain.keys() == qmp.keys()
    assert all(torch.equal(plain[name], qmp[name]) for name in plain)
    assert qmp["log_alpha"].shape == (num_tasks,)  # one temperature per task, as the base method
    assert len(set(qmp["log_alpha"].tolist())) == num_tasks
