"""Races, closed pipes and killed drivers, with real processes: two run.py on one run directory, two
resumes of one run, two sweep drivers on one sweep folder, ``run.py ... | head``, a sweep driver killed
with SIGKILL, runs left behind by a killed driver, and sweeps that cannot run anywhere."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import garage_experiments
from learning.sweeps.grid import expand, grid_from_dict
from learning.sweeps.runner import Reporter, SweepOptions, run_sweep
from learning.training.config import ConfigError, parse_command_line

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
FLAGS = ["--env=PointReach-v0", "--wandb", "False", "--batch_size", "40", "--min_buffer_size", "40",
         "--gradient_steps_per_itr", "10", "--hidden_sizes", "8", "--num_evaluation_episodes", "1"]
TINY = {"wandb": False, "batch_size": 20, "gradient_steps_per_itr": 5, "min_buffer_size": 20,
        "num_evaluation_episodes": 1, "hidden_sizes": [8]}
WAIT = 300
"""Seconds any process of these tests may take (the machine may be shared)."""


def run_py(argv: list[str], cwd: Path, **options) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(REPO / "run.py"), *argv], cwd=cwd, env=ENV, text=True,
                            stdout=options.pop("stdout", subprocess.DEVNULL), stderr=subprocess.PIPE, **options)


def epochs_of(run_dir: Path) -> list[int]:
    """The epoch of every line of metrics.jsonl, in file order (a repeated or lost epoch shows)."""
    return [json.loads(line)["epoch"] for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line]


def alive(pid: int) -> bool:
    """Does ``pid`` run (not a zombie)?"""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def descendants(root: int) -> set[int]:
    """Every process below ``root`` now (from /proc)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError):
                continue
    found, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


# --------------------------------------------------------------------------------------------- one run directory
def test_two_starts_with_one_name_exactly_one_trains_and_its_files_are_intact(tmp_path):
    """Two run.py with the same --name (different --lr) at the same moment: one exits 0, the other 2 with
    one line; the run directory holds the winner's configuration and each of its epochs once."""
    lrs = ("0.001", "0.002")
    processes = [run_py(["dnc_sac", *FLAGS, "--n_epochs", "4", "--name", "race", "--lr", lr, "--log_dir", str(tmp_path)],
                        tmp_path) for lr in lrs]
    results = [(process.wait(timeout=WAIT), process.stderr.read()) for process in processes]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    winner = lrs[[code for code, _ in results].index(0)]
    loser_error = next(error for code, error in results if code == 2)
    assert len(loser_error.splitlines()) == 1 and ("in use by pid" in loser_error or "already holds a run" in loser_error)
    run_dir = tmp_path / "dnc_sac_PointReach-v0_race_0"
    assert json.loads((run_dir / "config.json").read_text())["lr"] == float(winner)
    assert epochs_of(run_dir) == [0, 1, 2, 3]


def test_a_start_that_checked_before_another_run_finished_does_not_overwrite_it(tmp_path):
    """The check-then-claim race made deterministic: while this start builds its run (after its first
    checks), a whole run of the same name trains and ends in a real process. The start must then refuse
    (its checks and its claim of the directory are one step), and the other run's files stay as they were."""
    argv = ["dnc_sac", *FLAGS, "--n_epochs", "2", "--name", "late", "--log_dir", str(tmp_path)]
    run_dir = tmp_path / "dnc_sac_PointReach-v0_late_0"
    finished = {}

    def announce(message: str) -> None:
        if message.startswith("building networks"):  # this start has checked the directory: still empty
            other = run_py([*argv, "--lr", "0.002"], tmp_path)
            finished["code"] = other.wait(timeout=WAIT)
            finished["metrics"] = (run_dir / "metrics.jsonl").read_bytes()

    with pytest.raises(ConfigError, match="already holds a run"):
        garage_experiments.launch(parse_command_line(argv), announce=announce)
    assert finished["code"] == 0
    assert (run_dir / "metrics.jsonl").read_bytes() == finished["metrics"]
    assert json.loads((run_dir / "config.json").read_text())["lr"] == 0.002


def test_two_resumes_of_one_run_never_train_an_epoch_twice(tmp_path):
    first = run_py(["dnc_sac", *FLAGS, "--n_epochs", "2", "--name", "twice", "--log_dir", str(tmp_path)], tmp_path)
    assert first.wait(timeout=WAIT) == 0
    run_dir = tmp_path / "dnc_sac_PointReach-v0_twice_0"
    resumes = [run_py(["resume", "--snapshot_dir", str(run_dir), "--n_epochs", "6"], tmp_path) for _ in range(2)]
    results = [(process.wait(timeout=WAIT), process.stderr.read()) for process in resumes]
    codes = [code for code, _ in results]
    assert 0 in codes and set(codes) <= {0, 2}, results
    for code, error in results:
        if code == 2:
            assert len(error.splitlines()) == 1 and "in use by pid" in error
    assert epochs_of(run_dir) == list(range(6))
    assert json.loads((run_dir / "config.json").read_text())["n_epochs"] == 6


def test_progress_into_a_closed_pipe_does_not_stop_training(tmp_path):
    """``python run.py ... | head -1``: the reader leaves after one line; the run still trains every epoch."""
    process = run_py(["dnc_sac", *FLAGS, "--n_epochs", "4", "--name", "piped", "--log_dir", str(tmp_path)], tmp_path,
                     stdout=subprocess.PIPE)
    assert process.stdout.readline().startswith("run directory:")
    process.stdout.close()
    assert process.wait(timeout=WAIT) == 0, process.stderr.read()
    assert "Traceback" not in process.stderr.read()
    assert epochs_of(tmp_path / "dnc_sac_PointReach-v0_piped_0") == [0, 1, 2, 3]


# --------------------------------------------------------------------------------------------- sweeps
@pytest.fixture(scope="module")
def ray_instance():
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def grid_file(folder: Path, epochs: int, labels: tuple[str, ...] = ("a",)) -> Path:
    path = folder / "grid.yaml"
    path.write_text(json.dumps({"name": "race", "envs": ["PointReach-v0"], "seeds": [1], "n_epochs": epochs,
                                "overrides": TINY,
                                "experiments": [{"label": label, "experiment": "dnc_sac"} for label in labels]}))
    return path


def sweep_py(argv: list[str], **options) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(REPO / "sweep.py"), *argv], cwd=REPO, env=ENV, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **options)


def test_a_second_driver_for_a_run_is_refused_and_drivers_of_other_runs_share_the_folder(ray_instance, tmp_path):
    grid, sweep_dir = grid_file(tmp_path, 3, ("a", "b")), tmp_path / "sweep"
    argv = [str(grid), "--sweep_dir", str(sweep_dir), "--address", ray_instance]
    first = sweep_py(argv)
    deadline = time.time() + WAIT
    while time.time() < deadline and not (sweep_dir / "logs").is_dir():  # the first driver has claimed its runs
        time.sleep(0.2)
    second = sweep_py([*argv, "--methods", "b"])  # one of the first driver's runs
    _, second_error = second.communicate(timeout=WAIT)
    assert second.returncode == 2 and len(second_error.splitlines()) == 1, second_error
    assert f"dnc_sac_PointReach-v0_b_1 of {sweep_dir} is in use by another sweep driver (pid {first.pid}" in second_error
    other_seed = sweep_py([*argv, "--seeds", "2"])  # other runs of the grid share the folder (docs/reproducing.md)
    output, error = first.communicate(timeout=WAIT)
    assert first.returncode == 0, output + error
    output, error = other_seed.communicate(timeout=WAIT)
    assert other_seed.returncode == 0, output + error
    for log in (sweep_dir / "logs").iterdir():  # one attempt each, written by its own driver's run only
        assert sum(line.startswith("$ ") for line in log.read_text().splitlines()) == 1
    for run in ("a_1", "b_1", "a_2", "b_2"):
        assert epochs_of(sweep_dir / "runs" / f"dnc_sac_PointReach-v0_{run}") == [0, 1, 2]
    assert len(json.loads((sweep_dir / "sweep.json").read_text())["runs"]) == 4


def test_a_driver_killed_with_sigkill_takes_its_ray_and_runs_with_it(tmp_path):
    """The driver starts Ray on this machine; SIGKILL gives it no chance to clean up. Within a few
    seconds no process it started (Ray's GCS, raylet, agents, workers, run.py) may run."""
    grid, sweep_dir = grid_file(tmp_path, 400), tmp_path / "sweep"
    driver = sweep_py([str(grid), "--sweep_dir", str(sweep_dir), "--cpus_per_run", "1"], start_new_session=True)
    checkpoint = sweep_dir / "runs" / "dnc_sac_PointReach-v0_a_1" / "checkpoint.pt"
    deadline = time.time() + WAIT
    while time.time() < deadline and not checkpoint.exists():
        time.sleep(0.2)
    assert checkpoint.exists(), driver.communicate(timeout=60)
    started = descendants(driver.pid)
    assert any("run.py" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
               for pid in started if alive(pid))
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    deadline = time.time() + 15
    while time.time() < deadline and any(alive(pid) for pid in started):
        time.sleep(0.2)
    survivors = [pid for pid in started if alive(pid)]
    for pid in survivors:  # leave nothing behind, whatever the outcome
        os.kill(pid, signal.SIGKILL)
    assert survivors == []


def test_the_next_driver_stops_a_run_left_behind_and_continues_it(ray_instance, tmp_path):
    """A run.py of the sweep still running with no driver (what a driver killed on a machine without the
    watcher would leave): the next driver stops it, then resumes the run to its end, each epoch once."""
    sweep_dir = tmp_path / "sweep"
    runs = expand(grid_from_dict({"name": "left", "envs": ["PointReach-v0"], "seeds": [1], "n_epochs": 30,
                                  "overrides": TINY, "experiments": [{"label": "a", "experiment": "dnc_sac"}]}, "left"))
    [run] = runs
    command = [sys.executable if part == "python" else part for part in run.start_command(sweep_dir)]
    orphan = subprocess.Popen(command, cwd=REPO, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + WAIT
    while time.time() < deadline and not (run.run_dir(sweep_dir) / "checkpoint.pt").exists():
        time.sleep(0.2)
    with (tmp_path / "events.txt").open("w") as stream:
        result = run_sweep(runs, sweep_dir, SweepOptions(poll_seconds=0.5), Reporter(live=False, stream=stream))
    assert orphan.poll() == 143  # stopped with SIGTERM: it unwound and kept its last checkpoint
    assert [(item.state, item.action) for item in result.progress] == [("finished", "resume")]
    assert epochs_of(run.run_dir(sweep_dir)) == list(range(30))
    assert f"stopping pid {orphan.pid}" in (tmp_path / "events.txt").read_text()


def test_no_cluster_at_the_address_is_one_line_within_seconds(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = subprocess.run([sys.executable, str(REPO / "sweep.py"), str(grid_file(tmp_path, 1)), "--sweep_dir",
                             str(tmp_path / "sweep"), "--address", f"127.0.0.1:{port}"], cwd=REPO, env=ENV,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1, result.stderr
    assert f"no Ray cluster answers at 127.0.0.1:{port}" in result.stderr
    assert not (tmp_path / "sweep").exists()


@pytest.mark.parametrize("resources", [["--cpus_per_run", "64"], ["--gpus_per_run", "1"]])
def test_a_run_no_node_can_hold_is_one_line(ray_instance, tmp_path, resources):
    result = subprocess.run([sys.executable, str(REPO / "sweep.py"), str(grid_file(tmp_path, 1)), "--sweep_dir",
                             str(tmp_path / "sweep"), "--address", ray_instance, *resources], cwd=REPO, env=ENV,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1, result.stderr
    assert "no node of the Ray cluster" in result.stderr and "(the largest: 2 CPUs, 0 GPUs)" in result.stderr
    assert not (tmp_path / "sweep").exists()
