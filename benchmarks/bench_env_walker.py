"""Raw step rate of each Walker2dMT4-v0 task env with uniformly random actions (resets included).

    python -m benchmarks.bench_env_walker --steps 20000 [--external_forces]   (from the repository root)
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from environments.walker import make_walker_task_set


def measure_steps_per_second(task_index: int, steps: int, external_forces: bool) -> float:
    """Steps per second of one task env (TimeLimit included) under random actions."""
    env = make_walker_task_set(external_forces=external_forces).make_env(task_index, False)
    env.reset(seed=0)
    actions = np.random.default_rng(0).uniform(-1.0, 1.0, size=(steps, 6)).astype(np.float32)
    start = time.perf_counter()
    for action in actions:
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20000)
    parser.add_argument("--external_forces", action="store_true")
    args = parser.parse_args()
    task_names = make_walker_task_set().task_names
    for task_index, name in enumerate(task_names):
        rate = measure_steps_per_second(task_index, args.steps, args.external_forces)
        print(f"{name:>9s}: {rate:8.0f} steps/s")


if __name__ == "__main__":
    main()
