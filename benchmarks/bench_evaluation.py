"""Evaluation wall time against raw environment stepping of the same steps (issue 15, item 3).

For the own policy and the Q-switch (paper-sized networks, T tasks, E episodes per task): the
lockstep evaluator (all T x E episodes side by side), the one-by-one loop it replaces (E rounds of
the T tasks), and stepping the same environments the same number of steps with no policy at all.
Interleaved in one process. Target: lockstep <= 1.5 x raw stepping.

    OMP_NUM_THREADS=1 python -m benchmarks.bench_evaluation --env MazeLarge-10-v0 [--episodes_per_task 3]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from environments import make_task_set
from learning.behaviour.own_policy import OwnPolicyBehaviour
from learning.behaviour.qswitch import QSwitchBehaviour, QSwitchOptions
from learning.core.networks import TanhGaussianPolicy, TwinQFunction
from learning.training.evaluation import Evaluator


def raw_stepping_seconds(task_set, lengths: dict[int, list[int]]) -> float:
    """Step fresh envs through episodes of the given lengths with random actions."""
    envs = {task: task_set.make_env(task, True) for task in lengths}
    rng = np.random.default_rng(0)
    started = time.perf_counter()
    for task, episode_lengths in lengths.items():
        env = envs[task]
        low, high = env.action_space.low, env.action_space.high
        for length in episode_lengths:
            env.reset(seed=task)
            for action in rng.uniform(low, high, (length, low.shape[0])).astype(np.float32):
                env.step(action)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="MazeLarge-10-v0")
    parser.add_argument("--episodes_per_task", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    task_set = make_task_set(args.env)
    layout, t = task_set.observation_layout, task_set.num_tasks
    action_dim = task_set.make_env(0, True).action_space.shape[0]
    policy = TanhGaussianPolicy("separate", t, layout.network_dim(), action_dim, (256, 256))
    critic = TwinQFunction("separate", t, layout.network_dim(), action_dim, (256, 256))
    behaviours = {"own policy": OwnPolicyBehaviour(policy),
                  "Q-switch": QSwitchBehaviour(policy, critic, lambda: torch.ones(t), QSwitchOptions())}
    print(f"{args.env}: T = {t}, {args.episodes_per_task} episodes per task, (256, 256) networks, 1 thread, "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    for name, behaviour in behaviours.items():
        lockstep = Evaluator(task_set, layout.network_input, torch.device("cpu"), 0, 0.99)
        rounds = Evaluator(task_set, layout.network_input, torch.device("cpu"), 0, 0.99)
        lockstep.run(behaviour, 1)
        lockstep._environment_copies(min(args.episodes_per_task, lockstep.max_lockstep_envs // t))  # built untimed
        rounds._run_rounds(behaviour, 1)
        started = time.perf_counter()
        episodes, _ = lockstep.run(behaviour, args.episodes_per_task)
        lockstep_seconds = time.perf_counter() - started
        started = time.perf_counter()
        rounds._run_rounds(behaviour, args.episodes_per_task)
        rounds_seconds = time.perf_counter() - started
        lengths = {task: [e.length for e in episodes if e.task == task] for task in range(t)}
        raw = raw_stepping_seconds(task_set, lengths)
        steps = sum(e.length for e in episodes)
        print(f"{name:>10}: {steps} steps | raw stepping {raw:6.2f} s | lockstep evaluation {lockstep_seconds:6.2f} s "
              f"(x{lockstep_seconds / raw:.2f} raw, target <= 1.5) | one-by-one loop {rounds_seconds:6.2f} s "
              f"(x{rounds_seconds / raw:.2f} raw)", flush=True)


if __name__ == "__main__":
    main()
