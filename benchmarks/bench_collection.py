"""Collection time per lockstep step against the policy and the env steps inside it (not run by CI).

``LockstepSampler.collect`` with the own policy ((256, 256) networks) on each env id; the seconds in
``act`` and in the envs' ``step`` are summed separately, and what is left is the sampler's own
bookkeeping (autoreset, info handling, buffers). ``--compare_with TREE`` times an older checkout
the same way in its own process, alternating with this one (``--rounds``).

    OMP_NUM_THREADS=1 python -m benchmarks.bench_collection --envs MazeLarge-10-v0 JacoReachMT5-v1 \\
        [--steps 1000] [--compare_with /tmp/base --rounds 3]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path


def measure(env_ids: list[str], steps: int) -> dict:
    """Per env id: milliseconds per lockstep step in total, in ``act`` and in the envs' ``step``."""
    import torch

    from environments import make_task_set
    from learning.behaviour.own_policy import OwnPolicyBehaviour
    from learning.core.networks import TanhGaussianPolicy
    from learning.training.sampler import LockstepSampler

    torch.set_num_threads(1)
    results = {}
    for env_id in env_ids:
        torch.manual_seed(0)
        task_set = make_task_set(env_id)
        layout, t = task_set.observation_layout, task_set.num_tasks
        action_dim = task_set.make_env(0, False).action_space.shape[0]
        behaviour = OwnPolicyBehaviour(TanhGaussianPolicy("separate", t, layout.network_dim(), action_dim, (256, 256)))
        sampler = LockstepSampler(task_set, behaviour, layout.network_input, torch.device("cpu"), 0, 0.99)
        sampler.collect(10)  # resets and first steps untimed
        spent = {"act": 0.0, "env": 0.0}

        def timed(function, key, spent=spent):
            def call(*args, **kwargs):
                started = time.perf_counter()
                result = function(*args, **kwargs)
                spent[key] += time.perf_counter() - started
                return result
            return call

        behaviour.act = timed(behaviour.act, "act")
        for env in sampler.envs.envs:
            env.step = timed(env.step, "env")
        started = time.perf_counter()
        sampler.collect(steps)
        total = time.perf_counter() - started
        results[env_id] = {key: 1e3 * value / steps for key, value in
                           {"total": total, "act": spent["act"], "env": spent["env"]}.items()}
    return results




def report(label: str, env_id: str, row: dict) -> None:
    print(f"{label:>7} {env_id:18s} total {row['total']:6.2f} | act {row['act']:5.2f} | env steps "
          f"{row['env']:5.2f} | sampler's own {row['own']:5.2f}", flush=True)


def main() -> None:
    from benchmarks.other_tree import measure_in  # not at the top: the probe process loads this file from the old tree

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", nargs="+", default=["MazeLarge-10-v0", "JacoReachMT5-v1"])
    parser.add_argument("--steps", type=int, default=1000, help="lockstep steps timed (each steps every task)")
    parser.add_argument("--compare_with", type=Path, default=None, help="an older checkout to time alike")
    parser.add_argument("--rounds", type=int, default=1, help="alternations of the two trees")
    args = parser.parse_args()
    print(f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}; load average {os.getloadavg()[0]:.2f} "
          f"on {os.cpu_count()} CPUs; own policy (256, 256); ms per lockstep step", flush=True)
    here = Path(__file__).resolve().parents[1]
    trees = ([("before", args.compare_with)] if args.compare_with is not None else []) + [
        ("after" if args.compare_with is not None else "now", here)]
    best: dict[tuple[str, str], dict] = {}
    for _ in range(args.rounds):
        for label, tree in trees:
            for env_id, row in measure_in(tree, __file__, args.envs, args.steps).items():
                row["own"] = row["total"] - row["act"] - row["env"]
                report(label, env_id, row)
                kept = best.setdefault((label, env_id), row)
                best[label, env_id] = {key: min(value, kept[key]) for key, value in row.items()}
    if args.rounds > 1:
        print("best of the rounds (each column on its own):")
        for (label, env_id), row in best.items():
            report(label, env_id, row)



if __name__ == "__main__":
    main()
