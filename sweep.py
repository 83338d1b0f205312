"""Command line: ``python sweep.py GRID [flags]``: a grid of runs (methods x environments x seeds) on Ray.

GRID is a recipe of the paper (fig7, fig7_reacher, ..., fig8, fig8_maze, ..., table2, fig10, hstep,
qmp_vs_ctpg) or a YAML/TOML grid file (learning/sweeps/grid.py). Every run is its own run.py process
under SWEEP_DIR/runs/. Re-running the same command skips finished runs, resumes half-finished ones
and retries failed ones. Bad input: one line on stderr, exit 2. Exit 1 when runs failed, 130 on Ctrl-C, 143 on SIGTERM.
See docs/reproducing.md.
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import sys
from pathlib import Path
from typing import NoReturn

from learning.sweeps.grid import RUN_ORDERS, GridError, expand, in_order, select_methods
from learning.training.config import OneLineParser


def fail(message: str) -> NoReturn:
    print(f"sweep.py: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python sweep.py", error_type=GridError,
                           description="run a grid of experiments on Ray (local or cluster)")
    parser.add_argument("grid", nargs="?", help="recipe name (see --list) or a .yaml/.toml grid file")
    parser.add_argument("--list", action="store_true", help="list the recipes and exit")
    parser.add_argument("--sweep_dir", default=None, help="folder of the sweep's runs (default data/sweeps/GRID_NAME)")
    parser.add_argument("--budget_scale", type=float, default=1.0, help="multiply every run's epochs (e.g. 0.1)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="seeds to run (default: the grid's)")
    parser.add_argument("--methods", nargs="+", default=None, metavar="LABEL",
                        help="run only these methods of the grid (its labels, e.g. \"UDS\" \"QMP-Uniform\"), in this "
                             "order (default: every method, in the grid's order)")
    parser.add_argument("--order", choices=RUN_ORDERS, default="seed",
                        help="which runs start first: 'seed' (every method of the first seed, then the next seed; "
                             "a grid cut short still compares every method) or 'method' (every seed of the first "
                             "method first, the grid's order) (default: seed)")
    parser.add_argument("--dry_run", action="store_true", help="print the runs and their commands, run nothing")
    parser.add_argument("--records", default=None, metavar="DIR",
                        help="folder of the runs' records for git (config and metrics of each run, updated as runs "
                             "end; tables and figures read it like a sweep folder) (default: the grid's 'records' "
                             "key, else none)")
    parser.add_argument("--record_only", action="store_true",
                        help="update the records from the sweep folder now (e.g. the epochs of running runs) and "
                             "run nothing")
    parser.add_argument("--cpus_per_run", type=float, default=1.0, help="CPUs Ray reserves for each run")
    parser.add_argument("--gpus_per_run", type=float, default=0.0,
                        help="GPUs per run, fractional allowed (0.25: four runs share a GPU); runs get --gpu 0")
    parser.add_argument("--max_retries", type=int, default=1, help="retries of a failed run before it is reported")
    parser.add_argument("--address", default=None, help="address of a running Ray cluster (default: start Ray "
                        "locally with this machine's cores)")
    return parser


def list_recipes() -> str:
    from learning.sweeps.recipes import PAPER_GRIDS

    return "\n".join(f"{name:<16}{len(expand(grid)):>5} runs  {grid.description}" for name, grid in PAPER_GRIDS.items())


def dry_run(runs, sweep_dir: Path, on_gpu: bool) -> None:
    from learning.sweeps.runner import command_for, latest_row, next_action
    from learning.training.metric_names import STEP_METRIC

    for run in runs:
        action = next_action(sweep_dir, run)
        verb = {"skip": "skip (finished)", "resume": "resume", "start": "start"}[action]
        done = ""
        if action == "resume":  # how far the run got: its last logged epoch
            row = latest_row(run.run_dir(sweep_dir))
            done = (f"  ({int(row['epoch']) + 1} of {run.n_epochs} epochs done, "
                    f"{int(row.get(STEP_METRIC) or 0):,} env steps)") if "epoch" in row else "  (no epoch logged)"
        print(f"{verb:<16}{run.run_name}  [{run.label}]{done}")
        if action != "skip":
            print(f"    {shlex.join(command_for(sweep_dir, run, action, on_gpu))}")


def record_only(runs, sweep_dir: Path, records_dir: Path | None, method_order: tuple[str, ...]) -> int:
    """Update the records of ``runs`` from the sweep folder; print what happened to each."""
    from learning.sweeps.records import RecordsError, update_records

    if records_dir is None:
        fail("--record_only needs a records folder: --records DIR or the grid's 'records' key")
    try:
        updates = update_records(sweep_dir, records_dir, [run.run_name for run in runs], method_order)
    except RecordsError as error:
        fail(str(error))
    for update in updates:
        print(update.describe())
    print(f"{sum(update.action == 'written' for update in updates)} record(s) written to {records_dir}")
    return 0


def check_folders(sweep_dir: Path, records_dir: Path | None) -> None:
    """The sweep and records folders can be created and written, and their runs' paths are not too long."""
    from learning.training.config import MAX_NAME_BYTES, MAX_PATH_BYTES
    from learning.training.run_guard import check_writable_directory

    for flag, folder in (("--sweep_dir", sweep_dir), ("--records", records_dir)):
        if folder is None:
            continue
        problem = check_writable_directory(folder, flag)
        if problem:
            fail(problem)
        if any(len(part.encode()) > MAX_NAME_BYTES for part in folder.parts):
            fail(f"{flag} has a folder name longer than {MAX_NAME_BYTES} bytes")
        if len(str(folder).encode()) > MAX_PATH_BYTES - MAX_NAME_BYTES - 16:
            fail(f"{flag} {str(folder)[:40]}... is too long a path for the run directories inside it")


def main(argv: list[str]) -> int:
    try:
        args = build_parser().parse_args(argv)
    except GridError as error:
        fail(str(error))
    if args.list:
        print(list_recipes())
        return 0
    if args.grid is None:
        fail("give a GRID: a recipe name (python sweep.py --list) or a .yaml/.toml grid file")
    if not 0 < args.cpus_per_run < math.inf:
        fail(f"--cpus_per_run must be a positive finite number, got {args.cpus_per_run}")
    if not 0 <= args.gpus_per_run < math.inf:
        fail(f"--gpus_per_run must be a finite number, not negative, got {args.gpus_per_run}")
    if args.max_retries < 0:
        fail(f"--max_retries must not be negative, got {args.max_retries}")
    from learning.sweeps.recipes import load_grid

    try:
        grid = load_grid(args.grid)
        runs = expand(grid, args.budget_scale, tuple(args.seeds) if args.seeds else None)
        if args.methods:
            runs = select_methods(runs, args.methods)
        runs = in_order(runs, args.order)
    except GridError as error:
        fail(str(error))
    sweep_dir = Path(args.sweep_dir or Path("data/sweeps") / grid.name).resolve()
    records_dir = Path(args.records).resolve() if args.records else grid.records and grid.records.resolve()
    check_folders(sweep_dir, records_dir)
    method_order = tuple(spec.label for spec in grid.experiments)
    methods, envs = len({run.label for run in runs}), len({run.env for run in runs})
    print(f"{grid.name}: {len(runs)} run{'s' * (len(runs) != 1)} ({methods} method{'s' * (methods != 1)}, "
          f"{envs} env{'s' * (envs != 1)}, seeds {sorted({run.seed for run in runs})}), "
          f"budget x{args.budget_scale:g}, folder {sweep_dir}"
          f"{f', records {records_dir}' if records_dir else ''}")
    if args.dry_run:
        dry_run(runs, sweep_dir, args.gpus_per_run > 0)
        return 0
    if args.record_only:
        return record_only(runs, sweep_dir, records_dir, method_order)

    from learning.sweeps.runner import Reporter, SweepError, SweepOptions, run_sweep
    from learning.training.run_guard import Terminated, interruption_exit_code, interruption_name, tolerate_closed_pipes

    options = SweepOptions(cpus_per_run=args.cpus_per_run, gpus_per_run=args.gpus_per_run,
                           max_retries=args.max_retries, address=args.address, records_dir=records_dir,
                           method_order=method_order)
    tolerate_closed_pipes()  # progress to a reader that went away (`sweep.py ... | head`) is dropped, runs go on
    try:
        result = run_sweep(runs, sweep_dir, options, Reporter())
    except SweepError as error:
        fail(str(error))
    except (KeyboardInterrupt, Terminated) as error:
        print(f"\n{interruption_name(error)}; finished epochs are checkpointed. Continue with: python sweep.py "
              f"{shlex.join(argv)}", file=sys.stderr)
        return interruption_exit_code(error)
    failed = result.of("failed")
    done = len(result.of("finished")) + len(result.of("skipped"))
    print(f"{done} of {len(runs)} runs finished, {len(failed)} failed; results: python -m learning.analysis table "
          f"{sweep_dir}")
    for item in failed:
        print(f"failed: {item.run.run_name}: {item.reason}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except BrokenPipeError:  # the reader went away (`python sweep.py fig7 --dry_run | head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
        sys.exit(141)
