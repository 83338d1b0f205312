"""``python -m learning.analysis COMMAND ...``: figures and tables from run directories and sweeps.

Commands: ``metrics`` and ``trajectories`` (learning/analysis/plots.py), ``table`` and ``figure`` (a
sweep folder of sweep.py; learning/analysis/results.py and figures.py), ``compare`` (two methods' runs
tested against each other; learning/analysis/compare.py), ``docs`` (the tables a markdown
file marks with their commands, regenerated or checked; learning/analysis/docs.py). Arguments are parsed before
numpy, scipy, torch or matplotlib are imported, so a typo costs no start-up time.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from learning.analysis.arguments import positive_int, positive_number
from learning.training.config import OneLineParser
from learning.training.run_guard import check_writable_directory

PLOT_COMMANDS = ("metrics", "trajectories")


class AnalysisError(RuntimeError):
    """Bad input; one-line message."""


def add_sweep_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sweep_dir", help="folder of a sweep (sweep.py --sweep_dir), or any folder of run directories")
    parser.add_argument("--env_steps", type=positive_number, default=None,
                        help="budget in env steps, all tasks together (default: per env, the most every run reached)")
    parser.add_argument("--mode", choices=("own", "mixture"), default="own",
                        help="which evaluation of QMP runs: each task's own policy (default) or the Q-switch mixture")
    parser.add_argument("--last", type=positive_int, default=1, help="score = mean of the last N evaluations")
    parser.add_argument("--reps", type=positive_int, default=2000, help="bootstrap resamples")
    parser.add_argument("--metric", default="SuccessRate",
                        help="per-task evaluation metric to score (default SuccessRate; e.g. TerminationRate, the "
                             "Reacher's full completion)")
    parser.add_argument("--methods", nargs="+", default=(), metavar="LABEL",
                        help="only these methods (the grid's labels), in this order (default: all, in the "
                             "grid's order)")


class _AnalysisParser(OneLineParser):
    """The parser of ``python -m learning.analysis`` and its subcommands: errors raise AnalysisError."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, error_type=AnalysisError, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = _AnalysisParser(prog="python -m learning.analysis",
                           description="figures and tables from runs and sweeps")
    commands = parser.add_subparsers(dest="command", required=True,
                                     parser_class=_AnalysisParser)
    commands.add_parser("metrics", help="curves, behaviour sharing, rliable aggregates of run folders (see "
                        "metrics --help)", add_help=False)
    commands.add_parser("trajectories", help="2-D paths coloured by the acting policy (see trajectories --help)",
                        add_help=False)
    table = commands.add_parser("table", help="envs x methods: IQM success and 95%% CIs of a sweep, with the "
                                "paper's numbers")
    add_sweep_arguments(table)
    table.add_argument("--format", dest="formats", choices=("markdown", "csv", "latex"), action="append",
                       help="output format (repeatable; default markdown)")
    table.add_argument("--out", default=None, help="also write the table to OUT.md / OUT.csv / OUT.tex")
    table.add_argument("--aggregate", choices=("iqm", "mean"), default="iqm",
                       help="iqm: IQM over runs x tasks with stratified-bootstrap CIs (default); mean: the paper's "
                            "numbers, each run's mean over tasks, then mean ± std over runs")
    table.add_argument("--per_task", action="store_true",
                       help="markdown: also each method's per-task means over runs")
    table.add_argument("--reach", type=positive_number, nargs="+", default=(), metavar="X",
                       help="markdown: also the env steps at which each run's mean over tasks first reached X "
                            "(one table per X)")
    table.add_argument("--wall_time", action="store_true",
                       help="markdown: also the wall hours each run's training took up to the budget")
    table.add_argument("--acting", type=positive_number, nargs="?", const=0.0, default=None, metavar="AFTER",
                       help="markdown: also who acted in each QMP (or CTPG) method's collection up to the budget "
                            "(share of task i's steps acted by policy j, the paper's Fig. 18) and each run's "
                            "own-policy share; with AFTER, only in the epochs after AFTER env steps")
    table.add_argument("--terminations", action="store_true",
                       help="markdown: also, for the Multistage Reacher, how many per-task evaluations ended "
                            "episodes early and how many of those the logged StagesCompleted proves to be "
                            "completions, not physics failures (for records without CompletionRate)")
    figure = commands.add_parser("figure", help="success vs env steps per env with CI bands, and rliable "
                                 "aggregates (IQM, probability of improvement, performance profiles)")
    add_sweep_arguments(figure)
    figure.add_argument("--out", default="plots", help="folder for the PNG files")
    figure.add_argument("--points", type=positive_int, default=30, help="evaluations per curve (subsampled)")
    figure.add_argument("--curve_reps", type=positive_int, default=200, help="bootstrap resamples per curve point")
    figure.add_argument("--aggregate", choices=("iqm", "mean"), default="iqm",
                        help="curves: iqm: IQM over runs x tasks with stratified-bootstrap bands (default); mean: "
                             "the paper's aggregation, each run's mean over tasks, then the mean over runs with a "
                             "bootstrap band over runs")
    compare = commands.add_parser(
        "compare", help="per-run scores of one or two methods of a sweep, Welch's t-test, the exact permutation "
        "p, the probability of improvement and, with --expect, the verdict of docs/results.md's rule")
    compare.add_argument("sweep_dir", help="folder of a sweep (sweep.py --sweep_dir), or any folder of run directories")
    compare.add_argument("methods", nargs="+", metavar="METHOD",
                         help="method label A, and B to test A against (one method with --level or --sharing)")
    compare.add_argument("--env_steps", type=positive_number, nargs="+", default=(), metavar="STEPS",
                         help="budget in env steps, all tasks together; a second value is B's budget (default: "
                              "the most every run of the methods reached)")
    compare.add_argument("--mode", choices=("own", "mixture"), default="own",
                         help="which evaluation of QMP runs: each task's own policy (default) or the Q-switch mixture")
    compare.add_argument("--last", type=positive_int, default=1, help="score = mean of the last N evaluations")
    compare.add_argument("--metric", default="SuccessRate", help="per-task evaluation metric (default SuccessRate)")
    compare.add_argument("--task", type=int, default=None,
                         help="score one task (0-based) instead of the mean over tasks")
    compare.add_argument("--reach", type=positive_number, default=None, metavar="X",
                         help="score each run by the env steps at which its mean over tasks first reached X")
    compare.add_argument("--level", type=float, default=None, metavar="L",
                         help="one method: Student's one-sample t-test of its mean against L")
    compare.add_argument("--sharing", type=positive_number, default=None, metavar="SPLIT",
                         help="one method: other tasks' policies' share of collection steps up to SPLIT env steps "
                              "against after it, paired t-test over runs")
    compare.add_argument("--expect", choices=("greater", "less", "equal"), default=None,
                         help="what the paper states of A against B (or the level, or late against early sharing): "
                              "prints the rule's verdict")
    compare.add_argument("--reps", type=positive_int, default=2000, help="bootstrap resamples")
    docs = commands.add_parser("docs", help="regenerate the tables a markdown file marks with their commands "
                               "(<!-- output -->, a ```bash block with one table or compare command, its output, "
                               "<!-- /output -->; learning/analysis/docs.py) and check the numbers its prose quotes")
    docs.add_argument("file", help="markdown file, e.g. docs/results.md; its commands run from the current folder")
    docs.add_argument("--check", action="store_true",
                      help="change nothing; exit 1 naming each table that differs from what its command prints "
                           "now, or each number the prose quotes that no command of its section prints")
    return parser


def captured_table(arguments: list[str]) -> str:
    """What ``python -m learning.analysis ARGUMENTS`` prints, run in this process (for ``docs``)."""
    from learning.analysis.docs import DocsError

    output, errors = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(output), contextlib.redirect_stderr(errors):
        code = _main(arguments)
    if code != 0:
        message = (errors.getvalue().strip().splitlines() or ["failed"])[-1].removeprefix("learning.analysis: error: ")
        raise DocsError(f"'python -m learning.analysis {shlex.join(arguments)}': {message}")
    return output.getvalue()


def docs_command(file: str, check: bool) -> int:
    """Regenerate (or with ``check``, compare) the marked outputs of ``file`` and check the numbers its
    prose quotes against them; 1 when a check finds a difference or the prose quotes a number no output
    of its section prints."""
    from learning.analysis.docs import DocsError, regenerate, unquoted_numbers

    try:
        stale = regenerate(Path(file), captured_table, check)
    except DocsError as error:
        raise AnalysisError(str(error)) from None
    lines = ", ".join(str(line) for line in stale)
    if check and stale:
        print(f"{file}: {len(stale)} table(s) differ from what their commands print now (line {lines}); "
              f"run: python -m learning.analysis docs {file}", file=sys.stderr)
        return 1
    verb = "would change" if check else "rewritten"
    print(f"{file}: {len(stale)} table(s) {verb}{f' (line {lines})' if stale else ''}")
    missing = unquoted_numbers(Path(file).read_text()) if not stale or not check else []
    for number in missing:
        print(f"{file}:{number.line}: the prose quotes {number.number}, which no command of its section prints",
              file=sys.stderr)
    return 1 if missing else 0


def main(argv: Sequence[str]) -> int:
    """Run one command; 2 on bad input, 130 / 143 on Ctrl-C / SIGTERM (files are written whole or not at all)."""
    from learning.training.logger import MetricsError
    from learning.training.run_guard import (
        Terminated,
        install_termination_handler,
        interruption_exit_code,
        interruption_name,
    )

    install_termination_handler()
    try:
        return _main(list(argv))
    except MetricsError as error:  # a damaged record or metrics file, wherever it is read
        print(f"learning.analysis: error: {error}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, Terminated) as error:
        print(f"learning.analysis: {interruption_name(error)}", file=sys.stderr)
        return interruption_exit_code(error)


def _main(argv: list[str]) -> int:
    if argv and argv[0] in PLOT_COMMANDS:
        from learning.analysis.cli import PlotError, parse_arguments, report

        try:
            parse_arguments(argv)  # --help and bad arguments answer before the plotting libraries load
        except PlotError as error:
            return report(error)
        from learning.analysis.plots import main as plots_main

        return plots_main(argv)
    try:
        args = build_parser().parse_args(argv)
        if args.command in ("table", "figure") and args.out is not None:
            out_folder = Path(args.out).parent if args.command == "table" else Path(args.out)
            problem = check_writable_directory(out_folder, "--out")
            if problem:
                raise AnalysisError(problem)
        if args.command == "docs":
            return docs_command(args.file, args.check)
        if args.command == "compare":
            from learning.analysis.compare import compare_lines
            from learning.analysis.results import ResultsError

            if args.task is not None and args.task < 0:
                raise AnalysisError(f"--task must be 0 or more, got {args.task}")
            try:
                lines = compare_lines(args.sweep_dir, args.methods, args.env_steps, args.last, args.mode, args.metric,
                                      args.task, args.reach, args.level, args.sharing, args.expect, args.reps)
            except ResultsError as error:
                raise AnalysisError(str(error)) from None
            print("\n".join(lines))
            return 0
        if args.command == "table":
            from learning.analysis.results import ResultsError, table_command

            try:
                written = table_command(args.sweep_dir, args.env_steps, args.formats or ["markdown"], args.out,
                                        args.last, args.reps, args.mode, args.aggregate, args.metric,
                                        args.per_task, args.reach, args.wall_time, args.methods, args.acting,
                                        args.terminations)
            except ResultsError as error:
                raise AnalysisError(str(error)) from None
        else:
            from learning.analysis.figures import figure_command
            from learning.analysis.results import ResultsError

            try:
                written = figure_command(args.sweep_dir, args.env_steps, args.out, args.last, args.reps, args.mode,
                                         args.points, args.curve_reps, args.metric, args.aggregate, args.methods)
            except ResultsError as error:
                raise AnalysisError(str(error)) from None
    except AnalysisError as error:
        print(f"learning.analysis: error: {error}", file=sys.stderr)
        return 2
    for path in written:
        print(path, file=sys.stderr if args.command == "table" else sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
