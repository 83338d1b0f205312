"""The trainer's "Train/" metrics (docs/fidelity.md#metrics) and the per-task split of gradient steps and batches."""

from __future__ import annotations

import numpy as np
import pytest

from learning import experiments
from learning.training.config import parse_command_line
from learning.training.sampler import EpisodeRecord
from learning.training.trainer import Trainer, training_metrics


def test_global_train_metrics_are_means_over_tasks_not_over_episodes():
    # Task 0 finishes 10 short successful episodes, task 1 one long failed episode, task 2 none.
    episodes = [EpisodeRecord(0, 10.0, 9.0, 5, True, True, {"stages_completed": 3.0}) for _ in range(10)]
    episodes.append(EpisodeRecord(1, -2.0, -2.0, 200, False, False, {"stages_completed": 1.0}))
    metrics = training_metrics(episodes, np.zeros((3, 3), dtype=np.int64), {}, 3, {"stages_completed": "last"},
                               buffer_size=0, env_steps_per_task=np.zeros(3), is_qmp=False)
    assert metrics["Train/SuccessRate"] == pytest.approx(0.5)  # over episodes it would be 10/11
    assert metrics["Train/AverageReturn"] == pytest.approx(4.0)  # (10 + -2) / 2
    assert metrics["Train/StagesCompleted"] == pytest.approx(2.0)
    assert metrics["Train/LocalPolicy0/SuccessRate"] == 1.0 and metrics["Train/LocalPolicy1/SuccessRate"] == 0.0
    assert metrics["Train/NumEpisodes"] == 11.0
    assert "Train/LocalPolicy2/SuccessRate" not in metrics


@pytest.mark.parametrize("experiment, extra, steps, batch_per_task", [
    ("dnc_sac", [], 22 // 4, 18),  # per-task family: G // T steps, each task a batch of B
    ("qmp_dnc", [], 22 // 4, 18),
    ("mtsac", ["--policy_architecture", "multihead", "--Q_architecture", "multihead"], 22, 5),  # G, ceil(B / T)
    ("sac", ["--policy_architecture", "shared", "--Q_architecture", "shared"], 22, 5),
])
def test_gradient_steps_and_batch_per_task_of_each_loss_family(tmp_path, experiment, extra, steps, batch_per_task):
    config = parse_command_line([experiment, "--env=MazeLarge-10-v0", "--task_name", "0,3,6,9", "--n_policies", "4",
                                 "--wandb", "False", "--batch_size", "8", "--min_buffer_size", "20",
                                 "--gradient_steps_per_itr", "22", "--buffer_batch_size", "18", "--hidden_sizes", "8",
                                 "--log_dir", str(tmp_path), *extra])
    parts = experiments.build_parts(config, experiments.build_task_set(config))
    trainer = Trainer(parts, tmp_path, logger=None)
    batches = []
    update = parts.sac.update

    def recording_update(batch, **options):
        batches.append(tuple(batch["reward"].shape))
        return update(batch, **options)

    parts.sac.update = recording_update
    try:
        trainer.run_iteration()  # warm-up collection fills the buffers: this iteration already trains
        trainer.run_iteration()
    finally:
        parts.sampler.close()
        parts.evaluator.close()
    assert batches == [(4, batch_per_task)] * (2 * steps)
