"""Per-epoch checkpoint cost against the number of stored transitions (not run by CI).

For a buffer holding N transitions per task, one epoch adds ``--new`` transitions and checkpoints:
"chunks" (the run's way: the new transitions as a chunk file, plus networks, optimisers and small
state) against "whole buffer" (the buffer's filled part inside the checkpoint, as before). Bytes
written and seconds, both with fsync, side by side in one run. Target: chunks at 1M within 2x of 10k.

    OMP_NUM_THREADS=1 python -m benchmarks.bench_checkpoint [--tasks 1] [--sizes 10000 1000000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from learning.core.networks import TanhGaussianPolicy, TwinQFunction
from learning.core.replay_buffer import TaskReplayBuffer, Transitions
from learning.core.sac import MultiTaskSAC, SACSettings
from learning.training.checkpoint import save_checkpoint
from learning.training.replay_files import ReplayFiles

OBS, ACT = 39, 4


def block(tasks: int, steps: int, rng: np.random.Generator) -> Transitions:
    return Transitions(rng.standard_normal((tasks, steps, OBS), np.float32),
                       rng.uniform(-1, 1, (tasks, steps, ACT)).astype(np.float32),
                       rng.standard_normal((tasks, steps), np.float32),
                       rng.standard_normal((tasks, steps, OBS), np.float32), np.zeros((tasks, steps), np.float32))


def measure(tasks: int, stored: int, new: int) -> dict[str, tuple[float, int]]:
    rng = np.random.default_rng(0)
    sac = MultiTaskSAC(TanhGaussianPolicy("separate", tasks, OBS, ACT, (256, 256)),
                       TwinQFunction("separate", tasks, OBS, ACT, (256, 256)), SACSettings())
    buffer = TaskReplayBuffer(tasks, OBS, ACT, 1_000_000)
    filled = 0
    while filled < stored:
        step = min(100_000, stored - filled)
        buffer.add(block(tasks, step, rng))
        filled += step
    small = {"networks": sac.state_dict(), "optimizers": sac.optimizer_state()}
    out = {}
    with tempfile.TemporaryDirectory() as directory:
        run_dir = Path(directory)
        files = ReplayFiles(run_dir)
        files.commit_new(buffer)  # the transitions stored before this epoch are already on disk
        buffer.add(block(tasks, new, rng))
        started = time.perf_counter()
        state = {**small, "buffer": files.commit_new(buffer)}
        save_checkpoint(run_dir / "checkpoint.pt", state)
        files.prune()
        chunk = run_dir / "replay" / state["buffer"]["chunks"][-1]
        out["chunks"] = (time.perf_counter() - started,
                         (run_dir / "checkpoint.pt").stat().st_size + chunk.stat().st_size)
        started = time.perf_counter()
        save_checkpoint(run_dir / "whole.pt", {**small, "buffer": buffer.state_dict()})
        out["whole buffer"] = (time.perf_counter() - started, (run_dir / "whole.pt").stat().st_size)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=1)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 1_000_000])
    parser.add_argument("--new", type=int, default=1000, help="transitions per task the epoch added")
    args = parser.parse_args()
    print(f"T = {args.tasks}, obs/action {OBS}/{ACT}, (256, 256) networks, {args.new} new transitions per task")
    results = {size: measure(args.tasks, size, args.new) for size in args.sizes}
    for size, result in results.items():
        print(f"{size:>9} stored: " + " | ".join(f"{kind} {seconds * 1e3:7.1f} ms {size_bytes / 1e6:8.2f} MB"
                                                 for kind, (seconds, size_bytes) in result.items()))
    low, high = results[min(args.sizes)]["chunks"], results[max(args.sizes)]["chunks"]
    print(f"chunks, {max(args.sizes)} / {min(args.sizes)} stored: bytes x{high[1] / low[1]:.2f}, "
          f"time x{high[0] / low[0]:.2f}   (target <= 2)")


if __name__ == "__main__":
    main()
