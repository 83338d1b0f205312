"""Per-task SAC update rate: our batched T-task update against Stable-Baselines3 SAC trained T times.

Both sides use (256, 256) networks, Adam 3e-4, a learned temperature and one Polyak update per step,
and both sample their minibatches from a filled replay buffer inside the timing. Rounds alternate
between the two (interleaved, same process) so machine load affects both alike; the best round of
each is reported. Needs ``pip install -r benchmarks/requirements.txt``.

    OMP_NUM_THREADS=1 python -m benchmarks.bench_update [--threads 1] [--rounds 5] [--steps 50]
        [--device cuda] [--batches 32 256] [--compile]

``--device cuda`` puts both sides' networks and buffers on the GPU (each round ends with a CUDA
synchronisation, so the time covers the kernels, not only their launch). ``--compile`` adds a third
side, our update with ``torch.compile``d losses (what ``--compile True`` does to a CUDA run), timed in
the same rounds after a warm-up that compiles it.
"""

from __future__ import annotations

import argparse
import os
import time

import gymnasium as gym
import numpy as np
import torch

from learning.core.networks import TanhGaussianPolicy, TwinQFunction
from learning.core.replay_buffer import TaskReplayBuffer, Transitions
from learning.core.sac import MultiTaskSAC, SACSettings

HIDDEN = (256, 256)
FILL = 5000


class _SpacesOnly(gym.Env):
    """An env that only declares spaces (SB3 needs one to build SAC; training never steps it)."""

    def __init__(self, obs_dim: int, action_dim: int) -> None:
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (action_dim,), np.float32)

    def reset(self, *, seed=None, options=None):
        return np.zeros(self.observation_space.shape, np.float32), {}

    def step(self, action):
        return np.zeros(self.observation_space.shape, np.float32), 0.0, False, False, {}


def ours(num_tasks: int, obs_dim: int, action_dim: int, batch: int, device: torch.device, compiled: bool = False):
    """A batched SAC (its losses compiled if asked) and its filled buffer; returns a function running
    ``steps`` updates."""
    policy = TanhGaussianPolicy("separate", num_tasks, obs_dim, action_dim, HIDDEN)
    critic = TwinQFunction("separate", num_tasks, obs_dim, action_dim, HIDDEN)
    sac = MultiTaskSAC(policy, critic, SACSettings()).to(device)
    if compiled:
        sac.compile_losses()
    buffer = TaskReplayBuffer(num_tasks, obs_dim, action_dim, FILL, device)
    rng = np.random.default_rng(0)
    buffer.add(Transitions(rng.standard_normal((num_tasks, FILL, obs_dim), np.float32),
                           rng.uniform(-1, 1, (num_tasks, FILL, action_dim)).astype(np.float32),
                           rng.standard_normal((num_tasks, FILL), np.float32),
                           rng.standard_normal((num_tasks, FILL, obs_dim), np.float32),
                           np.zeros((num_tasks, FILL), np.float32)))

    def run(steps: int) -> None:
        for _ in range(steps):
            sac.update(buffer.sample(batch), with_stats=False)

    return run


def stable_baselines(num_tasks: int, obs_dim: int, action_dim: int, batch: int, device: torch.device):
    """T independent SB3 SAC models with filled buffers; returns a function running ``steps`` updates of each."""
    from stable_baselines3 import SAC

    rng = np.random.default_rng(0)
    models = []
    for _ in range(num_tasks):
        model = SAC("MlpPolicy", _SpacesOnly(obs_dim, action_dim), learning_rate=3e-4, batch_size=batch,
                    policy_kwargs={"net_arch": list(HIDDEN)}, learning_starts=0, buffer_size=FILL, device=device,
                    verbose=0)
        model._setup_learn(total_timesteps=1)
        for _ in range(FILL):
            model.replay_buffer.add(rng.standard_normal((1, obs_dim)).astype(np.float32),
                                    rng.standard_normal((1, obs_dim)).astype(np.float32),
                                    rng.uniform(-1, 1, (1, action_dim)).astype(np.float32),
                                    rng.standard_normal(1).astype(np.float32), np.zeros(1), [{}])
        models.append(model)

    def run(steps: int) -> None:
        for _ in range(steps):
            for model in models:
                model.train(gradient_steps=1, batch_size=batch)

    return run


def rate(run, num_tasks: int, steps: int, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    started = time.perf_counter()
    run(steps)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return num_tasks * steps / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, nargs="+", default=[1])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=40, help="updates per task per round")
    parser.add_argument("--tasks", type=int, default=10)
    parser.add_argument("--batches", type=int, nargs="+", default=[32, 256], help="minibatch sizes per task")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:ID], for both sides")
    parser.add_argument("--compile", action="store_true", help="also time our update with torch.compile'd losses")
    args = parser.parse_args()
    try:
        device = torch.device(args.device)
    except RuntimeError:
        raise SystemExit(f"--device {args.device!r} is not a device (cpu, cuda, cuda:1, ...)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is available")
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"torch {torch.__version__}, networks {HIDDEN}, T = {args.tasks}, best of {args.rounds} interleaved rounds, "
          f"on {where}, load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    compiled_header = "  compiled (task-updates/s)  compiled/SB3  compiled/ours" if args.compile else ""
    print("threads  obs/act  batch  ours (task-updates/s)  SB3 (task-updates/s)  ratio" + compiled_header)
    for threads in args.threads:
        torch.set_num_threads(threads)
        for obs_dim, action_dim in ((4, 2), (39, 4)):
            for batch in args.batches:
                torch.manual_seed(0)
                sides = {"ours": ours(args.tasks, obs_dim, action_dim, batch, device),
                         "sb3": stable_baselines(args.tasks, obs_dim, action_dim, batch, device)}
                if args.compile:
                    sides["compiled"] = ours(args.tasks, obs_dim, action_dim, batch, device, compiled=True)
                for run in sides.values():
                    run(3)  # warm-up (compiles the compiled side)
                rates: dict[str, list[float]] = {name: [] for name in sides}
                for _ in range(args.rounds):
                    for name, run in sides.items():
                        rates[name].append(rate(run, args.tasks, args.steps, device))
                best = {name: max(values) for name, values in rates.items()}
                line = (f"{threads:7d}  {obs_dim:>3}/{action_dim:<3}  {batch:5d}  {best['ours']:21.0f}  "
                        f"{best['sb3']:20.0f}  {best['ours'] / best['sb3']:5.2f}")
                if args.compile:
                    line += (f"  {best['compiled']:25.0f}  {best['compiled'] / best['sb3']:12.2f}  "
                             f"{best['compiled'] / best['ours']:13.2f}")
                print(line, flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
