"""End to end: short runs of every experiment, determinism, resume, kill-and-resume, W&B offline."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import garage_experiments
from learning.training.config import parse_command_line
from learning.training.logger import read_metrics

REPO = Path(__file__).resolve().parents[1]

TINY = ["--wandb", "False", "--n_epochs", "2", "--batch_size", "100", "--min_buffer_size", "20",
        "--gradient_steps_per_itr", "20", "--buffer_batch_size", "16", "--hidden_sizes", "16", "16",
        "--num_evaluation_episodes", "10"]
MULTIHEAD = ["--policy_architecture", "multihead", "--Q_architecture", "multihead"]
SHARED = ["--policy_architecture", "shared", "--Q_architecture", "shared"]


def run(argv: list[str], log_dir: Path):
    config = parse_command_line([*argv, "--log_dir", str(log_dir)])
    trainer, last = garage_experiments.launch(config, announce=lambda message: None)
    return config, trainer, last


def comparable(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if not k.startswith("Time/")} for row in rows]


@pytest.mark.parametrize("experiment, extra", [
    ("dnc_sac", []), ("qmp_dnc", []), ("mtsac", MULTIHEAD), ("qmp_sac", MULTIHEAD), ("sac", SHARED),
])
def test_each_experiment_runs_on_maze(tmp_path, experiment, extra):
    config, trainer, last = run([experiment, "--env=MazeLarge-10-v0", *TINY, *extra], tmp_path)
    rows = read_metrics(config.run_dir)
    assert [row["epoch"] for row in rows] == [0, 1]
    assert (config.run_dir / "checkpoint.pt").exists() and (config.run_dir / "config.json").exists()
    assert rows[-1]["Evaluation/NumEpisodes"] == 10 and rows[-1]["Evaluation/Task9/NumEpisodes"] == 1
    steps_per_task = 20 if config.per_task_buffers else 2  # warm-up: min_buffer_size per task / in total
    assert rows[0]["Train/TotalEnvSteps"] == 10 * steps_per_task
    assert rows[1]["Train/TotalEnvSteps"] == 10 * steps_per_task + 100
    assert 0.0 <= last["Evaluation/SuccessRate"] <= 1.0
    if experiment.startswith("qmp"):
        assert "Evaluation/p/SuccessRate" in last
        counts = rows[1]["Train/ActingPolicyCounts"]
        assert len(counts) == 10 and all(sum(row) == 10 for row in counts)  # 10 steps per task per iteration
        assert rows[1]["Train/LocalPolicy3/MixtureProbs"] == pytest.approx(counts[3][3] / 10)
        assert not any(key.endswith("Prob") for key in rows[1])  # the matrix replaces T*T share scalars
    else:
        assert "Evaluation/p/SuccessRate" not in last


def test_same_seed_gives_identical_metrics(tmp_path):
    argv = ["qmp_dnc", "--env=MazeLarge-10-v0", *TINY, "--task_name", "0,4,8", "--n_policies", "3"]
    first, _, _ = run([*argv, "--name", "a"], tmp_path)
    second, _, _ = run([*argv, "--name", "b"], tmp_path)
    other_seed, _, _ = run([*argv, "--name", "c", "--seed", "1"], tmp_path)
    assert comparable(read_metrics(first.run_dir)) == comparable(read_metrics(second.run_dir))
    assert comparable(read_metrics(first.run_dir)) != comparable(read_metrics(other_seed.run_dir))


def test_resume_continues_exactly(tmp_path):
    argv = ["qmp_dnc", "--env=MazeLarge-10-v0", *TINY, "--task_name", "1,2", "--n_policies", "2",
            "--batch_size", "700",  # episodes are cut mid-way by iterations: env state must be restored
            "--policy_sampling_freq", "3"]  # 350 steps per iteration: a held choice is cut mid-way too
    straight, _, _ = run([*argv, "--n_epochs", "3", "--name", "straight"], tmp_path)
    stopped, _, _ = run([*argv, "--n_epochs", "2", "--name", "stopped"], tmp_path)
    resumed = parse_command_line(["resume", "--snapshot_dir", str(stopped.run_dir), "--n_epochs", "3"])
    garage_experiments.launch(resumed, announce=lambda message: None)
    assert comparable(read_metrics(stopped.run_dir)) == comparable(read_metrics(straight.run_dir))


def test_resume_moves_a_run_to_another_device_and_keeps_the_rest(tmp_path):
    """A run recorded on GPU 0 (its config and checkpoint say so) continues on the CPU with --gpu cpu,
    exactly as it would have without the move; without --gpu it asks for its recorded device."""
    import torch

    from learning.training.config import Config, ConfigError

    argv = ["qmp_dnc", "--env=MazeLarge-10-v0", *TINY, "--task_name", "1,2", "--n_policies", "2"]
    straight, _, _ = run([*argv, "--n_epochs", "3", "--name", "straight"], tmp_path)
    stopped, _, _ = run([*argv, "--n_epochs", "2", "--name", "stopped"], tmp_path)
    checkpoint = torch.load(stopped.run_dir / "checkpoint.pt", weights_only=False)
    torch.save({**checkpoint, "config": {**checkpoint["config"], "gpu": 0}}, stopped.run_dir / "checkpoint.pt")
    Config.from_dict({**stopped.to_dict(), "gpu": 0}).save(stopped.run_dir / "config.json")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="--gpu 0 was given but no CUDA device is available"):
            garage_experiments.launch(parse_command_line(["resume", "--snapshot_dir", str(stopped.run_dir)]))
    resumed = parse_command_line(["resume", "--snapshot_dir", str(stopped.run_dir), "--n_epochs", "3", "--gpu", "cpu"])
    trainer, _ = garage_experiments.launch(resumed, announce=lambda message: None)
    assert trainer.parts.device == torch.device("cpu")
    assert comparable(read_metrics(stopped.run_dir)) == comparable(read_metrics(straight.run_dir))
    moved = Config.load(stopped.run_dir / "config.json")
    assert moved.gpu is None and moved == Config.from_dict({**stopped.to_dict(), "n_epochs": 3})


def test_resume_rejects_a_checkpoint_of_another_run(tmp_path):
    first, _, _ = run(["dnc_sac", "--env=PointReach-v0", *TINY, "--name", "a"], tmp_path)
    second, _, _ = run(["dnc_sac", "--env=PointReach-v0", *TINY, "--name", "b", "--hidden_sizes", "8"], tmp_path)
    (first.run_dir / "checkpoint.pt").replace(second.run_dir / "checkpoint.pt")
    from learning.training.config import ConfigError

    with pytest.raises(ConfigError, match="does not belong"):
        garage_experiments.launch(parse_command_line(["resume", "--snapshot_dir", str(second.run_dir)]))


def test_existing_run_directory_is_not_overwritten(tmp_path):
    run(["dnc_sac", "--env=PointReach-v0", *TINY], tmp_path)
    from learning.training.config import ConfigError

    with pytest.raises(ConfigError, match="already holds a run"):
        run(["dnc_sac", "--env=PointReach-v0", *TINY], tmp_path)


def test_killed_run_resumes_to_the_same_result(tmp_path):
    argv = ["dnc_sac", "--env=PointReach-v0", "--wandb", "False", "--n_epochs", "8", "--batch_size", "60",
            "--min_buffer_size", "60", "--gradient_steps_per_itr", "150", "--hidden_sizes", "32", "32",
            "--num_evaluation_episodes", "2"]
    straight, _, _ = run([*argv, "--name", "straight"], tmp_path)
    command = [sys.executable, str(REPO / "run.py"), *argv, "--name", "killed", "--log_dir", str(tmp_path)]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    metrics = tmp_path / "dnc_sac_PointReach-v0_killed_0" / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and (not metrics.exists() or len(metrics.read_text().splitlines()) < 3):
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    finished = len(metrics.read_text().splitlines())
    assert 3 <= finished < 8, "the run should have been killed part-way"
    resumed = subprocess.run([sys.executable, str(REPO / "run.py"), "resume", "--snapshot_dir", str(metrics.parent)],
                             cwd=REPO, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert comparable(read_metrics(metrics.parent)) == comparable(read_metrics(straight.run_dir))


def test_wandb_runs_offline_without_credentials(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb_config"))
    monkeypatch.setenv("NETRC", str(tmp_path / "no_netrc"))
    argv = ["dnc_sac", "--env=PointReach-v0", *TINY, "--wandb", "True", "--n_epochs", "1"]
    config, trainer, _ = run(argv, tmp_path)
    assert trainer.logger.mode == "offline"
    offline_runs = list((config.run_dir / "wandb").glob("offline-run-*"))
    assert len(offline_runs) == 1
    run_id = (config.run_dir / "wandb_run_id.txt").read_text()
    assert offline_runs[0].name.endswith(run_id)
    assert json.loads((config.run_dir / "config.json").read_text())["wandb"] is True


def test_training_videos_are_written_and_do_not_change_learning(tmp_path):
    argv = ["qmp_dnc", "--env=MazeLarge-10-v0", *TINY, "--task_name", "0,1", "--n_policies", "2",
            "--batch_size", "40", "--num_evaluation_episodes", "2", "--n_epochs", "1"]
    with_videos, _, _ = run([*argv, "--name", "videos", "--vis_freq", "1", "--vis_num", "2", "--vis_width", "64",
                             "--vis_height", "48"], tmp_path)
    without, _, _ = run([*argv, "--name", "plain"], tmp_path)
    rows = read_metrics(with_videos.run_dir)
    for row in rows:
        for task in (0, 1):
            video = with_videos.run_dir / row[f"Evaluation/Task{task}/Video"]
            assert video.suffix == ".mp4" and video.stat().st_size > 0
    stripped = [{k: v for k, v in row.items() if not k.endswith("/Video")} for row in rows]
    assert comparable(stripped) == comparable(read_metrics(without.run_dir))
