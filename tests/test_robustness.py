"""Nothing lost, nothing silent: kill -9 and resume, a full disk, NaN, the run lock,
SIGTERM and Ctrl-C, torn metrics rows, a fresh start after a run that died early, MuJoCo warnings."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import garage_experiments
import run as run_script
from learning.core.sac import MultiTaskSAC
from learning.training.checkpoint import load_checkpoint, save_checkpoint
from learning.training.config import ConfigError, parse_command_line
from learning.training.logger import read_metrics
from learning.training.run_guard import (
    Terminated,
    TrainingDiverged,
    first_non_finite,
    install_termination_handler,
    write_atomically,
)

REPO = Path(__file__).resolve().parents[1]
EPOCHS = 5
FLAGS = {"env": "PointReach-v0", "wandb": "False", "n_epochs": str(EPOCHS), "batch_size": "60", "min_buffer_size": "60",
         "gradient_steps_per_itr": "40", "hidden_sizes": "16", "num_evaluation_episodes": "2"}


def command(**changes: str) -> list[str]:
    """The test run's command line with some flags changed (a flag may be given only once)."""
    return ["dnc_sac"] + [token for key, value in {**FLAGS, **changes}.items() for token in (f"--{key}", value)]


ARGV = command()
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def comparable(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if not k.startswith("Time/")} for row in rows]


def train(argv: list[str], log_dir: Path):
    config = parse_command_line([*argv, "--log_dir", str(log_dir)])
    garage_experiments.launch(config, announce=lambda message: None)
    return config


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> list[dict]:
    """The metrics of the uninterrupted run every interrupted run must reproduce."""
    config = train([*ARGV, "--name", "straight"], tmp_path_factory.mktemp("straight"))
    return comparable(read_metrics(config.run_dir))


def start(argv: list[str], log_dir: Path, cwd: Path | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(REPO / "run.py"), *argv, "--log_dir", str(log_dir)],
                            cwd=cwd or log_dir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=ENV)


def wait_for_rows(metrics: Path, count: int, process: subprocess.Popen, timeout: float = 120) -> bool:
    """Wait until the metrics file holds ``count`` rows; False if the process ended or time ran out first."""
    deadline = time.time() + timeout
    while time.time() < deadline and process.poll() is None:
        if metrics.exists() and len(read_metrics(metrics.parent)) >= count:
            return True
        time.sleep(0.02)
    return False


def resume_in_process(run_dir: Path) -> None:
    garage_experiments.launch(parse_command_line(["resume", "--snapshot_dir", str(run_dir)]), announce=lambda m: None)


# --------------------------------------------------------------------------------------------- kill -9
def test_kill_9_at_random_moments_then_resume_matches_an_uninterrupted_run(tmp_path, straight):
    """Three kill -9 at random moments (start-up, mid-epoch, mid-write); after each, continue the way
    run.py says (resume when a checkpoint exists, else the same command again)."""
    rng = random.Random(13)
    run_dir = tmp_path / "dnc_sac_PointReach-v0_killed_0"
    kills = clean_resumes = 0
    for attempt in range(3):
        resuming = (run_dir / "checkpoint.pt").exists()
        argv = ["resume", "--snapshot_dir", str(run_dir)] if resuming else [*ARGV, "--name", "killed",
                                                                            "--log_dir", str(tmp_path)]
        rows_before = len(read_metrics(run_dir)) if (run_dir / "metrics.jsonl").exists() else 0
        process = subprocess.Popen([sys.executable, str(REPO / "run.py"), *argv], cwd=tmp_path,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
        progressed = wait_for_rows(run_dir / "metrics.jsonl", rows_before + 1, process)
        if attempt > 0 and progressed:
            clean_resumes += 1  # the restart after a kill picked up and wrote a new epoch
        time.sleep(rng.uniform(0.0, 0.4))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        process.wait()
    resume_in_process(run_dir)
    rows = read_metrics(run_dir)
    clean_resumes += 1
    print(f"kill -9: {kills} kills, {clean_resumes} clean resumes")
    assert [row["epoch"] for row in rows] == list(range(EPOCHS))
    assert len((run_dir / "metrics.jsonl").read_text().splitlines()) == EPOCHS
    assert comparable(rows) == straight
    assert kills >= 2 and clean_resumes == kills


def test_a_torn_metrics_row_never_blocks_a_resume(tmp_path, straight):
    config = train(command(n_epochs="3", name="torn"), tmp_path)
    metrics = config.run_dir / "metrics.jsonl"
    with metrics.open("a") as handle:  # what a kill -9 or a full disk leaves: half a row of epoch 3
        handle.write('{"epoch": 3, "Train/AverageRet')
    assert [row["epoch"] for row in read_metrics(config.run_dir)] == [0, 1, 2]
    garage_experiments.launch(parse_command_line(["resume", "--snapshot_dir", str(config.run_dir), "--n_epochs", str(EPOCHS)]),
                              announce=lambda m: None)
    assert comparable(read_metrics(config.run_dir)) == straight
    assert len(metrics.read_text().splitlines()) == EPOCHS


def test_a_run_saved_before_a_flag_existed_resumes_when_the_flag_is_not_its_methods(tmp_path, straight):
    """A config.json written before a method-specific flag was added (here CTPG's block_gate_freq, absent
    from a dnc_sac run's file) resumes with the flag's default and continues exactly; a run of the method
    that takes the flag is refused in one line, since its training would depend on the missing value."""
    config = train(command(n_epochs="3", name="older"), tmp_path)
    saved = config.run_dir / "config.json"
    data = json.loads(saved.read_text())
    del data["block_gate_freq"]
    saved.write_text(json.dumps(data))
    garage_experiments.launch(parse_command_line(["resume", "--snapshot_dir", str(config.run_dir), "--n_epochs", str(EPOCHS)]),
                              announce=lambda m: None)
    assert comparable(read_metrics(config.run_dir)) == straight
    data["experiment"] = "ctpg_dnc"
    saved.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="lacks the keys block_gate_freq"):
        resume_in_process(config.run_dir)


def test_a_fresh_start_after_an_early_death_starts_a_fresh_metrics_file(tmp_path):
    config = parse_command_line([*command(n_epochs="2", name="early"), "--log_dir", str(tmp_path)])
    config.run_dir.mkdir(parents=True)
    (config.run_dir / "metrics.jsonl").write_text('{"epoch": 0, "stale": 1}\n{"epoch": 1, "stale": 1}\n{"epo')
    (config.run_dir / "checkpoint.pt.tmp").write_bytes(b"half a checkpoint")
    garage_experiments.launch(config, announce=lambda m: None)
    rows = read_metrics(config.run_dir)
    assert [row["epoch"] for row in rows] == [0, 1] and not any("stale" in row for row in rows)
    assert not (config.run_dir / "checkpoint.pt.tmp").exists()


# --------------------------------------------------------------------------------------------- disk full
@pytest.fixture
def small_disk(tmp_path):
    """A tmpfs of 8 MB mounted under tmp_path (needs root and mount; skipped otherwise)."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root and mount(8)")
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount_point)], capture_output=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.decode().strip()}")
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_disk_full_is_one_line_keeps_the_last_checkpoint_and_resume_continues_exactly(tmp_path, straight, small_disk):
    reference = train(command(n_epochs="1", name="size"), tmp_path / "size")
    first_checkpoint = (reference.run_dir / "checkpoint.pt").stat().st_size
    filler = small_disk / "filler"
    free = shutil.disk_usage(small_disk).free
    # Room for the first checkpoint and a few small files, not for a checkpoint and its successor.
    filler.write_bytes(b"\0" * (free - int(1.5 * first_checkpoint) - 16 * 1024))
    process = start([*ARGV, "--name", "full"], small_disk, cwd=tmp_path)
    _, stderr = process.communicate(timeout=180)
    run_dir = small_disk / "dnc_sac_PointReach-v0_full_0"
    assert process.returncode == 4, stderr
    assert len(stderr.splitlines()) == 1 and "Traceback" not in stderr
    assert "no space left on device" in stderr and str(run_dir / "checkpoint.pt") in stderr and "needs about" in stderr
    kept = load_checkpoint(run_dir / "checkpoint.pt")
    assert 1 <= kept["next_epoch"] < EPOCHS
    assert all(torch.isfinite(tensor).all() for tensor in kept["networks"].values())
    assert not (run_dir / "checkpoint.pt.tmp").exists()
    filler.unlink()
    resume_in_process(run_dir)
    assert comparable(read_metrics(run_dir)) == straight


# --------------------------------------------------------------------------------------------- NaN
def test_non_finite_values_are_named():
    stats = {"PolicyLoss": torch.tensor([0.5, 1.0]), "Qf1": torch.tensor([1.0, float("inf")]),
             "Qf2Loss": torch.tensor([0.1, float("nan")])}
    assert first_non_finite(stats, []) == "Qf2Loss is nan (task 1)"  # losses come before other statistics
    layer = torch.nn.Linear(2, 2)
    assert first_non_finite({"Qf1Loss": torch.tensor([0.1])}, layer.named_parameters()) is None
    with torch.no_grad():
        layer.bias[1] = float("-inf")
    assert first_non_finite({}, layer.named_parameters()) == "parameter bias is not finite"


def test_exploding_reward_scale_stops_with_one_line_and_exit_3(tmp_path, capsys):
    previous = signal.getsignal(signal.SIGTERM)
    try:
        code = run_script.main([*ARGV, "--reward_scale", "1e30", "--name", "nan", "--log_dir", str(tmp_path)])
    finally:
        signal.signal(signal.SIGTERM, previous)
    err = capsys.readouterr().err
    assert code == 3 and len(err.splitlines()) == 1
    assert "diverged in epoch 0" in err and "Qf1Loss is inf" in err and "no checkpoint was written" in err
    assert not (tmp_path / "dnc_sac_PointReach-v0_nan_0" / "checkpoint.pt").exists()


def test_nan_in_epoch_3_keeps_the_checkpoint_of_epoch_2(tmp_path, straight, monkeypatch):
    calls = {"n": 0}
    update = MultiTaskSAC.update

    def poisoned(self, batch, **options):  # a NaN weight in the 2nd gradient step of epoch 3 (40 steps per epoch)
        calls["n"] += 1
        if calls["n"] == 3 * 40 + 2:
            with torch.no_grad():
                next(self.policy.parameters()).view(-1)[0] = float("nan")
        return update(self, batch, **options)

    monkeypatch.setattr(MultiTaskSAC, "update", poisoned)
    config = parse_command_line([*ARGV, "--name", "poisoned", "--log_dir", str(tmp_path)])
    with pytest.raises(TrainingDiverged, match=r"epoch 3: .*Loss is nan .*checkpoint of epoch 2 is kept"):
        garage_experiments.launch(config, announce=lambda m: None)
    kept = load_checkpoint(config.run_dir / "checkpoint.pt")
    assert kept["next_epoch"] == 3
    assert all(torch.isfinite(tensor).all() for tensor in kept["networks"].values())
    assert [row["epoch"] for row in read_metrics(config.run_dir)] == [0, 1, 2]
    monkeypatch.setattr(MultiTaskSAC, "update", update)
    resume_in_process(config.run_dir)
    assert comparable(read_metrics(config.run_dir)) == straight


# --------------------------------------------------------------------------------------------- lock
def test_a_second_process_on_the_same_run_is_refused_and_a_dead_holder_is_not_in_the_way(tmp_path, straight):
    first = start(command(n_epochs="200", name="locked"), tmp_path)
    run_dir = tmp_path / "dnc_sac_PointReach-v0_locked_0"
    wait_for_rows(run_dir / "metrics.jsonl", 2, first)  # epoch 0's checkpoint is written before epoch 1's row
    for argv in ([*command(n_epochs="200", name="locked"), "--log_dir", str(tmp_path)],
                 ["resume", "--snapshot_dir", str(run_dir)]):
        with pytest.raises(ConfigError, match=f"in use by pid {first.pid} on host "):
            garage_experiments.launch(parse_command_line(argv), announce=lambda m: None)
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert f"pid {first.pid}" in (run_dir / "run.lock").read_text()  # left behind by the dead process
    garage_experiments.launch(parse_command_line(["resume", "--snapshot_dir", str(run_dir), "--n_epochs",
                                                  str(len(read_metrics(run_dir)) + 1)]), announce=lambda m: None)
    assert f"pid {os.getpid()}" in (run_dir / "run.lock").read_text()


# --------------------------------------------------------------------------------------------- signals
def test_sigterm_mid_run_is_one_line_exit_143_and_resume_matches(tmp_path, straight):
    process = start([*ARGV, "--name", "term"], tmp_path)
    run_dir = tmp_path / "dnc_sac_PointReach-v0_term_0"
    wait_for_rows(run_dir / "metrics.jsonl", 2, process)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, stderr
    assert len(stderr.splitlines()) == 1 and "terminated (SIGTERM)" in stderr and "resume --snapshot_dir" in stderr
    assert not (run_dir / "checkpoint.pt.tmp").exists()
    lost = len(read_metrics(run_dir)) - load_checkpoint(run_dir / "checkpoint.pt")["next_epoch"]
    assert lost in (0, 1)  # at most the epoch in progress
    resume_in_process(run_dir)
    assert comparable(read_metrics(run_dir)) == straight


@pytest.mark.parametrize("sent, code, words", [(signal.SIGINT, 130, "interrupted (Ctrl-C)"),
                                               (signal.SIGTERM, 143, "terminated (SIGTERM)")])
def test_a_signal_during_start_up_is_one_line(tmp_path, sent, code, words):
    process = start([*ARGV, "--name", "early"], tmp_path)
    time.sleep(0.8)  # inside the imports of torch and MuJoCo
    process.send_signal(sent)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == code, stderr
    assert len(stderr.splitlines()) == 1 and words in stderr and "Traceback" not in stderr


def test_an_atomic_write_that_fails_midway_leaves_the_previous_file_and_no_temporary(tmp_path):
    path = tmp_path / "table.md"
    write_atomically(path, lambda handle: handle.write(b"old table"))

    def half_then_fail(handle):
        handle.write(b"half of a new")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        write_atomically(path, half_then_fail)
    assert path.read_bytes() == b"old table" and sorted(p.name for p in tmp_path.iterdir()) == ["table.md"]


# --------------------------------------------------------------------------------------------- MuJoCo warnings
def test_mujoco_warnings_go_to_the_run_directory_not_the_current_one(tmp_path, monkeypatch):
    import mujoco

    from learning.training.run_guard import route_mujoco_warnings

    monkeypatch.chdir(tmp_path)
    route_mujoco_warnings(tmp_path / "run" / "mujoco_warnings.log")
    (tmp_path / "run").mkdir()
    model = mujoco.MjModel.from_xml_string('<mujoco><worldbody><body><joint type="slide"/><geom size=".1"/>'
                                           '</body></worldbody></mujoco>')
    data = mujoco.MjData(model)
    data.qpos[0] = float("nan")
    mujoco.mj_step(model, data)
    assert "Nan, Inf or huge value in QPOS" in (tmp_path / "run" / "mujoco_warnings.log").read_text()
    assert not (tmp_path / "MUJOCO_LOG.TXT").exists()


class SendsSigterm:
    """Pickled inside torch.save: sends this process SIGTERM in the middle of writing a checkpoint."""

    def __reduce__(self):
        os.kill(os.getpid(), signal.SIGTERM)
        return (dict, ())


def test_sigterm_while_a_checkpoint_is_written_ends_the_run_after_the_write(tmp_path):
    """The signal is held until the checkpoint is whole, then ends the run as a termination (exit 143),
    not as a failed write (exit 4, what the C++ writer made of an exception raised inside it)."""
    previous = signal.getsignal(signal.SIGTERM)
    install_termination_handler()
    try:
        with pytest.raises(Terminated):
            save_checkpoint(tmp_path / "checkpoint.pt", {"weights": torch.arange(3), "late": SendsSigterm()})
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert torch.equal(load_checkpoint(tmp_path / "checkpoint.pt")["weights"], torch.arange(3))
