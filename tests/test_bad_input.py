"""Every malformed command line: exit code 2, exactly one line on stderr, no traceback, nothing
written (a fault-injection pass as a table). Most lines run in-process through
run.py's and run_policy.py's main (fast); a handful run as real subprocesses."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import garage_experiments
import run as run_script
import run_policy
from learning.training.config import parse_command_line

REPO = Path(__file__).resolve().parents[1]
BIG = str(10 ** 13)
BASE = ["--env=PointReach-v0", "--wandb", "False", "--n_epochs", "2", "--batch_size", "40", "--min_buffer_size", "40",
        "--gradient_steps_per_itr", "10", "--hidden_sizes", "8", "8", "--num_evaluation_episodes", "1"]

# Command lines with placeholders: {file} an existing file, {runs} the --log_dir root, {run} a trained run,
# {broken_json} {no_keys} {wrong_type} {json_list} {bad_checkpoint} {no_config} run directories with a defect.
RUN_LINES: list[list[str]] = [
    [], ["--env=PointReach-v0"], ["nonexistent"], ["dnc_sac", "--env=NoSuchEnv-v0"],
    ["dnc_sac", *BASE, "--unknown_flag", "1"], ["dnc_sac", *BASE, "--max_n_worker", "2"],
    ["dnc_sac", *BASE, "--seed", "-1"], ["dnc_sac", *BASE, "--seed", str(2 ** 40)], ["dnc_sac", *BASE, "--seed", "abc"],
    ["dnc_sac", *BASE, "--seed", "1.5"], ["dnc_sac", *BASE, "--replay_buffer_size", "1e30"],
    ["dnc_sac", *BASE, "--replay_buffer_size", str(10 ** 30)],
    ["dnc_sac", "--env=PointReach-v0", "--wandb", "False", "--batch_size", BIG],
    ["dnc_sac", "--env=PointReach-v0", "--wandb", "False", "--min_buffer_size", BIG, "--replay_buffer_size", str(10 ** 14)],
    ["dnc_sac", *BASE[:-2], "--num_evaluation_episodes", "1", "--buffer_batch_size", BIG],
    ["dnc_sac", "--env=PointReach-v0", "--wandb", "False", "--hidden_sizes", "1000000", "1000000"],
    ["dnc_sac", *BASE, "--lr", "inf"], ["dnc_sac", *BASE, "--lr", "nan"], ["dnc_sac", *BASE, "--lr", "-1"],
    ["dnc_sac", *BASE, "--lr", "0"], ["dnc_sac", *BASE, "--reward_scale", "inf"],
    ["dnc_sac", *BASE, "--reward_scale", "nan"], ["dnc_sac", *BASE, "--reward_scale=-inf"],
    ["dnc_sac", *BASE, "--target_entropy", "nan"], ["dnc_sac", *BASE, "--target_entropy=-inf"],
    ["dnc_sac", *BASE, "--kl_coeff", "nan"], ["dnc_sac", *BASE, "--kl_coeff", "0.1", "inf"],
    ["dnc_sac", *BASE, "--kl_coeff", "-1"], ["dnc_sac", *BASE, "--discount", "2"],
    ["dnc_sac", *BASE, "--discount", "nan"], ["dnc_sac", *BASE, "--target_update_tau", "0"],
    ["dnc_sac", "--env=PointReach-v0", "--n_epochs", "0"], ["dnc_sac", "--env=PointReach-v0", "--n_epochs", "-5"],
    ["dnc_sac", "--env=PointReach-v0", "--batch_size", "0"], ["dnc_sac", *BASE, "--num_threads", "0"],
    ["dnc_sac", "--env=PointReach-v0", "--hidden_sizes", "0"], ["dnc_sac", "--env=PointReach-v0", "--hidden_sizes"],
    ["dnc_sac", "--env=PointReach-v0", "--hidden_sizes", "-4", "8"],
    ["dnc_sac", *BASE, "--policy_architecture", "bogus"], ["dnc_sac", "--env=PointReach-v0", "--wandb", "maybe"],
    ["dnc_sac", *BASE, "--replay_buffer_size", "10"], ["dnc_sac", *BASE, "--name", "../../x"],
    ["dnc_sac", *BASE, "--name", "a/b"], ["dnc_sac", *BASE, "--name", ".."], ["dnc_sac", *BASE, "--name", "a\\b"],
    ["dnc_sac", *BASE, "--log_dir", ""], ["dnc_sac", *BASE, "--log_dir", " "], ["dnc_sac", *BASE, "--log_dir", "{file}"],
    ["dnc_sac", *BASE, "--log_dir", "{file}/sub"], ["dnc_sac", *BASE, "--seed", "1", "--seed", "2"],
    ["dnc_sac", *BASE, "--env", "PointReach-v0"], ["dnc_sac", *BASE, "--lr", "1e-3", "--lr=1e-3"],
    ["mtsac", *BASE], ["qmp_dnc", *BASE, "--include_task_id", "True"], ["sac", *BASE, "--kl_coeff", "0.1"],
    ["dnc_sac", *BASE, "--qmp_mixture", "uniform"], ["dnc_sac", *BASE, "--task_name", "0"],
    ["dnc_sac", *BASE, "--vis_freq", "3", "--evaluation_frequency", "2"], ["dnc_sac", *BASE, "--vis_freq", "0"],
    ["qmp_dnc", *BASE, "--qmp_own_policy_prob", "1.5"],
    ["qmp_dnc", *BASE, "--qmp_mixture", "softmax", "--qmp_softmax_temperature", "inf"],
    ["uds_dnc", *BASE, "--sharing_quantile", "nan"], ["dnc_sac", *BASE, "--n_policies", "3"],
    ["dnc_sac", *BASE[:-2], "--num_evaluation_episodes", "-1"], ["dnc_sac", *BASE, "--evaluation_frequency", "0"],
    ["dnc_sac", *BASE, "--snapshot_gap", "0"], ["dnc_sac", *BASE, "--vis_format", "webm"],
    ["qmp_sac", *BASE], ["dnc_sac", *BASE, "--seed"],
    ["resume"], ["resume", "--snapshot_dir", "{runs}/missing"], ["resume", "--snapshot_dir", "{no_config}"],
    ["resume", "--snapshot_dir", "{broken_json}"], ["resume", "--snapshot_dir", "{no_keys}"],
    ["resume", "--snapshot_dir", "{wrong_type}"], ["resume", "--snapshot_dir", "{json_list}"],
    ["resume", "--snapshot_dir", "{bad_checkpoint}"], ["resume", "--snapshot_dir", "{run}", "--lr", "1"],
    ["resume", "--snapshot_dir", "{run}", "--n_epochs", "0"], ["resume", "--snapshot_dir", "{run}", "--n_epochs", "1"],
    ["resume", "--snapshot_dir", "{run}", "--snapshot_dir", "{run}"], ["resume", "--snapshot_dir", "{file}"],
]
POLICY_LINES: list[list[str]] = [
    [], ["--snapshot_dir", "{run}", "--seed", "-1"], ["--snapshot_dir", "{run}", "--seed", str(2 ** 40)],
    ["--snapshot_dir", "{run}", "--save_video", "True", "--video_root", "{file}"],
    ["--snapshot_dir", "{broken_json}"], ["--snapshot_dir", "{no_keys}"], ["--snapshot_dir", "{wrong_type}"],
    ["--snapshot_dir", "{run}", "--snapshot_dir", "{run}"], ["--snapshot_dir", "{run}", "--num_episodes_per_task", "0"],
    ["--snapshot_dir", "{run}", "--mode", "mixture"], ["--snapshot_dir", "{run}", "--tasks", "5"],
    ["--snapshot_dir", "{bad_checkpoint}"],
]
SUBPROCESS_LINES = [["run.py"], ["run.py", "dnc_sac", *BASE, "--lr", "nan"], ["run.py", "dnc_sac", *BASE, "--log_dir", "{file}"],
]


@pytest.fixture(scope="module")
def places(tmp_path_factory) -> dict[str, str]:
    """A trained run and run directories with one defect each; everything a bad line may point at."""
    root = tmp_path_factory.mktemp("bad_input")
    runs = root / "runs"
    config = parse_command_line(["dnc_sac", *BASE, "--name", "trained", "--log_dir", str(runs)])
    garage_experiments.launch(config, announce=lambda message: None)
    saved = json.loads((config.run_dir / "config.json").read_text())
    defects = {"broken_json": "{not json", "no_keys": json.dumps({"experiment": "dnc_sac", "seed": 0}),
               "wrong_type": json.dumps({**saved, "seed": "zero"}), "json_list": "[1, 2]"}
    for name, text in defects.items():
        folder = root / name
        folder.mkdir()
        (folder / "config.json").write_text(text)
        (folder / "checkpoint.pt").write_bytes((config.run_dir / "checkpoint.pt").read_bytes())
    (root / "bad_checkpoint").mkdir()
    (root / "bad_checkpoint" / "config.json").write_text(json.dumps(saved))
    (root / "bad_checkpoint" / "checkpoint.pt").write_bytes(b"\x00" * 100)
    (root / "no_config").mkdir()
    (root / "a_file").write_text("not a directory")
    (root / "cwd").mkdir()
    return {"root": str(root), "runs": str(runs), "run": str(config.run_dir), "file": str(root / "a_file"),
            **{name: str(root / name) for name in [*defects, "bad_checkpoint", "no_config"]}}


def snapshot(root: Path) -> dict[str, str]:
    """Every file and folder under root with a digest of its content (any write changes it)."""
    state = {}
    for path in sorted(Path(root).rglob("*")):
        state[str(path)] = hashlib.sha1(path.read_bytes()).hexdigest() if path.is_file() else "dir"
    return state


def fill(line: list[str], places: dict[str, str]) -> list[str]:
    return [token.format(**places) if "{" in token else token for token in line]


@pytest.fixture
def restore_sigterm():
    previous = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, previous)


def call_main(main, argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as error:
        return int(error.code)


@pytest.mark.parametrize("line", RUN_LINES + [["run_policy", *line] for line in POLICY_LINES],
                         ids=lambda line: " ".join(line)[:70] or "(empty)")
def test_bad_line_is_one_line_and_exit_2(line, places, capsys, monkeypatch, restore_sigterm):
    monkeypatch.chdir(Path(places["root"]) / "cwd")
    before = snapshot(Path(places["root"]))
    if line and line[0] == "run_policy":
        code = call_main(run_policy.main, fill(line[1:], places))
    else:
        code = call_main(run_script.main, fill([*line, "--log_dir", places["runs"]] if _takes_log_dir(line) else line,
                                               places))
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert code == 2, captured.err
    assert len(lines) == 1 and "error:" in lines[0], captured.err
    assert "Traceback" not in captured.err + captured.out
    assert snapshot(Path(places["root"])) == before, "a bad command line wrote to disk"


def _takes_log_dir(line: list[str]) -> bool:
    """Lines of a training experiment without their own --log_dir get the test's root (never the repository's)."""
    return bool(line) and line[0] not in ("resume",) and not line[0].startswith("-") and "--log_dir" not in line


def test_table_is_large_enough():
    assert len(RUN_LINES) + len(POLICY_LINES) >= 60


@pytest.mark.parametrize("line", SUBPROCESS_LINES, ids=lambda line: " ".join(line)[:60])
def test_bad_line_as_a_real_process(line, places):
    argv = fill(line, places)
    if argv[0] == "run.py" and len(argv) > 1 and "--log_dir" not in argv:
        argv += ["--log_dir", places["runs"]]
    before = snapshot(Path(places["root"]))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, str(REPO / argv[0]), *argv[1:]], cwd=Path(places["root"]) / "cwd",
                            capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr
    assert snapshot(Path(places["root"])) == before
