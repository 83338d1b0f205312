"""The statistics behind the verdicts of docs/results.md, against hand-computed values: the sample
std, Student's t-interval, Welch's t-test, the exact permutation test, the verdict rule; the ``compare``
command that prints them from run folders; and the docs check of the numbers the prose quotes."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from scipy import stats

from learning.analysis.__main__ import main
from learning.analysis.docs import unquoted_numbers
from learning.analysis.statistics import (
    one_sample_test,
    paired_test,
    permutation_test,
    sample_std,
    smallest_permutation_p,
    t_interval,
    verdict,
    welch_test,
)
from tests.test_results import sweep, write_run  # noqa: F401  (the fixture: a synthetic sweep folder)

T_975_2 = 0.95 * math.sqrt(2 / (1 - 0.95 ** 2))
"""Student's t quantile 0.975 with 2 degrees of freedom (4.3027): its CDF is 1/2 + t / (2 sqrt(2 + t^2))."""


def test_sample_std_divides_by_n_minus_one():
    # deviations from the mean 0.96: -0.08, 0.04, 0.04; squares sum to 0.0096; / 2 -> 0.0048
    assert sample_std([0.88, 1.0, 1.0]) == pytest.approx(math.sqrt(0.0048))  # ddof 0 gives sqrt(0.0032)
    assert math.isnan(sample_std([0.5]))


def test_t_interval_over_three_runs_is_the_mean_plus_minus_t_times_the_standard_error():
    estimate = t_interval([0.88, 1.0, 1.0])
    half = T_975_2 * math.sqrt(0.0048) / math.sqrt(3)  # = 4.3027 * 0.04 = 0.1721
    assert estimate.point == pytest.approx(0.96)
    assert (estimate.low, estimate.high) == (pytest.approx(0.96 - half), pytest.approx(0.96 + half))
    # wider than the runs themselves: a percentile bootstrap over them could not leave [0.88, 1.00]
    assert estimate.low < 0.79 and estimate.high > 1.13


def test_welch_t_on_known_arrays():
    # means 2 and 6, sample variances 1 and 4: se^2 = 1/3 + 4/3 = 5/3, t = -4 / sqrt(5/3);
    # Welch-Satterthwaite df = (5/3)^2 / ((1/3)^2 / 2 + (4/3)^2 / 2) = 50/17
    result = welch_test([1.0, 2.0, 3.0], [4.0, 6.0, 8.0])
    assert result.statistic == pytest.approx(-4 / math.sqrt(5 / 3))
    assert result.df == pytest.approx(50 / 17)
    assert result.p == pytest.approx(2 * stats.t.sf(4 / math.sqrt(5 / 3), 50 / 17))
    # Student's pooled test would have df 4 and a different p
    assert result.p != pytest.approx(2 * stats.t.sf(4 / math.sqrt(5 / 3), 4), rel=1e-3)


def test_tests_without_spread_take_their_limit():
    assert welch_test([1.0, 1.0, 1.0], [0.0, 0.0, 0.0]).p == 0.0  # every run 1 against every run 0
    assert welch_test([1.0, 1.0, 1.0], [1.0, 1.0, 1.0]).p == 1.0
    assert one_sample_test([1.0, 1.0, 1.0], 0.9).p == 0.0


def test_one_sample_and_paired_tests():
    # [0.88, 1, 1] against 0.9: t = 0.06 / 0.04 = 1.5 with 2 df
    result = one_sample_test([0.88, 1.0, 1.0], 0.9)
    assert result.statistic == pytest.approx(1.5) and result.df == 2
    assert result.p == pytest.approx(2 * stats.t.sf(1.5, 2))
    # differences 1, 2, 3: mean 2, sample std 1, t = 2 / (1 / sqrt 3)
    assert paired_test([2.0, 4.0, 6.0], [1.0, 2.0, 3.0]).statistic == pytest.approx(2 * math.sqrt(3))


def test_exact_permutation_p_of_three_runs_against_three_is_at_least_a_tenth():
    # 20 ways to split 6 runs 3 / 3; only the observed split and its mirror are as extreme
    assert permutation_test([1.0, 2.0, 3.0], [4.0, 5.0, 6.0]) == pytest.approx(0.10)
    assert smallest_permutation_p(3, 3) == pytest.approx(0.10)
    assert smallest_permutation_p(2, 3) == pytest.approx(0.10)  # 1 / C(5, 2): no mirror
    # [0, 0, 1] against [0, 1, 1]: every split differs by 1/3 or 1 in absolute value
    assert permutation_test([0.0, 0.0, 1.0], [0.0, 1.0, 1.0]) == 1.0
    # [1, 2, 4] against [3, 5, 6]: |difference| 7/3; splits at least that far apart: {1,2,3}, {1,2,4} and mirrors
    assert permutation_test([1.0, 2.0, 4.0], [3.0, 5.0, 6.0]) == pytest.approx(4 / 20)


@pytest.mark.parametrize("difference, p, expected, word", [
    (0.2, 0.01, "greater", "reproduced"), (0.2, 0.2, "greater", "consistent"),
    (-0.2, 0.01, "greater", "contradicted"), (-0.2, 0.2, "greater", "inconclusive"),
    (0.0, 1.0, "greater", "inconclusive"), (-0.2, 0.01, "less", "reproduced"),
    (0.0, 0.9, "equal", "consistent"), (0.3, 0.01, "equal", "contradicted"),
    (0.2, 0.05, "greater", "consistent"),  # p < 0.05 is needed, 0.05 itself is not enough
])
def test_the_verdict_rule(difference, p, expected, word):
    assert verdict(difference, p, expected) == word


def test_a_difference_the_tables_do_not_show_is_no_difference():
    assert verdict(0.004, 0.9, "greater", 0.005) == "inconclusive"
    assert verdict(0.006, 0.9, "greater", 0.005) == "consistent"


def test_compare_prints_the_tests_of_two_methods(sweep, capsys):  # noqa: F811
    # per-run means at 500k: QMP .15 and .625, Separated .2 and .4
    assert main(["compare", str(sweep), "Separated + QMP", "Separated", "--env_steps", "500000", "--expect",
                 "greater", "--reps", "200"]) == 0
    out = capsys.readouterr().out
    welch = welch_test([0.15, 0.625], [0.2, 0.4])
    assert "Separated + QMP: 0.15, 0.62 (n=2)" in out and "Separated: 0.20, 0.40 (n=2)" in out
    assert f"Welch's t-test: t = {welch.statistic:.2f}, df = {welch.df:.1f}, p = {welch.p:.3f}" in out
    assert "exact permutation test (all 6 splits of the 4 runs): p = 1.00" in out
    assert f"difference of means (A - B): {0.3875 - 0.3:.2f}" in out
    assert out.strip().endswith("consistent")  # greater, not significant


def test_compare_one_method_against_a_level_and_bad_input(sweep, capsys):  # noqa: F811
    assert main(["compare", str(sweep), "Separated", "--env_steps", "500000", "--level", "0.25"]) == 0
    result = one_sample_test([0.2, 0.4], 0.25)
    assert f"t = {result.statistic:.2f}, df = 1.0, p = {result.p:.3f}" in capsys.readouterr().out
    for arguments, message in [(["Separated"], "give --level L"),
                               (["Separated", "Separated + QMP", "--level", "1"], "take one method"),
                               (["Nobody", "Separated"], "no run has the method label 'Nobody'"),
                               (["Separated", "--sharing", "100000"], "logged no acting-policy counts")]:
        assert main(["compare", str(sweep), *arguments]) == 2
        error = capsys.readouterr().err
        assert message in error and error.count("\n") == 1


def test_compare_sharing_early_against_late(tmp_path, capsys):
    # two runs of one task pair: up to 100k policy 0 acts half of task 0's steps, after it 9 in 10
    for seed, late in enumerate(([[9, 1], [1, 9]], [[8, 2], [2, 8]])):
        write_run(tmp_path, f"qmp_{seed}", "Separated + QMP", "qmp_dnc",
                  [(100_000, [0.0, 0.0]), (200_000, [1.0, 1.0])], acting=([[5, 5], [5, 5]], late))
    assert main(["compare", str(tmp_path), "Separated + QMP", "--sharing", "100000", "--env_steps", "200000",
                 "--expect", "less"]) == 0
    out = capsys.readouterr().out
    assert "all tasks, early: 0.50, 0.50" in out and "all tasks, late: 0.10, 0.20" in out
    result = paired_test([0.1, 0.2], [0.5, 0.5])  # differences -0.4, -0.3
    assert f"p = {result.p:.3f}" in out and "lower late than early: 4 of 4" in out
    assert out.strip().endswith("consistent")  # n = 2: p = 0.10


def page_with_prose(sweep_dir: Path, prose: str) -> str:
    return (f"# Results\n\nSummary: {prose}\n\n## Claim\n\nThe QMP runs: {prose}\n\n<!-- output -->\n```bash\n"
            f"python -m learning.analysis compare {sweep_dir} \"Separated + QMP\" Separated --env_steps 500000 "
            "--reps 200\n```\n<!-- /output -->\n")


def test_numbers_in_the_prose_must_be_printed_by_a_command_of_their_section(sweep, tmp_path, capsys):  # noqa: F811
    markdown = tmp_path / "results.md"
    markdown.write_text(page_with_prose(sweep, "0.15 and 0.62, `p < 0.05` in code is not checked, §7.2 neither"))
    assert main(["docs", str(markdown)]) == 0  # the compare block is filled, fenced as text
    text = markdown.read_text()
    assert "```text\nJacoReachMT5-v1: SuccessRate" in text
    assert main(["docs", str(markdown), "--check"]) == 0
    capsys.readouterr()
    stale = text.replace("The QMP runs: 0.15 and 0.62", "The QMP runs: 0.15 and 0.63")
    markdown.write_text(stale)
    assert main(["docs", str(markdown), "--check"]) == 1
    assert f"{markdown}:7: the prose quotes 0.63, which no command of its section prints" in capsys.readouterr().err
    assert markdown.read_text() == stale


def test_prose_check_sections_and_what_it_skips():
    block = "<!-- output -->\n```bash\npython -m learning.analysis table x\n```\n\n| 0.96 | 84 |\n<!-- /output -->\n"
    text = (f"# Top\n\n0.96 and 84% are printed below.\n\n## A\n\n{block}\nA quotes 0.96 and 84%.\n\n"
            "## B\n\nB quotes 0.96 ([link](figures/0.5.png)), `0.77` and 12%.\n")
    assert [(item.line, item.number) for item in unquoted_numbers(text)] == [(19, "0.96"), (19, "12")]


def test_terminations_that_the_logged_stages_prove_to_be_completions(tmp_path, capsys):
    """A completed Reacher episode ends at stage 3, any other at most at stage 2, so an evaluation's
    completed share is at least StagesCompleted - 2: terminations up to that are proved completions."""
    run_dir = tmp_path / "runs" / "separated_1"
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps({"experiment": "dnc_sac", "env": "JacoReachMT5-v1",
                                                     "name": "separated", "seed": 1}))
    rows = []
    # (env steps, per task (TerminationRate, StagesCompleted)); task 0 is the stay task at 1.0 / 3.0
    for epoch, (steps, tasks) in enumerate([(100_000, [(1.0, 3.0), (0.5, 2.2), (0.0, 1.0)]),  # 0.5 > 2.2 - 2
                                            (200_000, [(1.0, 3.0), (0.3, 2.3), (0.0, 0.0)])]):  # 0.3 <= 2.3 - 2
        row = {"epoch": epoch, "Train/TotalEnvSteps": float(steps)}
        for task, (ended, stages) in enumerate(tasks):
            row.update({f"Evaluation/Task{task}/SuccessRate": 1.0, f"Evaluation/Task{task}/TerminationRate": ended,
                        f"Evaluation/Task{task}/StagesCompleted": stages})
        rows.append(json.dumps(row))
    (run_dir / "metrics.jsonl").write_text("\n".join(rows) + "\n")
    (tmp_path / "sweep.json").write_text(json.dumps({"runs": {"separated_1": {"label": "Separated"}}}))
    assert main(["table", str(tmp_path), "--env_steps", "200000", "--terminations", "--reps", "50"]) == 0
    # all 6 task evaluations: 4 terminated, 3 proved, 1 undecided; the scored (last) one: 3, 2, 2, 0
    assert "| JacoReachMT5-v1 | Separated | 6 | 4 | 3 | 1 | 3 | 2 | 2 | 0 |" in capsys.readouterr().out
