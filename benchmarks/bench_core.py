"""Speed of the learning core, as ratios measured side by side in one run (not run by CI).

1. QMP collection time / own-policy collection time on MazeLarge-10-v0 (T = 10), paper-sized
   networks (256, 256). Target: <= 1.3 (the Q-switch is two batched calls per
   environment step, with T^2 policy and T^2 critic rows against the own policy's T).
2. Batched T-task SAC update rate / a Python loop of per-task updates of this code base, T = 10, at
   minibatch 32 and 256 per task (for reference; the target against Stable-Baselines3 is
   benchmarks/bench_update.py's).

    python -m benchmarks.bench_core [--repeats 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from environments import make_task_set
from learning.behaviour.own_policy import OwnPolicyBehaviour
from learning.behaviour.qswitch import QSwitchBehaviour, QSwitchOptions
from learning.core.networks import TanhGaussianPolicy, TwinQFunction
from learning.core.sac import MultiTaskSAC, SACSettings
from learning.training.sampler import LockstepSampler

HIDDEN = (256, 256)


def collection_seconds(behaviour_kind: str, steps: int, seed: int = 0) -> float:
    task_set = make_task_set("MazeLarge-10-v0")
    layout = task_set.observation_layout
    t, obs_dim, action_dim = task_set.num_tasks, layout.network_dim(), 2
    policy = TanhGaussianPolicy("separate", t, obs_dim, action_dim, HIDDEN)
    critic = TwinQFunction("separate", t, obs_dim, action_dim, HIDDEN)
    if behaviour_kind == "qmp":
        behaviour = QSwitchBehaviour(policy, critic, lambda: torch.ones(t), QSwitchOptions())
    else:
        behaviour = OwnPolicyBehaviour(policy)
    sampler = LockstepSampler(task_set, behaviour, layout.network_input, torch.device("cpu"), seed, 0.99)
    sampler.collect(20)  # warm caches
    started = time.perf_counter()
    sampler.collect(steps)
    elapsed = time.perf_counter() - started
    sampler.close()
    return elapsed


def make_sac(num_tasks: int, obs_dim: int, action_dim: int) -> MultiTaskSAC:
    policy = TanhGaussianPolicy("separate", num_tasks, obs_dim, action_dim, HIDDEN)
    critic = TwinQFunction("separate", num_tasks, obs_dim, action_dim, HIDDEN)
    return MultiTaskSAC(policy, critic, SACSettings())


def random_batch(num_tasks: int, batch: int, obs_dim: int, action_dim: int) -> dict[str, torch.Tensor]:
    return {"observation": torch.randn(num_tasks, batch, obs_dim), "action": torch.rand(num_tasks, batch, action_dim) * 2 - 1,
            "reward": torch.randn(num_tasks, batch), "next_observation": torch.randn(num_tasks, batch, obs_dim),
            "terminal": torch.zeros(num_tasks, batch)}


def update_rates(num_tasks: int, batch: int, steps: int, obs_dim: int = 4, action_dim: int = 2) -> tuple[float, float]:
    """Per-task updates per second: (batched over tasks, Python loop over tasks)."""
    batched = make_sac(num_tasks, obs_dim, action_dim)
    data = random_batch(num_tasks, batch, obs_dim, action_dim)
    for _ in range(3):
        batched.update(data)
    started = time.perf_counter()
    for _ in range(steps):
        batched.update(data)
    batched_rate = num_tasks * steps / (time.perf_counter() - started)

    singles = [make_sac(1, obs_dim, action_dim) for _ in range(num_tasks)]
    single_data = [random_batch(1, batch, obs_dim, action_dim) for _ in range(num_tasks)]
    for sac, d in zip(singles, single_data):
        sac.update(d)
    started = time.perf_counter()
    for _ in range(steps):
        for sac, d in zip(singles, single_data):
            sac.update(d)
    loop_rate = num_tasks * steps / (time.perf_counter() - started)
    return batched_rate, loop_rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--collect_steps", type=int, default=600, help="steps per task per timing")
    parser.add_argument("--update_steps", type=int, default=100)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {args.threads} thread(s), networks {HIDDEN}, best of {args.repeats}")

    own, qmp = [], []
    for _ in range(args.repeats):  # interleaved so that machine load affects both alike
        own.append(collection_seconds("own", args.collect_steps))
        qmp.append(collection_seconds("qmp", args.collect_steps))
    steps = 10 * args.collect_steps
    print(f"Maze T=10 collection, {steps} env steps: own policy {min(own):.2f} s ({steps / min(own):.0f} steps/s), "
          f"QMP {min(qmp):.2f} s ({steps / min(qmp):.0f} steps/s)")
    print(f"  ratio QMP / own-policy collection time: {min(qmp) / min(own):.3f}   (target <= 1.3)")

    for batch in (32, 256):
        rates = [update_rates(10, batch, args.update_steps) for _ in range(args.repeats)]
        batched, loop = max(r[0] for r in rates), max(r[1] for r in rates)
        print(f"SAC update, T=10, batch {batch}/task: batched {batched:.0f} task-updates/s, "
              f"per-task loop {loop:.0f} task-updates/s, ratio {batched / loop:.2f}")


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
