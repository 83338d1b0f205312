"""Where an epoch's time goes: shares of collection, updates, evaluation, checkpoint and logging,
and environment steps per second, for a real run of an experiment on a paper preset.

    OMP_NUM_THREADS=1 python -m benchmarks.bench_epoch --env JacoReachMT5-v1 [--experiment qmp_dnc [dnc_sac ...]]
        [--epochs 3] [--min_buffer_size 1000] [--num_evaluation_episodes 10] [--compare_with /path/to/older/checkout]

The run uses the preset's networks, batch sizes and gradient steps; the flags only shorten it: fewer
epochs, a smaller warm-up (epoch 0, which holds the warm-up collection, is left out of the shares)
and fewer evaluation episodes. ``--compare_with TREE`` also times the checkout at TREE (an older
commit; its old flat ``learning/`` layout is supported) in a separate process, before and after
alternating, so both see the same machine load. Several ``--experiment`` names are timed alike,
alternating, and each one's best s/epoch is printed as a ratio to the first's (``--experiment dnc_sac
qmp_dnc`` gives the cost of QMP over its base method). Not run by CI.
"""

from __future__ import annotations

import argparse
import importlib
import os
import tempfile
import time
from pathlib import Path

PHASES = ("collection", "updates", "evaluation", "checkpoint", "logging", "other")


def _module(new: str, old: str):
    """The module under the current layout's name, or the old flat layout's."""
    try:
        return importlib.import_module(new)
    except ModuleNotFoundError:
        return importlib.import_module(old)


def measure(argv: list[str], epochs: int) -> dict:
    """Train ``epochs`` epochs of the run ``argv`` describes; returns seconds per phase (epochs >= 1) and steps."""
    import torch

    config_module = _module("learning.training.config", "learning.config")
    trainer_module = _module("learning.training.trainer", "learning.trainer")
    logger_module = _module("learning.training.logger", "learning.logger")
    composition = _module("learning.experiments", "garage_experiments")
    with tempfile.TemporaryDirectory() as log_dir:
        config = config_module.parse_command_line([*argv, "--wandb", "False", "--n_epochs", str(epochs + 1),
                                                   "--log_dir", log_dir, "--name", "bench"])
        task_set = composition.build_task_set(config)
        config.run_dir.mkdir(parents=True)
        parts = composition.build_parts(config, task_set)
        logger = logger_module.RunLogger(config, config.run_dir, resume=False)
        trainer = trainer_module.Trainer(parts, config.run_dir, logger)
        seconds = {phase: 0.0 for phase in PHASES}
        counting = {"on": False, "since": 0.0}

        def timed(owner, name: str, phase: str) -> None:
            original = getattr(owner, name)

            def wrapper(*args, **kwargs):
                started = time.perf_counter()
                try:
                    return original(*args, **kwargs)
                finally:
                    if counting["on"]:
                        seconds[phase] += time.perf_counter() - started
                    elif phase == "checkpoint":  # epoch 0 (with the warm-up) ends here: count from now on
                        counting.update(on=True, since=time.perf_counter(),
                                        collected=parts.sampler.total_env_steps)
            setattr(owner, name, wrapper)

        timed(parts.sampler, "collect", "collection")
        timed(trainer, "run_iteration", "iteration")  # updates = iteration - collection
        seconds["iteration"] = 0.0
        timed(trainer, "evaluate", "evaluation")
        timed(trainer, "save", "checkpoint")
        timed(logger, "log", "logging")
        evaluation_steps = {"count": 0}
        original_run = parts.evaluator.run

        def counted_run(*args, **kwargs):
            episodes, counts = original_run(*args, **kwargs)
            if counting["on"]:
                evaluation_steps["count"] += sum(e.length for e in episodes)
            return episodes, counts
        parts.evaluator.run = counted_run

        trainer.train()
        total = time.perf_counter() - counting["since"]
        logger.close()
        collected_before = counting["collected"]
        checkpoint_bytes = sum(p.stat().st_size for p in config.run_dir.rglob("*") if p.is_file()
                               and (p.name.startswith("checkpoint") or p.parent.name == "replay"))
    seconds["updates"] = seconds.pop("iteration") - seconds["collection"]
    seconds["other"] = total - sum(seconds[phase] for phase in PHASES if phase != "other")
    return {"seconds": seconds, "total": total, "epochs": epochs, "torch": torch.__version__,
            "train_steps": parts.sampler.total_env_steps - collected_before,
            "evaluation_steps": evaluation_steps["count"], "checkpoint_bytes": checkpoint_bytes}


def report(label: str, result: dict) -> float:
    """Print one measurement's line; returns its seconds per epoch."""
    total, seconds = result["total"], result["seconds"]
    shares = "  ".join(f"{phase} {100 * seconds[phase] / total:4.1f}%" for phase in PHASES)
    steps = result["train_steps"] + result["evaluation_steps"]
    print(f"{label:>7}: {total / result['epochs']:6.2f} s/epoch | {shares} | "
          f"{steps / total:6.0f} env steps/s ({result['train_steps']} collected, {result['evaluation_steps']} "
          f"evaluation) | checkpoint files {result['checkpoint_bytes'] / 1e6:.1f} MB", flush=True)
    return total / result["epochs"]


def run_in(tree: Path, argv: list[str], epochs: int) -> dict:
    """:func:`measure` in a separate process whose ``learning`` and ``environments`` come from ``tree``."""
    from benchmarks.other_tree import measure_in  # here: the probe process imports this file from the old tree

    return measure_in(tree, __file__, argv, epochs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", required=True)
    parser.add_argument("--experiment", nargs="+", default=["qmp_dnc"],
                        help="one or more experiments, timed alternately; ratios to the first are printed")
    parser.add_argument("--epochs", type=int, default=3, help="measured epochs (after the warm-up epoch)")
    parser.add_argument("--min_buffer_size", type=int, default=1000)
    parser.add_argument("--num_evaluation_episodes", type=int, default=None,
                        help="default: one per task (the preset's count is kept with 0)")
    parser.add_argument("--compare_with", type=Path, default=None, help="another checkout to time alike")
    parser.add_argument("--rounds", type=int, default=1, help="alternations of the two trees")
    args, extra = parser.parse_known_args()
    common = [f"--env={args.env}", "--min_buffer_size", str(args.min_buffer_size), *extra]
    if args.num_evaluation_episodes != 0:
        from environments import make_task_set
        episodes = args.num_evaluation_episodes or make_task_set(args.env).num_tasks
        common += ["--num_evaluation_episodes", str(episodes)]
    here = Path(__file__).resolve().parents[1]
    print(f"{' '.join(args.experiment)} {' '.join(common)}; {args.epochs} epochs after the warm-up epoch; "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}; load average {os.getloadavg()[0]:.2f} "
          f"on {os.cpu_count()} CPUs")
    trees = [("before", args.compare_with), ("after", here)] if args.compare_with is not None else [("now", here)]
    best: dict[tuple[str, str], float] = {}
    for _ in range(args.rounds):
        for experiment in args.experiment:
            for tree_label, tree in trees:
                label = tree_label if len(args.experiment) == 1 else f"{experiment} {tree_label}"
                seconds = report(label, run_in(tree, [experiment, *common], args.epochs))
                key = (tree_label, experiment)
                best[key] = min(seconds, best.get(key, float("inf")))
    for tree_label, _ in trees:
        base = args.experiment[0]
        for experiment in args.experiment[1:]:
            print(f"{tree_label}: {experiment} / {base} = {best[(tree_label, experiment)] / best[(tree_label, base)]:.2f}"
                  f" (best s/epoch of {args.rounds} round(s) each)")


if __name__ == "__main__":
    main()
