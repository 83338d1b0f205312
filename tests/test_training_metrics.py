"""The trainer's "Train/" metrics (SPEC §10.2) and the per-task split of gradient steps and batches."""

from __future__ import annotations

import numpy as np
import pytest

from learning.training.sampler import EpisodeRecord
from learning.training.trainer import training_metrics


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
