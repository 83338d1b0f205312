"""Meta-World env costs: raw step rates (CDS tasks, MT10 tasks) and building all 100 MT50 envs.

    python -m benchmarks.bench_env_metaworld --steps 2000   (from the repository root)

Step rates use uniform random actions and include resets (every 500 steps). The MT50 part makes
the 100 task envs (50 training + 50 evaluation), which is lazy, then resets each once, which builds
its Meta-World env and samples its 50 variants; it reports the times and the process's resident memory.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from environments.base import TaskSet
from environments.metaworld_envs import make_cds_task_set, make_mt10_task_set, make_mt50_task_set


def resident_memory_mib() -> float:
    """Resident set size of this process (Linux)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("VmRSS not found in /proc/self/status")


def steps_per_second(env, steps: int, seed: int) -> float:
    """Steps per second of ``env`` under uniform random actions drawn before timing."""
    actions = np.random.default_rng(seed).uniform(-1.0, 1.0, size=(steps, 4)).astype(np.float32)
    env.reset(seed=seed)
    start = time.perf_counter()
    for action in actions:
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - start)


def report_step_rates(task_set: TaskSet, task_indices: list[int], steps: int) -> None:
    rates = []
    for task_index in task_indices:
        rate = steps_per_second(task_set.make_env(task_index, False), steps, seed=task_index)
        rates.append(rate)
        print(f"{task_set.env_id:18s} {task_set.task_names[task_index]:26s} {rate:8.0f} steps/s")
    print(f"{task_set.env_id:18s} {'mean':26s} {np.mean(rates):8.0f} steps/s")


def report_mt50_build() -> None:
    memory_before = resident_memory_mib()
    start = time.perf_counter()
    task_set = make_mt50_task_set()
    envs = [task_set.make_env(index, evaluation) for evaluation in (False, True) for index in range(task_set.num_tasks)]
    made = time.perf_counter() - start
    print(f"MT50: make_env x{len(envs)} (lazy): {made:.3f} s, RSS +{resident_memory_mib() - memory_before:.0f} MiB")
    start = time.perf_counter()
    for seed, env in enumerate(envs):
        env.reset(seed=seed)
    built = time.perf_counter() - start
    print(
        f"MT50: first reset of all {len(envs)} envs (build + 50 variants each): {built:.1f} s "
        f"({built / len(envs):.2f} s per env), RSS {resident_memory_mib():.0f} MiB "
        f"(+{resident_memory_mib() - memory_before:.0f} MiB)"
    )
    start = time.perf_counter()
    for env in envs:
        env.reset()
    print(f"MT50: one more reset of all {len(envs)} envs: {time.perf_counter() - start:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000, help="env steps timed per task")
    parser.add_argument("--skip_mt50", action="store_true", help="only measure step rates")
    args = parser.parse_args()
    report_step_rates(make_cds_task_set(), list(range(4)), args.steps)
    report_step_rates(make_mt10_task_set(), list(range(10)), args.steps)
    if not args.skip_mt50:
        report_mt50_build()


if __name__ == "__main__":
    main()
