"""A two-node Ray cluster on this machine, with token authentication, running a small grid by address.

    python benchmarks/ray_two_node.py [--epochs 20] [--keep]

docs/reproducing.md's cluster recipe, tried as a cluster: a head (``ray start --head``) and a second node
(``ray start --address HEAD:PORT``), each with ``--num-cpus 1``, both with ``RAY_AUTH_MODE=token`` and one
token, then ``python sweep.py GRID --address HEAD:PORT`` with two one-CPU runs, which Ray must place one on
each node. The script watches which raylet each run.py descends from, and says how many nodes ran runs.

It stays out of the way of any other Ray on the machine: its own free ports, its own ``--temp-dir``, its
own token in the environment (~/.ray/auth_token is not touched), and at the end it stops only the
processes of its session (found by its temp dir and as their descendants), by pid: never ``ray stop``,
which would stop every Ray of the machine. Not run by the test suite (it takes a minute or two).
Exit 0 when the grid finished with runs on both nodes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from learning.sweeps.reaper import command_line
from learning.sweeps.reaper import process_table as reaper_table

REPO = Path(__file__).resolve().parents[1]
TINY = {"wandb": False, "batch_size": 40, "gradient_steps_per_itr": 20, "min_buffer_size": 40,
        "num_evaluation_episodes": 1, "hidden_sizes": [16]}


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports nothing listens on now."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for probe in sockets:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in sockets]
    finally:
        for probe in sockets:
            probe.close()


def node_flags(ports: list[int]) -> list[str]:
    """Every port a node opens, so that two nodes (and any other Ray) on one machine never collide."""
    manager, objects, agent_http, agent_grpc, metrics, runtime_env, first_worker = ports
    return ["--num-cpus", "1", "--num-gpus", "0", "--node-ip-address", "127.0.0.1",
            "--node-manager-port", str(manager), "--object-manager-port", str(objects),
            "--dashboard-agent-listen-port", str(agent_http), "--dashboard-agent-grpc-port", str(agent_grpc),
            "--metrics-export-port", str(metrics), "--runtime-env-agent-port", str(runtime_env),
            "--min-worker-port", str(first_worker), "--max-worker-port", str(first_worker + 40)]


def process_table() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line) of every process (the sweep's watcher reads /proc alike)."""
    commands = {pid: (parent, command_line(pid)) for pid, (parent, _) in reaper_table().items()}
    return {pid: (parent, command) for pid, (parent, command) in commands.items() if command is not None}


def session_processes(temp_dir: Path) -> list[int]:
    """The processes of our Ray session: those naming our temp dir, and every process below them."""
    table = process_table()
    found = {pid for pid, (_, command) in table.items() if str(temp_dir) in command and pid != os.getpid()}
    grew = True
    while grew:
        below = {pid for pid, (parent, _) in table.items() if parent in found} - found
        found |= below
        grew = bool(below)
    return sorted(found)


def stop_session(temp_dir: Path) -> None:
    """SIGTERM, then SIGKILL, to our session's processes only."""
    pids = session_processes(temp_dir)
    for number in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, number)
        deadline = time.time() + 5
        while time.time() < deadline and any(Path(f"/proc/{pid}").exists() for pid in pids):
            time.sleep(0.2)
        pids = [pid for pid in pids if Path(f"/proc/{pid}").exists()]


def raylet_of(pid: int, table: dict[int, tuple[int, str]], raylets: dict[int, str]) -> str | None:
    """The node (named by its raylet) that ``pid`` runs under."""
    while pid in table and pid > 1:
        if pid in raylets:
            return raylets[pid]
        pid = table[pid][0]
    return None


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20, help="epochs of each of the two runs")
    parser.add_argument("--keep", action="store_true", help="leave the cluster running (stop it by its pids later)")
    args = parser.parse_args(argv)
    temp_dir = Path(tempfile.mkdtemp(prefix="qmp_ray_", dir="/tmp"))  # short: Ray's socket paths must stay short
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32), "OMP_NUM_THREADS": "1"}
    head_port, *ports = free_ports(15)
    head = ["ray", "start", "--head", "--port", str(head_port), "--temp-dir", str(temp_dir), "--include-dashboard",
            "false", "--disable-usage-stats", *node_flags(ports[:7])]
    second = ["ray", "start", "--address", f"127.0.0.1:{head_port}", "--disable-usage-stats", *node_flags(ports[7:14])]
    grid = temp_dir / "grid.yaml"
    grid.write_text(json.dumps({"name": "two_nodes", "envs": ["PointReach-v0"], "seeds": [1], "n_epochs": args.epochs,
                                "overrides": TINY, "experiments": [{"label": "a", "experiment": "dnc_sac"},
                                                                   {"label": "b", "experiment": "qmp_dnc"}]}))
    sweep = [sys.executable, "sweep.py", str(grid), "--address", f"127.0.0.1:{head_port}", "--sweep_dir",
             str(temp_dir / "sweep"), "--cpus_per_run", "1"]
    print(f"temp dir {temp_dir}, head port {head_port}", flush=True)
    try:
        for command in (head, second):
            print("$", " ".join(command), flush=True)
            if subprocess.run(command, env=env, stdout=subprocess.DEVNULL).returncode != 0:
                print(f"failed: {' '.join(command[:3])}", flush=True)
                return 1
        raylets = {pid: f"node {command.split('--node_manager_port=')[1].split()[0]}"
                   for pid, (_, command) in process_table().items()
                   if "raylet" in command.split(" ")[0] and str(temp_dir) in command}
        print(f"raylets: {sorted(raylets.values())}", flush=True)
        print("$", " ".join(sweep), flush=True)
        driver = subprocess.Popen(sweep, cwd=REPO, env=env)
        placed: dict[str, str] = {}
        while driver.poll() is None:
            table = process_table()
            for pid, (_, command) in table.items():
                if "run.py" in command and str(temp_dir / "sweep") in command:
                    run = command.split("--name ")[1].split()[0] if "--name " in command else command.split("/")[-1]
                    node = raylet_of(pid, table, raylets)
                    if node:
                        placed.setdefault(run, node)
            time.sleep(0.2)
        print(f"sweep.py exited {driver.returncode}; runs placed: {placed}", flush=True)
        nodes = len(set(placed.values()))
        print(f"{len(placed)} runs on {nodes} of {len(raylets)} nodes", flush=True)
        return 0 if driver.returncode == 0 and nodes == 2 else 1
    finally:
        if not args.keep:
            stop_session(temp_dir)
            print(f"stopped the processes of {temp_dir}", flush=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
