"""learning/analysis/run_data.py: the readings both the figures and the tables take from metric rows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from learning.analysis.run_data import RunData, acting_counts, summed_acting, task_scores
from learning.training.metric_names import ACTING_COUNTS_METRIC, STEP_METRIC


def test_task_scores_keep_the_rows_holding_every_task():
    rows = [
        {STEP_METRIC: 100.0, "epoch": 0},                                              # no evaluation
        {STEP_METRIC: 200.0, "Evaluation/p/Task0/SuccessRate": 0.5, "Evaluation/p/Task1/SuccessRate": 1.0},
        {STEP_METRIC: 300.0, "Evaluation/p/Task0/SuccessRate": 0.25},                 # task 1 missing
        {STEP_METRIC: 400.0, "Evaluation/p/Task0/SuccessRate": 0.0, "Evaluation/p/Task1/SuccessRate": None},
        {STEP_METRIC: 500.0, "Evaluation/p/Task0/SuccessRate": 1.0, "Evaluation/p/Task1/SuccessRate": 0.0},
    ]
    steps, values = task_scores(rows, "Evaluation/p/Task{task}/SuccessRate")
    assert steps.tolist() == [200.0, 500.0]
    assert values.tolist() == [[0.5, 1.0], [1.0, 0.0]]
    empty_steps, empty = task_scores(rows, "Evaluation/Task{task}/SuccessRate")
    assert empty_steps.shape == (0,) and empty.shape == (0, 0)


def test_summed_acting_cuts_at_the_budget_and_skips_runs_without_counts():
    first = (np.array([10.0, 20.0, 30.0]), np.array([[[1, 2], [3, 4]], [[5, 6], [7, 8]], [[100, 0], [0, 100]]], float))
    second = (np.array([10.0]), np.array([[[0, 1], [1, 0]]], float))
    no_counts = (np.zeros(0), np.zeros((0, 0, 0)))
    totals = summed_acting([first, no_counts, second], env_steps=20.0)  # epoch at 30 is past the budget
    assert totals.tolist() == [[[6, 8], [10, 12]], [[0, 1], [1, 0]]]
    assert summed_acting([no_counts]) is None
    other_shape = (np.array([10.0]), np.ones((1, 3, 3)))
    assert summed_acting([first, other_shape]) is None  # different task sets: no common matrix


def test_run_data_loads_rows_up_to_the_budget(tmp_path: Path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(json.dumps({"experiment": "qmp_dnc", "env": "MazeLarge-10-v0", "name": "x"}))
    rows = [{"epoch": epoch, STEP_METRIC: 100.0 * (epoch + 1), ACTING_COUNTS_METRIC: [[epoch, 1], [1, epoch]]}
            for epoch in range(3)]
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    run = RunData.load(run_dir, env_steps=200.0)
    assert [row["epoch"] for row in run.rows] == [0, 1]
    assert run.default_label() == "qmp_dnc:x" and run.evaluation_prefix("own") == "Evaluation/p/"
    assert run.evaluation_prefix("mixture") == "Evaluation/"
    steps, counts = acting_counts(run.rows)
    assert steps.tolist() == [100.0, 200.0] and counts[:, 0, 0].tolist() == [0.0, 1.0]
