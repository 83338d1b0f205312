"""Command line: ``python run.py EXPERIMENT --env=ID [flags]`` (the original's interface, SPEC §1).

Experiments: sac, mtsac, dnc_sac, qmp_dnc, qmp_sac, uds_dnc, qmp_uds_dnc, decaf, mcal, qmp_mcal, ctpg_dnc,
ctpg_sac (and resume --snapshot_dir DIR). Bad input gets one line on stderr and exit code 2 before anything is
written to disk.
"""

from __future__ import annotations

import sys


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
    from learning.training.config import ConfigError, main_error, parse_command_line

    try:
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
    except KeyboardInterrupt:
        run_dir = config.snapshot_dir if config.experiment == "resume" else config.run_dir
        print(f"\ninterrupted; every finished epoch is checkpointed. Continue with: "
              f"python run.py resume --snapshot_dir {run_dir}", file=sys.stderr)
        return 130
    print_final_table(trainer.parts.task_set.task_names, trainer.last_metrics, last)
    print(f"run directory: {trainer.run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
