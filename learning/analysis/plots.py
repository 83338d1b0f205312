"""Figures from local run directories: ``python -m learning.analysis metrics|trajectories ...``.

``metrics PATH...`` reads every run directory under the paths (a folder holding ``config.json`` and
``metrics.jsonl``), groups runs by environment and method (experiment, or experiment:name, renamed
with ``--label``), treats the runs of a group as seeds, and writes PNGs to ``--out``:

* ``{env}_curves.png``: success rate (or ``--metric``) against environment steps, mean and a shaded
  standard deviation over seeds, one line per method (paper Figs. 7, 8);
* ``{env}_tasks.png``: the same per task (Fig. 13);
* ``{env}_{method}_acting_matrix.png``: share of task i's training steps acted by policy j, summed
  over training and seeds, diagonal zeroed for contrast (Fig. 18; QMP runs);
* ``{env}_{method}_policy_shares.png``: per task, each policy's share of the steps over training,
  the own policy dashed (Figs. 9a, 19; QMP runs);
* ``{env}_aggregates.png`` / ``{env}_improvement.png`` / ``{env}_aggregates.json``: IQM, mean,
  median, optimality gap of the final scores with 95 % stratified-bootstrap intervals, and the
  probability of improvement between methods (rliable's protocol, see learning/analysis/statistics.py).

``trajectories --snapshot_dir DIR`` replays a run (point reaching or maze) and draws the 2-D paths
coloured by the policy that acted at each step (Fig. 4), to ``{run}_trajectories.png``.

QMP runs are scored by each task's own policy (``Evaluation/p/``) unless ``--mode mixture``;
other runs always by ``Evaluation/``.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from learning.analysis.cli import PlotError, build_parser, main  # noqa: E402,F401  (main: python -m learning.analysis)
from learning.training.checkpoint import CONFIG_FILE  # noqa: E402
from learning.training.logger import METRICS_FILE, is_terminal, read_metrics  # noqa: E402
from learning.analysis.statistics import Estimate, aggregate_estimates, improvement_probability  # noqa: E402
from learning.training.video import candidate_colours, file_slug  # noqa: E402

STEPS_KEY = "Train/TotalEnvSteps"
ACTING_KEY = "Train/ActingPolicyCounts"
RATE_METRICS = ("SuccessRate", "TerminationRate")
BOOKKEEPING_KEYS = {"seed", "log_dir", "notes", "wandb", "wandb_project", "wandb_entity", "explicit_flags", "gpu",
                    "num_threads", "snapshot_dir", "name"}
TRAJECTORY_ENVS = ("PointReach-v0", "MazeLarge-10-v0")
"""Environments whose first two raw observation dimensions are the agent's (x, y) position."""


# ----------------------------------------------------------------------------------------- run data
@dataclass
class RunData:
    """One run directory's configuration (as saved) and metric rows."""

    run_dir: Path
    config: dict[str, Any]
    rows: list[dict[str, Any]]

    @property
    def env(self) -> str:
        return str(self.config.get("env"))

    @property
    def experiment(self) -> str:
        return str(self.config.get("experiment"))

    @property
    def is_qmp(self) -> bool:
        return "qmp" in self.experiment

    def default_label(self) -> str:
        name = str(self.config.get("name", "None"))
        return self.experiment if name == "None" else f"{self.experiment}:{name}"

    def evaluation_prefix(self, mode: str) -> str:
        """Where this run's comparable evaluation lives: own policy of QMP runs unless mode is mixture."""
        return "Evaluation/p/" if self.is_qmp and mode == "own" else "Evaluation/"

    def series(self, key: str) -> dict[int, tuple[float, float]]:
        """Epoch -> (total env steps, value) over the rows that have ``key``."""
        return {int(row["epoch"]): (float(row[STEPS_KEY]), float(row[key])) for row in self.rows
                if row.get(key) is not None and row.get(STEPS_KEY) is not None}

    def num_tasks(self, prefix: str, metric: str) -> int:
        """Tasks with a per-task metric in the last row that has any."""
        for row in reversed(self.rows):
            count = 0
            while f"{prefix}Task{count}/{metric}" in row:
                count += 1
            if count:
                return count
        return 0


def find_run_dirs(paths: Sequence[Path | str]) -> list[Path]:
    """Every directory at or below ``paths`` that holds both config.json and metrics.jsonl."""
    found = set()
    for path in map(Path, paths):
        if not path.exists():
            raise PlotError(f"{path} does not exist")
        candidates = [path / METRICS_FILE] if (path / METRICS_FILE).is_file() else path.rglob(METRICS_FILE)
        found.update(metrics.parent for metrics in candidates if (metrics.parent / CONFIG_FILE).is_file())
    return sorted(found)


def read_runs(paths: Sequence[Path | str]) -> list[RunData]:
    """Load every run under ``paths`` (a progress bar on a terminal); runs without rows are skipped."""
    runs = []
    for run_dir in tqdm(find_run_dirs(paths), desc="reading runs", unit="run", disable=not is_terminal()):
        rows = read_metrics(run_dir)
        if rows:
            runs.append(RunData(run_dir, json.loads((run_dir / CONFIG_FILE).read_text()), rows))
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
        label = labels.get(key, labels.get(run.experiment, key))
        groups.setdefault(run.env, {}).setdefault(label, []).append(run)
    return {env: dict(sorted(methods.items(), key=lambda item: (not item[1][0].is_qmp, item[0])))
            for env, methods in sorted(groups.items())}


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


def method_colours(methods: Sequence[str]) -> dict[str, tuple[float, float, float]]:
    return {method: tuple(c / 255 for c in colour) for method, colour in zip(methods, candidate_colours(len(methods)))}


def draw_curve(axis, steps: np.ndarray, values: np.ndarray, label: str, colour, spread: str, window: int) -> None:
    mean, band = smooth(values.mean(axis=0), window), smooth(spread_of(values, spread), window)
    axis.plot(steps, mean, color=colour, label=f"{label} (n={values.shape[0]})")
    axis.fill_between(steps, mean - band, mean + band, color=colour, alpha=0.2, linewidth=0)


def metric_label(metric: str, mode: str) -> str:
    return f"{metric} (QMP: {'own policies' if mode == 'own' else 'Q-switch mixture'})"


def plot_curves(env: str, methods: dict[str, list[RunData]], metric: str, mode: str, spread: str, window: int,
                out: Path) -> Path:
    """All methods' ``metric`` over environment steps (Figs. 7, 8)."""
    colours = method_colours(list(methods))
    figure, axis = plt.subplots(figsize=(7, 4.5), layout="constrained")
    for label, runs in methods.items():
        steps, values = aligned(runs, lambda run: f"{run.evaluation_prefix(mode)}{metric}")
        if values.shape[1]:
            draw_curve(axis, steps, values, label, colours[label], spread, window)
    axis.set(title=f"{env}: mean and {spread} over runs (n)", xlabel="environment steps (all tasks)",
             ylabel=metric_label(metric, mode))
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    return save(figure, out / f"{file_slug(env)}_curves.png")


def task_grid(count: int):
    """A figure with one panel per task (at most 5 per row, shared y axis); returns the figure and
    ``(task, axis)`` pairs. Unused panels are hidden."""
    columns = min(count, 5)
    rows = -(-count // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(max(3.4 * columns, 6.0), max(2.8 * rows, 3.6)),
                                squeeze=False, sharey=True, layout="constrained")
    for axis in axes.flat[count:]:
        axis.set_visible(False)
    return figure, list(enumerate(axes.flat[:count]))


def plot_task_curves(env: str, methods: dict[str, list[RunData]], metric: str, mode: str, spread: str, window: int,
                     out: Path) -> Path | None:
    """One panel per task (Fig. 13)."""
    first = next(iter(methods.values()))[0]
    count = first.num_tasks(first.evaluation_prefix(mode), metric)
    if count == 0:
        return None
    names = task_names(first, count)
    colours = method_colours(list(methods))
    figure, task_axes = task_grid(count)
    for task, axis in task_axes:
        for label, runs in methods.items():
            steps, values = aligned(runs, lambda run: f"{run.evaluation_prefix(mode)}Task{task}/{metric}")
            if values.shape[1]:
                draw_curve(axis, steps, values, label, colours[label], spread, window)
        axis.set_title(f"{task}: {names[task]}", fontsize=8)
        axis.grid(alpha=0.3)
        axis.tick_params(labelsize=7)
    task_axes[0][1].legend(fontsize=6)
    figure.supxlabel("environment steps (all tasks)")
    figure.supylabel(metric_label(metric, mode))
    figure.suptitle(env)
    return save(figure, out / f"{file_slug(env)}_tasks.png")


# ----------------------------------------------------------------------------------------- behaviour sharing
def acting_counts(run: RunData) -> tuple[np.ndarray, np.ndarray]:
    """Steps ``[E]`` and acting-policy counts ``[E, T, C]`` of the epochs that logged them."""
    rows = [row for row in run.rows if row.get(ACTING_KEY) is not None]
    if not rows:
        return np.zeros(0), np.zeros((0, 0, 0))
    return np.array([float(row[STEPS_KEY]) for row in rows]), np.array([row[ACTING_KEY] for row in rows], dtype=float)


def candidate_labels(num_tasks: int, num_candidates: int, run: RunData) -> list[str]:
    """"policy j" for learned policies, then the guide policies' names from the configuration."""
    guides = [name.strip() for name in str(run.config.get("guide_policies", "")).split(",") if name.strip()]
    extra = num_candidates - num_tasks
    guide_names = guides[:extra] if len(guides) >= extra else [f"{index}" for index in range(extra)]
    return [f"policy {index}" for index in range(num_tasks)] + [f"guide {name}" for name in guide_names]


def acting_shares(runs: Sequence[RunData]) -> np.ndarray | None:
    """``[T, C]``: share of task i's training steps acted by candidate j, over all epochs and runs."""
    totals = [counts.sum(axis=0) for counts in (acting_counts(run)[1] for run in runs) if counts.size]
    if not totals or len({total.shape for total in totals}) != 1:
        return None
    counts = np.sum(totals, axis=0)
    return counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)


def plot_acting_matrix(env: str, label: str, runs: Sequence[RunData], zero_diagonal: bool, out: Path) -> Path | None:
    """The acting shares as a heatmap, diagonal zeroed for contrast by default (Fig. 18)."""
    shares = acting_shares(runs)
    if shares is None:
        return None
    num_tasks, num_candidates = shares.shape
    shown = shares.copy()
    if zero_diagonal:
        shown[np.arange(num_tasks), np.arange(num_tasks)] = 0.0
    figure, axis = plt.subplots(figsize=(1.6 + 0.55 * num_candidates, 1.4 + 0.5 * num_tasks),
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
    diagonal = " (diagonal zeroed; numbers are %)" if zero_diagonal else " (numbers are %)"
    axis.set_title(f"{env} {label}: share of steps{diagonal}", fontsize=9)
    figure.colorbar(image, ax=axis, fraction=0.046)
    return save(figure, out / f"{file_slug(env)}_{file_slug(label)}_acting_matrix.png")


def policy_share_curves(runs: Sequence[RunData]) -> tuple[np.ndarray, np.ndarray] | None:
    """Steps ``[E]`` and ``[E, T, C]`` shares of each epoch's steps of task i acted by candidate j,
    averaged over runs (truncated to the shortest run)."""
    per_run = [(steps, counts) for steps, counts in map(acting_counts, runs) if counts.size]
    if not per_run or len({counts.shape[1:] for _, counts in per_run}) != 1:
        return None
    length = min(counts.shape[0] for _, counts in per_run)
    steps = np.mean([s[:length] for s, _ in per_run], axis=0)
    counts = np.stack([c[:length] for _, c in per_run])
    return steps, (counts / np.maximum(counts.sum(axis=-1, keepdims=True), 1)).mean(axis=0)


def plot_policy_shares(env: str, label: str, runs: Sequence[RunData], window: int, out: Path) -> Path | None:
    """Per task: each candidate's share of the steps over training, own policy dashed (Figs. 9a, 19)."""
    curves = policy_share_curves(runs)
    if curves is None:
        return None
    steps, shares = curves
    _, num_tasks, num_candidates = shares.shape
    names = task_names(runs[0], num_tasks)
    labels = candidate_labels(num_tasks, num_candidates, runs[0])
    colours = [tuple(c / 255 for c in colour) for colour in candidate_colours(num_candidates)]
    figure, task_axes = task_grid(num_tasks)
    for task, axis in task_axes:
        for candidate in range(num_candidates):
            own = candidate == task
            axis.plot(steps, smooth(shares[:, task, candidate], window), color="black" if own else colours[candidate],
                      linestyle="--" if own else "-", linewidth=1.6 if own else 1.0,
                      label=f"{labels[candidate]}{' (own)' if own else ''}")
        axis.set_title(f"{task}: {names[task]}", fontsize=8)
        axis.set_ylim(0, 1)
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
        prefix = run.evaluation_prefix(mode)
        count = run.num_tasks(prefix, metric)
        rows = [row for row in run.rows if row.get(f"{prefix}Task0/{metric}") is not None][-last:]
        if count == 0 or not rows:
            continue
        matrix.append([np.mean([row[f"{prefix}Task{task}/{metric}"] for row in rows]) for task in range(count)])
    return np.array(matrix, dtype=float)


def compare_methods(methods: dict[str, list[RunData]], metric: str, mode: str, last: int, reps: int,
                    ) -> tuple[dict[str, dict[str, Estimate]], dict[str, Estimate], dict[str, int]]:
    """Aggregate estimates per method, P(X > Y) for each pair in order, and the run count per method."""
    scores = {label: final_scores(runs, metric, mode, last) for label, runs in methods.items()}
    scores = {label: matrix for label, matrix in scores.items() if matrix.size}
    if len({matrix.shape[1] for matrix in scores.values()}) > 1:
        raise PlotError(f"methods have different task counts: "
                        f"{ {label: matrix.shape[1] for label, matrix in scores.items()} }")
    threshold = 1.0 if metric in RATE_METRICS else None
    estimates = aggregate_estimates(scores, reps=reps, optimality_threshold=threshold)
    labels = list(scores)
    improvements = {f"{x} > {y}": improvement_probability(scores[x], scores[y], reps=reps)
                    for index, x in enumerate(labels) for y in labels[index + 1:]}
    return estimates, improvements, {label: matrix.shape[0] for label, matrix in scores.items()}


def plot_interval_rows(axis, names: Sequence[str], estimates: Sequence[Estimate], colours: Sequence) -> None:
    """Horizontal confidence bars with the point estimate marked, one row per name."""
    for row, (estimate, colour) in enumerate(zip(estimates, colours)):
        axis.barh(row, estimate.high - estimate.low, left=estimate.low, height=0.6, color=colour, alpha=0.6)
        axis.plot([estimate.point, estimate.point], [row - 0.3, row + 0.3], color="black", linewidth=1.5)
    axis.set_yticks(range(len(names)), names, fontsize=8)
    axis.xaxis.set_major_locator(MaxNLocator(4))
    axis.invert_yaxis()
    axis.grid(axis="x", alpha=0.3)


def plot_aggregates(env: str, estimates: dict[str, dict[str, Estimate]], metric: str, mode: str, out: Path) -> Path:
    methods = list(estimates)
    names = list(next(iter(estimates.values())))
    colours = method_colours(methods)
    figure, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 1.8 + 0.45 * len(methods)),
                                 squeeze=False, layout="constrained")
    for axis, name in zip(axes.flat, names):
        plot_interval_rows(axis, methods, [estimates[m][name] for m in methods], [colours[m] for m in methods])
        axis.set_title(name, fontsize=9)
        if axis is not axes.flat[0]:
            axis.set_yticklabels([])
    figure.supxlabel(f"final {metric_label(metric, mode)}, 95 % stratified-bootstrap CI", fontsize=9)
    figure.suptitle(env, fontsize=10)
    return save(figure, out / f"{file_slug(env)}_aggregates.png")


def plot_improvement(env: str, improvements: dict[str, Estimate], out: Path) -> Path:
    pairs = list(improvements)
    figure, axis = plt.subplots(figsize=(6, 1.6 + 0.45 * len(pairs)), layout="constrained")
    plot_interval_rows(axis, [f"P({pair})" for pair in pairs], [improvements[p] for p in pairs],
                       ["tab:blue"] * len(pairs))
    axis.axvline(0.5, color="grey", linestyle=":")
    axis.set(xlim=(0, 1), xlabel="probability of improvement, 95 % CI", title=env)
    return save(figure, out / f"{file_slug(env)}_improvement.png")


def estimate_list(estimate: Estimate) -> list[float]:
    return [estimate.point, estimate.low, estimate.high]


# ----------------------------------------------------------------------------------------- trajectories
def draw_arena(axis, env_id: str, env) -> None:
    """Walls or bounds of the 2-D arena, and the goal with its success radius."""
    from matplotlib.patches import Circle, Rectangle

    if env_id == "PointReach-v0":
        from environments.point_reach import ARENA, GOAL, SUCCESS_DISTANCE

        low, high = ARENA
        axis.add_patch(Rectangle((low, low), high - low, high - low, fill=False, edgecolor="black"))
        goal, radius = GOAL, SUCCESS_DISTANCE
    else:
        from environments.maze import AGENT_BODY_OFFSET, SUCCESS_DISTANCE, WALL_OFFSET, wall_cells

        shift = np.subtract(WALL_OFFSET, AGENT_BODY_OFFSET)
        for x, y in zip(*np.nonzero(wall_cells())):
            axis.add_patch(Rectangle((x + shift[0] - 0.5, y + shift[1] - 0.5), 1, 1, color="0.75", linewidth=0))
        goal, radius = env.unwrapped.goal, SUCCESS_DISTANCE
    axis.add_patch(Circle(goal, radius, color="gold", alpha=0.6, zorder=0))
    axis.set_aspect("equal")
    axis.autoscale_view()


def plot_trajectories(run, traces_by_task: dict[int, list], mode: str, deterministic: bool, out: Path) -> Path:
    """2-D positions of every replayed episode, each step coloured by its acting policy (Fig. 4)."""
    from matplotlib.collections import LineCollection

    from learning.training.video import candidate_names

    names = candidate_names(run.parts.task_set)
    colours = [tuple(c / 255 for c in colour) for colour in candidate_colours(len(names))]
    tasks = sorted(traces_by_task)
    columns = min(len(tasks), 5)
    rows = -(-len(tasks) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4 * columns + 1.8, 4 * rows + 0.6), squeeze=False,
                                 layout="constrained")
    used = set()
    for axis, task in zip(axes.flat, tasks):
        draw_arena(axis, run.config.env, run.parts.evaluator.envs[task])
        for trace in traces_by_task[task]:
            positions = trace.raw_observations[:, :2]
            segments = np.stack([positions[:-1], positions[1:]], axis=1)
            axis.add_collection(LineCollection(segments, colors=[colours[j] for j in trace.acting], linewidths=1.2))
            axis.plot(*positions[0], marker="o", color="black", markersize=4)
            used.update(int(j) for j in trace.acting)
        axis.set_title(f"{task}: {run.task_names[task]}", fontsize=8)
        axis.set_xlabel("x", fontsize=8)
        axis.set_ylabel("y", fontsize=8)
        axis.tick_params(labelsize=7)
    for axis in list(axes.flat)[len(tasks):]:
        axis.set_visible(False)
    handles = [plt.Line2D([], [], color=colours[j], label=names[j]) for j in sorted(used)]
    figure.legend(handles=handles, loc="outside right upper", fontsize=8)
    style = "deterministic" if deterministic else "stochastic"
    figure.suptitle(f"{run.config.run_name}, {run.epochs_trained} epochs\n{mode} ({style}); colour = acting policy",
                    fontsize=9)
    return save(figure, out / f"{file_slug(run.run_dir.name)}_trajectories.png")


# ----------------------------------------------------------------------------------------- commands
def save(figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def metrics_command(args: argparse.Namespace) -> list[Path]:
    """Every metrics figure for every environment found; returns the files written."""
    out = Path(args.out)
    groups = group_runs(read_runs(args.paths), parse_labels(args.label))
    written: list[Path | None] = []
    summary: dict[str, Any] = {}
    jobs = [(env, methods) for env, methods in groups.items()]
    for env, methods in tqdm(jobs, desc="plotting", unit="env", disable=not is_terminal()):
        for note in group_notes(env, methods):
            print(f"note: {note}", file=sys.stderr)
        written.append(plot_curves(env, methods, args.metric, args.mode, args.spread, args.smooth, out))
        written.append(plot_task_curves(env, methods, args.metric, args.mode, args.spread, args.smooth, out))
        for label, runs in methods.items():
            if any(run.is_qmp for run in runs):
                written.append(plot_acting_matrix(env, label, runs, not args.keep_diagonal, out))
                written.append(plot_policy_shares(env, label, runs, args.smooth, out))
        estimates, improvements, run_counts = compare_methods(methods, args.metric, args.mode, args.last, args.reps)
        if estimates:
            written.append(plot_aggregates(env, estimates, args.metric, args.mode, out))
            print_aggregates(env, estimates, improvements, run_counts)
        if improvements:
            written.append(plot_improvement(env, improvements, out))
        summary[env] = {
            "metric": args.metric, "mode": args.mode, "last_evaluations": args.last,
            "methods": {label: {"runs": run_counts[label], **{name: estimate_list(e) for name, e in values.items()}}
                        for label, values in estimates.items()},
            "probability_of_improvement": {pair: estimate_list(e) for pair, e in improvements.items()},
        }
        summary_path = out / f"{file_slug(env)}_aggregates.json"
        summary_path.write_text(json.dumps(summary[env], indent=2))
        written.append(summary_path)
    return [path for path in written if path is not None]


def print_aggregates(env: str, estimates: dict[str, dict[str, Estimate]], improvements: dict[str, Estimate],
                     run_counts: dict[str, int]) -> None:
    names = list(next(iter(estimates.values())))
    print(f"{env}: final scores, point [95% CI]")
    print(f"{'method':<24}{'runs':>5}" + "".join(f"{name:>28}" for name in names))
    for label, values in estimates.items():
        cells = "".join(f"{f'{e.point:.3f} [{e.low:.3f}, {e.high:.3f}]':>28}" for e in values.values())
        print(f"{label[:23]:<24}{run_counts[label]:>5}{cells}")
    for pair, estimate in improvements.items():
        print(f"P({pair}) = {estimate.point:.3f} [{estimate.low:.3f}, {estimate.high:.3f}]")


def trajectories_command(args: argparse.Namespace) -> list[Path]:
    import torch

    from learning.training.video import replay_tasks
    from learning.analysis.runs import RunLoadError, load_run, parse_tasks

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
