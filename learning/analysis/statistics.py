"""Aggregate comparisons across seeds and tasks in the manner of rliable (Agarwal et al., 2021).

A method's results are a score matrix ``[runs, tasks]`` (e.g. each seed's final success rate per
task). Point estimates come from ``rliable.metrics`` (IQM = 25 % trimmed mean over all runs and
tasks; mean; median; optimality gap; probability of improvement). Confidence intervals are
percentile intervals of a *stratified* bootstrap: each task's runs are resampled with replacement
independently, as rliable's ``StratifiedBootstrap`` does. The bootstrap is written here because
``rliable.library`` does not import with this stack: rliable 1.2.0 needs ``arch``, and arch 7.2
fails to import with pandas 3, while arch 8 rejects the ``random_state=None`` that rliable passes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from rliable import metrics

Aggregate = Callable[[np.ndarray], float]


@dataclass(frozen=True)
class Estimate:
    """A point estimate and its bootstrap confidence interval."""

    point: float
    low: float
    high: float


def aggregate_functions(optimality_threshold: float | None = 1.0) -> dict[str, Aggregate]:
    """IQM, mean, median and (when a threshold is given, e.g. 1 for success rates) optimality gap."""
    functions: dict[str, Aggregate] = {
        "IQM": metrics.aggregate_iqm,
        "Mean": metrics.aggregate_mean,
        "Median": metrics.aggregate_median,
    }
    if optimality_threshold is not None:
        functions["Optimality gap"] = lambda scores: metrics.aggregate_optimality_gap(scores, optimality_threshold)
    return functions


def check_scores(scores: np.ndarray) -> np.ndarray:
    """A finite ``[runs, tasks]`` float matrix with at least one run; raises ValueError otherwise."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or scores.shape[0] == 0 or scores.shape[1] == 0:
        raise ValueError(f"scores must be a non-empty [runs, tasks] matrix, got shape {scores.shape}")
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores contain NaN or infinite values")
    return scores


def stratified_resample(scores: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One stratified bootstrap sample: per task, ``runs`` draws with replacement from that task's runs."""
    runs, tasks = scores.shape
    rows = rng.integers(0, runs, size=(runs, tasks))
    return scores[rows, np.arange(tasks)]


def percentile_interval(samples: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(samples, [tail, 100 - tail])
    return float(low), float(high)


def bootstrap_estimate(scores: np.ndarray, aggregate: Aggregate, reps: int = 2000, confidence: float = 0.95,
                       seed: int = 0) -> Estimate:
    """``aggregate(scores)`` with a stratified-bootstrap percentile interval."""
    scores = check_scores(scores)
    rng = np.random.default_rng(seed)
    samples = np.array([aggregate(stratified_resample(scores, rng)) for _ in range(reps)])
    return Estimate(float(aggregate(scores)), *percentile_interval(samples, confidence))


def aggregate_estimates(scores_by_method: dict[str, np.ndarray], reps: int = 2000, confidence: float = 0.95,
                        optimality_threshold: float | None = 1.0, seed: int = 0) -> dict[str, dict[str, Estimate]]:
    """Method -> aggregate name -> estimate, for every method's ``[runs, tasks]`` scores."""
    functions = aggregate_functions(optimality_threshold)
    return {method: {name: bootstrap_estimate(scores, function, reps, confidence, seed)
                     for name, function in functions.items()}
            for method, scores in scores_by_method.items()}


def pairwise_improvement(scores_x: np.ndarray, scores_y: np.ndarray) -> np.ndarray:
    """P(X > Y) of resampled score stacks ``[..., runs, tasks]``: per task the fraction of run pairs
    where X beats Y (ties count 1/2, the Mann-Whitney U over run pairs), averaged over tasks."""
    x, y = scores_x[..., :, None, :], scores_y[..., None, :, :]
    per_task = ((x > y) + 0.5 * (x == y)).mean(axis=(-3, -2))
    return per_task.mean(axis=-1)


def improvement_probability(scores_x: np.ndarray, scores_y: np.ndarray, reps: int = 2000, confidence: float = 0.95,
                            seed: int = 0) -> Estimate:
    """P(X > Y) (rliable's probability of improvement) with a percentile interval from resampling
    both methods independently (stratified over tasks)."""
    scores_x, scores_y = check_scores(scores_x), check_scores(scores_y)
    if scores_x.shape[1] != scores_y.shape[1]:
        raise ValueError(f"methods have different task counts: {scores_x.shape[1]} vs {scores_y.shape[1]}")
    rng = np.random.default_rng(seed)
    resampled_x = np.stack([stratified_resample(scores_x, rng) for _ in range(reps)])
    resampled_y = np.stack([stratified_resample(scores_y, rng) for _ in range(reps)])
    samples = pairwise_improvement(resampled_x, resampled_y)
    point = float(metrics.probability_of_improvement(scores_x, scores_y))
    return Estimate(point, *percentile_interval(samples, confidence))
