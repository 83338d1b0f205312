"""Raw step rate of each MazeLarge-10-v0 task env (random actions, resets included).

    python -m benchmarks.bench_env_maze --steps 20000   (from the repository root)
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from environments.maze import make_maze_task_set


def steps_per_second(env, steps: int, seed: int) -> float:
    """Steps per second of ``env`` under uniform random actions drawn before timing."""
    actions = np.random.default_rng(seed).uniform(-1.0, 1.0, size=(steps, 2)).astype(np.float32)
    env.reset(seed=seed)
    start = time.perf_counter()
    for action in actions:
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20000, help="env steps timed per task")
    args = parser.parse_args()
    task_set = make_maze_task_set()
    rates = []
    for task_index, task_name in enumerate(task_set.task_names):
        rate = steps_per_second(task_set.make_env(task_index, False), args.steps, seed=task_index)
        rates.append(rate)
        print(f"{task_name:24s} {rate:10.0f} steps/s")
    print(f"{'mean':24s} {np.mean(rates):10.0f} steps/s")


if __name__ == "__main__":
    main()
