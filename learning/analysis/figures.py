"""A sweep's figures: ``python -m learning.analysis figure SWEEP_DIR``.

* ``sweep_curves.png``: success rate against env steps, one panel per environment, one line per method:
  the IQM over (run, task) scores at each evaluation with its 95 % stratified-bootstrap band (rliable's
  recommendation), or with ``--aggregate mean`` the paper's aggregation (each run's mean over tasks, then
  the mean over runs with a 95 % bootstrap band over runs; with few runs the IQM over runs x tasks trims
  the extreme *tasks*, such as a sparse task only one method solves). The paper's stated numbers are
  marked where the panel's method has one (learning/sweeps/recipes.py).
* ``sweep_aggregates.png``: IQM, mean, median and optimality gap with 95 % CIs per method, over every
  environment's tasks at its budget (results.py's budget rule);
* ``sweep_improvement.png``: probability of improvement P(X > Y) for each pair of methods;
* ``sweep_profiles.png``: performance profiles, the fraction of (run, task) scores above tau, with bands.

The aggregate plots use the methods that ran in every environment, with as many runs per
environment as the method's smallest count (rliable needs one run count per method).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402

from learning.analysis.plots import method_colours, plot_aggregates, plot_improvement, plot_profiles, save, task_grid  # noqa: E402
from learning.analysis.results import (  # noqa: E402
    ResultsError,
    SweepRun,
    env_budgets,
    group,
    load_sweep,
    score_at,
    scores_matrix,
    select_methods,
    steps_text,
)
from learning.analysis.statistics import (  # noqa: E402
    Estimate,
    aggregate_estimates,
    aggregate_functions,
    bootstrap_estimate,
    improvement_probability,
)
from learning.sweeps.recipes import PAPER_NUMBERS  # noqa: E402

SWEEP = "sweep"
"""The aggregate figures pool every environment of the sweep: sweep_aggregates.png, sweep_improvement.png,
sweep_profiles.png (rliable's plots, drawn by learning/analysis/plots.py)."""


BEYOND = 1.5
"""A paper number at more than this many times the plotted env steps is drawn as a dotted level line."""

CURVE_LABELS = {"iqm": "IQM over runs x tasks, 95% CI", "mean": "mean over runs of the task mean, 95% CI"}


def curve(runs: Sequence[SweepRun], points: int, reps: int, aggregate: str = "iqm", budget: float = np.inf
          ) -> tuple[np.ndarray, list[Estimate]]:
    """Mean env steps and the estimate at up to ``points`` evaluations every run has (by index) up to
    ``budget`` env steps: ``iqm`` of all (run, task) scores, or ``mean``: the mean over runs of each run's
    mean over tasks."""
    length = min(int(np.count_nonzero(run.steps <= budget)) for run in runs)
    indices = np.unique(np.linspace(0, length - 1, min(points, length)).round().astype(int))
    steps = np.array([np.mean([run.steps[index] for run in runs]) for index in indices])
    if aggregate == "iqm":
        matrices = [np.array([run.scores[index] for run in runs]) for index in indices]
    else:
        matrices = [np.array([[run.scores[index].mean()] for run in runs]) for index in indices]
    statistic = aggregate_functions(None)["IQM" if aggregate == "iqm" else "Mean"]
    return steps, [bootstrap_estimate(matrix, statistic, reps=reps) for matrix in matrices]


def plot_curves(groups: dict[str, dict[str, list[SweepRun]]], budgets: dict[str, float], colours: dict, points: int,
                reps: int, out: Path, metric: str = "SuccessRate", aggregate: str = "iqm") -> Path:
    """Each environment's curves up to its budget, one panel per environment."""
    figure, panels = task_grid(len(groups))
    for (_, axis), (env, by_method) in zip(panels, groups.items()):
        plotted_steps = 0.0
        for label, method_runs in by_method.items():
            # as the tables: the runs that reached the budget (a partial one would cut the curve short);
            # a method none of whose runs reached it is drawn as far as its runs go
            reached = [run for run in method_runs if score_at(run, budgets[env], 1) is not None]
            runs = reached or method_runs
            steps, estimates = curve(runs, points, reps, aggregate, budgets[env])
            if not len(steps):
                continue
            plotted_steps = max(plotted_steps, float(steps[-1]))
            axis.plot(steps, [e.point for e in estimates], color=colours[label], label=f"{label} (n={len(runs)})")
            axis.fill_between(steps, [e.low for e in estimates], [e.high for e in estimates], color=colours[label],
                              alpha=0.2, linewidth=0)
        for reference in PAPER_NUMBERS if metric == "SuccessRate" else ():  # the paper states success rates
            matching = [label for label in reference.labels if label in by_method]
            if reference.env != env or not matching or reference.value is None:
                continue
            text = f"paper: {matching[0]} {reference.text()} at {steps_text(reference.env_steps)}"
            if reference.env_steps > BEYOND * plotted_steps:  # a star far right would squash the curves
                axis.axhline(reference.value, color=colours[matching[0]], linestyle=":", linewidth=1.2,
                             label=f"{text} (beyond this plot)")
            else:
                axis.plot([reference.env_steps], [reference.value], marker="*", markersize=11, linestyle="none",
                          color=colours[matching[0]], markeredgecolor="black", label=text)
        axis.set_title(env, fontsize=9)
        axis.set_ylim(-0.02, 1.02)
        axis.grid(alpha=0.3)
        axis.tick_params(labelsize=7)
        axis.legend(fontsize=6)
    figure.supxlabel("environment steps (all tasks)")
    figure.supylabel(f"{metric}: {CURVE_LABELS[aggregate]}", fontsize=9)
    return save(figure, out / "sweep_curves.png", tight=True)


def aggregate_scores(groups: dict[str, dict[str, list[SweepRun]]], budgets: dict[str, float], last: int
                     ) -> dict[str, np.ndarray]:
    """Method -> ``[runs, all tasks of every env]`` at each env's budget, for methods present everywhere."""
    methods = [label for label in next(iter(groups.values()))
               if all(label in by_method for by_method in groups.values())]
    scores = {}
    for label in methods:
        matrices = [scores_matrix(groups[env][label], budgets[env], last)[0] for env in groups]
        if any(matrix.size == 0 for matrix in matrices):
            continue
        runs = min(matrix.shape[0] for matrix in matrices)
        scores[label] = np.concatenate([matrix[:runs] for matrix in matrices], axis=1)
    return scores


def figure_command(sweep_dir: str, env_steps: float | None, out: str, last: int, reps: int, mode: str, points: int,
                   curve_reps: int, metric: str = "SuccessRate", aggregate: str = "iqm", methods: Sequence[str] = ()
                   ) -> list[Path]:
    runs = select_methods(load_sweep(sweep_dir, mode, metric), methods)
    groups = group(runs)
    colours = method_colours(list(dict.fromkeys(run.label for run in runs)))
    out_dir = Path(out)
    budgets = env_budgets(groups, env_steps)
    written = [plot_curves(groups, budgets, colours, points, curve_reps, out_dir, metric, aggregate)]
    scores = aggregate_scores(groups, budgets, last)
    if not scores:
        raise ResultsError("no method has scores in every environment at the budget; try a smaller --env_steps")
    estimates = aggregate_estimates(scores, reps=reps, optimality_threshold=1.0)
    written.append(plot_aggregates(SWEEP, estimates, metric, mode, out_dir))
    if len(scores) > 1:
        labels = list(scores)
        improvements = {f"{x} > {y}": improvement_probability(scores[x], scores[y], reps=reps)
                        for index, x in enumerate(labels) for y in labels[index + 1:]}
        written.append(plot_improvement(SWEEP, improvements, out_dir))
    written.append(plot_profiles(SWEEP, scores, metric, mode, False, curve_reps, out_dir))
    return written
