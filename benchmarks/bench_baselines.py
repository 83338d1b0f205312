"""Cost of each baseline's update relative to plain multi-task SAC, measured side by side (not run by CI).

Maze-sized problem (T = 10 tasks, observation 4, action 2, hidden (256, 256)): per-task family with
256 transitions per task and step (dnc_sac's preset), SAC family with 256 transitions in total
(mtsac's preset, multihead networks). Prints gradient steps per second and the time of a step relative
to the plain update of the same family.

    python -m benchmarks.bench_baselines [--steps 50] [--threads 1] [--tasks 10]
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable

import numpy as np
import torch

from learning.baselines.data_sharing import DataSharingSAC
from learning.baselines.decaf import DecafTwinQFunction
from learning.baselines.dnc import DnCSAC
from learning.baselines.mcal import MultiCriticActorSAC
from learning.baselines.pcgrad import PCGradSAC
from learning.core.networks import TanhGaussianPolicy, TwinQFunction
from learning.core.replay_buffer import TaskReplayBuffer, Transitions
from learning.core.sac import MultiTaskSAC, SACSettings

OBS, ACT, HIDDEN, BATCH = 4, 2, (256, 256), 256


def filled_buffer(tasks: int, size: int = 5000) -> TaskReplayBuffer:
    buffer = TaskReplayBuffer(tasks, OBS, ACT, size)
    rng = np.random.default_rng(0)
    buffer.add(Transitions(rng.normal(size=(tasks, size, OBS)).astype(np.float32),
                           rng.uniform(-1, 1, size=(tasks, size, ACT)).astype(np.float32),
                           rng.normal(size=(tasks, size)).astype(np.float32),
                           rng.normal(size=(tasks, size, OBS)).astype(np.float32), np.zeros((tasks, size), np.float32)))
    return buffer


def builders(tasks: int, buffer: TaskReplayBuffer) -> dict[str, tuple[Callable[[], MultiTaskSAC], bool]]:
    """Name -> (constructor, per-task family)."""
    per_task = SACSettings(per_task_losses=True)
    shared = SACSettings(per_task_losses=False)

    def networks(policy_architecture: str, q_architecture: str):
        return (TanhGaussianPolicy(policy_architecture, tasks, OBS, ACT, HIDDEN),
                TwinQFunction(q_architecture, tasks, OBS, ACT, HIDDEN))

    return {
        "dnc_sac (plain)": (lambda: MultiTaskSAC(*networks("separate", "separate"), per_task), True),
        "DnC KL (all)": (lambda: DnCSAC(*networks("separate", "separate"), per_task, buffer, BATCH, (0.001,)), True),
        "DnC KL (i+j)": (lambda: DnCSAC(*networks("separate", "separate"), per_task, buffer, BATCH, (0.001,),
                                        "i+j"), True),
        "UDS (k = 0.8)": (lambda: DataSharingSAC(*networks("separate", "separate"), per_task, buffer, 0.8, -1.0), True),
        "DECAF": (lambda: MultiTaskSAC(networks("separate", "separate")[0],
                                       DecafTwinQFunction(tasks, OBS, ACT, HIDDEN), per_task), True),
        "MCAL": (lambda: MultiCriticActorSAC(*networks("multihead", "separate"),
                                             SACSettings(per_task_losses=True, temperature_per_task=False)), True),
        "mtsac (plain)": (lambda: MultiTaskSAC(*networks("multihead", "multihead"), shared), False),
        "mtsac + PCGrad": (lambda: PCGradSAC(*networks("multihead", "multihead"), shared), False),
    }


def steps_per_second(sac: MultiTaskSAC, buffer: TaskReplayBuffer, batch_per_task: int, steps: int) -> float:
    for _ in range(3):  # warm-up
        sac.update(buffer.sample(batch_per_task))
    started = time.perf_counter()
    for _ in range(steps):
        sac.update(buffer.sample(batch_per_task))
    return steps / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--tasks", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    buffer = filled_buffer(args.tasks)
    baseline: dict[bool, float] = {}
    print(f"T = {args.tasks}, hidden {HIDDEN}, {args.threads} thread(s), {args.steps} steps each")
    print(f"{'update':<18}{'steps/s':>10}{'time / plain':>14}")
    for name, (build, per_task_family) in builders(args.tasks, buffer).items():
        batch = BATCH if per_task_family else max(math.ceil(BATCH / args.tasks), 1)
        rate = steps_per_second(build(), buffer, batch, args.steps)
        baseline.setdefault(per_task_family, rate)
        print(f"{name:<18}{rate:>10.1f}{baseline[per_task_family] / rate:>13.2f}x", flush=True)


if __name__ == "__main__":
    main()
