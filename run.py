"""Command line: ``python run.py EXPERIMENT --env=ID [flags]`` (the original's interface, SPEC §1).

Experiments: sac, mtsac, dnc_sac, qmp_dnc, qmp_sac, uds_dnc, qmp_uds_dnc, decaf, mcal, qmp_mcal (and
resume --snapshot_dir DIR). Bad input gets one line on stderr and exit code 2 before anything is
written to disk; exit codes: 3 training diverged (NaN), 4 a file could not be written (disk full),
130 Ctrl-C, 143 SIGTERM (docs/robustness.md).
"""

from __future__ import annotations

import sys
from pathlib import Path


def print_final_table(task_names: tuple[str, ...], training: dict[str, float], evaluation: dict[str, float]) -> None:
    """Per-task returns and success rates: the last epoch's data collection and the last evaluation
    (for QMP both the Q-switch mixture and each task's own policy)."""
    columns = [("collection", "Train/LocalPolicy{task}/", "Train/", training)]
    columns += [(label, f"{prefix}Task{{task}}/", prefix, evaluation)
                for label, prefix in (("evaluation", "Evaluation/"), ("own policy", "Evaluation/p/"))
                if f"{prefix}AverageReturn" in evaluation]
    print(f"{'task':<28}" + "".join(f"{label + ' return':>22}{label + ' success':>22}" for label, *_ in columns))
    rows = [(name, index) for index, name in enumerate(task_names)] + [("all tasks", None)]
    for name, task in rows:
        line = f"{name[:27]:<28}"
        for _, per_task, overall, source in columns:
            prefix = overall if task is None else per_task.format(task=task)
            line += f"{source.get(prefix + 'AverageReturn', float('nan')):>22.2f}"
            line += f"{source.get(prefix + 'SuccessRate', float('nan')):>22.2f}"
        print(line)


def main(argv: list[str]) -> int:
    from learning.training.run_guard import (EXIT_DIVERGED, EXIT_WRITE_FAILED, Terminated, TrainingDiverged,
                                             WriteFailure, install_termination_handler, interruption_exit_code,
                                             interruption_name, is_out_of_space)

    install_termination_handler()
    config = None
    try:
        from learning.training.config import ConfigError, main_error, parse_command_line, reject_repeated_flags

        try:
            reject_repeated_flags(argv)
            config = parse_command_line(argv)
        except ConfigError as error:
            main_error(str(error))
        from learning.training.video import configure_headless_rendering

        configure_headless_rendering()  # MUJOCO_GL=egl on machines without a display, before mujoco loads
        import garage_experiments

        try:
            trainer, last = garage_experiments.launch(config)
        except ConfigError as error:
            main_error(str(error))
    except (KeyboardInterrupt, Terminated) as error:
        end_progress_line = "\n" if sys.stderr.isatty() else ""
        print(f"{end_progress_line}run.py: {interruption_name(error)}; {_how_to_continue(config)}", file=sys.stderr)
        return interruption_exit_code(error)
    except TrainingDiverged as error:
        print(f"run.py: error: {error}", file=sys.stderr)
        return EXIT_DIVERGED
    except (WriteFailure, OSError) as error:
        if isinstance(error, OSError) and not is_out_of_space(error):
            raise
        message = str(error) if isinstance(error, WriteFailure) else f"no space left on device: {error.filename}"
        print(f"run.py: error: {message}; the last checkpoint is kept; {_how_to_continue(config)}", file=sys.stderr)
        return EXIT_WRITE_FAILED
    print_final_table(trainer.parts.task_set.task_names, trainer.last_metrics, last)
    print(f"run directory: {trainer.run_dir}")
    return 0


def _how_to_continue(config) -> str:
    """What the user can do after the run stopped early: resume, start again, or nothing to do."""
    if config is None:
        return "nothing was written"
    run_dir = config.snapshot_dir if config.experiment == "resume" else config.run_dir
    if (Path(run_dir) / "checkpoint.pt").exists():
        return f"every finished epoch is checkpointed; continue with: python run.py resume --snapshot_dir {run_dir}"
    return "no epoch was checkpointed; start again with the same command"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
