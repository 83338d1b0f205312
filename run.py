"""Command line: ``python run.py EXPERIMENT --env=ID [flags]`` (the original's interface, SPEC §1).

Experiments: sac, mtsac, dnc_sac, qmp_dnc, qmp_sac (and resume --snapshot_dir DIR). Bad input gets
one line on stderr and exit code 2 before anything is written to disk.
"""

from __future__ import annotations

import sys


def print_final_table(task_names: tuple[str, ...], metrics: dict[str, float]) -> None:
    """Per-task returns and success rates of the last evaluation (both modes for QMP)."""
    if not metrics:
        return
    prefixes = [p for p in ("Evaluation/", "Evaluation/p/") if f"{p}AverageReturn" in metrics]
    header = f"{'task':<28}" + "".join(
        f"{'return' + (' (own)' if p.endswith('p/') else ''):>16}{'success' + (' (own)' if p.endswith('p/') else ''):>16}"
        for p in prefixes)
    print(header)
    rows = [(name, f"Task{index}/") for index, name in enumerate(task_names)] + [("all tasks", "")]
    for name, task_prefix in rows:
        line = f"{name[:27]:<28}"
        for prefix in prefixes:
            line += f"{metrics.get(f'{prefix}{task_prefix}AverageReturn', float('nan')):>16.2f}"
            line += f"{metrics.get(f'{prefix}{task_prefix}SuccessRate', float('nan')):>16.2f}"
        print(line)


def main(argv: list[str]) -> int:
    from learning.config import ConfigError, main_error, parse_command_line

    try:
        config = parse_command_line(argv)
    except ConfigError as error:
        main_error(str(error))
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
    print_final_table(trainer.parts.task_set.task_names, last)
    print(f"run directory: {trainer.run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
