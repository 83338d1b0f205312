"""Microseconds per environment step (random actions in [-1, 1], resets excluded), and Meta-World MT50's
build time and memory. Not run by CI.

For each environment id: stepping one task env at a time ("sequential", the mean over tasks), stepping
``--copies`` envs round-robin as the lockstep evaluator does (T tasks x E copies: each env's memory
leaves the cache before its next step), and the physics alone (``mj_step`` with the env's substeps,
same envs, random controls) as the floor. ``--compare_with TREE`` times an older checkout's
environments the same way in its own process, alternating with this one (``--rounds``).

    OMP_NUM_THREADS=1 python -m benchmarks.env_step_rates                  # every environment id
    OMP_NUM_THREADS=1 python -m benchmarks.env_step_rates --envs MazeLarge-10-v0 JacoReachMT5-v1 \\
        --compare_with /tmp/base --rounds 3
    python -m benchmarks.env_step_rates --envs none --mt50_build
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

DEFAULT_STEPS = {"KitchenMTEasy-v0": 300, "MetaWorldCDS-v1": 2000, "MetaWorldMT10-v2": 2000, "MetaWorldMT50-v2": 1000}
PHYSICS_SUBSTEPS = {"MazeLarge-10-v0": 1, "JacoReachMT5-v1": 4, "Walker2dMT4-v0": 4}
"""mj_step calls per env step, for the physics floor (ids not listed get none)."""


def resident_memory_mib() -> float:
    """Resident set size of this process (Linux)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("VmRSS not found in /proc/self/status")


def round_robin_seconds(envs: list, steps_per_env: int, seed: int) -> float:
    """Seconds spent in ``env.step`` when every env steps once per round (resets not counted)."""
    rng = np.random.default_rng(seed)
    shape = envs[0].action_space.shape
    actions = rng.uniform(-1.0, 1.0, size=(steps_per_env, len(envs), *shape)).astype(np.float32)
    for index, env in enumerate(envs):
        env.reset(seed=seed + index)
    spent = 0.0
    for round_actions in actions:
        for env, action in zip(envs, round_actions):
            started = time.perf_counter()
            _, _, terminated, truncated, _ = env.step(action)
            spent += time.perf_counter() - started
            if terminated or truncated:
                env.reset()
    return spent


def physics_seconds(envs: list, substeps: int, steps_per_env: int, seed: int) -> float:
    """Seconds of ``mj_step(model, data, nstep=substeps)`` alone on the envs' simulators, one env at a time."""
    import mujoco

    rng = np.random.default_rng(seed)
    spent = 0.0
    for index, env in enumerate(envs):
        env.reset(seed=seed + index)
        model, data = env.unwrapped.model, env.unwrapped.data
        controls = rng.uniform(-1.0, 1.0, size=(steps_per_env, model.nu))
        started = time.perf_counter()
        for control in controls:
            data.ctrl[:] = control
            mujoco.mj_step(model, data, nstep=substeps)
        spent += time.perf_counter() - started
    return spent


def measure(env_ids: list[str], steps: int | None, copies: int) -> dict:
    """Microseconds per step of each env id: sequential, round-robin over ``copies`` envs, physics."""
    import mujoco

    from environments import make_task_set

    mujoco.set_mju_user_warning(lambda message: None)
    results = {}
    for env_id in env_ids:
        task_set = make_task_set(env_id)
        total_steps = steps or DEFAULT_STEPS.get(env_id, 20000)
        t = task_set.num_tasks
        sequential = []
        for task in range(t):
            env = task_set.make_env(task, True)
            sequential.append(round_robin_seconds([env], max(1, total_steps // t), seed=task) / max(1, total_steps // t))
            env.close()
        row = {"sequential": 1e6 * float(np.mean(sequential))}
        if copies > 1:
            envs = [task_set.make_env(index % t, True) for index in range(copies)]
            per_env = max(1, total_steps // copies)
            row["round_robin"] = 1e6 * round_robin_seconds(envs, per_env, seed=0) / (per_env * copies)
            if env_id in PHYSICS_SUBSTEPS:
                row["physics"] = 1e6 * physics_seconds(envs, PHYSICS_SUBSTEPS[env_id], per_env, 0) / (per_env * copies)
            for env in envs:
                env.close()
        results[env_id] = row
    return results




def report(label: str, results: dict) -> None:
    for env_id, row in results.items():
        parts = [f"sequential {row['sequential']:7.1f}"]
        if "round_robin" in row:
            parts.append(f"round-robin {row['round_robin']:7.1f}")
        if "physics" in row:
            parts.append(f"physics (mj_step only) {row['physics']:6.1f}")
        print(f"{label:>7} {env_id:18s} us/step: " + " | ".join(parts), flush=True)


def report_mt50_build() -> None:
    """Make the 100 MT50 envs (lazy), then reset each once (builds it and samples its variants)."""
    from environments import make_task_set

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
    from benchmarks.other_tree import measure_in  # not at the top: the probe process loads this file from the old tree
    from environments import available_env_ids

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", nargs="+", default=available_env_ids(), help="environment ids, or 'none'")
    parser.add_argument("--steps", type=int, default=None, help="steps timed per env id (default depends on the env)")
    parser.add_argument("--copies", type=int, default=100,
                        help="envs stepped round-robin (tasks repeated; 100 = the Maze's 10 tasks x 10 evaluation episodes)")
    parser.add_argument("--compare_with", type=Path, default=None, help="an older checkout to time alike")
    parser.add_argument("--rounds", type=int, default=1, help="alternations of the two trees")
    parser.add_argument("--mt50_build", action="store_true", help="also measure building all 100 MT50 envs")
    args = parser.parse_args()
    env_ids = [env_id for env_id in args.envs if env_id != "none"]
    if env_ids:
        print(f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}; load average "
              f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs; {args.copies} envs round-robin", flush=True)
        here = Path(__file__).resolve().parents[1]
        trees = ([("before", args.compare_with)] if args.compare_with is not None else []) + [
            ("after" if args.compare_with is not None else "now", here)]
        best: dict[str, dict] = {}
        for _ in range(args.rounds):
            for label, tree in trees:
                results = measure_in(tree, __file__, env_ids, args.steps, args.copies)
                report(label, results)
                for env_id, row in results.items():
                    kept = best.setdefault(label, {}).setdefault(env_id, row)
                    best[label][env_id] = {key: min(value, kept[key]) for key, value in row.items()}
        if args.rounds > 1:
            print("best of the rounds:")
            for label, _ in trees:
                report(label, best[label])
    if args.mt50_build:
        report_mt50_build()


if __name__ == "__main__":
    main()
