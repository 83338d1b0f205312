"""Two methods' runs tested against each other: ``python -m learning.analysis compare SWEEP_DIR A [B]``.

The numbers behind each verdict of docs/results.md ("How verdicts are decided"). A run's score is its
mean over tasks (or one task's, ``--task``) of the mean of its last ``last`` evaluations at or before the
budget, as in ``table``; ``--reach X`` scores a run instead by the env steps at which its mean over tasks
first reached X (every run must reach it within the budget). With two methods it prints both methods'
per-run scores, their means with the sample std and t-interval, Welch's t-test (the rule's test), the
exact permutation p and rliable's probability of improvement with its stratified-bootstrap interval;
with one method and ``--level L``, Student's one-sample t-test of its mean against L; with one method
and ``--sharing S``, each run's share of collection steps acted by other tasks' policies up to S env
steps and after S (to the budget), and the paired t-test of the two. ``--expect`` (what the paper
states) adds the rule's verdict word.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from math import comb

import numpy as np

from learning.analysis.results import (
    ResultsError,
    SweepRun,
    first_reaching,
    group,
    load_sweep,
    score_at,
    select_methods,
    steps_text,
    trained_steps,
)
from learning.analysis.run_data import summed_acting
from learning.analysis.statistics import (
    TestResult,
    improvement_probability,
    one_sample_test,
    paired_test,
    permutation_test,
    sample_std,
    smallest_permutation_p,
    t_interval,
    verdict,
    welch_test,
)
from learning.training.logger import row_shares


@dataclass
class Side:
    """One method's per-run values at its budget."""

    label: str
    budget: float
    values: np.ndarray
    """[runs] one value per run that reached the budget."""
    runs: list[str]
    """Their run folders' names."""


def one_environment(runs: Sequence[SweepRun], label: str) -> list[SweepRun]:
    """The runs of ``label``; ResultsError when they belong to several environments."""
    chosen = [run for run in runs if run.label == label]
    envs = sorted({run.env for run in chosen})
    if len(envs) > 1:
        raise ResultsError(f"{label!r} has runs in several environments ({', '.join(envs)}); "
                           "compare a folder of one environment")
    return chosen


def scored(label: str, runs: Sequence[SweepRun], budget: float, last: int, task: int | None,
           reach: float | None) -> Side:
    """Each run's score at ``budget`` (see the module docstring); runs that did not reach it are left out."""
    values, names = [], []
    for run in runs:
        if trained_steps(run) < budget:
            continue
        if reach is not None:
            steps = first_reaching(run, reach, budget)
            if steps is None:
                raise ResultsError(f"{run.run_dir.name} never reached a mean of {reach:g} by "
                                   f"{steps_text(budget)} env steps: steps to {reach:g} cannot be compared")
            values.append(steps)
        else:
            score = score_at(run, budget, last)
            if score is None:
                continue
            if task is not None and task >= len(score):
                raise ResultsError(f"--task {task}: {run.run_dir.name} has {len(score)} tasks")
            values.append(float(score[task]) if task is not None else float(score.mean()))
        names.append(run.run_dir.name)
    if len(values) < 2:
        raise ResultsError(f"{label!r}: {len(values)} run(s) reached {steps_text(budget)} env steps; "
                           "a test needs at least two")
    return Side(label, budget, np.array(values), names)


def number(value: float, reach: bool) -> str:
    return f"{value / 1e6:.3g}M" if reach else f"{value:.2f}"


def side_line(side: Side, reach: bool) -> str:
    interval = t_interval(side.values)
    return (f"{side.label}: {', '.join(number(value, reach) for value in side.values)} (n={len(side.values)}): "
            f"mean {number(interval.point, reach)} ± {number(sample_std(side.values), reach)} (sample std) "
            f"[95% t-interval {number(interval.low, reach)}, {number(interval.high, reach)}]")


def test_line(name: str, result: TestResult) -> str:
    df = "" if np.isnan(result.df) else f", df = {result.df:.1f}"
    return f"{name}: t = {result.statistic:.2f}{df}, p {p_text(result.p)} (two-sided)"


def p_text(p: float) -> str:
    """``= 0.038`` or ``< 0.001``."""
    return f"= {p:.3f}" if p >= 0.001 else "< 0.001"


RESOLUTION = 0.005
"""Score differences below this are "no difference" to the rule: the tables print two decimals."""


def verdict_line(difference: float, p: float, expect: str | None, what: tuple[str, str], test: str,
                 resolution: float = RESOLUTION) -> list[str]:
    """The rule's word for ``what[0]`` against ``what[1]`` by ``test``'s p (none without ``expect``)."""
    if expect is None:
        return []
    stated = {"greater": "greater than", "less": "less than", "equal": "no different from"}[expect]
    return [f"verdict (the paper: {what[0]} {stated} {what[1]}; by {test}): "
            f"{verdict(difference, p, expect, resolution)}"]


def two_method_lines(a: Side, b: Side, reach: bool, expect: str | None, reps: int) -> list[str]:
    welch = welch_test(a.values, b.values)
    difference = float(a.values.mean() - b.values.mean())
    improvement = improvement_probability(a.values[:, None], b.values[:, None], reps=reps)
    n, m = len(a.values), len(b.values)
    return [side_line(a, reach), side_line(b, reach),
            f"difference of means (A - B): {'-' if difference < 0 else ''}{number(abs(difference), reach)}"
            + (f"; ratio of means (A / B): {a.values.mean() / b.values.mean():.2f}" if reach else ""),
            test_line("Welch's t-test", welch),
            f"exact permutation test (all {comb(n + m, n)} splits of the {n + m} runs): "
            f"p = {permutation_test(a.values, b.values):.2f} (two-sided; the smallest it can be here is "
            f"{smallest_permutation_p(n, m):.2f})",
            f"probability of improvement P(A > B) = {improvement.point:.2f} [95% stratified-bootstrap CI "
            f"{improvement.low:.2f}, {improvement.high:.2f}]",
            *verdict_line(difference, welch.p, expect, ("A", "B"), "Welch's t-test", 0.0 if reach else RESOLUTION)]


def sharing_lines(side_runs: Sequence[SweepRun], label: str, budget: float, split: float,
                  expect: str | None) -> list[str]:
    """Per run, the share of collection steps acted by other tasks' policies before and after ``split``."""
    if split >= budget:
        raise ResultsError(f"--sharing {split:,.0f}: the budget is {budget:,.0f} env steps; split before it")
    reached = [run for run in side_runs if trained_steps(run) >= budget]
    early = summed_acting([(run.acting_steps, run.acting) for run in reached], split)
    late = summed_acting([(run.acting_steps, run.acting) for run in reached], budget, split)
    if early is None or late is None:
        raise ResultsError(f"{label!r}: its runs logged no acting-policy counts (QMP and CTPG runs do)")
    tasks = early.shape[1]
    diagonal = np.arange(tasks)

    def others(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """[runs] share of all tasks' steps acted by another task's policy, [runs, T] per task."""
        per_task = 1 - row_shares(counts)[:, diagonal, diagonal]
        total = 1 - counts[:, diagonal, diagonal].sum(axis=1) / counts.sum(axis=(1, 2))
        return total, per_task

    early_total, early_tasks = others(early)
    late_total, late_tasks = others(late)
    result = paired_test(late_total, early_total)
    lower = int(np.sum(late_tasks < early_tasks))
    lines = [f"{label}: share of collection steps acted by other tasks' policies, per run, up to "
             f"{steps_text(split)} and from {steps_text(split)} to {steps_text(budget)}:",
             "all tasks, early: " + ", ".join(f"{value:.2f}" for value in early_total),
             "all tasks, late: " + ", ".join(f"{value:.2f}" for value in late_total)]
    lines += [f"task {task}, early / late: " + ", ".join(f"{before:.2f} / {after:.2f}" for before, after
                                                           in zip(early_tasks[:, task], late_tasks[:, task]))
              for task in range(tasks)]
    lines += [f"lower late than early: {lower} of {early_tasks.size} (run, task) pairs",
              test_line("paired t-test of late - early (all tasks)", result),
              *verdict_line(float(late_total.mean() - early_total.mean()), result.p, expect,
                            ("late sharing", "early sharing"), "the paired t-test")]
    return lines


def compare_lines(sweep_dir: str, methods: Sequence[str], env_steps: Sequence[float], last: int, mode: str,
                  metric: str, task: int | None, reach: float | None, level: float | None, sharing: float | None,
                  expect: str | None, reps: int) -> list[str]:
    """What ``compare`` prints (see the module docstring). Raises ResultsError on bad input."""
    if len(methods) not in (1, 2):
        raise ResultsError(f"compare one method (with --level or --sharing) or two, got {len(methods)}")
    one = len(methods) == 1
    if one and (level is None) == (sharing is None):
        raise ResultsError("with one method give --level L (its mean against L) or --sharing S (early vs late)")
    if not one and (level is not None or sharing is not None):
        raise ResultsError("--level and --sharing take one method")
    if len(env_steps) > len(methods):
        raise ResultsError(f"--env_steps: at most one budget per method ({len(methods)}), got {len(env_steps)}")
    runs = select_methods(load_sweep(sweep_dir, mode, metric), methods)
    by_label = {label: one_environment(runs, label) for label in methods}
    budgets = list(env_steps) or [min(trained_steps(run) for run in runs)]
    budgets += [budgets[-1]] * (len(methods) - len(budgets))
    if sharing is not None:
        return sharing_lines(by_label[methods[0]], methods[0], budgets[0], sharing, expect)
    sides = [scored(label, by_label[label], budget, last, task, reach) for label, budget in zip(methods, budgets)]
    env = sorted(group(runs))
    what = (f"env steps to a mean {metric} over tasks of {reach:g}" if reach is not None else
            f"{metric}{f' of task {task}' if task is not None else ', mean over tasks'}, mean of the last {last} "
            "evaluation(s)")
    at = " and ".join(f"{steps_text(side.budget)} ({side.label})" for side in sides) if len(set(budgets)) > 1 \
        else steps_text(budgets[0])
    policy = "own policies" if mode == "own" else "the mixture that collected the data"
    lines = [f"{', '.join(env)}: {what}, per run, at {at} env steps (QMP runs: {policy})"]
    if one and level is not None:
        result = one_sample_test(sides[0].values, level)
        difference = float(sides[0].values.mean() - level)
        return lines + [side_line(sides[0], reach is not None),
                        test_line(f"one-sample t-test against {level:g}", result),
                        *verdict_line(difference, result.p, expect, ("the mean", f"{level:g}"),
                                      "the one-sample t-test")]
    return lines + two_method_lines(sides[0], sides[1], reach is not None, expect, reps)
