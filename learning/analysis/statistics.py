"""Aggregate comparisons across seeds and tasks with rliable (Agarwal et al., 2021).

A method's results are a score matrix ``[runs, tasks]`` (e.g. each seed's final success rate per
task). Point estimates are ``rliable.metrics`` (IQM = 25 % trimmed mean over all runs and tasks;
mean; median; optimality gap; probability of improvement); intervals are ``rliable.library``'s
percentile intervals of a stratified bootstrap (each task's runs resampled with replacement) and its
performance profiles. rliable 1.2's ``library`` needs ``arch`` 7 and pandas < 3 (requirements.txt
pins both). The functions here keep the interface the plots and result tables use and add a fixed
seed, so a figure is the same every time it is drawn.

Over runs (a handful of seeds) the tables and the verdicts of docs/results.md use small-sample
statistics instead: the sample standard deviation (``ddof = 1``), Student's t-interval of the mean,
Welch's t-test of two methods' per-run scores (the primary test), an exact permutation test beside it
(every split of the pooled runs, so with 3 runs against 3 its two-sided p is at least 2 / 20 = 0.10),
and the verdict words of the written rule (``verdict``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import combinations
from math import comb

import numpy as np
from rliable import library, metrics
from scipy import stats

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


@contextmanager
def _global_numpy_seed(seed: int) -> Iterator[None]:
    """rliable's bootstraps draw their indices from numpy's global generator (it ignores the
    ``random_state`` it passes to arch): seed it for the call and restore it afterwards."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def _interval_estimates(scores: dict[str, np.ndarray | list[np.ndarray]], function: Callable[..., np.ndarray],
                        reps: int, confidence: float, seed: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """rliable's stratified-bootstrap point and ``[2, k]`` interval estimates, seeded."""
    with _global_numpy_seed(seed):
        return library.get_interval_estimates(scores, function, reps=reps, confidence_interval_size=confidence)


def probability_of_improvement(scores_x: np.ndarray, scores_y: np.ndarray) -> float:
    """rliable's ``metrics.probability_of_improvement`` (per task the Mann-Whitney U over run pairs,
    ties half, averaged over tasks) in one array operation instead of a scipy call per task: the
    bootstrap calls it ``reps`` times (47 s against under 1 s for 10 tasks, 2000 resamples)."""
    x, y = scores_x[:, None, :], scores_y[None, :, :]
    return float(((x > y) + 0.5 * (x == y)).mean(axis=(0, 1)).mean())


def bootstrap_estimate(scores: np.ndarray, aggregate: Aggregate, reps: int = 2000, confidence: float = 0.95,
                       seed: int = 0) -> Estimate:
    """``aggregate(scores)`` with a stratified-bootstrap percentile interval."""
    points, intervals = _interval_estimates({"scores": check_scores(scores)},
                                            lambda sample: np.array([aggregate(sample)]), reps, confidence, seed)
    return Estimate(float(points["scores"][0]), float(intervals["scores"][0, 0]), float(intervals["scores"][1, 0]))


def aggregate_estimates(scores_by_method: dict[str, np.ndarray], reps: int = 2000, confidence: float = 0.95,
                        optimality_threshold: float | None = 1.0, seed: int = 0) -> dict[str, dict[str, Estimate]]:
    """Method -> aggregate name -> estimate, for every method's ``[runs, tasks]`` scores."""
    functions = aggregate_functions(optimality_threshold)
    checked = {method: check_scores(scores) for method, scores in scores_by_method.items()}
    if not checked:
        return {}
    points, intervals = _interval_estimates(
        checked, lambda sample: np.array([function(sample) for function in functions.values()]), reps, confidence, seed)  # type: ignore[arg-type]
    return {method: {name: Estimate(float(points[method][index]), float(intervals[method][0, index]),
                                    float(intervals[method][1, index]))
                     for index, name in enumerate(functions)}
            for method in checked}


def improvement_probability(scores_x: np.ndarray, scores_y: np.ndarray, reps: int = 2000, confidence: float = 0.95,
                            seed: int = 0) -> Estimate:
    """P(X > Y) with rliable's interval: each method's runs resampled independently, per task."""
    scores_x, scores_y = check_scores(scores_x), check_scores(scores_y)
    if scores_x.shape[1] != scores_y.shape[1]:
        raise ValueError(f"methods have different task counts: {scores_x.shape[1]} vs {scores_y.shape[1]}")
    points, intervals = _interval_estimates({"pair": [scores_x, scores_y]}, probability_of_improvement,  # type: ignore[arg-type]
                                            reps, confidence, seed)
    low, high = np.ravel(intervals["pair"])
    return Estimate(float(np.ravel(points["pair"])[0]), float(low), float(high))


def performance_profiles(scores_by_method: dict[str, np.ndarray], thresholds: np.ndarray, reps: int = 2000,
                         confidence: float = 0.95, seed: int = 0,
                         ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """rliable's score distributions: per method the fraction of run-task scores above each threshold
    ``[len(thresholds)]`` and its stratified-bootstrap interval ``[2, len(thresholds)]``."""
    checked = {method: check_scores(scores) for method, scores in scores_by_method.items()}
    with _global_numpy_seed(seed):
        return library.create_performance_profile(checked, np.asarray(thresholds), reps=reps,
                                                  confidence_interval_size=confidence)


# ------------------------------------------------------------------------------- small samples of runs
SIGNIFICANCE = 0.05
"""Two-sided level of the verdict rule (docs/results.md, "How verdicts are decided")."""

EXPECTATIONS = ("greater", "less", "equal")
"""What the paper states of A against B (or of A against a level): A greater, A less, no difference."""


@dataclass(frozen=True)
class TestResult:
    """A two-sided test: its statistic, degrees of freedom (NaN where none) and p-value."""

    statistic: float
    df: float
    p: float


Values = Sequence[float] | np.ndarray
"""One value per run: a list or a 1-D array."""


def sample_std(values: Values) -> float:
    """The sample standard deviation (``ddof = 1``); NaN for fewer than two values."""
    array = np.asarray(values, dtype=np.float64)
    return float(array.std(ddof=1)) if array.size >= 2 else float("nan")


def t_interval(values: Values, confidence: float = 0.95) -> Estimate:
    """The mean and Student's t-interval ``mean ± t(n - 1) · s / sqrt(n)`` (``s`` the sample std);
    NaN bounds for fewer than two values."""
    array = np.asarray(values, dtype=np.float64)
    mean = float(array.mean())
    if array.size < 2:
        return Estimate(mean, float("nan"), float("nan"))
    half = float(stats.t.ppf(0.5 + confidence / 2, array.size - 1)) * sample_std(array) / np.sqrt(array.size)
    return Estimate(mean, float(mean - half), float(mean + half))


def _no_spread_result(difference: float, df: float) -> TestResult:
    """The limit of a t-test whose samples have no spread: t = 0, p = 1 with no difference; infinite t,
    p = 0 with one."""
    if difference == 0:
        return TestResult(0.0, df, 1.0)
    return TestResult(float(np.copysign(np.inf, difference)), df, 0.0)


def _values(values: Values) -> np.ndarray:
    """Float values rounded to 12 decimals: scores that are means of rates carry float noise (a run at
    1.0 in every task may read 0.9999999999999999), which is no spread."""
    return np.round(np.asarray(values, dtype=np.float64), 12)


def welch_test(x: Values, y: Values) -> TestResult:
    """Welch's two-sided t-test of mean(x) = mean(y), unequal variances (Welch-Satterthwaite df)."""
    a, b = _values(x), _values(y)
    if a.size < 2 or b.size < 2:
        raise ValueError(f"Welch's t-test needs at least two runs of each method, got {a.size} and {b.size}")
    if a.var() == 0 and b.var() == 0:
        return _no_spread_result(float(a.mean() - b.mean()), float("nan"))
    error_a, error_b = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size  # squared standard errors
    statistic = float((a.mean() - b.mean()) / np.sqrt(error_a + error_b))
    df = float((error_a + error_b) ** 2 / (error_a ** 2 / (a.size - 1) + error_b ** 2 / (b.size - 1)))
    return TestResult(statistic, df, float(2 * stats.t.sf(abs(statistic), df)))


def one_sample_test(x: Values, level: float) -> TestResult:
    """Student's two-sided one-sample t-test of mean(x) = level (df n - 1)."""
    a = _values(x)
    if a.size < 2:
        raise ValueError(f"a one-sample t-test needs at least two runs, got {a.size}")
    if a.var() == 0:
        return _no_spread_result(float(a.mean() - level), float(a.size - 1))
    statistic = float((a.mean() - level) / (a.std(ddof=1) / np.sqrt(a.size)))
    return TestResult(statistic, float(a.size - 1), float(2 * stats.t.sf(abs(statistic), a.size - 1)))


def paired_test(x: Values, y: Values) -> TestResult:
    """Student's two-sided paired t-test of mean(x - y) = 0 (df n - 1)."""
    a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"a paired test needs as many values on each side, got {a.size} and {b.size}")
    return one_sample_test(a - b, 0.0)


def permutation_test(x: Values, y: Values) -> float:
    """Exact two-sided permutation p of mean(x) = mean(y): the share of all C(n + m, n) ways to split
    the pooled values into groups of n and m whose difference of means is at least the observed one in
    absolute value (``smallest_permutation_p`` is the least it can be)."""
    a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if a.size == 0 or b.size == 0:
        raise ValueError("a permutation test needs runs on both sides")
    pooled, n = np.concatenate([a, b]), a.size
    observed = abs(a.mean() - b.mean())
    total, extreme = pooled.sum(), 0
    splits = list(combinations(range(pooled.size), n))
    for chosen in splits:
        first = pooled[list(chosen)].sum()
        difference = abs(first / n - (total - first) / b.size)
        extreme += difference >= observed - 1e-12 * max(1.0, observed)
    return extreme / len(splits)


def smallest_permutation_p(n: int, m: int) -> float:
    """The smallest two-sided p an exact permutation test of n against m runs can give: the observed
    split alone, and with n = m also its mirror (the groups swapped), which has the same |difference|."""
    return (2 if n == m else 1) / comb(n + m, n)


def verdict(difference: float, p: float, expected: str, resolution: float = 0.0) -> str:
    """The rule's word for a difference A - B (or A - level) and its two-sided p, given what the paper
    states (``expected``: "greater", "less" or "equal"):

    * the paper states a difference: *reproduced* (same sign, p < 0.05), *contradicted* (other sign,
      p < 0.05), *consistent* (same sign and larger than ``resolution`` in size, p >= 0.05),
      *inconclusive* (p >= 0.05 and the other sign, or a difference within ``resolution``, e.g. one that
      the tables' two decimals do not show);
    * the paper states no difference: *contradicted* when p < 0.05, else *consistent* (a test that
      finds nothing does not show equality, so "no difference" is never *reproduced* by it).
    """
    if expected not in EXPECTATIONS:
        raise ValueError(f"expected must be one of {', '.join(EXPECTATIONS)}, got {expected!r}")
    significant = p < SIGNIFICANCE
    if expected == "equal":
        return "contradicted" if significant else "consistent"
    sign = 1.0 if expected == "greater" else -1.0
    agrees = sign * difference > (0.0 if significant else resolution)
    if significant:
        return "reproduced" if agrees else "contradicted"
    return "consistent" if agrees else "inconclusive"
