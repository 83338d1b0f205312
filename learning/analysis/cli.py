"""The argument parser of ``python -m learning.analysis``, with no heavy import: ``__main__`` parses
with it before matplotlib, torch, scipy and rliable load (learning/analysis/plots.py), so ``--help``
and bad arguments answer at once."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from learning.analysis.arguments import positive_number
from learning.training.config import BOOL_FLAG, OneLineParser
from learning.training.run_guard import check_writable_directory


class PlotError(RuntimeError):
    """Nothing to plot or bad input; one-line message."""


class _PlotParser(OneLineParser):
    """The parser of ``python -m learning.analysis`` and its subcommands: errors raise PlotError."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, error_type=PlotError, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = _PlotParser(prog="python -m learning.analysis",
                           description="figures and tables from local run directories; "
                                       "'python -m learning.analysis COMMAND --help' lists a command's flags")
    commands = parser.add_subparsers(dest="command", required=True,
                                     parser_class=_PlotParser)
    metrics = commands.add_parser("metrics", help="curves, behaviour sharing, rliable aggregates",
                                  description="curves, behaviour sharing and rliable aggregates of every run "
                                              "under PATHS, per environment (docs/analysis.md)")
    metrics.add_argument("paths", nargs="+", help="run directories or folders holding them")
    metrics.add_argument("--out", default="plots", help="folder for the PNG (and JSON) files [default: plots]")
    metrics.add_argument("--env_steps", type=positive_number, default=None,
                         help="only each run's epochs up to this many env steps (all tasks together), e.g. to "
                              "redraw a claim's figures at its budget after its runs were extended [default: all]")
    metrics.add_argument("--metric", default="SuccessRate",
                         help="an evaluation metric (SuccessRate, AverageReturn, StagesCompleted, ...) or a "
                              "collection metric under Train/ (Train/SuccessRate, Train/AverageReturn, "
                              "Train/MixtureProbs, ...); a name the runs do not have lists the ones they have "
                              "[default: SuccessRate]")
    metrics.add_argument("--mode", choices=("own", "mixture"), default="own",
                         help="which evaluation of QMP runs to use: own policies (Evaluation/p/) or the Q-switch "
                              "mixture (Evaluation/) [default: own]")
    metrics.add_argument("--label", action="append", default=[],
                         help="rename a method: EXPERIMENT=TEXT or EXPERIMENT:NAME=TEXT (repeatable) "
                              "[default: the paper's method names]")
    metrics.add_argument("--methods", nargs="+", default=None, metavar="LABEL",
                         help="only these methods (labels after --label), in this order, e.g. one claim's "
                              "methods from a folder that holds several claims' runs [default: all]")
    metrics.add_argument("--smooth", type=int, default=1, help="moving-average window in evaluations [default: 1]")
    metrics.add_argument("--spread", choices=("std", "sem"), default="std",
                         help="shaded band over seeds: standard deviation or standard error [default: std]")
    metrics.add_argument("--last", type=int, default=5,
                         help="final score = mean of a run's last N evaluations [default: 5]")
    metrics.add_argument("--reps", type=int, default=2000, help="bootstrap resamples [default: 2000]")
    metrics.add_argument("--normalize", **BOOL_FLAG, default=False,
                         help="scale each task's final scores to [0, 1] by the minimum and maximum over all runs "
                              "of the environment before aggregating (for metrics that are not rates) "
                              "[default: False]")
    metrics.add_argument("--keep_diagonal", **BOOL_FLAG, default=False,
                         help="keep the acting matrix diagonal (default: zeroed for contrast) [default: False]")
    metrics.add_argument("--acting_figures", **BOOL_FLAG, default=True,
                         help="draw who acted (acting matrix, policy shares) for QMP and CTPG methods; they do not "
                              "depend on --metric, so a second metric's folder can leave them out [default: True]")
    trajectories = commands.add_parser("trajectories", help="2-D paths coloured by the acting policy (Fig. 4)",
                                       description="replay a PointReach or Maze run and draw each episode's path "
                                                   "coloured by the policy that acted")
    trajectories.add_argument("--snapshot_dir", required=True, help="run directory of PointReach or Maze")
    trajectories.add_argument("--out", default="plots", help="folder for the PNG [default: plots]")
    trajectories.add_argument("--episodes", type=int, default=10, help="episodes per task [default: 10]")
    trajectories.add_argument("--mode", choices=("mixture", "own"), default=None,
                              help="the Q-switch mixture or each task's own policy [default: mixture for QMP "
                                   "runs, own otherwise]")
    trajectories.add_argument("--deterministic", **BOOL_FLAG, default=False,
                              help="mean actions instead of sampled ones, as in training [default: False]")
    trajectories.add_argument("--tasks", default=None, help="comma list of task indices [default: all]")
    trajectories.add_argument("--seed", type=int, default=0, help="seeds torch and the env resets [default: 0]")
    return parser


def parse_arguments(argv: Sequence[str]) -> argparse.Namespace:
    """Parse and check the arguments; raises PlotError (``--help`` prints and exits 0)."""
    args = build_parser().parse_args(argv)
    for name in ("smooth", "last", "reps", "episodes"):
        if getattr(args, name, 1) <= 0:
            raise PlotError(f"--{name} must be positive")
    for path in getattr(args, "paths", []):
        if not Path(path).exists():
            raise PlotError(f"{path} does not exist")
    problem = check_writable_directory(args.out, "--out")
    if problem:
        raise PlotError(problem)
    return args


def report(error: PlotError) -> int:
    """One line on stderr; the exit code of bad input."""
    print(f"learning.analysis: error: {error}", file=sys.stderr)
    return 2
