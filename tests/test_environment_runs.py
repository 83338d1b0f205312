"""Every registered environment trains end to end with the Q-switch (tiny budgets, one epoch)."""

from __future__ import annotations

import pytest

import garage_experiments
from learning.training.config import parse_command_line
from learning.training.logger import read_metrics

TINY = ["--wandb", "False", "--n_epochs", "1", "--min_buffer_size", "4", "--gradient_steps_per_itr", "4",
        "--buffer_batch_size", "4", "--hidden_sizes", "8", "--steps_per_epoch", "1"]


@pytest.mark.parametrize("env_id, extra, tasks", [
    ("JacoReachMT5-v1", [], 5),
    ("Walker2dMT4-v0", [], 4),
    ("MetaWorldCDS-v1", [], 4),
    ("MetaWorldMT10-v2", ["--task_name", "0,3", "--n_policies", "2"], 2),
    ("MetaWorldMT50-v2", ["--task_name", "10,49", "--n_policies", "2"], 2),
    ("KitchenMTEasy-v0", ["--task_name", "2,5", "--n_policies", "2"], 2),
])
def test_qmp_dnc_runs_on(tmp_path, env_id, extra, tasks):
    config = parse_command_line(["qmp_dnc", f"--env={env_id}", *TINY, "--num_evaluation_episodes", str(tasks),
                                 *extra, "--log_dir", str(tmp_path)])
    _, last = garage_experiments.launch(config, announce=lambda message: None)
    row = read_metrics(config.run_dir)[-1]
    assert row["Train/TotalEnvSteps"] == 4 * tasks
    assert last["Evaluation/NumEpisodes"] == tasks and last["Evaluation/p/NumEpisodes"] == tasks
    assert 0.0 <= last["Evaluation/p/SuccessRate"] <= 1.0
