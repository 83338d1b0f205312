"""learning/analysis/plots.py on synthetic run directories, and learning/analysis/statistics.py against hand computations."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from rliable import metrics

import garage_experiments
from learning.analysis import plots, statistics
from learning.analysis.run_data import RunData
from learning.training.config import Config, parse_command_line

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
RETURN_SCALES = (600.0, 20.0)


def write_run(root: Path, experiment: str, seed: int, success: list[list[float]],
              counts: list[list[list[int]]] | None = None) -> Path:
    """A run directory of the two-task Maze: config.json and one metrics row per epoch.

    ``success[e][k]`` is task k's success rate at epoch e (own policy for QMP runs, with the
    mixture logged as 1 - that, to tell them apart); ``counts[e]`` the acting-policy matrix.
    """
    config = Config(experiment=experiment, env="MazeLarge-10-v0", seed=seed, task_name="0,1", n_policies=2,
                    wandb=False, log_dir=str(root))
    run_dir = root / config.run_name
    run_dir.mkdir(parents=True)
    config.save(run_dir / "config.json")
    rows = []
    for epoch, rates in enumerate(success):
        own = "Evaluation/p/" if "qmp" in experiment else "Evaluation/"
        row = {"epoch": epoch, "Train/TotalEnvSteps": 100.0 * (epoch + 1), f"{own}SuccessRate": float(np.mean(rates))}
        row.update({f"{own}Task{task}/SuccessRate": rate for task, rate in enumerate(rates)})
        # returns on two scales (task 0 around -600, task 1 around -20) and the collection's success (half)
        row.update({f"{own}Task{task}/AverageReturn": scale * (rate - 1) for task, (rate, scale)
                    in enumerate(zip(rates, RETURN_SCALES))})
        row["Train/SuccessRate"] = float(np.mean(rates)) / 2
        row.update({f"Train/LocalPolicy{task}/SuccessRate": rate / 2 for task, rate in enumerate(rates)})
        if "qmp" in experiment:
            row["Evaluation/SuccessRate"] = 1.0 - float(np.mean(rates))
            row.update({f"Evaluation/Task{task}/SuccessRate": 1.0 - rate for task, rate in enumerate(rates)})
        if counts is not None:
            row["Train/ActingPolicyCounts"] = counts[epoch]
        rows.append(row)
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return run_dir


@pytest.fixture
def run_root(tmp_path) -> Path:
    """qmp_dnc seeds 0, 1 (3 epochs) and dnc_sac seeds 0, 1 (3 and 2 epochs)."""
    counts = [[[6, 4], [1, 9]], [[10, 0], [5, 5]], [[2, 8], [0, 10]]]
    write_run(tmp_path, "qmp_dnc", 0, [[0.0, 0.2], [0.4, 0.6], [0.8, 1.0]], counts)
    write_run(tmp_path, "qmp_dnc", 1, [[0.2, 0.0], [0.6, 0.4], [1.0, 0.8]], counts)
    write_run(tmp_path, "dnc_sac", 0, [[0.0, 0.0], [0.1, 0.1], [0.2, 0.3]])
    write_run(tmp_path, "dnc_sac", 1, [[0.0, 0.1], [0.3, 0.1]])
    return tmp_path


def test_runs_are_grouped_by_method_with_labels(run_root):
    groups = plots.group_runs(plots.read_runs([run_root]), plots.parse_labels(["qmp_dnc=QMP"]))
    methods = groups["MazeLarge-10-v0"]
    assert list(methods) == ["QMP", "Separated"]  # QMP methods first; the paper's names by default
    assert sorted(run.config["seed"] for run in methods["QMP"]) == [0, 1]
    with pytest.raises(plots.PlotError):
        plots.parse_labels(["no-equals-sign"])


def test_curves_align_on_the_epochs_every_seed_has(run_root):
    methods = plots.group_runs(plots.read_runs([run_root]), {})["MazeLarge-10-v0"]
    steps, values = plots.aligned(methods["Separated"], lambda run: f"{run.evaluation_prefix('own')}Task1/SuccessRate")
    assert steps.tolist() == [100.0, 200.0]
    assert sorted(values.tolist()) == [[0.0, 0.1], [0.1, 0.1]]
    notes = plots.group_notes("MazeLarge-10-v0", methods)
    assert any("2 to 3 epochs" in note for note in notes)


def test_qmp_runs_are_scored_by_their_own_policies_unless_mixture(run_root):
    runs = plots.group_runs(plots.read_runs([run_root]), {})["MazeLarge-10-v0"]["Separated + QMP"]
    own = plots.final_scores(runs, "SuccessRate", "own", last=2)
    mixture = plots.final_scores(runs, "SuccessRate", "mixture", last=2)
    # seed 0: task 0 mean(0.4, 0.8), task 1 mean(0.6, 1.0); seed 1 swaps the tasks
    np.testing.assert_allclose(own, [[0.6, 0.8], [0.8, 0.6]])
    np.testing.assert_allclose(mixture, 1.0 - own)


def test_acting_shares_sum_the_counts_over_epochs_and_seeds(run_root):
    runs = plots.group_runs(plots.read_runs([run_root]), {})["MazeLarge-10-v0"]["Separated + QMP"]
    # task 0 over epochs: policy 0 acted 6 + 10 + 2 = 18 of 30 steps; task 1: 1 + 5 + 0 = 6 of 30
    assert plots.acting_shares(runs) == pytest.approx(np.array([[0.6, 0.4], [0.2, 0.8]]))
    steps, shares = plots.policy_share_curves(runs)
    assert steps.tolist() == [100.0, 200.0, 300.0]
    assert shares[0] == pytest.approx(np.array([[0.6, 0.4], [0.1, 0.9]]))


def test_a_budget_keeps_only_the_epochs_up_to_it(run_root, tmp_path):
    runs = plots.group_runs(plots.read_runs([run_root], env_steps=250), {})["MazeLarge-10-v0"]["Separated + QMP"]
    # epochs at 100 and 200 env steps: task 0's policy 0 acted 6 + 10 of 20 steps, task 1's 1 + 5 of 20
    assert plots.acting_shares(runs) == pytest.approx(np.array([[0.8, 0.2], [0.3, 0.7]]))
    np.testing.assert_allclose(plots.final_scores(runs, "SuccessRate", "own", last=5), [[0.2, 0.4], [0.4, 0.2]])
    out = tmp_path / "figures"
    assert plots.main(["metrics", str(run_root), "--out", str(out), "--env_steps", "250", "--reps", "50"]) == 0
    summary = json.loads((out / "MazeLarge-10-v0_aggregates.json").read_text())
    assert summary["methods"]["Separated + QMP"]["Mean"][0] == pytest.approx(0.3)
    assert plots.main(["metrics", str(run_root), "--env_steps", "0"]) == 2


def test_a_method_keeps_its_colour_in_every_figure():
    alone = plots.method_colours(["Separated + CTPG", "Separated"])
    grid = plots.method_colours(["Separated", "Separated + QMP", "DnC (reg.)", "UDS", "Separated + CTPG"])
    assert alone["Separated"] == grid["Separated"] and alone["Separated + CTPG"] == grid["Separated + CTPG"]
    assert len(set(grid.values())) == 5
    # other labels take the palette's free colours, never a colour of a fixed method in the same figure
    mixed = plots.method_colours(["QMP", "Separated + QMP", "mine"])
    assert mixed["Separated + QMP"] == grid["Separated + QMP"] and len(set(mixed.values())) == 3
    assert mixed["QMP"] == plots.method_colours(["Separated"])["Separated"]  # the first free colour


def test_smoothing_is_a_trailing_moving_average():
    assert plots.smooth(np.array([0.0, 3.0, 6.0, 9.0]), 2).tolist() == [0.0, 1.5, 4.5, 7.5]
    assert plots.smooth(np.array([1.0, 2.0]), 1).tolist() == [1.0, 2.0]


def test_metrics_command_writes_every_figure(run_root, tmp_path, capsys):
    out = tmp_path / "figures"
    assert plots.main(["metrics", str(run_root), "--out", str(out), "--label", "qmp_dnc=QMP", "--reps", "200"]) == 0
    names = {"MazeLarge-10-v0_curves.png", "MazeLarge-10-v0_tasks.png", "MazeLarge-10-v0_QMP_acting_matrix.png",
             "MazeLarge-10-v0_QMP_policy_shares.png", "MazeLarge-10-v0_aggregates.png",
             "MazeLarge-10-v0_improvement.png", "MazeLarge-10-v0_profiles.png", "MazeLarge-10-v0_aggregates.json"}
    assert {path.name for path in out.iterdir()} == names
    for name in names - {"MazeLarge-10-v0_aggregates.json"}:
        assert (out / name).read_bytes()[:8] == PNG_SIGNATURE
    summary = json.loads((out / "MazeLarge-10-v0_aggregates.json").read_text())
    # QMP's last-5 means: seed 0 (0.4, 0.6), seed 1 (0.6, 0.4): IQM over four scores = mean of the middle two
    assert summary["methods"]["QMP"]["IQM"][0] == pytest.approx(0.5)
    assert summary["methods"]["QMP"]["runs"] == 2
    assert summary["probability_of_improvement"]["QMP > Separated"][0] == 1.0  # every QMP score beats every other
    assert "P(QMP > Separated)" in capsys.readouterr().out


def test_a_ctpg_run_gets_the_acting_figures_and_separated_none(run_root, tmp_path):
    """CTPG's guide picks the acting policy in collection, as the Q-switch does: its matrix is drawn too."""
    write_run(run_root, "ctpg_dnc", 0, [[0.0, 0.2], [0.4, 0.6], [0.8, 1.0]], [[[3, 1], [0, 4]]] * 3)
    out = tmp_path / "figures"
    assert plots.main(["metrics", str(run_root), "--out", str(out), "--label", "qmp_dnc=QMP", "--label",
                       "ctpg_dnc=CTPG", "--reps", "50"]) == 0
    written = {path.name for path in out.iterdir()}
    assert {"MazeLarge-10-v0_CTPG_acting_matrix.png", "MazeLarge-10-v0_CTPG_policy_shares.png"} <= written
    assert not any("Separated_acting" in name or "Separated_policy" in name for name in written)
    without = tmp_path / "without"
    assert plots.main(["metrics", str(run_root), "--out", str(without), "--label",
                       "ctpg_dnc=CTPG", "--reps", "50", "--acting_figures", "False"]) == 0
    assert "MazeLarge-10-v0_curves.png" in {path.name for path in without.iterdir()}
    assert not any("acting" in path.name or "policy_shares" in path.name for path in without.iterdir())


def test_methods_keeps_only_the_named_methods_in_their_order(run_root, tmp_path, capsys):
    """--methods draws one claim's methods from a folder holding more: the others get no figure and do
    not enter the aggregates; a label no run has is one line and exit 2."""
    write_run(run_root, "ctpg_dnc", 0, [[0.0, 0.2], [0.4, 0.6], [0.8, 1.0]], [[[3, 1], [0, 4]]] * 3)
    groups = plots.select_methods(plots.group_runs(plots.read_runs([run_root]), {}), ["Separated", "Separated + QMP"])
    assert list(groups["MazeLarge-10-v0"]) == ["Separated", "Separated + QMP"]
    out = tmp_path / "figures"
    assert plots.main(["metrics", str(run_root), "--out", str(out), "--methods", "Separated", "Separated + CTPG",
                       "--reps", "50"]) == 0
    written = {path.name for path in out.iterdir()}
    assert "MazeLarge-10-v0_Separated-CTPG_acting_matrix.png" in written
    assert not any("QMP" in name for name in written)
    summary = json.loads((out / "MazeLarge-10-v0_aggregates.json").read_text())
    assert list(summary["methods"]) == ["Separated", "Separated + CTPG"]
    capsys.readouterr()
    assert plots.main(["metrics", str(run_root), "--out", str(out), "--methods", "QMP"]) == 2
    error = capsys.readouterr().err.strip()
    assert "no run has the method label 'QMP'" in error and len(error.splitlines()) == 1


def test_metrics_command_without_runs_fails_in_one_line(tmp_path, capsys):
    assert plots.main(["metrics", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("learning.analysis: error: no run directory") and len(error.splitlines()) == 1


def test_trajectories_of_point_reaching(tmp_path):
    config = parse_command_line(["qmp_dnc", "--env=PointReach-v0", "--n_epochs", "1", "--batch_size", "20",
                                 "--min_buffer_size", "10", "--gradient_steps_per_itr", "4", "--hidden_sizes", "8",
                                 "--num_evaluation_episodes", "1", "--wandb", "False", "--log_dir", str(tmp_path)])
    trainer, _ = garage_experiments.launch(config, announce=lambda _: None)
    assert plots.main(["trajectories", "--snapshot_dir", str(trainer.run_dir), "--out", str(tmp_path / "out"),
                       "--episodes", "2"]) == 0
    written = tmp_path / "out" / f"{trainer.run_dir.name}_trajectories.png"
    assert written.read_bytes()[:8] == PNG_SIGNATURE


# ------------------------------------------------------------------------------------ statistics
def test_iqm_is_the_mean_of_the_middle_half():
    scores = np.array([[7.0, 0.0, 5.0, 1.0], [2.0, 6.0, 3.0, 4.0]])  # sorted 0..7: middle half 2, 3, 4, 5
    assert statistics.aggregate_functions()["IQM"](scores) == pytest.approx(3.5)


def test_optimality_gap_counts_the_shortfall_below_the_threshold():
    scores = np.array([[0.5, 1.0, 1.2]])  # shortfalls 0.5, 0, 0 (above the threshold counts as 0)
    assert statistics.aggregate_functions(1.0)["Optimality gap"](scores) == pytest.approx(0.5 / 3)
    assert "Optimality gap" not in statistics.aggregate_functions(None)


def test_bootstrap_interval_of_identical_runs_is_the_point():
    scores = np.array([[0.2, 0.9], [0.2, 0.9], [0.2, 0.9]])  # every resample of a task's runs is the same
    estimate = statistics.bootstrap_estimate(scores, metrics.aggregate_mean, reps=100)
    assert estimate == statistics.Estimate(pytest.approx(0.55), pytest.approx(0.55), pytest.approx(0.55))


def test_bootstrap_interval_brackets_the_point_and_is_reproducible():
    scores = np.random.default_rng(1).uniform(size=(5, 3))
    first = statistics.bootstrap_estimate(scores, metrics.aggregate_iqm, reps=300, seed=4)
    assert first.low <= first.point <= first.high and first.low < first.high
    assert statistics.bootstrap_estimate(scores, metrics.aggregate_iqm, reps=300, seed=4) == first


def test_probability_of_improvement_by_hand():
    # one task; X runs {1, 3}, Y runs {2, 0}: X wins 3 of the 4 pairs
    x, y = np.array([[1.0], [3.0]]), np.array([[2.0], [0.0]])
    assert statistics.improvement_probability(x, y, reps=50).point == pytest.approx(0.75)
    # ties count half: X {1, 1} vs Y {1, 0}: pairs 0.5, 1, 0.5, 1
    assert statistics.probability_of_improvement(np.array([[1.0], [1.0]]), np.array([[1.0], [0.0]])) == 0.75


def test_vectorised_improvement_matches_rliable():
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 4, size=(5, 6)).astype(float), rng.integers(0, 4, size=(3, 6)).astype(float)
    assert statistics.probability_of_improvement(x, y) == pytest.approx(metrics.probability_of_improvement(x, y))


def test_intervals_are_rliable_library_ones_with_a_fixed_seed():
    from rliable import library

    scores = np.random.default_rng(2).uniform(size=(4, 3))
    estimate = statistics.aggregate_estimates({"m": scores}, reps=200, seed=7)["m"]["Mean"]
    np.random.seed(7)
    _, intervals = library.get_interval_estimates({"m": scores}, lambda s: np.array([metrics.aggregate_mean(s)]),
                                                  reps=200)
    assert (estimate.low, estimate.high) == pytest.approx(tuple(intervals["m"][:, 0]))
    assert statistics.aggregate_estimates({"m": scores}, reps=200, seed=7)["m"]["Mean"] == estimate


def test_performance_profile_counts_scores_above_each_threshold():
    scores = np.array([[0.1, 0.5], [0.9, 0.3]])  # above 0.0: 4/4, above 0.4: 2/4, above 0.95: 0
    profiles, intervals = statistics.performance_profiles({"m": scores}, np.array([0.0, 0.4, 0.95]), reps=50)
    assert profiles["m"].tolist() == [1.0, 0.5, 0.0] and intervals["m"].shape == (2, 3)


def test_bad_score_matrices_are_rejected():
    with pytest.raises(ValueError):
        statistics.bootstrap_estimate(np.array([1.0, 2.0]), metrics.aggregate_mean)
    with pytest.raises(ValueError):
        statistics.improvement_probability(np.ones((2, 2)), np.ones((2, 3)))


# ------------------------------------------------------------------------------------ bad input, notes, tables
def test_unknown_metric_exits_2_listing_the_runs_metrics_closest_first(run_root, tmp_path, capsys):
    assert plots.main(["metrics", str(run_root), "--out", str(tmp_path / "out"), "--metric", "SucessRate"]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "'SucessRate'" in error
    listed = error.split("closest first): ")[1].split(", ")
    assert listed[0] == "SuccessRate" and {"AverageReturn", "Train/SuccessRate"} <= set(listed)
    assert not (tmp_path / "out").exists()


def test_collection_metrics_under_train_are_scored_per_task(run_root):
    runs = plots.group_runs(plots.read_runs([run_root]), {})["MazeLarge-10-v0"]["Separated + QMP"]
    # Train/LocalPolicy{k}/SuccessRate is half the own-policy rate: last epoch (0.8, 1.0) and (1.0, 0.8)
    np.testing.assert_allclose(plots.final_scores(runs, "Train/SuccessRate", "own", last=1), [[0.4, 0.5], [0.5, 0.4]])


def capture_figures(monkeypatch) -> list:
    figures = []
    monkeypatch.setattr(plots, "save", lambda figure, path, tight=False: figures.append(figure) or path)
    return figures


def test_rates_on_0_1_and_task_panels_with_their_own_y_axes(run_root, monkeypatch):
    figures = capture_figures(monkeypatch)
    methods = plots.group_runs(plots.read_runs([run_root]), {})["MazeLarge-10-v0"]
    plots.plot_task_curves("MazeLarge-10-v0", methods, "SuccessRate", "own", "std", 1, Path("unused"))
    plots.plot_task_curves("MazeLarge-10-v0", methods, "AverageReturn", "own", "std", 1, Path("unused"))
    rate_axes, return_axes = ([axis for axis in figure.axes if axis.get_visible()] for figure in figures)
    assert all(axis.get_ylim() == pytest.approx((-0.03, 1.03)) for axis in rate_axes)
    low0, high0 = return_axes[0].get_ylim()
    low1, high1 = return_axes[1].get_ylim()
    assert low0 < -200 and low1 > -25 and high1 - low1 < 25  # task 1 (scale 20) is not squashed by task 0 (600)


def test_aggregate_table_aligns_negative_numbers():
    estimates = {"A": {"Mean": statistics.Estimate(-512.25, -600.5, -3.0)},
                 "Longer name": {"Mean": statistics.Estimate(7.0, -1.0, 12.5)}}
    lines = plots.aggregate_table("env", estimates, {}, {"A": 2, "Longer name": 3}).splitlines()[2:]
    assert [line.index("[") for line in lines][0] == [line.index("[") for line in lines][1]
    assert [line.index("]") for line in lines][0] == [line.index("]") for line in lines][1]
    assert "-512.250 [-600.500,   -3.000]" in lines[0]


def test_notes_for_a_short_history_and_for_pooling_return_scales(run_root):
    methods = plots.group_runs(plots.read_runs([run_root]), {})["MazeLarge-10-v0"]
    notes = plots.score_notes("Maze", methods, "AverageReturn", "own", 5, normalize=False)
    assert any("--last 5 is more than the 2 to 3 evaluations" in note for note in notes)
    assert any("different scales" in note and "--normalize" in note for note in notes)
    assert not any("different scales" in note for note in plots.score_notes("Maze", methods, "SuccessRate", "own", 2,
                                                                              normalize=False))
    normalised = plots.method_scores(methods, "AverageReturn", "own", 2, normalize=True)
    stacked = np.concatenate(list(normalised.values()))
    assert stacked.min(axis=0).tolist() == [0.0, 0.0] and stacked.max(axis=0).tolist() == [1.0, 1.0]


def test_method_labels_are_the_papers_names():
    def label(experiment: str, **config) -> str:
        return RunData(Path("."), {"experiment": experiment, "name": "None", **config}, []).method_name()

    assert label("qmp_dnc") == "Separated + QMP" and label("dnc_sac", kl_coeff=[0.001]) == "DnC"
    assert label("uds_dnc", unsupervised=False) == "CDS" and label("mtsac", name="long") == "Parameters (long)"
    assert label("qmp_dnc", qmp_mixture="uniform") == "Separated + uniform mixture"


def test_analysis_help_parses_before_importing_the_heavy_libraries():
    import subprocess
    import sys

    code = ("import sys; from learning.analysis import cli; cli.build_parser().parse_args(['metrics', 'x']); "
            "print(sorted(m for m in ('torch', 'matplotlib', 'scipy', 'rliable') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).parents[1],
                            check=True)
    assert result.stdout.strip() == "[]"
