"""``python -m learning.analysis table`` on a synthetic sweep folder: hand-computed IQMs.

rliable's IQM is the mean of the middle half of all (run, task) scores: of the 8 scores
0, .1, .2, .3, .4, .5, .6, 1 it is mean(.2, .3, .4, .5) = 0.35. The paper's aggregation ("mean") takes
each run's mean over tasks first: .15 and .625, mean .3875, sample std .475 / sqrt(2) = .33588 (the
population std would be .2375), and a 95 % t-interval .3875 ± t(0.975, 1) · .2375 = .3875 ± 12.7062 · .2375
(t(0.975, 1) = tan(0.475 pi) = 12.7062; a percentile bootstrap over the two runs would give [.15, .625]).
"""

from __future__ import annotations

import csv
import io
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from learning.analysis.__main__ import main
from learning.analysis.results import SweepRun, score_at

QMP_AT_500K = [[0.0, 0.1, 0.2, 0.3], [0.4, 0.5, 0.6, 1.0]]


def write_run(sweep_dir: Path, name: str, label: str, experiment: str, rows: list[tuple[int, list[float]]],
              mixture: float | None = None, seconds: tuple[float, ...] = (),
              acting: tuple[list[list[int]], ...] = ()) -> None:
    """A run directory with config.json and metrics.jsonl: (env steps, per-task success) per evaluation,
    each epoch's wall seconds when ``seconds`` gives them and its acting-policy counts when ``acting`` does."""
    run_dir = sweep_dir / "runs" / name
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps({"experiment": experiment, "env": "JacoReachMT5-v1",
                                                     "name": label.lower(), "seed": 1}))
    prefix = "Evaluation/p/" if "qmp" in experiment else "Evaluation/"
    lines = []
    for epoch, (steps, scores) in enumerate(rows):
        row = {"epoch": epoch, "Train/TotalEnvSteps": float(steps),
               **{f"{prefix}Task{task}/SuccessRate": value for task, value in enumerate(scores)},
               **{f"{prefix}Task{task}/TerminationRate": value / 2 for task, value in enumerate(scores)}}
        if mixture is not None:
            row.update({f"Evaluation/Task{task}/SuccessRate": mixture for task in range(len(scores))})
        if seconds:
            row["Time/EpochSeconds"] = seconds[epoch]
        if acting:
            row["Train/ActingPolicyCounts"] = acting[epoch]
        lines.append(json.dumps(row))
    (run_dir / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    manifest_path = sweep_dir / "sweep.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {"runs": {}}
    manifest["runs"][name] = {"label": label}
    manifest_path.write_text(json.dumps(manifest))


@pytest.fixture
def sweep(tmp_path):
    for seed, scores in enumerate(QMP_AT_500K):
        write_run(tmp_path, f"qmp_{seed}", "Separated + QMP", "qmp_dnc",
                  [(250_000, [0.15] * 4), (500_000, scores), (750_000, [1.0] * 4)], mixture=0.9)
    for seed, value in enumerate((0.2, 0.4)):
        write_run(tmp_path, f"sep_{seed}", "Separated", "dnc_sac",
                  [(250_000, [value / 2] * 4), (500_000, [value] * 4), (750_000, [value] * 4)])
    write_run(tmp_path, "sep_short", "Separated", "dnc_sac", [(250_000, [0.6] * 4)])
    return tmp_path


def table_rows(capsys, *args: str) -> dict[tuple[str, str], dict[str, str]]:
    assert main(["table", *args, "--format", "csv", "--reps", "300"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out.strip())))
    return {(row["method"], row["env_steps"]): row for row in rows if not row["paper"]}  # our table, not the paper's rows


def test_iqm_at_a_budget_own_policy_of_qmp_and_runs_that_did_not_reach_it(sweep, capsys):
    rows = table_rows(capsys, str(sweep), "--env_steps", "500000")
    qmp, separated = rows[("Separated + QMP", "500000")], rows[("Separated", "500000")]
    assert float(qmp["iqm"]) == pytest.approx(0.35) and qmp["runs"] == "2"
    # .2 x4 and .4 x4 (the third run stopped at 250k): the middle half is .2, .2, .4, .4
    assert float(separated["iqm"]) == pytest.approx(0.30) and separated["runs"] == "2"
    for row in (qmp, separated):
        assert float(row["ci_low"]) <= float(row["iqm"]) <= float(row["ci_high"])
    assert float(qmp["ci_low"]) >= 0.0 and float(qmp["ci_high"]) <= 1.0 and float(qmp["ci_high"]) > float(qmp["ci_low"])


def test_paper_number_beside_ours_at_the_papers_budget(sweep, capsys):
    assert main(["table", str(sweep), "--reps", "300"]) == 0
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.startswith("| JacoReachMT5-v1 | Separated + QMP"))
    # the paper's numbers are means over tasks and seeds, so ours beside them are too
    assert "| 0.5M | > 0.90 | 0.39 ± 0.34 [-2.63, 3.41] (n=2)" in line  # sample std, t-interval
    # no --env_steps: the budget every run reached, 250k (the short run's end); Separated's 12 scores
    # .1 x4, .2 x4, .6 x4 have the middle half .1 .2 .2 .2 .2 .6 -> 0.25
    assert "| JacoReachMT5-v1 | 0.25M | 0.15 [0.15, 0.15] (n=2) | 0.25 [" in out


def test_last_evaluations_averaged_and_mixture_mode(sweep, capsys):
    rows = table_rows(capsys, str(sweep), "--env_steps", "500000", "--last", "2")
    # per task the mean of 0.15 and the 500k score: .075 .125 .175 .225 .275 .325 .375 .575 -> .25
    assert float(rows[("Separated + QMP", "500000")]["iqm"]) == pytest.approx(0.25)
    mixture = table_rows(capsys, str(sweep), "--env_steps", "500000", "--mode", "mixture")
    assert float(mixture[("Separated + QMP", "500000")]["iqm"]) == pytest.approx(0.9)


def test_papers_aggregation_and_another_metric(sweep, capsys):
    rows = table_rows(capsys, str(sweep), "--env_steps", "500000", "--aggregate", "mean")
    qmp, separated = rows[("Separated + QMP", "500000")], rows[("Separated", "500000")]
    assert float(qmp["mean"]) == pytest.approx(0.3875) and float(qmp["sample_std"]) == pytest.approx(0.475 / 2 ** 0.5, abs=1e-4)
    half = np.tan(0.475 * np.pi) * 0.2375  # Student's t quantile with one degree of freedom is a tangent
    assert float(qmp["ci_low"]) == pytest.approx(0.3875 - half, abs=1e-4)
    assert float(qmp["ci_high"]) == pytest.approx(0.3875 + half, abs=1e-4)
    assert float(separated["mean"]) == pytest.approx(0.3) and float(separated["sample_std"]) == pytest.approx(0.2 / 2 ** 0.5, abs=1e-4)
    # full completion (TerminationRate, here half the success rate) instead of success; no paper rows for it
    assert main(["table", str(sweep), "--env_steps", "500000", "--metric", "TerminationRate", "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out.strip())))
    assert [row["paper"] for row in rows] == ["", ""]
    assert float(rows[0]["iqm"]) == pytest.approx(0.175) and rows[0]["method"] == "Separated + QMP"
    assert main(["table", str(sweep), "--metric", "Velocity"]) == 2
    assert "per-task Velocity" in capsys.readouterr().err


def test_per_task_means_and_steps_to_a_threshold(sweep, capsys):
    assert main(["table", str(sweep), "--env_steps", "750000", "--per_task", "--reach", "0.5", "--reps", "50"]) == 0
    out = capsys.readouterr().out
    # per task, the mean over the two QMP runs at 750k (all 1.0) and over Separated's two (0.2 and 0.4)
    assert "| Separated + QMP | 1.00 | 1.00 | 1.00 | 1.00 | 1.00 |" in out
    assert "| Separated | 0.30 | 0.30 | 0.30 | 0.30 | 0.30 |" in out
    # QMP's task means: run 0 is .15 until 750k, run 1 .625 at 500k; Separated never reaches .5 and its
    # short run (250k) is left out
    assert "| JacoReachMT5-v1 | Separated + QMP | 0.625M | 2 / 2 | 0.75M, 0.5M |" in out
    assert "| JacoReachMT5-v1 | Separated | not by 0.75M | 0 / 2 | never, never |" in out
    # several thresholds: one table each, in the order asked for; QMP's task means reach 1.0 at 750k only
    assert main(["table", str(sweep), "--env_steps", "750000", "--reach", "1", "0.5", "--reps", "50"]) == 0
    out = capsys.readouterr().out
    assert out.index("first reached 1 (") < out.index("first reached 0.5 (")
    assert "| JacoReachMT5-v1 | Separated + QMP | 0.75M | 2 / 2 | 0.75M, 0.75M |" in out
    assert "| JacoReachMT5-v1 | Separated + QMP | 0.625M | 2 / 2 | 0.75M, 0.5M |" in out


def test_wall_time_to_the_budget_sums_every_epoch_up_to_it(tmp_path, capsys):
    for name, seconds in (("a", (900.0, 1800.0, 3600.0, 7200.0)), ("b", (1800.0, 1800.0, 1800.0, 1800.0))):
        write_run(tmp_path, name, "Separated", "dnc_sac",
                  [(250_000, [0.5]), (375_000, [0.5]), (500_000, [0.5]), (750_000, [0.5])], seconds=seconds)
    # an epoch without evaluation (375k) still counts: a 0.25 + 0.5 + 1.0 = 1.75 h, b 1.5 h
    with open(tmp_path / "runs" / "a" / "metrics.jsonl") as handle:
        rows = [json.loads(line) for line in handle]
    for key in [key for key in rows[1] if key.startswith("Evaluation/")]:  # make 375k a training-only epoch
        del rows[1][key]
    (tmp_path / "runs" / "a" / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    assert main(["table", str(tmp_path), "--env_steps", "500000", "--wall_time", "--reps", "50"]) == 0
    out = capsys.readouterr().out
    assert "| JacoReachMT5-v1 | Separated | 1.62 | 1.75, 1.50 |" in out
    assert main(["table", str(tmp_path), "--env_steps", "500000", "--reps", "50"]) == 0
    assert "Wall time" not in capsys.readouterr().out


def test_who_acted_summed_up_to_the_budget_with_each_runs_own_share(tmp_path, capsys):
    # two QMP runs of 2 tasks; counts [task i, policy j] per epoch; the 750k epoch is past the budget
    write_run(tmp_path, "qmp_1", "Separated + QMP", "qmp_dnc", [(250_000, [0.5, 0.5]), (500_000, [0.5, 0.5]),
                                                                (750_000, [0.5, 0.5])],
              acting=([[30, 10], [20, 20]], [[50, 10], [0, 40]], [[0, 1000], [1000, 0]]))
    write_run(tmp_path, "qmp_2", "Separated + QMP", "qmp_dnc", [(250_000, [0.5, 0.5]), (500_000, [0.5, 0.5])],
              acting=([[20, 20], [10, 30]], [[20, 0], [30, 70]]))
    write_run(tmp_path, "sep_1", "Separated", "dnc_sac", [(250_000, [0.5, 0.5]), (500_000, [0.5, 0.5])])
    assert main(["table", str(tmp_path), "--env_steps", "500000", "--acting", "--reps", "50"]) == 0
    out = capsys.readouterr().out
    assert "Who acted in Separated + QMP's collection, JacoReachMT5-v1, up to 0.5M" in out
    assert "the 2 run(s)" in out and "uniform choice would give 50%" in out and "Who acted in Separated'" not in out
    # task 0 over both runs: own 30 + 50 + 20 + 20 = 120 of 160 steps (75%); run 1: 80 of 100, run 2: 40 of 60
    assert "| task 0 | **75** | 25 | 80, 67 |" in out
    # task 1: policy 0 acted 20 + 0 + 10 + 30 = 60 of 220 (27%), its own 160 (73%); run 1 60 of 80, run 2 100 of 140
    assert "| task 1 | 27 | **73** | 75, 71 |" in out
    # --acting 250000: only the epochs after 250k (the 500k epoch here): task 0 own 50 + 20 of 80 (88%; 12.5% prints 12),
    # run 1 50 of 60 (83%), run 2 20 of 20; task 1: policy 0 acted 0 + 30 of 140 (21%)
    assert main(["table", str(tmp_path), "--env_steps", "500000", "--acting", "250000", "--reps", "50"]) == 0
    out = capsys.readouterr().out
    assert "Who acted in Separated + QMP's collection, JacoReachMT5-v1, from 0.25M to 0.5M" in out
    assert "summed over the epochs of that span and the 2 run(s)" in out
    assert "| task 0 | **88** | 12 | 83, 100 |" in out and "| task 1 | 21 | **79** | 100, 70 |" in out
    assert main(["table", str(tmp_path), "--env_steps", "500000", "--acting", "500000", "--reps", "50"]) == 2
    assert "budget is 500,000 env steps" in capsys.readouterr().err
    assert main(["table", str(tmp_path), "--env_steps", "500000", "--reps", "50"]) == 0
    assert "Who acted" not in capsys.readouterr().out


def test_latex_and_bad_input(sweep, capsys, tmp_path):
    assert main(["table", str(sweep), "--format", "latex", "--reps", "50", "--out", str(tmp_path / "t")]) == 0
    tex = (tmp_path / "t.tex").read_text()
    assert r"\begin{tabular}{llcc}" in tex and r"Separated + QMP" in tex and r"JacoReachMT5-v1 & 0.25M" in tex
    capsys.readouterr()
    assert main(["table", str(tmp_path / "missing")]) == 2
    assert main(["table", str(sweep), "--env_steps", "-3"]) == 2
    assert capsys.readouterr().err.count("learning.analysis: error:") == 2


def test_figure_writes_curves_and_rliable_plots(sweep, capsys, tmp_path):
    out = tmp_path / "figures"
    assert main(["figure", str(sweep), "--out", str(out), "--reps", "50", "--curve_reps", "20", "--points", "3",
                 "--aggregate", "mean"]) == 0
    names = ["sweep_curves.png", "sweep_aggregates.png", "sweep_improvement.png", "sweep_profiles.png"]
    assert capsys.readouterr().out.split() == [str(out / name) for name in names]
    assert all((out / name).stat().st_size > 10_000 for name in names)


def test_curves_in_the_papers_aggregation_and_as_iqm(sweep):
    from learning.analysis.figures import curve
    from learning.analysis.results import group, load_sweep

    qmp = group(load_sweep(sweep))["JacoReachMT5-v1"]["Separated + QMP"]
    steps, means = curve(qmp, points=3, reps=50, aggregate="mean")
    _, iqms = curve(qmp, points=3, reps=50, aggregate="iqm")
    assert list(steps) == [250_000, 500_000, 750_000]
    # at 500k the runs' task means are .15 and .625 (mean .3875); the IQM of the 8 scores is .35
    assert [round(e.point, 4) for e in means] == [0.15, 0.3875, 1.0]
    assert [round(e.point, 4) for e in iqms] == [0.15, 0.35, 1.0]
    # the band of the mean is over runs: resampling two runs gives .15, .3875 or .625
    assert 0.15 <= means[1].low <= means[1].point <= means[1].high <= 0.625
    # a budget ends the curve at the last evaluation every run has up to it (a claim's figure stays the
    # same after its runs are extended)
    steps, means = curve(qmp, points=3, reps=50, aggregate="mean", budget=600_000)
    assert list(steps) == [250_000, 500_000] and [round(e.point, 4) for e in means] == [0.15, 0.3875]


def test_sigterm_during_a_figure_is_one_line_exit_143_and_leaves_no_partial_file(sweep, tmp_path):
    out = tmp_path / "figures"
    process = subprocess.Popen([sys.executable, "-m", "learning.analysis", "figure", str(sweep), "--out", str(out),
                                "--reps", "200000", "--curve_reps", "20", "--points", "3"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[1])
    deadline = time.monotonic() + 60
    while not out.is_dir() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)  # the first figure is written: the bootstraps of the next ones are running
    time.sleep(0.5)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, stderr
    assert stderr.strip() == "learning.analysis: terminated (SIGTERM)"
    assert not [path for path in out.iterdir() if path.name.endswith(".tmp")]
    assert all(path.stat().st_size > 10_000 for path in out.iterdir())  # every file there is whole


def test_a_run_that_trained_past_the_budget_between_evaluations_has_reached_it():
    """Evaluating every k epochs, a run can end after its last evaluation: 1M env steps trained, the last
    evaluation at 938k. It has reached 1M (scored by its evaluations up to 1M); one that trained only to
    998k has not."""
    steps = np.array([838_000.0, 938_000.0])
    scores = np.array([[0.2, 0.4], [0.6, 0.8]])
    finished = SweepRun(Path("a"), "A", "env", "dnc_sac", steps, scores,
                        epoch_steps=np.array([838_000.0, 938_000.0, 1_018_000.0]), elapsed_seconds=np.zeros(3))
    stopped = SweepRun(Path("b"), "A", "env", "dnc_sac", steps, scores,
                       epoch_steps=np.array([838_000.0, 938_000.0, 998_000.0]), elapsed_seconds=np.zeros(3))
    assert score_at(finished, 1_000_000, last=2).tolist() == pytest.approx([0.4, 0.6])
    assert score_at(stopped, 1_000_000) is None
    assert score_at(stopped, 990_000).tolist() == pytest.approx([0.6, 0.8])


def test_a_paper_number_far_beyond_the_curves_is_a_level_line_not_a_far_star(sweep, tmp_path, monkeypatch):
    """QMP-Uniform's "only 60%" is at 2M env steps; curves that stop at 0.75M keep their width."""
    from learning.analysis import figures
    from learning.analysis.results import group, load_sweep

    write_run(sweep, "uniform_0", "QMP-Uniform", "qmp_dnc", [(250_000, [0.4] * 4), (750_000, [0.6] * 4)])
    drawn = {}
    monkeypatch.setattr(figures, "save", lambda figure, path, tight=False: drawn.setdefault("figure", figure))
    groups = group(load_sweep(sweep))
    colours = {label: f"C{index}" for index, label in enumerate(groups["JacoReachMT5-v1"])}
    figures.plot_curves(groups, {"JacoReachMT5-v1": 750_000}, colours, points=3, reps=20, out=tmp_path, aggregate="mean")
    axis = drawn["figure"].axes[0]
    assert axis.get_xlim()[1] < 1_000_000
    labels = [line.get_label() for line in axis.get_lines()]
    assert "paper: QMP-Uniform ≈ 0.60 at 2M (beyond this plot)" in labels
    assert "paper: Separated + QMP > 0.90 at 0.5M" in labels  # within the plotted steps: a star at 0.5M


def test_a_curve_leaves_out_runs_that_did_not_reach_the_budget_as_the_tables_do(sweep, tmp_path, monkeypatch):
    """Separated has two runs to 750k and one stopped at 250k: its curve is the two full runs' (n=2) and
    reaches 750k, instead of ending at 250k; a method with no run at the budget is drawn as far as it goes."""
    from learning.analysis import figures
    from learning.analysis.results import group, load_sweep

    write_run(sweep, "partial_0", "Parameters", "mtsac", [(250_000, [0.5] * 4)])
    drawn = {}
    monkeypatch.setattr(figures, "save", lambda figure, path, tight=False: drawn.setdefault("figure", figure))
    groups = group(load_sweep(sweep))
    colours = {label: f"C{index}" for index, label in enumerate(groups["JacoReachMT5-v1"])}
    figures.plot_curves(groups, {"JacoReachMT5-v1": 750_000}, colours, points=3, reps=20, out=tmp_path, aggregate="mean")
    lines = {line.get_label(): line for line in drawn["figure"].axes[0].get_lines()}
    assert list(lines["Separated (n=2)"].get_xdata()) == [250_000, 500_000, 750_000]
    assert [round(y, 4) for y in lines["Separated (n=2)"].get_ydata()] == [0.15, 0.3, 0.3]
    assert list(lines["Parameters (n=1)"].get_xdata()) == [250_000]
