"""The command lines explain themselves: run.py's overview and grouped help, --print_config, a
required --env, run_policy.py's flags, the terminal's lines, and the W&B records of an offline run."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

import run
from environments import ENV_SUMMARIES, available_env_ids
from learning.experiment_table import EXPERIMENT_TABLE
from learning.training.config import ENV_PRESETS, FLAG_BY_NAME, FLAG_GROUPS, Config, parse_command_line
from learning.training.logger import wandb_init_kwargs

REPO = Path(__file__).resolve().parents[1]


def run_script(*argv: str, env: dict[str, str] | None = None, timeout: int = 120) -> subprocess.CompletedProcess:
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([sys.executable, *argv], capture_output=True, text=True, cwd=REPO, env=environment,
                          timeout=timeout)


# ------------------------------------------------------------------------------------ run.py --help
def test_overview_lists_experiments_with_paper_names_and_envs_with_tasks_and_episode_length(capsys):
    assert run.main(["--help"]) == 0
    lines = capsys.readouterr().out.splitlines()
    for experiment, row in EXPERIMENT_TABLE.items():
        paper_name = row.paper_name
        assert any(line.split()[:1] == [experiment] and paper_name in line for line in lines), experiment
    for env_id in available_env_ids():
        tasks, episode, _ = ENV_SUMMARIES[env_id]
        assert any(line.split()[:3] == [env_id, str(tasks), str(episode)] for line in lines), env_id
    assert any("--env ID --help" in line for line in lines)


def test_env_summaries_agree_with_presets_and_environment_modules():
    from environments import jaco, kitchen, maze, point_reach, walker

    assert list(ENV_SUMMARIES) == available_env_ids()
    for env_id, (tasks, _, _) in ENV_SUMMARIES.items():
        assert ENV_PRESETS[env_id]["n_policies"] == tasks, env_id
    lengths = {"PointReach-v0": point_reach.EPISODE_STEPS, "MazeLarge-10-v0": maze.MAX_EPISODE_STEPS,
               "JacoReachMT5-v1": jaco.MAX_EPISODE_STEPS, "Walker2dMT4-v0": walker.MAX_EPISODE_STEPS,
               "KitchenMTEasy-v0": kitchen.MAX_EPISODE_STEPS}
    assert {env_id: ENV_SUMMARIES[env_id][1] for env_id in lengths} == lengths


def test_every_flag_has_a_help_section():
    grouped = [name for names in FLAG_GROUPS.values() for name in names]
    assert sorted(grouped) == sorted(FLAG_BY_NAME)  # a new flag needs a line in FLAG_GROUPS


def experiment_help(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        parse_command_line([*argv, "--help"], require_env=True)
    assert exit_info.value.code == 0
    return capsys.readouterr().out


def test_experiment_help_is_grouped_with_types_and_preset_defaults(capsys):
    text = experiment_help(capsys, "qmp_sac", "--env", "PointReach-v0")
    sections = [line[:-1] for line in text.splitlines() if line.endswith(":") and not line.startswith(" ")]
    assert sections == ["options", "run", "budget", "SAC", "networks", "environment", "evaluation and logging",
                        "videos", "QMP", "PCGrad"]
    flat = " ".join(text.split())
    assert "--n_epochs INT number of epochs [default: 40, PointReach-v0 preset]" in flat
    assert "--discount FLOAT discount factor [default: 0.99]" in flat  # base default, no preset mark
    assert "--layer_norm [{True,False}]" in flat and "--print_config, --dry_run" in flat
    assert "--task_name" not in flat  # a Maze/Meta-World/Kitchen flag, not PointReach's
    dnc = " ".join(experiment_help(capsys, "dnc_sac", "--env", "MazeLarge-10-v0").split())
    assert "DnC: --kl_coeff FLOAT [FLOAT ...]" in dnc and "QMP:" not in dnc
    assert "[default: 2000, MazeLarge-10-v0 preset]" in dnc


def test_experiment_help_without_env_shows_base_defaults(capsys):
    text = " ".join(experiment_help(capsys, "uds_dnc").split())
    assert "add --env ID" in text and "data sharing: --sharing_quantile FLOAT" in text
    assert "--n_epochs INT number of epochs [default: 1000]" in text


def test_env_is_required_except_for_resume(capsys):
    with pytest.raises(SystemExit) as exit_info:
        run.main(["qmp_dnc", "--seed", "1"])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "--env is required" in error
    assert all(env_id in error for env_id in available_env_ids())
    assert parse_command_line(["resume", "--snapshot_dir", str(REPO)], require_env=True).experiment == "resume"


def test_print_config_prints_the_resolved_config_and_creates_nothing(tmp_path, capsys):
    log_dir = tmp_path / "runs"
    assert run.main(["qmp_dnc", "--env", "MazeLarge-10-v0", "--seed", "4", "--lr", "0.01", "--log_dir", str(log_dir),
                     "--dry_run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == f"run directory: {log_dir / 'qmp_dnc_MazeLarge-10-v0_None_4'} (does not exist yet)"
    rows = {line.split()[0]: line.split() for line in lines[:-1]}
    assert rows["lr"][1:] == ["0.01", "(flag)"]
    assert rows["batch_size"][1:] == ["6000", "(MazeLarge-10-v0", "preset)"]
    assert rows["discount"][1:] == ["0.99", "(default)"]
    assert not log_dir.exists() and not (REPO / "wandb").exists()


# ------------------------------------------------------------------------------------ run_policy.py
def test_run_policy_flags_all_have_help_and_one_boolean_convention():
    import run_policy

    parser = run_policy.build_parser()
    actions = [action for action in parser._actions if action.option_strings and action.dest != "help"]
    assert all(action.help for action in actions)
    for argv, expected in ((["--stochastic"], True), (["--stochastic", "False"], False), (["--stochastic", "True"], True),
                           (["--save_video"], True), (["--save_video", "false"], False), ([], False)):
        args = parser.parse_args(["--snapshot_dir", "x", *argv])
        assert (args.stochastic if "--stochastic" in argv or not argv else args.save_video) is expected


# ------------------------------------------------------------------------------------ terminal and W&B
def test_final_table_says_no_finished_episode(capsys):
    run.print_final_table(("a", "b"), {"Train/LocalPolicy0/AverageReturn": -3.0, "Train/LocalPolicy0/SuccessRate": 1.0},
                          {"Evaluation/AverageReturn": -2.0})
    lines = capsys.readouterr().out.splitlines()
    assert "nan" not in " ".join(lines)
    assert "-3.00" in lines[1] and "no finished episode" in lines[2] and "no finished episode" in lines[3]


def test_zero_column_terminal_gets_line_output(monkeypatch):
    from learning.training import logger

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    for columns, lines in ((0, 0), (120, 0)):  # under `script`; tqdm draws nothing with 0 lines either
        monkeypatch.setattr(logger.os, "get_terminal_size",
                            lambda fd, size=(columns, lines): os.terminal_size(size))
        assert logger.is_terminal() is False
    monkeypatch.setattr(logger.os, "get_terminal_size", lambda fd: os.terminal_size((80, 24)))
    assert logger.is_terminal() is True


def test_wandb_settings_flag_then_environment_then_default(monkeypatch, tmp_path):
    config = Config(experiment="qmp_dnc", env="PointReach-v0", wandb_project="typed", explicit_flags=("wandb_project",))
    monkeypatch.setenv("WANDB_PROJECT", "from-env")
    monkeypatch.setenv("WANDB_ENTITY", "team")
    monkeypatch.delenv("WANDB_RUN_GROUP", raising=False)
    monkeypatch.delenv("WANDB_TAGS", raising=False)
    monkeypatch.delenv("WANDB_DIR", raising=False)
    kwargs = wandb_init_kwargs(config, tmp_path, "abc", "offline")
    assert (kwargs["project"], kwargs["entity"], kwargs["dir"]) == ("typed", "team", str(tmp_path))
    assert kwargs["group"] == "qmp_dnc_PointReach-v0" and kwargs["tags"] == ["qmp_dnc", "PointReach-v0"]
    untyped = Config(experiment="qmp_dnc", env="PointReach-v0")
    assert wandb_init_kwargs(untyped, tmp_path, "abc", "offline")["project"] == "from-env"


def wandb_records(path: Path):
    """The protobuf records of a ``.wandb`` file (W&B's LevelDB-style log: 7-byte header, 32 KiB blocks,
    each record a 7-byte header of checksum, length and type: full, first, middle or last)."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    position, block, pending = 7, 32768, b""
    while position + 7 <= len(data):
        if block - position % block < 7:
            position += block - position % block
            continue
        _, length, kind = struct.unpack("<IHB", data[position:position + 7])
        chunk, position = data[position + 7:position + 7 + length], position + 7 + length
        if kind in (1, 2):
            pending = chunk
        elif kind in (3, 4):
            pending += chunk
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            yield record


TINY_POINT_REACH = ["--n_epochs", "2", "--batch_size", "40", "--min_buffer_size", "20", "--gradient_steps_per_itr",
                    "4", "--hidden_sizes", "8", "--num_evaluation_episodes", "1"]


def test_offline_wandb_run_records_and_terminal_lines(tmp_path, monkeypatch):
    import garage_experiments

    wandb_dir, log_dir = tmp_path / "wandb_files", tmp_path / "runs"
    env = {"WANDB_MODE": "offline", "WANDB_DIR": str(wandb_dir), "WANDB_RUN_GROUP": "sweep-7",
           "WANDB_TAGS": "recipe-a,grid"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    first = run_script("run.py", "qmp_dnc", "--env", "PointReach-v0", *TINY_POINT_REACH, "--log_dir", str(log_dir),
                       env=env)
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    run_dir = log_dir / "qmp_dnc_PointReach-v0_None_0"
    assert lines[:2] == [f"run directory: {run_dir}", "building environments (PointReach-v0)"]
    assert any(line.startswith("warm-up collection: 20 steps per task") for line in lines)
    epoch_lines = [line for line in lines if line.startswith("epoch ")]
    assert len(epoch_lines) == 2 and all("steps/s" in line and "ETA" in line for line in epoch_lines)

    garage_experiments.launch(parse_command_line(["resume", "--snapshot_dir", str(run_dir), "--n_epochs", "3"]),
                              announce=lambda _: None)
    run_id = (run_dir / "wandb_run_id.txt").read_text().strip()
    offline = sorted((wandb_dir / "wandb").glob("offline-run-*"))
    assert len(offline) == 2 and all(path.name.endswith(run_id) for path in offline)  # one W&B run, two segments

    records = [record for record in wandb_records(next(offline[0].glob("*.wandb")))]
    (run_record,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert run_record.run_group == "sweep-7" and list(run_record.tags) == ["qmp_dnc", "PointReach-v0", "recipe-a", "grid"]
    metrics = {(r.metric.name or r.metric.glob_name): r.metric.step_metric for r in records
               if r.WhichOneof("record_type") == "metric"}
    assert metrics["*"] == "Train/TotalEnvSteps" and "epoch" in metrics
    history = [{item.key or "/".join(item.nested_key) for item in r.history.item} for r in records
               if r.WhichOneof("record_type") == "history"]
    assert len(history) == 2
    for keys in history:
        assert {"epoch", "Train/TotalEnvSteps", "Train/LocalPolicy0/MixtureProbs"} <= keys
        assert any(key.startswith("Train/ActingPolicyCounts/Heatmap/") for key in keys)
        assert any(key.startswith("Train/ActingPolicyCounts/Table/") for key in keys)
        assert not any(key.endswith("Prob") for key in keys)
    console = "".join(r.output_raw.line for r in records if r.WhichOneof("record_type") == "output_raw")
    assert "epoch 2/2" in console  # the terminal output is captured
