"""A sweep's results as the paper's table: environments x methods, success with 95 % CIs.

``python -m learning.analysis table SWEEP_DIR`` reads every run under the sweep folder (labels from its
``sweep.json``), takes each run's per-task success rates (or another per-task metric, ``--metric``) at
an environment-step budget and reports, per environment and method, as markdown, CSV or LaTeX:

* ``--aggregate iqm`` (default): the interquartile mean over all (run, task) scores with a 95 %
  stratified-bootstrap interval (learning/analysis/statistics.py; tasks are the strata);
* ``--aggregate mean``: the paper's number: each run's mean over its tasks, then the mean over runs,
  with the sample standard deviation over runs (``ddof = 1``; the paper's "mean ± std") and Student's
  95 % t-interval over runs (a percentile bootstrap over three runs would be far too narrow); in
  markdown the IQM over runs x tasks with its stratified-bootstrap interval follows (rliable's
  recommended aggregate).

The numbers the paper states (learning/sweeps/recipes.py PAPER_NUMBERS) are listed beside ours at
the paper's budget, always in the paper's aggregation (mean over tasks, then over runs). In markdown,
``--per_task`` adds each method's per-task means over runs, ``--reach X [X ...]`` the env steps at
which each run's mean over tasks first reached each X (the "how many steps to the maximum" claims),
and ``--wall_time`` the hours each run took to the budget (the sum of its epochs' ``Time/EpochSeconds``);
``--acting`` adds who acted in the collection of QMP (and CTPG) runs (the paper's Fig. 18, as numbers):
the share of task i's collection steps acted by policy j, summed over the epochs up to the budget and
over the runs, with each run's own-policy share beside it; ``--acting A`` counts only the epochs after
A env steps (e.g. the second half of training, to see whether the switch has changed).

A run's score at budget B is the mean of its last ``last`` evaluations taken at or before B env steps
(all tasks together, ``Train/TotalEnvSteps``). A run that has not reached B is left out (and named in
a note). Without ``--env_steps`` each environment's budget is the largest every run of it reached.
QMP runs are scored by each task's own policy (``Evaluation/p/``) unless mode is "mixture".
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from learning.analysis.run_data import RunData, acting_counts, summed_acting, task_scores
from learning.analysis.statistics import Estimate, aggregate_functions, bootstrap_estimate, sample_std, t_interval
from learning.sweeps.grid import labelled, read_manifest
from learning.sweeps.recipes import PAPER_NUMBERS, PaperNumber
from learning.training.logger import row_shares, run_dirs_under
from learning.training.metric_names import EPOCH_SECONDS_METRIC, STEP_METRIC
from learning.training.run_guard import write_atomically

FORMATS = ("markdown", "csv", "latex")


class ResultsError(RuntimeError):
    """Nothing to tabulate or bad input; one-line message."""


@dataclass
class SweepRun:
    """One run of a sweep: its method label, environment and per-task evaluation scores over training."""

    run_dir: Path
    label: str
    env: str
    experiment: str
    steps: np.ndarray
    """[E] total env steps at each evaluation."""
    scores: np.ndarray
    """[E, T] per-task success rate at each evaluation."""
    epoch_steps: np.ndarray = field(default_factory=lambda: np.zeros(0))
    """[N] total env steps after each epoch (every metrics row, evaluated or not)."""
    elapsed_seconds: np.ndarray = field(default_factory=lambda: np.zeros(0))
    """[N] wall seconds of training up to the end of each epoch (running sum of ``Time/EpochSeconds``)."""
    acting_steps: np.ndarray = field(default_factory=lambda: np.zeros(0))
    """[M] total env steps after each epoch that logged who acted (QMP runs; none for the others)."""
    acting: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 0)))
    """[M, T, C] per epoch, how many of task i's collection steps candidate j acted."""


def elapsed(rows: Sequence[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """Env steps ``[N]`` after each epoch row and the running sum of the epochs' wall seconds ``[N]``."""
    timed = [row for row in rows if row.get(STEP_METRIC) is not None and row.get(EPOCH_SECONDS_METRIC) is not None]
    steps = np.array([float(row[STEP_METRIC]) for row in timed])
    return steps, np.cumsum([float(row[EPOCH_SECONDS_METRIC]) for row in timed])


def load_sweep(sweep_dir: Path | str, mode: str = "own", metric: str = "SuccessRate") -> list[SweepRun]:
    """Every run under ``sweep_dir`` with at least one evaluation of ``metric``. Raises ResultsError."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise ResultsError(f"{sweep_dir} is not a directory")
    manifest = read_manifest(sweep_dir)
    order = {name: index for index, name in enumerate(manifest)}  # the grid's order: methods as in the recipe
    runs = []
    for run_dir in sorted(run_dirs_under(sweep_dir), key=lambda path: (order.get(path.name, len(order)), str(path))):
        run = RunData.load(run_dir)
        steps, scores = task_scores(run.rows, run.metric_keys(metric, mode)[1])
        if not len(steps):
            continue
        label = manifest.get(run_dir.name, {}).get("label") or run.default_label()
        runs.append(SweepRun(run_dir, label, run.env, run.experiment, steps, scores, *elapsed(run.rows),
                             *acting_counts(run.rows)))
    if not runs:
        raise ResultsError(f"no run with config.json and per-task {metric} in its metrics under {sweep_dir}")
    return runs


def select_methods(runs: Sequence[SweepRun], methods: Sequence[str]) -> list[SweepRun]:
    """Only the runs of the method labels ``methods``, in that order (none given: all, as they are).
    Raises ResultsError for a label no run has."""
    if not methods:
        return list(runs)
    chosen, unknown, known = labelled(runs, methods)
    if unknown is not None:
        raise ResultsError(f"no run has the method label {unknown!r}; the labels are: {', '.join(known)}")
    return chosen


def trained_steps(run: SweepRun) -> float:
    """The env steps a run has trained for: its last epoch's, evaluated or not."""
    return float(max(run.steps[-1], run.epoch_steps[-1] if len(run.epoch_steps) else 0.0))


def score_at(run: SweepRun, env_steps: float, last: int = 1) -> np.ndarray | None:
    """``[T]``: mean of the last ``last`` evaluations at or before ``env_steps``; None if the run has not
    trained up to ``env_steps`` or has no evaluation before it. (A run that evaluates every k epochs
    may end between evaluations: it has reached a budget it trained past.)"""
    if trained_steps(run) < env_steps:
        return None
    before = np.nonzero(run.steps <= env_steps)[0]
    if not len(before):
        return None
    return run.scores[before[-last:]].mean(axis=0)


def group(runs: Sequence[SweepRun]) -> dict[str, dict[str, list[SweepRun]]]:
    """Environment -> method label -> runs, in the order they first appear (the manifest's order)."""
    groups: dict[str, dict[str, list[SweepRun]]] = {}
    for run in runs:
        groups.setdefault(run.env, {}).setdefault(run.label, []).append(run)
    return groups


@dataclass
class Cell:
    estimate: Estimate
    runs: int
    std: float | None = None
    """Sample standard deviation (ddof 1) over runs of the per-run means (the paper's aggregation only)."""


@dataclass
class PaperRow:
    reference: PaperNumber
    label: str
    ours: Cell | None
    note: str = ""


@dataclass
class Table:
    envs: list[str]
    methods: list[str]
    budgets: dict[str, float]
    cells: dict[tuple[str, str], Cell]
    paper: list[PaperRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    mode: str = "own"
    aggregate: str = "iqm"
    metric: str = "SuccessRate"
    iqm_cells: dict[tuple[str, str], Cell] = field(default_factory=dict)
    """(env, method) -> the IQM over runs x tasks, beside the paper's aggregation (``aggregate`` mean)."""
    task_means: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    """(env, method) -> ``[tasks]`` means over the runs at the budget (filled when asked for, ``per_task``)."""
    reach_steps: dict[float, dict[tuple[str, str], list[float | None]]] = field(default_factory=dict)
    """threshold -> (env, method) -> per run, the env steps of its first evaluation whose mean over tasks
    reached the threshold (None: never, up to the budget); thresholds in the order asked for."""
    wall_hours: dict[tuple[str, str], list[float | None]] = field(default_factory=dict)
    """(env, method) -> per run that reached the budget, its wall hours up to it (filled when asked for)."""
    acting: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    """(env, method) -> ``[runs, T, C]`` acting counts summed over each run's epochs after ``acting_after``
    env steps up to the budget (QMP methods, filled when asked for)."""
    acting_after: float = 0.0
    """``acting`` counts only the epochs after this many env steps (0: all of training)."""
    terminations: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    """(env, method) -> ``termination_counts`` up to the budget and in the scored evaluations (filled when
    asked for)."""


def iqm_cell(matrix: np.ndarray, reps: int) -> Cell:
    """IQM of a ``[runs, tasks]`` matrix with its stratified-bootstrap 95 % interval."""
    return Cell(bootstrap_estimate(matrix, aggregate_functions(None)["IQM"], reps=reps), matrix.shape[0])


def mean_cell(matrix: np.ndarray, reps: int) -> Cell:
    """The paper's aggregation of a ``[runs, tasks]`` matrix: each run's mean over tasks, then their
    mean over runs, its 95 % t-interval over runs and the sample std (ddof 1) over runs (``reps``
    unused: no bootstrap)."""
    per_run = matrix.mean(axis=1)
    return Cell(t_interval(per_run), matrix.shape[0], sample_std(per_run))


AGGREGATES = {"iqm": iqm_cell, "mean": mean_cell}


def scores_matrix(runs: Sequence[SweepRun], env_steps: float, last: int) -> tuple[np.ndarray, list[SweepRun]]:
    """``[runs, tasks]`` at ``env_steps`` and the runs left out (not reached)."""
    scored = [(run, score_at(run, env_steps, last)) for run in runs]
    kept = [score for _, score in scored if score is not None]
    return (np.array(kept) if kept else np.zeros((0, 0))), [run for run, score in scored if score is None]


def first_reaching(run: SweepRun, threshold: float, env_steps: float) -> float | None:
    """Env steps of the first evaluation (at most ``env_steps``) whose mean over tasks is >= ``threshold``."""
    reached = np.nonzero((run.scores.mean(axis=1) >= threshold) & (run.steps <= env_steps))[0]
    return float(run.steps[reached[0]]) if len(reached) else None


def hours_to(run: SweepRun, env_steps: float) -> float | None:
    """Wall hours the run's epochs took up to ``env_steps``; None without timed epochs before it."""
    before = np.nonzero(run.epoch_steps <= env_steps)[0]
    return float(run.elapsed_seconds[before[-1]]) / 3600 if len(before) else None


def termination_counts(runs: Sequence[SweepRun], env_steps: float, last: int, mode: str
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Per-task evaluations of the Reacher's ``runs`` up to ``env_steps`` and among each run's last ``last``
    (the scored ones): ``[4]`` counts of all, those with a termination, those whose terminations the
    logged stages prove to be completions, and the undecided rest.

    An episode that completes ends with all K stages (the task set's ``completed_stages``), one that
    does not (time limit or physics failure) with at most K - 1, so an evaluation's share of completed
    episodes is at least ``StagesCompleted - (K - 1)`` (its mean last stage); when that reaches its
    ``TerminationRate``, every termination was a completion. Raises ResultsError for runs without
    logged stages."""
    from environments import make_task_set

    totals, scored = np.zeros(4, dtype=int), np.zeros(4, dtype=int)
    for run in runs:
        try:
            stages_of_completion = make_task_set(run.env).completed_stages
        except (KeyError, ValueError):
            stages_of_completion = None
        if stages_of_completion is None:
            raise ResultsError(f"--terminations: {run.run_dir.name} is a {run.env} run, which logs no stages "
                               "that tell completions from failures (the Multistage Reacher does)")
        data = RunData.load(run.run_dir, env_steps)
        _, ended = task_scores(data.rows, data.metric_keys("TerminationRate", mode)[1])
        _, stages = task_scores(data.rows, data.metric_keys("StagesCompleted", mode)[1])
        if not ended.size or ended.shape != stages.shape:
            raise ResultsError(f"--terminations: {run.run_dir.name} has no per-task TerminationRate and "
                               "StagesCompleted at each evaluation (the Multistage Reacher logs both)")
        proved = ended <= np.maximum(stages - (stages_of_completion - 1), 0) + 1e-9
        for counts, window in ((totals, slice(None)), (scored, slice(-last, None))):
            ended_w, proved_w = ended[window], proved[window]
            counts += [ended_w.size, int((ended_w > 0).sum()), int(((ended_w > 0) & proved_w).sum()),
                       int(((ended_w > 0) & ~proved_w).sum())]
    return totals, scored


def env_budgets(groups: dict[str, dict[str, list[SweepRun]]], env_steps: float | None) -> dict[str, float]:
    """Each environment's budget: ``env_steps``, else the most env steps every run of it reached."""
    return {env: env_steps if env_steps is not None else min(trained_steps(run) for runs in by_method.values()
                                                             for run in runs)
            for env, by_method in groups.items()}


def build_table(runs: Sequence[SweepRun], env_steps: float | None = None, last: int = 1, reps: int = 2000,
                mode: str = "own", aggregate: str = "iqm", metric: str = "SuccessRate",
                reach: Sequence[float] = (), per_task: bool = False, wall_time: bool = False,
                acting: float | None = None, terminations: bool = False) -> Table:
    """The table of ``runs``; ``acting``: also who acted in the epochs after that many env steps (None: not);
    ``terminations``: also which terminations the logged stages prove to be completions (the Reacher)."""
    groups = group(runs)
    methods = list(dict.fromkeys(run.label for run in runs))
    table = Table(list(groups), methods, env_budgets(groups, env_steps), {}, mode=mode, aggregate=aggregate,
                  metric=metric, reach_steps={threshold: {} for threshold in reach}, acting_after=acting or 0.0)
    cell_of = AGGREGATES[aggregate]
    for env, by_method in groups.items():
        budget = table.budgets[env]
        if acting is not None and acting >= budget:
            raise ResultsError(f"--acting {acting:,.0f}: {env}'s budget is {budget:,.0f} env steps; "
                               f"count from fewer steps than that")
        for label, method_runs in by_method.items():
            matrix, missing = scores_matrix(method_runs, budget, last)
            if missing:
                table.notes.append(f"{env} {label}: {len(missing)} run(s) did not reach {budget:,.0f} env steps "
                                   f"({', '.join(run.run_dir.name for run in missing)})")
            if matrix.size:
                table.cells[(env, label)] = cell_of(matrix, reps)
                if aggregate == "mean":
                    table.iqm_cells[(env, label)] = iqm_cell(matrix, reps)
                if per_task:
                    table.task_means[(env, label)] = matrix.mean(axis=0)
            left_out = {id(run) for run in missing}
            reached_budget = [run for run in method_runs if id(run) not in left_out]
            for threshold in reach if reached_budget else ():
                table.reach_steps[threshold][(env, label)] = [first_reaching(run, threshold, budget)
                                                              for run in reached_budget]
            if wall_time and reached_budget:
                table.wall_hours[(env, label)] = [hours_to(run, budget) for run in reached_budget]
            if terminations and reached_budget:
                table.terminations[(env, label)] = termination_counts(reached_budget, budget, last, mode)
            if acting is not None:
                counts = summed_acting([(run.acting_steps, run.acting) for run in reached_budget], budget, acting)
                if counts is not None:
                    table.acting[(env, label)] = counts
    if metric != "SuccessRate":  # the paper states success rates only
        return table
    for reference in PAPER_NUMBERS:
        for label in reference.labels:
            if label not in groups.get(reference.env, {}):
                continue
            method_runs = groups[reference.env][label]
            matrix, missing = scores_matrix(method_runs, reference.env_steps, last)
            reached = max(trained_steps(run) for run in method_runs)
            note = "" if matrix.size else f"not reached (max {reached:,.0f} env steps)"
            table.paper.append(PaperRow(reference, label, mean_cell(matrix, reps) if matrix.size else None, note))
    return table


# ----------------------------------------------------------------------------------------- rendering
def cell_text(cell: Cell | None) -> str:
    if cell is None:
        return "-"
    e = cell.estimate
    spread = "" if cell.std is None or np.isnan(cell.std) else f" ± {cell.std:.2f}"
    interval = "" if np.isnan(e.low) else f" [{e.low:.2f}, {e.high:.2f}]"
    return f"{e.point:.2f}{spread}{interval} (n={cell.runs})"


def steps_text(steps: float) -> str:
    return f"{steps / 1e6:.3g}M" if steps >= 1e5 else f"{steps:,.0f}"


IQM_CAPTION = ("IQM over runs x tasks [95% stratified-bootstrap percentile CI (rliable): each task's runs "
               "resampled]")


def caption(table: Table) -> str:
    policy = "own policies" if table.mode == "own" else "the mixture that collected the data"
    how = (IQM_CAPTION if table.aggregate == "iqm"
           else "mean over runs of each run's mean over tasks ± sample std over runs (ddof 1) [95% t-interval "
                "over runs]")
    return f"{table.metric}: {how} (n runs), at the env-step budget of each row (QMP runs: {policy})"


def paper_lines(table: Table) -> list[list[str]]:
    return [[row.reference.env, row.label, steps_text(row.reference.env_steps), row.reference.text(),
             cell_text(row.ours) if row.ours else row.note, row.reference.source] for row in table.paper]


PAPER_HEADER = ["env", "method", "env steps", "paper", "ours", "source"]


def to_markdown(table: Table) -> str:
    lines = [caption(table), "", "| env | env steps | " + " | ".join(table.methods) + " |",
             "|---|---|" + "---|" * len(table.methods)]
    for env in table.envs:
        cells = [cell_text(table.cells.get((env, label))) for label in table.methods]
        lines.append(f"| {env} | {steps_text(table.budgets[env])} | " + " | ".join(cells) + " |")
    if table.iqm_cells:
        lines += ["", f"{table.metric}: {IQM_CAPTION}, beside it:", "",
                  "| env | env steps | " + " | ".join(table.methods) + " |", "|---|---|" + "---|" * len(table.methods)]
        for env in table.envs:
            cells = [cell_text(table.iqm_cells.get((env, label))) for label in table.methods]
            lines.append(f"| {env} | {steps_text(table.budgets[env])} | " + " | ".join(cells) + " |")
    if table.paper:
        lines += ["", "Numbers the paper states, beside ours at the same budget:", "",
                  "| " + " | ".join(PAPER_HEADER) + " |", "|" + "---|" * len(PAPER_HEADER)]
        lines += ["| " + " | ".join(row) + " |" for row in paper_lines(table)]
    lines += (per_task_lines(table) + reach_lines(table) + wall_time_lines(table) + termination_lines(table)
              + acting_lines(table))
    lines += [f"\nnote: {note}" for note in table.notes]
    return "\n".join(lines) + "\n"


def per_task_lines(table: Table) -> list[str]:
    """Markdown: per environment, methods x tasks (means over runs at the budget)."""
    lines = []
    for env in table.envs:
        rows = [(label, table.task_means[(env, label)]) for label in table.methods if (env, label) in table.task_means]
        if not rows:
            continue
        tasks = max(len(means) for _, means in rows)
        lines += ["", f"{table.metric} per task, {env} at {steps_text(table.budgets[env])} (mean over runs):", "",
                  "| method | " + " | ".join(f"task {task}" for task in range(tasks)) + " | mean |",
                  "|---|" + "---|" * (tasks + 1)]
        lines += [f"| {label} | " + " | ".join(f"{value:.2f}" for value in means) + f" | {means.mean():.2f} |"
                  for label, means in rows]
    return lines


def per_run_lines(table: Table, caption: str, columns: Sequence[str],
                  values: Mapping[tuple[str, str], Any], cells) -> list[str]:
    """Markdown: a caption and one row per (environment, method) in ``values``; ``cells(env, values)``
    gives the row's cells after env and method."""
    lines = ["", caption, "", "| env | method | " + " | ".join(columns) + " |", "|---|---|" + "---|" * len(columns)]
    for env in table.envs:
        for label in table.methods:
            if (env, label) in values:
                lines.append(f"| {env} | {label} | " + " | ".join(cells(env, values[(env, label)])) + " |")
    return lines


def reach_lines(table: Table) -> list[str]:
    """Markdown: per threshold, environment and method, when each run's mean over tasks first reached it."""

    def cells(env: str, steps: list[float | None]) -> list[str]:
        reached = [value for value in steps if value is not None]
        median = steps_text(float(np.median(reached))) if reached else f"not by {steps_text(table.budgets[env])}"
        return [median, f"{len(reached)} / {len(steps)}",
                ", ".join("never" if value is None else steps_text(value) for value in steps)]

    lines = []
    for threshold, steps_of in table.reach_steps.items():
        caption = (f"Env steps at which each run's mean {table.metric} over tasks first reached {threshold:g} "
                   "(median over the runs that reached it; runs that did not, up to the budget, are counted apart):")
        lines += per_run_lines(table, caption, ["median", "reached / runs", "per run"], steps_of, cells)
    return lines


def wall_time_lines(table: Table) -> list[str]:
    """Markdown: per environment and method, the wall hours each run took to the budget."""
    if not table.wall_hours:
        return []

    def cells(env: str, hours: list[float | None]) -> list[str]:
        known = [value for value in hours if value is not None]
        return [f"{np.median(known):.2f}" if known else "-",
                ", ".join("-" if value is None else f"{value:.2f}" for value in hours)]

    caption = ("Wall time of training up to the budget, in hours (sum of the epochs' `Time/EpochSeconds`: "
               "collection, updates and evaluation, not checkpoints; it depends on the machine and its load):")
    return per_run_lines(table, caption, ["median", "per run"], table.wall_hours, cells)


def termination_lines(table: Table) -> list[str]:
    """Markdown: per method, how many per-task evaluations ended episodes early and how many of those the
    logged stages prove to be completions (``termination_counts``)."""
    if not table.terminations:
        return []

    def cells(env: str, counts: tuple[np.ndarray, np.ndarray]) -> list[str]:
        return [str(value) for value in counts[0]] + [str(value) for value in counts[1]]

    caption = ("Terminations: per-task evaluations up to the budget (all; with a termination; whose terminations "
               "the logged StagesCompleted proves to be completions; undecided), then the same for the "
               "evaluations each run is scored by:")
    return per_run_lines(table, caption, ["evaluations", "terminated", "proved completions", "undecided",
                                          "scored", "scored, terminated", "scored, proved", "scored, undecided"],
                         table.terminations, cells)


def acting_lines(table: Table) -> list[str]:
    """Markdown: per method whose runs log who acted (QMP, CTPG), the share of task i's collection steps
    acted by candidate j (percent of the counts summed over runs; the own policy in bold) and each run's
    own-policy share."""
    lines = []
    for env in table.envs:
        for label in table.methods:
            counts = table.acting.get((env, label))
            if counts is None:
                continue
            runs, tasks, candidates = counts.shape
            shares = 100 * row_shares(counts.sum(axis=0))  # [T, C] over the runs together
            own = 100 * row_shares(counts)[:, np.arange(tasks), np.arange(tasks)]  # [runs, T]
            names = [f"policy {j}" if j < tasks else f"guide {j - tasks}" for j in range(candidates)]
            span = (f"from {steps_text(table.acting_after)} to {steps_text(table.budgets[env])}" if table.acting_after
                    else f"up to {steps_text(table.budgets[env])}")
            summed = "the epochs of that span" if table.acting_after else "training"
            lines += ["", f"Who acted in {label}'s collection, {env}, {span}: % of task "
                      f"i's steps acted by policy j, summed over {summed} and the {runs} run(s) (own policy in bold; "
                      f"a uniform choice would give {100 / candidates:.0f}%), and each run's own-policy %:", "",
                      "| task | " + " | ".join(names) + " | own, per run |", "|---|" + "---|" * (candidates + 1)]
            for task in range(tasks):
                cells = [f"**{share:.0f}**" if j == task else f"{share:.0f}" for j, share in enumerate(shares[task])]
                lines.append(f"| task {task} | " + " | ".join(cells) + " | "
                             + ", ".join(f"{value:.0f}" for value in own[:, task]) + " |")
    return lines


def to_csv(table: Table) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["env", "env_steps", "method", table.aggregate, "ci_low", "ci_high", "sample_std", "runs", "paper",
                     "paper_env_steps"])

    def numbers(cell: Cell | None) -> list[str]:
        if cell is None:
            return ["", "", "", "", "0"]
        e = cell.estimate
        return [f"{e.point:.4f}", f"{e.low:.4f}", f"{e.high:.4f}", "" if cell.std is None else f"{cell.std:.4f}",
                str(cell.runs)]

    for env in table.envs:
        for label in table.methods:
            cell = table.cells.get((env, label))
            if cell is not None:
                writer.writerow([env, f"{table.budgets[env]:.0f}", label, *numbers(cell), "", ""])
    for row in table.paper:
        writer.writerow([row.reference.env, f"{row.reference.env_steps:.0f}", row.label, *numbers(row.ours),
                         row.reference.text(), row.reference.env_steps])
    return out.getvalue()


def latex_escape(text: str) -> str:
    for raw, escaped in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#"),
                         ("≈", r"$\approx$"), (">", r"$>$")):
        text = text.replace(raw, escaped)
    return text


def latex_cell(cell: Cell | None) -> str:
    if cell is None:
        return "--"
    e = cell.estimate
    spread = "" if cell.std is None else f" $\\pm$ {cell.std:.2f}"
    return f"{e.point:.2f}{spread} \\scriptsize[{e.low:.2f}, {e.high:.2f}]"


def to_latex(table: Table) -> str:
    lines = [r"\begin{table}[t]", r"\centering", r"\begin{tabular}{ll" + "c" * len(table.methods) + "}",
             r"\toprule", "Environment & Env steps & " + " & ".join(map(latex_escape, table.methods)) + r" \\",
             r"\midrule"]
    for env in table.envs:
        cells = [latex_cell(table.cells.get((env, label))) for label in table.methods]
        lines.append(f"{latex_escape(env)} & {steps_text(table.budgets[env])} & " + " & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", f"\\caption{{{latex_escape(caption(table))}.}}", r"\end{table}"]
    if table.paper:
        lines += ["", r"\begin{tabular}{llllll}", r"\toprule", " & ".join(PAPER_HEADER) + r" \\", r"\midrule"]
        lines += [" & ".join(latex_escape(text) for text in row) + r" \\" for row in paper_lines(table)]
        lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


RENDERERS = {"markdown": to_markdown, "csv": to_csv, "latex": to_latex}


def table_command(sweep_dir: str, env_steps: float | None, formats: Sequence[str], out: str | None, last: int,
                  reps: int, mode: str, aggregate: str = "iqm", metric: str = "SuccessRate", per_task: bool = False,
                  reach: Sequence[float] = (), wall_time: bool = False, methods: Sequence[str] = (),
                  acting: float | None = None, terminations: bool = False) -> list[Path]:
    """Print the table in ``formats`` (and write ``out``.md/.csv/.tex when given); returns files written.
    ``methods``: only these method labels, in this order."""
    runs = select_methods(load_sweep(sweep_dir, mode, metric), methods)
    table = build_table(runs, env_steps, last, reps, mode, aggregate, metric, reach, per_task, wall_time, acting,
                        terminations)
    written = []
    suffixes = {"markdown": ".md", "csv": ".csv", "latex": ".tex"}
    for name in formats:
        text = RENDERERS[name](table)
        print(text)
        if out:
            path = Path(out).with_suffix(suffixes[name])
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(path, lambda handle: handle.write(text.encode()))  # noqa: B023 (called at once)
            written.append(path)
    return written
