"""Command line: ``python run.py EXPERIMENT --env=ID [flags]`` (the original's interface,
docs/fidelity.md#command-line).

Experiments: sac, mtsac, dnc_sac, qmp_dnc, qmp_sac, uds_dnc, qmp_uds_dnc, decaf, mcal, qmp_mcal, ctpg_dnc,
ctpg_sac (and resume --snapshot_dir DIR). Bad input gets one line on stderr and exit code 2 before anything is
written to disk; exit codes: 3 training diverged (NaN), 4 a file could not be written (disk full),
130 Ctrl-C, 143 SIGTERM (docs/robustness.md).
"""

from __future__ import annotations

import sys
from pathlib import Path

NO_EPISODE = "no finished episode"


def overview() -> str:
    """``python run.py --help``: the experiments with the paper's names, the environments, what next."""
    from environments import ENV_SUMMARIES
    from learning.experiment_table import EXPERIMENT_TABLE, RESUME, RESUME_SUMMARY

    lines = ["usage: python run.py EXPERIMENT --env ID [flags]", "       python run.py resume --snapshot_dir DIR "
             "[--n_epochs N] [--gpu ID|cpu]", "", "experiments:"]
    for name, row in EXPERIMENT_TABLE.items():
        lines.append(f"  {name:<13}{row.paper_name:<30}{row.summary}")
    lines.append(f"  {RESUME:<13}{'':<30}{RESUME_SUMMARY}")
    lines += ["", "environments (--env):", f"  {'id':<19}{'tasks':>6}{'episode':>9}  what"]
    for env_id, (tasks, episode_steps, summary) in ENV_SUMMARIES.items():
        lines.append(f"  {env_id:<19}{tasks:>6}{episode_steps:>9}  {summary}")
    lines += ["", "python run.py EXPERIMENT --env ID --help    that experiment's flags, grouped, with their types "
              "and the environment's defaults",
              "python run.py EXPERIMENT --env ID --print_config    the resolved configuration and run directory; "
              "creates nothing"]
    return "\n".join(lines)


def print_config(config) -> None:
    """The resolved configuration (each value's origin: typed flag, environment preset or default) and
    the run directory, after the checks the real command makes first (garage_experiments.prepare_run:
    a dry run refuses what the run would refuse). Reads, and writes nothing but stdout."""
    from garage_experiments import check_resources, prepare_run, refuse_if_locked
    from learning.training.config import ENV_PRESETS

    if config.experiment == "resume":
        refuse_if_locked(Path(config.snapshot_dir))
    typed = set(config.explicit_flags)
    resumed = config.experiment == "resume"
    config, task_set, run_dir, _ = prepare_run(config)
    check_resources(config, task_set)
    if resumed:
        origin = {name: "flag" if name in typed else "saved run" for name in config.to_dict()}
    else:
        preset = ENV_PRESETS.get(config.env, {})
        origin = {name: "flag" if name in config.explicit_flags else f"{config.env} preset" if name in preset
                  else "default" for name in config.to_dict()}
        origin["experiment"] = "argument"
    values = {key: value for key, value in config.to_dict().items() if key != "explicit_flags"}
    width = max(map(len, values))
    for key, value in values.items():
        shown = " ".join(map(str, value)) if isinstance(value, list) else str(value)
        print(f"{key:<{width}}  {shown:<24}  ({origin[key]})")
    state = "holds a run" if resumed else "does not exist yet" if not run_dir.exists() else "exists, no checkpoint"
    print(f"run directory: {run_dir} ({state})")


def print_final_table(task_names: tuple[str, ...], training: dict[str, float], evaluation: dict[str, float]) -> None:
    """Per-task returns and success rates: the last epoch's data collection and the last evaluation
    (for QMP both the Q-switch mixture and each task's own policy)."""
    from learning.training.metric_names import EVALUATION_PREFIX, OWN_EVALUATION_PREFIX

    columns = [("collection", "Train/LocalPolicy{task}/", "Train/", training)]
    columns += [(label, f"{prefix}Task{{task}}/", prefix, evaluation)
                for label, prefix in (("evaluation", EVALUATION_PREFIX), ("own policy", OWN_EVALUATION_PREFIX))
                if f"{prefix}AverageReturn" in evaluation]
    print(f"{'task':<28}" + "".join(f"{label + ' return':>22}{label + ' success':>22}" for label, *_ in columns))
    rows = [(name, index) for index, name in enumerate(task_names)] + [("all tasks", None)]
    for name, task in rows:
        line = f"{name[:27]:<28}"
        for _, per_task, overall, source in columns:
            prefix = overall if task is None else per_task.format(task=task)
            if source.get(prefix + "AverageReturn") is None:  # no episode of this task ended in that epoch
                line += f"{NO_EPISODE:>22}{'-':>22}"
                continue
            success = source.get(prefix + "SuccessRate")
            line += f"{source[prefix + 'AverageReturn']:>22.2f}" + (f"{success:>22.2f}" if success is not None
                                                                     else f"{'-':>22}")
        print(line)


def main(argv: list[str]) -> int:
    from learning.training.run_guard import (
        EXIT_DIVERGED,
        EXIT_WRITE_FAILED,
        Terminated,
        TrainingDiverged,
        WriteFailure,
        install_termination_handler,
        interruption_exit_code,
        interruption_name,
        is_out_of_space,
    )

    install_termination_handler()
    config = None
    try:
        from learning.training.config import (
            PRINT_CONFIG_FLAGS,
            ConfigError,
            main_error,
            parse_command_line,
            reject_repeated_flags,
        )

        if argv[:1] in (["-h"], ["--help"]):
            print(overview())
            return 0
        if not argv:
            main_error("the first argument must be an experiment; 'python run.py --help' lists them")
        try:
            reject_repeated_flags(argv)
            config = parse_command_line(argv, require_env=True)
        except ConfigError as error:
            main_error(str(error))
        from learning.training.video import configure_headless_rendering

        configure_headless_rendering()  # MUJOCO_GL=egl on machines without a display, before mujoco loads
        if any(token in (f"--{name}" for name in PRINT_CONFIG_FLAGS) for token in argv):
            try:
                print_config(config)
            except ConfigError as error:
                main_error(str(error))
            return 0
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
    from learning.training.run_guard import tolerate_closed_pipes

    tolerate_closed_pipes()  # `python run.py ... | head`: progress to a closed pipe is dropped, training goes on
    sys.exit(main(sys.argv[1:]))
