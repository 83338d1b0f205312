"""Raw step rate of each JacoReachMT5-v1 task env (random actions, TimeLimit included).

Usage: python benchmarks/bench_env_jaco.py [--steps N]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from environments.jaco import make_jaco_task_set


def steps_per_second(task_index: int, steps: int, seed: int = 0) -> float:
    """Environment steps per second under uniform random actions, resetting at episode ends."""
    task_set = make_jaco_task_set()
    env = task_set.make_env(task_index, False)
    rng = np.random.default_rng(seed)
    actions = rng.uniform(-1.0, 1.0, size=(steps, 6)).astype(np.float32)
    env.reset(seed=seed)
    start = time.perf_counter()
    for action in actions:
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20_000)
    args = parser.parse_args()
    task_names = make_jaco_task_set().task_names
    for task_index, name in enumerate(task_names):
        print(f"task {task_index} {name:<22s} {steps_per_second(task_index, args.steps):8.0f} steps/s")


if __name__ == "__main__":
    main()
