"""Raw step rate of each KitchenMTEasy-v0 task env (random actions, resets included).

Usage: python benchmarks/bench_env_kitchen.py [--steps 500]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from environments.kitchen import make_kitchen_task_set  # noqa: E402


def steps_per_second(task_index: int, steps: int, seed: int = 0) -> float:
    """Random-action steps per second of one task env (TimeLimit included)."""
    env = make_kitchen_task_set().make_env(task_index, False)
    actions = np.random.default_rng(seed).uniform(-1.0, 1.0, size=(steps, 9)).astype(np.float32)
    env.reset(seed=seed)
    start = time.perf_counter()
    for action in actions:
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=500, help="env steps per task")
    args = parser.parse_args()
    task_names = make_kitchen_task_set().task_names
    rates = []
    for index, name in enumerate(task_names):
        rates.append(steps_per_second(index, args.steps))
        print(f"{index:2d} {name:22s} {rates[-1]:8.1f} steps/s")
    print(f"mean over tasks        {np.mean(rates):8.1f} steps/s")


if __name__ == "__main__":
    main()
