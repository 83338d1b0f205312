"""The paper's Fig. 5 on PointReach-v0: SAC vs QMP with (up, right, down-left) vs (up, right, up-right).

Runs each method for several seeds with the environment's preset and prints, per method, the
collection (training) success and return averaged over the last 10 epochs, the first epoch whose
collected episodes succeed at least half the time, and the deterministic evaluation of the trained
policy itself. Writes a PNG of collection return against environment steps (mean and spread over
seeds). Not run by CI; about 1.5 minutes per run on one core.

    python -m benchmarks.point_reach_comparison --seeds 0 1 2 --out benchmarks/results
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

METHODS = {
    "SAC": ["dnc_sac", "--env=PointReach-v0"],
    "QMP (up, right, down-left)": ["qmp_dnc", "--env=PointReach-v0", "--guide_policies", "up,right,down_left"],
    "QMP (up, right, up-right)": ["qmp_dnc", "--env=PointReach-v0", "--guide_policies", "up,right,up_right"],
}
REPO = Path(__file__).resolve().parents[1]


def run_one(method: str, seed: int, log_dir: Path) -> Path:
    name = method.split(" ")[0] + ("_" + method.split("(")[1].strip(")").replace(", ", "-") if "(" in method else "")
    argv = [sys.executable, str(REPO / "run.py"), *METHODS[method], "--seed", str(seed), "--name", name,
            "--wandb", "False", "--log_dir", str(log_dir)]
    subprocess.run(argv, cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    return log_dir / f"{METHODS[method][0]}_PointReach-v0_{name}_{seed}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--parallel", type=int, default=2)
    args = parser.parse_args()
    log_dir = args.out / "point_reach_runs"
    jobs = [(method, seed) for method in METHODS for seed in args.seeds]
    with ThreadPoolExecutor(args.parallel) as pool:
        run_dirs = list(pool.map(lambda job: run_one(job[0], job[1], log_dir), jobs))

    curves: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    print(f"{'method':<30}{'collect success':>17}{'collect return':>16}{'first epoch >= 0.5':>20}{'policy eval success':>21}")
    for method in METHODS:
        rows_per_seed = []
        for (job_method, _), run_dir in zip(jobs, run_dirs):
            if job_method == method:
                rows_per_seed.append([json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()])
        success = np.array([[r["Train/SuccessRate"] for r in rows] for rows in rows_per_seed])
        returns = np.array([[r["Train/AverageReturn"] for r in rows] for rows in rows_per_seed])
        own_key = "Evaluation/p/SuccessRate" if "Evaluation/p/SuccessRate" in rows_per_seed[0][-1] else "Evaluation/SuccessRate"
        own = np.array([[r[own_key] for r in rows] for rows in rows_per_seed])
        first = [int(np.argmax(s >= 0.5)) if (s >= 0.5).any() else None for s in success]
        steps = np.array([r["Train/TotalEnvSteps"] for r in rows_per_seed[0]])
        curves[method] = [(steps, returns)]
        print(f"{method:<30}{success[:, -10:].mean():>17.2f}{returns[:, -10:].mean():>16.2f}{str(first):>20}"
              f"{own[:, -10:].mean():>21.2f}")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4))
    for method, [(steps, returns)] in curves.items():
        mean, std = returns.mean(0), returns.std(0)
        axis.plot(steps, mean, label=method)
        axis.fill_between(steps, mean - std, mean + std, alpha=0.2)
    axis.set_xlabel("environment steps")
    axis.set_ylabel("collection return per episode")
    axis.set_title(f"PointReach-v0 ({len(args.seeds)} seeds)")
    axis.legend()
    figure.tight_layout()
    args.out.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out / "point_reach_comparison.png", dpi=120)
    print(f"plot: {args.out / 'point_reach_comparison.png'}")


if __name__ == "__main__":
    main()
