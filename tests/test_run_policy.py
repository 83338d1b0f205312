"""run_policy.py: loading a checkpoint, replaying every task, and its one-line errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import garage_experiments
import run_policy
from learning.analysis.runs import RunLoadError, load_run, parse_tasks
from learning.experiments import EVALUATION_SEED_OFFSET
from learning.training.config import parse_command_line
from learning.training.logger import read_metrics
from learning.training.video import EpisodeTrace, run_task_episodes

TINY_MAZE = ["--env=MazeLarge-10-v0", "--task_name", "0,1", "--n_policies", "2", "--n_epochs", "1",
             "--batch_size", "20", "--min_buffer_size", "10", "--gradient_steps_per_itr", "4",
             "--buffer_batch_size", "8", "--num_evaluation_episodes", "2", "--hidden_sizes", "16", "16",
             "--wandb", "False"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """One-epoch two-task Maze runs of qmp_dnc and dnc_sac (one evaluation episode per task)."""
    root = tmp_path_factory.mktemp("runs")
    made = {}
    for experiment in ("qmp_dnc", "dnc_sac"):
        trainer, _ = garage_experiments.launch(parse_command_line([experiment, *TINY_MAZE, "--log_dir", str(root)]),
                                               announce=lambda _: None)
        made[experiment] = trainer.run_dir
    return made


def replay_returns(run_dir: Path, mode: str, seed: int, deterministic: bool = True) -> list[list[float]]:
    run = load_run(run_dir)
    try:
        behaviour = run.behaviour(mode)
        traces = [run_task_episodes(run.parts.replay_context, behaviour, run.parts.evaluator.envs[task], task, 1, deterministic, seed)
                  for task in range(run.parts.task_set.num_tasks)]
    finally:
        run.close()
    return [[trace.record.total_return for trace in task_traces] for task_traces in traces]


@pytest.mark.parametrize("experiment, mode", [("qmp_dnc", "mixture"), ("dnc_sac", "own")])
def test_deterministic_replay_reproduces_the_logged_evaluation_of_every_task(runs, experiment, mode):
    """The trainer evaluated the checkpointed networks after epoch 0 under "Evaluation/" with env
    resets seeded seed + 10000 + task; replaying with that seed must give the same per-task returns."""
    seed = 0 + EVALUATION_SEED_OFFSET
    logged = read_metrics(runs[experiment])[-1]
    returns = replay_returns(runs[experiment], mode, seed)
    assert len(returns) == 2
    for task, task_returns in enumerate(returns):
        assert task_returns[0] == pytest.approx(logged[f"Evaluation/Task{task}/AverageReturn"], rel=1e-9)


def test_stochastic_replay_is_reproducible_and_is_not_the_mean_policy(runs):
    first = replay_returns(runs["dnc_sac"], "own", seed=3, deterministic=False)
    again = replay_returns(runs["dnc_sac"], "own", seed=3, deterministic=False)
    mean = replay_returns(runs["dnc_sac"], "own", seed=3, deterministic=True)
    assert first == again
    assert first != mean


def test_traces_record_observations_and_the_acting_policy(runs):
    run = load_run(runs["qmp_dnc"])
    try:
        trace = run_task_episodes(run.parts.replay_context, run.behaviour("own"), run.parts.evaluator.envs[1], 1, 1, True, 0)[0]
    finally:
        run.close()
    assert trace.record.length == 600  # Maze time limit (docs/fidelity.md#maze)
    assert trace.raw_observations.shape == (601, 4 + 2)
    assert trace.raw_observations[0, 4:].tolist() == [0.0, 1.0]  # task 1's one-hot
    assert set(trace.acting.tolist()) == {1}  # own mode: task 1's own policy always acts


def test_main_prints_a_row_for_every_task(runs, capsys):
    assert run_policy.main(["--snapshot_dir", str(runs["qmp_dnc"]), "--num_episodes_per_task", "1"]) == 0
    output = capsys.readouterr().out
    assert "mode mixture" in output  # the default for QMP runs
    for row in ("0: task0_1-3_to_5-8", "1: task1_1-10_to_2-4", "all tasks"):
        assert row in output
    assert "own share" in output


def expect_error(argv: list[str], capsys, fragment: str) -> None:
    assert run_policy.main(argv) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and error.startswith("run_policy.py: error:")
    assert fragment in error


def test_mixture_mode_needs_a_qmp_run(runs, capsys):
    expect_error(["--snapshot_dir", str(runs["dnc_sac"]), "--mode", "mixture"], capsys, "needs a QMP run")


def test_missing_directory_and_missing_checkpoint(runs, tmp_path, capsys):
    expect_error(["--snapshot_dir", str(tmp_path / "absent")], capsys, "is not a directory")
    shutil.copy(runs["dnc_sac"] / "config.json", tmp_path / "config.json")
    expect_error(["--snapshot_dir", str(tmp_path)], capsys, "no checkpoint")
    (tmp_path / "checkpoint.pt").write_bytes(b"not a checkpoint")
    expect_error(["--snapshot_dir", str(tmp_path)], capsys, "cannot read checkpoint")


def test_checkpoint_of_another_configuration(runs, tmp_path, capsys):
    run_dir = Path(shutil.copytree(runs["dnc_sac"], tmp_path / "run"))
    config = json.loads((run_dir / "config.json").read_text())
    (run_dir / "config.json").write_text(json.dumps({**config, "lr": 0.5}))
    expect_error(["--snapshot_dir", str(run_dir)], capsys, "does not belong")


def test_networks_that_do_not_fit_the_configuration(runs, tmp_path, capsys):
    run_dir = Path(shutil.copytree(runs["dnc_sac"], tmp_path / "run"))
    config = {**json.loads((run_dir / "config.json").read_text()), "hidden_sizes": [8, 8]}
    (run_dir / "config.json").write_text(json.dumps(config))
    checkpoint = torch.load(run_dir / "checkpoint.pt", weights_only=False)
    torch.save({**checkpoint, "config": config}, run_dir / "checkpoint.pt")
    expect_error(["--snapshot_dir", str(run_dir)], capsys, "do not match")


def test_task_selection():
    assert parse_tasks(None, 3) == [0, 1, 2]
    assert parse_tasks("2,0", 3) == [2, 0]
    for bad in ("3", "x", ""):
        with pytest.raises(RunLoadError):
            parse_tasks(bad, 3)


def test_results_table_means(runs):
    """Table cells are the episode means: two episodes of returns -1 and -3 show -2.00."""
    from learning.training.sampler import EpisodeRecord

    def trace(task: int, total: float, terminated: bool) -> EpisodeTrace:
        record = EpisodeRecord(task, total, total, 5, terminated, terminated, {})
        return EpisodeTrace(record, np.zeros((6, 3)), np.full(5, task), np.zeros(5))

    table = run_policy.results_table(("a", "b"), {0: [trace(0, -1.0, True), trace(0, -3.0, False)],
                                                  1: [trace(1, 4.0, True)]}, [], show_own_share=False)
    row_a = next(line for line in table.splitlines() if line.startswith("0: a")).split()
    assert row_a[2:6] == ["2", "-2.00", "0.50", "0.50"]
    row_all = next(line for line in table.splitlines() if line.startswith("all tasks")).split()
    assert row_all[2:4] == ["3", "0.00"]
