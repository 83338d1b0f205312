"""Figures from local run directories: ``python -m learning.analysis metrics|trajectories ...``.

``metrics PATH...`` reads every run directory under the paths (a folder holding ``config.json`` and
``metrics.jsonl``), groups runs by environment and method (experiment, or experiment:name, renamed
with ``--label``), treats the runs of a group as seeds, and writes PNGs to ``--out``:

* ``{env}_curves.png``: success rate (or ``--metric``) against environment steps, mean and a shaded
  standard deviation over seeds, one line per method (paper Figs. 7, 8);
* ``{env}_tasks.png``: the same per task (Fig. 13);
* ``{env}_{method}_acting_matrix.png``: share of task i's training steps acted by policy j, summed
  over training and seeds, diagonal zeroed for contrast (Fig. 18; runs that log who acted: QMP, CTPG);
* ``{env}_{method}_policy_shares.png``: per task, each policy's share of the steps over training,
  the own policy dashed (Figs. 9a, 19; QMP and CTPG runs);
* ``{env}_aggregates.png`` / ``{env}_profiles.png`` / ``{env}_improvement.png`` /
  ``{env}_aggregates.json``: IQM, mean, median, optimality gap of the final scores with 95 %
  stratified-bootstrap intervals, performance profiles, and the probability of improvement between
  methods (rliable.library and rliable.plot_utils, see learning/analysis/statistics.py).

``--metric`` is an evaluation metric or a data-collection metric under ``Train/``; one that no run has
is an error listing the ones they have. Methods are labelled with the paper's names.

``trajectories --snapshot_dir DIR`` replays a run (point reaching or maze) and draws the 2-D paths
coloured by the policy that acted at each step (Fig. 4), to ``{run}_trajectories.png``.

QMP runs are scored by each task's own policy (``Evaluation/p/``) unless ``--mode mixture``;
other runs always by ``Evaluation/``.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
from tqdm import tqdm  # noqa: E402

from environments.base import Arena  # noqa: E402
from learning.analysis.cli import PlotError, parse_arguments, report  # noqa: E402
from learning.analysis.run_data import RunData, acting_counts, summed_acting, task_count, task_scores  # noqa: E402
from learning.analysis.statistics import Estimate, aggregate_estimates, improvement_probability, performance_profiles  # noqa: E402
from learning.training.checkpoint import CONFIG_FILE  # noqa: E402
from learning.training.logger import METRICS_FILE, is_terminal, row_shares, run_dirs_under  # noqa: E402
from learning.training.run_guard import write_atomically  # noqa: E402
from learning.training.video import candidate_colours, file_slug  # noqa: E402

RATE_METRICS = ("SuccessRate", "TerminationRate", "MixtureProbs")
BOOKKEEPING_KEYS = {"seed", "log_dir", "notes", "wandb", "wandb_project", "wandb_entity", "explicit_flags", "gpu",
                    "num_threads", "snapshot_dir", "name"}
TRAJECTORY_ENVS = ("PointReach-v0", "MazeLarge-10-v0")
"""Environments whose first two raw observation dimensions are the agent's (x, y) position."""


# ----------------------------------------------------------------------------------------- loading runs
def find_run_dirs(paths: Sequence[Path | str]) -> list[Path]:
    """Every run directory (config.json and a metrics file, live or recorded) at or below ``paths``."""
    found = set()
    for path in map(Path, paths):
        if not path.exists():
            raise PlotError(f"{path} does not exist")
        found.update(run_dirs_under(path))
    return sorted(found)


def read_runs(paths: Sequence[Path | str], env_steps: float | None = None) -> list[RunData]:
    """Load every run under ``paths`` (a progress bar on a terminal), only its epochs up to ``env_steps``
    (all tasks together) when given; runs without rows are skipped."""
    runs = []
    for run_dir in tqdm(find_run_dirs(paths), desc="reading runs", unit="run", disable=not is_terminal()):
        run = RunData.load(run_dir, env_steps)
        if run.rows:
            runs.append(run)
    if not runs:
        raise PlotError(f"no run directory with {CONFIG_FILE} and a non-empty {METRICS_FILE} under "
                        f"{', '.join(map(str, paths))}")
    return runs


def parse_labels(items: Sequence[str]) -> dict[str, str]:
    """``["qmp_dnc=QMP", "dnc_sac:long=DnC (long)"]`` -> key -> display label."""
    labels = {}
    for item in items:
        key, separator, text = item.partition("=")
        if not separator or not key or not text:
            raise PlotError(f"--label must look like EXPERIMENT=TEXT or EXPERIMENT:NAME=TEXT, got {item!r}")
        labels[key] = text
    return labels


def group_runs(runs: Sequence[RunData], labels: dict[str, str]) -> dict[str, dict[str, list[RunData]]]:
    """Environment -> method label -> runs (its seeds). QMP methods come first, then by name."""
    groups: dict[str, dict[str, list[RunData]]] = {}
    for run in runs:
        key = run.default_label()
        label = labels.get(key, labels.get(run.experiment, run.method_name()))
        groups.setdefault(run.env, {}).setdefault(label, []).append(run)
    return {env: dict(sorted(methods.items(), key=lambda item: (not item[1][0].is_qmp, item[0])))
            for env, methods in sorted(groups.items())}


def select_methods(groups: dict[str, dict[str, list[RunData]]],
                   labels: Sequence[str]) -> dict[str, dict[str, list[RunData]]]:
    """Only the methods ``labels``, in that order, of each environment; PlotError for a label no run has."""
    known = list(dict.fromkeys(label for methods in groups.values() for label in methods))
    unknown = [label for label in labels if label not in known]
    if unknown:
        raise PlotError(f"no run has the method label {unknown[0]!r}; the labels are: {', '.join(known)}")
    selected = {env: {label: methods[label] for label in labels if label in methods} for env, methods in groups.items()}
    return {env: methods for env, methods in selected.items() if methods}


def config_differences(runs: Sequence[RunData]) -> list[str]:
    """Configuration keys, other than seed and bookkeeping, whose values differ between ``runs``."""
    keys = sorted(set().union(*(run.config for run in runs)) - BOOKKEEPING_KEYS)
    return [key for key in keys if len({json.dumps(run.config.get(key)) for run in runs}) > 1]


def group_notes(env: str, methods: dict[str, list[RunData]]) -> list[str]:
    """Warnings about groups that mix configurations or whose runs have different lengths."""
    notes = []
    for label, runs in methods.items():
        differences = config_differences(runs)
        if differences:
            notes.append(f"{env} {label}: its runs differ in {', '.join(differences)}; plot them from separate "
                         f"folders or train them under different --name values")
        lengths = {len(run.rows) for run in runs}
        if len(lengths) > 1:
            notes.append(f"{env} {label}: runs have {min(lengths)} to {max(lengths)} epochs; curves stop where "
                         f"the shortest ends")
    return notes


def is_rate(metric: str) -> bool:
    """Rates and shares live on [0, 1]."""
    return metric.removeprefix("Train/") in RATE_METRICS


def check_metric(runs: Sequence[RunData], metric: str, mode: str) -> None:
    """Raise PlotError when no run has ``metric``, listing the metrics the runs have, closest first."""
    available = set().union(*(run.metric_names(mode) for run in runs))
    if metric in available:
        return
    ranked = difflib.get_close_matches(metric, sorted(available), n=len(available), cutoff=0.0)
    raise PlotError(f"no run has the metric {metric!r}; they have (closest first): {', '.join(ranked)}")


def task_names(run: RunData, count: int) -> list[str]:
    """The env's task names (built from the saved configuration), else "task k"."""
    try:
        from environments import make_task_set
        from learning.training.config import Config

        names = list(make_task_set(run.env, **Config.from_dict(run.config).env_kwargs()).task_names)
    except Exception:  # a config from another version, or an env that cannot be built here
        names = []
    return names if len(names) == count else [f"task {index}" for index in range(count)]


# ----------------------------------------------------------------------------------------- curves
def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average over the last axis (the first points average what exists)."""
    if window <= 1:
        return values
    cumulative = np.cumsum(values, axis=-1)
    shifted = np.concatenate([np.zeros_like(cumulative[..., :window]), cumulative[..., :-window]], axis=-1)
    counts = np.minimum(np.arange(1, values.shape[-1] + 1), window)
    return (cumulative - shifted) / counts


def aligned(runs: Sequence[RunData], key_of_run) -> tuple[np.ndarray, np.ndarray]:
    """Steps ``[E]`` (mean over runs) and values ``[runs, E]`` at the epochs every run has."""
    series = [run.series(key_of_run(run)) for run in runs]
    epochs = sorted(set.intersection(*(set(s) for s in series))) if series else []
    if not epochs:
        return np.zeros(0), np.zeros((len(runs), 0))
    steps = np.array([[s[epoch][0] for epoch in epochs] for s in series]).mean(axis=0)
    values = np.array([[s[epoch][1] for epoch in epochs] for s in series])
    return steps, values


def spread_of(values: np.ndarray, spread: str) -> np.ndarray:
    """Standard deviation over runs (the paper's shading) or the standard error."""
    std = values.std(axis=0)
    return std / np.sqrt(values.shape[0]) if spread == "sem" else std


FIXED_COLOURS = ("Separated + QMP", "Separated", "DnC (reg.)", "UDS", "QMP-Uniform", "QMP-Domain", "Separated + CTPG",
                 "Parameters + QMP", "Parameters", "DnC")
"""Method labels (the grids' and the paper's names) with a colour of their own, the i-th colour of the
palette, so a method looks the same in every figure whatever the other methods in it."""


def method_colours(methods: Sequence[str]) -> dict[str, tuple[float, float, float]]:
    """A colour per method: the fixed one for the names in FIXED_COLOURS, the free palette colours in
    order for the others."""
    palette = candidate_colours(len(FIXED_COLOURS) + len(methods))
    taken = {FIXED_COLOURS.index(method) for method in methods if method in FIXED_COLOURS}
    free = iter(index for index in range(len(palette)) if index not in taken)
    indices = {method: FIXED_COLOURS.index(method) if method in FIXED_COLOURS else next(free) for method in methods}
    return {method: (palette[index][0] / 255, palette[index][1] / 255, palette[index][2] / 255)
            for method, index in indices.items()}


def draw_curve(axis, steps: np.ndarray, values: np.ndarray, label: str, colour, spread: str, window: int) -> None:
    mean, band = smooth(values.mean(axis=0), window), smooth(spread_of(values, spread), window)
    axis.plot(steps, mean, color=colour, label=f"{label} (n={values.shape[0]})")
    axis.fill_between(steps, mean - band, mean + band, color=colour, alpha=0.2, linewidth=0)


def metric_label(metric: str, mode: str) -> str:
    if metric.startswith("Train/"):
        return f"{metric.removeprefix('Train/')} of the collected episodes (QMP: the Q-switch acting)"
    return f"{metric} (QMP: {'own policies' if mode == 'own' else 'the mixture that collected the data'})"


def rate_axis(axis, metric: str) -> None:
    """Rates on a fixed [0, 1] axis (a little margin so 0 and 1 stay visible)."""
    if is_rate(metric):
        axis.set_ylim(-0.03, 1.03)


def plot_curves(env: str, methods: dict[str, list[RunData]], metric: str, mode: str, spread: str, window: int,
                out: Path) -> Path:
    """All methods' ``metric`` over environment steps (Figs. 7, 8)."""
    colours = method_colours(list(methods))
    figure, axis = plt.subplots(figsize=(7, 4.5), layout="constrained")
    for label, runs in methods.items():
        steps, values = aligned(runs, lambda run: run.metric_keys(metric, mode)[0])
        if values.shape[1]:
            draw_curve(axis, steps, values, label, colours[label], spread, window)
    axis.set(xlabel="environment steps (all tasks)", ylabel=metric_label(metric, mode))
    axis.set_title(f"{env}: mean and {spread} over runs (n)", fontsize=10)
    rate_axis(axis, metric)
    axis.grid(alpha=0.3)
    figure.legend(loc="outside right upper", fontsize=8)
    return save(figure, out / f"{file_slug(env)}_curves.png")


def task_grid(count: int):
    """A figure with one panel per task (at most 5 per row, each with its own y axis); returns the
    figure and ``(task, axis)`` pairs. Unused panels are hidden."""
    columns = min(count, 5)
    rows = -(-count // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(max(3.4 * columns, 6.0) + 2.0, max(2.8 * rows, 3.6)),
                                squeeze=False, layout="constrained")
    for axis in axes.flat[count:]:
        axis.set_visible(False)
    return figure, list(enumerate(axes.flat[:count]))


def panel_title(task: int, name: str, width: int = 30) -> str:
    """``"3: peg-insert-side"``, wrapped so it fits over a panel."""
    return textwrap.fill(f"{task}: {name}", width)


def plot_task_curves(env: str, methods: dict[str, list[RunData]], metric: str, mode: str, spread: str, window: int,
                     out: Path) -> Path | None:
    """One panel per task (Fig. 13)."""
    first = next(iter(methods.values()))[0]
    count = task_count(first.rows, first.metric_keys(metric, mode)[1])
    if count == 0:
        return None
    names = task_names(first, count)
    colours = method_colours(list(methods))
    figure, task_axes = task_grid(count)
    for task, axis in task_axes:
        for label, runs in methods.items():
            steps, values = aligned(runs, lambda run: run.metric_keys(metric, mode)[1].format(task=task))  # noqa: B023
            if values.shape[1]:
                draw_curve(axis, steps, values, label, colours[label], spread, window)
        axis.set_title(panel_title(task, names[task]), fontsize=8)
        rate_axis(axis, metric)
        axis.grid(alpha=0.3)
        axis.tick_params(labelsize=7)
        axis.xaxis.set_major_locator(MaxNLocator(4))
    handles, labels = task_axes[0][1].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside right upper", fontsize=8)
    figure.supxlabel("environment steps (all tasks)")
    figure.supylabel(metric_label(metric, mode))
    figure.suptitle(env)
    return save(figure, out / f"{file_slug(env)}_tasks.png")


# ----------------------------------------------------------------------------------------- behaviour sharing
def candidate_labels(num_tasks: int, num_candidates: int, run: RunData) -> list[str]:
    """"policy j" for learned policies, then the guide policies' names from the configuration."""
    guides = [name.strip() for name in str(run.config.get("guide_policies", "")).split(",") if name.strip()]
    extra = num_candidates - num_tasks
    guide_names = guides[:extra] if len(guides) >= extra else [f"{index}" for index in range(extra)]
    return [f"policy {index}" for index in range(num_tasks)] + [f"guide {name}" for name in guide_names]


def acting_shares(runs: Sequence[RunData]) -> np.ndarray | None:
    """``[T, C]``: share of task i's training steps acted by candidate j, over all epochs and runs."""
    totals = summed_acting([acting_counts(run.rows) for run in runs])
    return None if totals is None else row_shares(totals.sum(axis=0))


def plot_acting_matrix(env: str, label: str, runs: Sequence[RunData], zero_diagonal: bool, out: Path) -> Path | None:
    """The acting shares as a heatmap, diagonal zeroed for contrast by default (Fig. 18)."""
    shares = acting_shares(runs)
    if shares is None:
        return None
    num_tasks, num_candidates = shares.shape
    shown = 100 * shares  # percent, as the numbers in the cells and the colour bar
    if zero_diagonal:
        shown[np.arange(num_tasks), np.arange(num_tasks)] = 0.0
    figure, axis = plt.subplots(figsize=(max(5.0, 1.6 + 0.55 * num_candidates), 1.6 + 0.5 * num_tasks),
                                  layout="constrained")
    image = axis.imshow(shown, cmap="Blues", vmin=0.0, vmax=max(float(shown.max()), 1e-9))
    if num_tasks * num_candidates <= 200:
        for (task, candidate), share in np.ndenumerate(shares):
            axis.text(candidate, task, f"{100 * share:.0f}", ha="center", va="center", fontsize=7,
                      color="white" if shown[task, candidate] > 0.6 * shown.max() else "black")
    names = task_names(runs[0], num_tasks)
    axis.set_xticks(range(num_candidates), candidate_labels(num_tasks, num_candidates, runs[0]), rotation=60,
                    ha="right", fontsize=7)
    axis.set_yticks(range(num_tasks), [f"{task}: {names[task]}" for task in range(num_tasks)], fontsize=7)
    axis.set(xlabel="acting policy j", ylabel="task i")
    diagonal = ", diagonal not coloured" if zero_diagonal else ""
    title = f"{env} {label}:\nshare of task i's steps acted by policy j (%{diagonal})"  # two lines fit the axes
    axis.set_title(title, fontsize=9)
    figure.colorbar(image, ax=axis, fraction=0.046)
    return save(figure, out / f"{file_slug(env)}_{file_slug(label)}_acting_matrix.png", tight=True)


def policy_share_curves(runs: Sequence[RunData]) -> tuple[np.ndarray, np.ndarray] | None:
    """Steps ``[E]`` and ``[E, T, C]`` shares of each epoch's steps of task i acted by candidate j,
    averaged over runs (truncated to the shortest run)."""
    per_run = [(steps, counts) for steps, counts in (acting_counts(run.rows) for run in runs) if counts.size]
    if not per_run or len({counts.shape[1:] for _, counts in per_run}) != 1:
        return None
    length = min(counts.shape[0] for _, counts in per_run)
    steps = np.mean([s[:length] for s, _ in per_run], axis=0)
    counts = np.stack([c[:length] for _, c in per_run])
    return steps, row_shares(counts).mean(axis=0)


def plot_policy_shares(env: str, label: str, runs: Sequence[RunData], window: int, out: Path) -> Path | None:
    """Per task: each candidate's share of the steps over training, own policy dashed (Figs. 9a, 19)."""
    curves = policy_share_curves(runs)
    if curves is None:
        return None
    steps, shares = curves
    _, num_tasks, num_candidates = shares.shape
    names = task_names(runs[0], num_tasks)
    labels = candidate_labels(num_tasks, num_candidates, runs[0])
    colours = [(r / 255, g / 255, b / 255) for r, g, b in candidate_colours(num_candidates)]
    figure, task_axes = task_grid(num_tasks)
    for task, axis in task_axes:
        for candidate in range(num_candidates):
            own = candidate == task
            axis.plot(steps, smooth(shares[:, task, candidate], window), color="black" if own else colours[candidate],
                      linestyle="--" if own else "-", linewidth=1.6 if own else 1.0,
                      label=f"{labels[candidate]}{' (own)' if own else ''}")
        axis.set_title(panel_title(task, names[task]), fontsize=8)
        axis.set_ylim(-0.03, 1.03)
        axis.grid(alpha=0.3)
        axis.tick_params(labelsize=7)
    handles = [plt.Line2D([], [], color=colours[c], label=labels[c]) for c in range(num_candidates)]
    handles.append(plt.Line2D([], [], color="black", linestyle="--", label="own policy"))
    figure.legend(handles=handles, loc="outside right upper", fontsize=7)
    figure.supxlabel("environment steps (all tasks)")
    figure.supylabel("share of the task's training steps")
    figure.suptitle(f"{env} {label}: who acted ({len(runs)} runs)")
    return save(figure, out / f"{file_slug(env)}_{file_slug(label)}_policy_shares.png")


# ----------------------------------------------------------------------------------------- aggregates
def final_scores(runs: Sequence[RunData], metric: str, mode: str, last: int) -> np.ndarray:
    """``[runs, tasks]``: each run's per-task metric averaged over its last ``last`` evaluations."""
    matrix = []
    for run in runs:
        values = task_scores(run.rows, run.metric_keys(metric, mode)[1])[1]
        if len(values):
            matrix.append(values[-last:].mean(axis=0))
    return np.array(matrix, dtype=float)


def short_runs(runs: Sequence[RunData], metric: str, mode: str, last: int) -> list[tuple[str, int]]:
    """Runs with fewer than ``last`` evaluations of ``metric``: (run directory name, evaluations)."""
    short = []
    for run in runs:
        available = len(task_scores(run.rows, run.metric_keys(metric, mode)[1])[0])
        if available < last:
            short.append((run.run_dir.name, available))
    return short


def normalize_per_task(scores: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Each task's scores mapped to [0, 1] by the minimum and maximum over all methods' runs (a task
    whose scores are all equal maps to 0)."""
    stacked = np.concatenate(list(scores.values()))
    low, high = stacked.min(axis=0), stacked.max(axis=0)
    span = np.where(high > low, high - low, 1.0)
    return {label: (matrix - low) / span for label, matrix in scores.items()}


def method_scores(methods: dict[str, list[RunData]], metric: str, mode: str, last: int,
                  normalize: bool = False) -> dict[str, np.ndarray]:
    """Method -> ``[runs, tasks]`` final scores (methods without any are left out); raises PlotError
    when methods have different task counts."""
    scores = {label: final_scores(runs, metric, mode, last) for label, runs in methods.items()}
    scores = {label: matrix for label, matrix in scores.items() if matrix.size}
    if len({matrix.shape[1] for matrix in scores.values()}) > 1:
        raise PlotError(f"methods have different task counts: "
                        f"{ {label: matrix.shape[1] for label, matrix in scores.items()} }")
    return normalize_per_task(scores) if normalize and scores else scores


def score_notes(env: str, methods: dict[str, list[RunData]], metric: str, mode: str, last: int,
                normalize: bool) -> list[str]:
    """Warnings about the final scores: runs with fewer evaluations than ``--last``, and aggregates
    that pool tasks on different scales."""
    notes = []
    short = [available for runs in methods.values() for _, available in short_runs(runs, metric, mode, last)]
    if short:
        counts = f"{min(short)}" if min(short) == max(short) else f"{min(short)} to {max(short)}"
        notes.append(f"{env}: --last {last} is more than the {counts} evaluations of {metric} that {len(short)} "
                     f"run(s) have; their final scores average all they have")
    scores = method_scores(methods, metric, mode, last)
    tasks = next(iter(scores.values())).shape[1] if scores else 0
    if is_rate(metric) or tasks < 2:
        return notes
    stacked = np.concatenate(list(scores.values()))
    low, high = stacked.min(axis=0), stacked.max(axis=0)
    if normalize:
        notes.append(f"{env}: {metric} normalised per task to [0, 1] by its minimum and maximum over all runs "
                     f"before aggregating (--normalize)")
    else:
        ranges = ", ".join(f"{task}: {low[task]:.3g}..{high[task]:.3g}" for task in range(min(tasks, 5)))
        notes.append(f"{env}: IQM, mean and median of {metric} pool {tasks} tasks on different scales "
                     f"({ranges}{', ...' if tasks > 5 else ''}); tasks with large scores dominate. --normalize "
                     f"scales each task to [0, 1] first")
    return notes


def compare_methods(methods: dict[str, list[RunData]], metric: str, mode: str, last: int, reps: int,
                    normalize: bool = False,
                    ) -> tuple[dict[str, dict[str, Estimate]], dict[str, Estimate], dict[str, int]]:
    """Aggregate estimates per method, P(X > Y) for each pair in order, and the run count per method."""
    scores = method_scores(methods, metric, mode, last, normalize)
    threshold = 1.0 if is_rate(metric) or normalize else None
    estimates = aggregate_estimates(scores, reps=reps, optimality_threshold=threshold)
    labels = list(scores)
    improvements = {f"{x} > {y}": improvement_probability(scores[x], scores[y], reps=reps)
                    for index, x in enumerate(labels) for y in labels[index + 1:]}
    return estimates, improvements, {label: matrix.shape[0] for label, matrix in scores.items()}


def score_label(metric: str, mode: str, normalize: bool) -> str:
    label = f"final {metric_label(metric, mode)}"
    return f"{label}, normalised per task" if normalize and not is_rate(metric) else label


def plot_aggregates(env: str, estimates: dict[str, dict[str, Estimate]], metric: str, mode: str, out: Path,
                    normalize: bool = False) -> Path:
    """rliable's interval-estimate figure: one panel per aggregate, one row per method."""
    from rliable import plot_utils

    methods = list(estimates)
    names = list(next(iter(estimates.values())))
    colours = method_colours(methods)
    points = {m: np.array([estimates[m][name].point for name in names]) for m in methods}
    intervals = {m: np.array([[estimates[m][name].low for name in names], [estimates[m][name].high for name in names]])
                 for m in methods}
    row_height = max(0.6, 1.4 / len(methods))
    figure, axes = plot_utils.plot_interval_estimates(points, intervals, metric_names=names, algorithms=methods,
                                                      colors=colours, subfigure_width=3.4, row_height=row_height,
                                                      max_ticks=3, xlabel="", wspace=0.15)
    for axis in np.atleast_1d(axes):  # rliable draws xx-large text, sized for a poster
        axis.tick_params(labelsize=9)
        axis.title.set_fontsize(10)
        for text in axis.get_yticklabels():
            text.set_fontsize(9)
    height = row_height * len(methods)
    figure.text(0.5, -0.4 / height, f"{score_label(metric, mode, normalize)}, 95 % stratified-bootstrap CI",
                ha="center", va="top", fontsize=9)
    figure.text(0.5, 1 + 0.3 / height, env, ha="center", va="bottom", fontsize=10)
    return save(figure, out / f"{file_slug(env)}_aggregates.png", tight=True)


def plot_improvement(env: str, improvements: dict[str, Estimate], out: Path) -> Path:
    """rliable's probability-of-improvement figure: P(X > Y) with 95 % intervals, one row per pair."""
    from rliable import plot_utils

    pairs = list(improvements)
    figure, axis = plt.subplots(figsize=(6.5, 1.4 + 0.5 * len(pairs)))
    plot_utils.plot_probability_of_improvement(
        {pair: improvements[pair].point for pair in pairs},
        {pair: np.array([improvements[pair].low, improvements[pair].high]) for pair in pairs},
        pair_separator=" > ", ax=axis, colors=["tab:blue"] * len(pairs), xlabel="P(X > Y), 95 % CI",
        ticklabelsize=9, labelsize=10, left_ylabel="method X", right_ylabel="method Y")
    axis.set_xlim(0, 1)
    axis.axvline(0.5, color="grey", linestyle=":")
    axis.set_title(env, fontsize=10)
    return save(figure, out / f"{file_slug(env)}_improvement.png", tight=True)


def plot_profiles(env: str, scores: dict[str, np.ndarray], metric: str, mode: str, normalize: bool, reps: int,
                  out: Path) -> Path:
    """rliable's performance profiles: the fraction of run-task scores above each threshold tau."""
    from rliable import plot_utils

    stacked = np.concatenate(list(scores.values()))
    low, high = (0.0, 1.0) if is_rate(metric) or normalize else (float(stacked.min()), float(stacked.max()))
    thresholds = np.linspace(low, high if high > low else low + 1.0, 41)
    profiles, intervals = performance_profiles(scores, thresholds, reps=reps)
    colours = method_colours(list(scores))
    figure, axis = plt.subplots(figsize=(7, 4), layout="constrained")
    plot_utils.plot_performance_profiles(profiles, thresholds, performance_profile_cis=intervals, colors=colours,
                                         ax=axis, xlabel=f"tau: {score_label(metric, mode, normalize)}",
                                         ylabel="fraction of runs x tasks with score > tau", labelsize=10,
                                         ticklabelsize=9)
    axis.set_title(f"{env}: score distributions, 95 % CI", fontsize=10)
    handles = [plt.Line2D([], [], color=colours[label], label=f"{label} (n={scores[label].shape[0]})")
               for label in scores]
    figure.legend(handles=handles, loc="outside right center", fontsize=8)  # clear of the title
    return save(figure, out / f"{file_slug(env)}_profiles.png")


def estimate_list(estimate: Estimate) -> list[float]:
    return [estimate.point, estimate.low, estimate.high]


# ----------------------------------------------------------------------------------------- trajectories
def draw_arena(axis, arena: Arena, env) -> None:
    """Walls or bounds of the 2-D arena (the task set's), and the goal with its success radius."""
    from matplotlib.patches import Circle, Rectangle

    if arena.bounds is not None:
        low, high = arena.bounds
        axis.add_patch(Rectangle((low, low), high - low, high - low, fill=False, edgecolor="black"))
    for x, y in arena.wall_centres:
        axis.add_patch(Rectangle((x - 0.5, y - 0.5), 1, 1, color="0.75", linewidth=0))
    goal = arena.goal(env)
    axis.add_patch(Circle((float(goal[0]), float(goal[1])), arena.success_distance, color="gold", alpha=0.6, zorder=0))
    axis.set_aspect("equal")
    axis.autoscale_view()


def plot_trajectories(run, traces_by_task: dict[int, list], mode: str, deterministic: bool, out: Path) -> Path:
    """2-D positions of every replayed episode, each step coloured by its acting policy (Fig. 4)."""
    from matplotlib.collections import LineCollection

    from learning.training.video import candidate_names

    names = candidate_names(run.parts.task_set)
    arena = run.parts.task_set.arena
    if arena is None:
        raise PlotError(f"{run.config.env} has no 2-D arena to draw trajectories in")
    colours = [(r / 255, g / 255, b / 255) for r, g, b in candidate_colours(len(names))]
    tasks = sorted(traces_by_task)
    columns = min(len(tasks), 5)
    rows = -(-len(tasks) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4 * columns + 1.8, 4 * rows + 0.6), squeeze=False,
                                 layout="constrained")
    used: set[int] = set()
    for axis, task in zip(axes.flat, tasks):
        draw_arena(axis, arena, run.parts.evaluator.envs[task])
        for trace in traces_by_task[task]:
            positions = trace.raw_observations[:, :2]
            segments = np.stack([positions[:-1], positions[1:]], axis=1)
            axis.add_collection(LineCollection(segments, colors=[colours[j] for j in trace.acting], linewidths=1.2))  # type: ignore[arg-type]
            axis.plot(*positions[0], marker="o", color="black", markersize=4)
            used.update(int(j) for j in trace.acting)
        axis.set_title(f"{task}: {run.task_names[task]}", fontsize=8)
        axis.set_xlabel("x", fontsize=8)
        axis.set_ylabel("y", fontsize=8)
        axis.tick_params(labelsize=7)
    for axis in list(axes.flat)[len(tasks):]:
        axis.set_visible(False)
    handles = [plt.Line2D([], [], color=colours[j], label=names[j]) for j in sorted(used)]
    figure.legend(handles=handles, loc="outside right center", fontsize=8)  # clear of the title
    style = "deterministic" if deterministic else "stochastic"
    figure.suptitle(f"{run.config.run_name}, {run.epochs_trained} epochs\n{mode} ({style}); colour = acting policy",
                    fontsize=9)
    return save(figure, out / f"{file_slug(run.run_dir.name)}_trajectories.png")


# ----------------------------------------------------------------------------------------- commands
def save(figure, path: Path, tight: bool = False) -> Path:
    """Write the figure as PNG; ``tight`` widens the canvas to every label (rliable's figures place
    labels outside their axes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        write_atomically(path, lambda handle: figure.savefig(handle, format="png", dpi=120,
                                                             bbox_inches="tight" if tight else None))
    finally:
        plt.close(figure)
    return path


def metrics_command(args: argparse.Namespace) -> list[Path]:
    """Every metrics figure for every environment found; returns the files written."""
    out = Path(args.out)
    runs = read_runs(args.paths, args.env_steps)
    check_metric(runs, args.metric, args.mode)
    groups = group_runs(runs, parse_labels(args.label))
    if args.methods:
        groups = select_methods(groups, args.methods)
    written: list[Path | None] = []
    jobs = [(env, methods) for env, methods in groups.items()]
    for env, methods in tqdm(jobs, desc="plotting", unit="env", disable=not is_terminal()):
        for note in group_notes(env, methods) + score_notes(env, methods, args.metric, args.mode, args.last,
                                                             args.normalize):
            print(f"note: {note}", file=sys.stderr)
        written.append(plot_curves(env, methods, args.metric, args.mode, args.spread, args.smooth, out))
        written.append(plot_task_curves(env, methods, args.metric, args.mode, args.spread, args.smooth, out))
        for label, method_runs in methods.items():
            if args.acting_figures and any(len(acting_counts(run.rows)[0]) for run in method_runs):  # QMP, CTPG
                written.append(plot_acting_matrix(env, label, method_runs, not args.keep_diagonal, out))
                written.append(plot_policy_shares(env, label, method_runs, args.smooth, out))
        estimates, improvements, run_counts = compare_methods(methods, args.metric, args.mode, args.last, args.reps,
                                                              args.normalize)
        if estimates:
            written.append(plot_aggregates(env, estimates, args.metric, args.mode, out, args.normalize))
            written.append(plot_profiles(env, method_scores(methods, args.metric, args.mode, args.last, args.normalize),
                                         args.metric, args.mode, args.normalize, args.reps, out))
            print_aggregates(env, estimates, improvements, run_counts)
        if improvements:
            written.append(plot_improvement(env, improvements, out))
        summary = {
            "metric": args.metric, "mode": args.mode, "last_evaluations": args.last,
            "normalized_per_task": bool(args.normalize and not is_rate(args.metric)),
            "methods": {label: {"runs": run_counts[label], **{name: estimate_list(e) for name, e in values.items()}}
                        for label, values in estimates.items()},
            "probability_of_improvement": {pair: estimate_list(e) for pair, e in improvements.items()},
        }
        summary_path = out / f"{file_slug(env)}_aggregates.json"
        summary_path.parent.mkdir(parents=True, exist_ok=True)
        data = json.dumps(summary, indent=2).encode()
        write_atomically(summary_path, lambda handle: handle.write(data))  # noqa: B023 (called at once)
        written.append(summary_path)
    return [path for path in written if path is not None]


def aggregate_table(env: str, estimates: dict[str, dict[str, Estimate]], improvements: dict[str, Estimate],
                    run_counts: dict[str, int]) -> str:
    """The aggregates as text: one column per aggregate, ``point [low, high]`` with every number
    right-aligned to a common width (negative returns line up too)."""
    names = list(next(iter(estimates.values())))
    numbers = [f"{value:.3f}" for values in estimates.values() for e in values.values()
               for value in (e.point, e.low, e.high)]
    width = max(map(len, numbers))
    cell_width = 3 * width + 5
    label_width = max(len("method"), *map(len, estimates)) + 2

    def cell(e: Estimate) -> str:
        return f"{e.point:>{width}.3f} [{e.low:>{width}.3f}, {e.high:>{width}.3f}]"

    lines = [f"{env}: final scores, point [95% CI]",
             f"{'method':<{label_width}}{'runs':>5}" + "".join(f"  {name:>{cell_width}}" for name in names)]
    for label, values in estimates.items():
        lines.append(f"{label:<{label_width}}{run_counts[label]:>5}" + "".join(f"  {cell(e)}" for e in values.values()))
    pair_width = max((len(pair) for pair in improvements), default=0) + 3
    for pair, e in improvements.items():
        lines.append(f"{f'P({pair})':<{pair_width}} = {e.point:.3f} [{e.low:.3f}, {e.high:.3f}]")
    return "\n".join(lines)


def print_aggregates(env: str, estimates: dict[str, dict[str, Estimate]], improvements: dict[str, Estimate],
                     run_counts: dict[str, int]) -> None:
    print(aggregate_table(env, estimates, improvements, run_counts))


def trajectories_command(args: argparse.Namespace) -> list[Path]:
    import torch

    from learning.analysis.runs import RunLoadError, load_run, parse_tasks
    from learning.training.video import replay_tasks

    try:
        run = load_run(args.snapshot_dir)
    except RunLoadError as error:
        raise PlotError(str(error)) from None
    try:
        if run.config.env not in TRAJECTORY_ENVS:
            raise PlotError(f"trajectories need a 2-D position in the observation ({', '.join(TRAJECTORY_ENVS)}), "
                            f"not {run.config.env}")
        mode = args.mode or run.default_mode()
        behaviour = run.behaviour(mode)
        tasks = parse_tasks(args.tasks, run.parts.task_set.num_tasks)
        torch.manual_seed(args.seed)
        traces, _ = replay_tasks(run.parts.replay_context, behaviour, run.parts.evaluator.envs, tasks, args.episodes,
                                 args.deterministic, args.seed)
        return [plot_trajectories(run, traces, mode, args.deterministic, Path(args.out))]
    except RunLoadError as error:
        raise PlotError(str(error)) from None
    finally:
        run.close()


def main(argv: Sequence[str]) -> int:
    """``python -m learning.analysis``: bad input gives one line on stderr and exit code 2."""
    try:
        args = parse_arguments(argv)
        written = metrics_command(args) if args.command == "metrics" else trajectories_command(args)
    except PlotError as error:
        return report(error)
    for path in written:
        print(path)
    return 0
