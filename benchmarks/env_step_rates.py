"""Raw step rate of every task environment (random actions, resets included), and Meta-World MT50's
build time and memory. Not run by CI.

    python -m benchmarks.env_step_rates                        # every environment id
    python -m benchmarks.env_step_rates --envs Walker2dMT4-v0 --steps 5000
    python -m benchmarks.env_step_rates --envs none --mt50_build
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from environments import available_env_ids, make_task_set

DEFAULT_STEPS = {"KitchenMTEasy-v0": 300, "MetaWorldCDS-v1": 2000, "MetaWorldMT10-v2": 2000, "MetaWorldMT50-v2": 1000}


def resident_memory_mib() -> float:
    """Resident set size of this process (Linux)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("VmRSS not found in /proc/self/status")


def steps_per_second(env, steps: int, seed: int) -> float:
    """Steps per second of ``env`` under uniform random actions drawn before timing."""
    shape = env.action_space.shape
    actions = np.random.default_rng(seed).uniform(-1.0, 1.0, size=(steps, *shape)).astype(np.float32)
    env.reset(seed=seed)
    start = time.perf_counter()
    for action in actions:
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - start)


def report_step_rates(env_id: str, steps: int | None, tasks: int | None) -> None:
    task_set = make_task_set(env_id)
    count = task_set.num_tasks if tasks is None else min(tasks, task_set.num_tasks)
    rates = []
    for task_index in range(count):
        env = task_set.make_env(task_index, False)
        rate = steps_per_second(env, steps or DEFAULT_STEPS.get(env_id, 20000), seed=task_index)
        env.close()
        rates.append(rate)
        print(f"{env_id:18s} {task_set.task_names[task_index][:30]:30s} {rate:9.0f} steps/s", flush=True)
    print(f"{env_id:18s} {'mean':30s} {np.mean(rates):9.0f} steps/s", flush=True)


def report_mt50_build() -> None:
    """Make the 100 MT50 envs (lazy), then reset each once (builds it and samples its variants)."""
    memory_before = resident_memory_mib()
    start = time.perf_counter()
    task_set = make_task_set("MetaWorldMT50-v2")
    envs = [task_set.make_env(index, evaluation) for evaluation in (False, True) for index in range(task_set.num_tasks)]
    print(f"MT50: make_env x{len(envs)}: {time.perf_counter() - start:.3f} s, "
          f"RSS +{resident_memory_mib() - memory_before:.0f} MiB")
    start = time.perf_counter()
    for seed, env in enumerate(envs):
        env.reset(seed=seed)
    built = time.perf_counter() - start
    print(f"MT50: first reset of all {len(envs)} envs: {built:.1f} s ({built / len(envs):.2f} s per env), "
          f"RSS {resident_memory_mib():.0f} MiB (+{resident_memory_mib() - memory_before:.0f} MiB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", nargs="+", default=available_env_ids(), help="environment ids, or 'none'")
    parser.add_argument("--steps", type=int, default=None, help="steps timed per task (default depends on the env)")
    parser.add_argument("--tasks", type=int, default=None, help="time only the first N tasks of each env")
    parser.add_argument("--mt50_build", action="store_true", help="also measure building all 100 MT50 envs")
    args = parser.parse_args()
    for env_id in args.envs:
        if env_id != "none":
            report_step_rates(env_id, args.steps, args.tasks)
    if args.mt50_build:
        report_mt50_build()


if __name__ == "__main__":
    main()
