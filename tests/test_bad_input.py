"""Every malformed command line and damaged file: exit code 2, exactly one line on stderr, no traceback,
nothing written, no hang (each case under a time limit). Most lines run in-process through the main
functions of run.py, run_policy.py, sweep.py and ``python -m learning.analysis`` (fast); a handful run
as real subprocesses. docs/robustness.md counts the cases by class."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import garage_experiments
import run as run_script
import run_policy
import sweep as sweep_script
from learning.analysis.__main__ import main as analysis_main
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
# Names, paths and W&B names the file system or W&B refuse; sizes and threads no machine has.
NAME_AND_RESOURCE_LINES: list[list[str]] = [
    ["dnc_sac", *BASE, "--name", "x" * 300], ["dnc_sac", *BASE, "--name", "a\nb"], ["dnc_sac", *BASE, "--name", "a\tb"],
    ["dnc_sac", *BASE, "--log_dir", "{root}/" + "d" * 300], ["dnc_sac", *BASE, "--log_dir", "/".join(["{root}"] + ["d" * 200] * 21)],
    ["dnc_sac", *BASE, "--log_dir", "/dev/null"], ["dnc_sac", *BASE, "--log_dir", "/dev/null/runs"],
    ["dnc_sac", *BASE, "--wandb_project", "a/b"], ["dnc_sac", *BASE, "--wandb_project", "a#b"],
    ["dnc_sac", *BASE, "--wandb_project", "p" * 200], ["dnc_sac", *BASE, "--wandb_project", ""],
    ["dnc_sac", *BASE, "--wandb_project", "a?b"], ["dnc_sac", *BASE, "--wandb_entity", "a:b"],
    ["dnc_sac", *BASE, "--vis_freq", "1", "--vis_width", "100000", "--vis_height", "100000"],
    ["dnc_sac", *BASE, "--vis_width", "5000"], ["dnc_sac", *BASE, "--vis_height", "4097"],
    ["dnc_sac", *BASE, "--vis_freq", "1", "--vis_format", "gif", "--vis_num", str(10 ** 7)],
    ["dnc_sac", *BASE, "--num_threads", "5000"], ["dnc_sac", *BASE, "--num_threads", "1000"],
    ["dnc_sac", *BASE[:-2], "--num_evaluation_episodes", str(2 ** 53 + 1)],
]
# Dry runs refuse what the real command refuses.
DRY_RUN_LINES: list[list[str]] = [
    ["dnc_sac", *BASE, "--log_dir", "/dev/null", "--dry_run"], ["dnc_sac", *BASE, "--log_dir", "{file}/sub", "--print_config"],
    ["dnc_sac", *BASE, "--seed", "-1", "--dry_run"], ["dnc_sac", *BASE, "--num_threads", "1000", "--dry_run"],
    ["dnc_sac", *BASE, "--vis_freq", "1", "--vis_width", "100000", "--vis_height", "100000", "--print_config"],
    ["dnc_sac", *BASE, "--name", "trained", "--log_dir", "{runs}", "--dry_run"],
    ["dnc_sac", "--env=PointReach-v0", "--wandb", "False", "--hidden_sizes", "1000000", "1000000", "--dry_run"],
    ["dnc_sac", *BASE, "--wandb_project", "a/b", "--print_config"],
    ["resume", "--snapshot_dir", "{run}", "--n_epochs", "1", "--dry_run"],
    ["resume", "--snapshot_dir", "{run}", "--n_epochs", "1", "--print_config"],
    ["resume", "--snapshot_dir", "{chunk_missing}", "--dry_run"], ["resume", "--snapshot_dir", "{metrics_missing}", "--dry_run"],
]
# A resume checks everything before it writes: damaged run directories, absurd budgets.
RESUME_LINES: list[list[str]] = [
    ["resume", "--snapshot_dir", "{metrics_missing}"], ["resume", "--snapshot_dir", "{metrics_missing}", "--n_epochs", "5"],
    ["resume", "--snapshot_dir", "{metrics_corrupt}"], ["resume", "--snapshot_dir", "{metrics_short}", "--n_epochs", "5"],
    ["resume", "--snapshot_dir", "{chunk_missing}", "--n_epochs", "5"],
    ["resume", "--snapshot_dir", "{chunk_truncated}", "--n_epochs", "5"], ["resume", "--snapshot_dir", "{chunk_truncated}"],
    ["resume", "--snapshot_dir", "{chunk_garbage}", "--n_epochs", "5"],
    ["resume", "--snapshot_dir", "{no_networks}", "--n_epochs", "5"], ["resume", "--snapshot_dir", "{no_epoch}", "--n_epochs", "5"],
    ["resume", "--snapshot_dir", "{no_buffer}", "--n_epochs", "5"],
    ["resume", "--snapshot_dir", "{run}", "--n_epochs", str(2 ** 53 + 1)],
    ["resume", "--snapshot_dir", "{run}", "--n_epochs", str(10 ** 30)],
    ["resume", "--snapshot_dir", "{big_buffer}", "--n_epochs", str(10 ** 12)],
]
POLICY_LINES: list[list[str]] = [
    [], ["--snapshot_dir", "{run}", "--seed", "-1"], ["--snapshot_dir", "{run}", "--seed", str(2 ** 40)],
    ["--snapshot_dir", "{run}", "--save_video", "True", "--video_root", "{file}"],
    ["--snapshot_dir", "{broken_json}"], ["--snapshot_dir", "{no_keys}"], ["--snapshot_dir", "{wrong_type}"],
    ["--snapshot_dir", "{run}", "--snapshot_dir", "{run}"], ["--snapshot_dir", "{run}", "--num_episodes_per_task", "0"],
    ["--snapshot_dir", "{run}", "--mode", "mixture"], ["--snapshot_dir", "{run}", "--tasks", "5"], ["--snapshot_dir", "{run}", "--tasks", "0,0"],
    ["--snapshot_dir", "{bad_checkpoint}"],
    ["--snapshot_dir", "{run}", "--save_video", "True", "--video_width", "100000", "--video_root", "{root}/videos"],
    ["--snapshot_dir", "{run}", "--video_height", "5000"],
    ["--snapshot_dir", "{run}", "--save_video", "True", "--video_format", "gif", "--num_episodes_per_task", str(10 ** 7),
     "--video_root", "{root}/videos"],
    ["--snapshot_dir", "{run}", "--save_video", "True", "--video_root", "/dev/null"],
]
# sweep.py: budgets and resources that are not finite numbers, seeds run.py refuses, folders under files,
# addresses where no cluster answers, grid files that are not grids.
SWEEP_LINES: list[list[str]] = [
    ["{grid}", "--budget_scale", "inf"], ["{grid}", "--budget_scale", "nan"], ["{grid}", "--budget_scale", "-1"],
    ["{grid}", "--budget_scale", "0"], ["{grid}", "--budget_scale", "1e400"], ["{grid}", "--budget_scale", "inf", "--dry_run"],
    ["{grid}", "--cpus_per_run", "inf"], ["{grid}", "--cpus_per_run", "nan"], ["{grid}", "--cpus_per_run", "0"],
    ["{grid}", "--gpus_per_run", "nan"], ["{grid}", "--gpus_per_run", "inf"], ["{grid}", "--gpus_per_run", "-1"],
    ["{grid}", "--seeds", "-1"], ["{grid}", "--seeds", str(2 ** 40)], ["{grid}", "--seeds", "-1", "--dry_run"],
    ["{grid}", "--sweep_dir", "{file}"], ["{grid}", "--sweep_dir", "{file}/sub"], ["{grid}", "--records", "{file}/records"],
    ["{grid}", "--sweep_dir", "/".join(["{root}"] + ["d" * 200] * 20)],
    ["{grid}", "--address", "127.0.0.1:{closed_port}"], ["{grid}", "--address", "nonsense"],
    ["{grid}", "--address", "localhost:99999"], ["{grid}", "--methods", "nope"], ["{bad_yaml}"], ["{root}/missing.yaml"],
    ["{grid}", "--max_retries", "-1"], ["{grid}", "--order", "random"],
]
# python -m learning.analysis on damaged records (a truncated or foreign metrics.jsonl.gz), output under a file.
ANALYSIS_LINES: list[list[str]] = [
    ["table", "{truncated_records}"], ["table", "{foreign_records}"], ["figure", "{truncated_records}", "--out", "{root}/f.png"],
    ["metrics", "{truncated_records}/runs/dnc_sac_PointReach-v0_trained_0"],
    ["table", "{runs}", "--out", "{file}/table"], ["table", "{runs}", "--out", "/dev/null/table"],
    ["figure", "{runs}", "--out", "{file}/figures"], ["metrics", "{run}", "--out", "{file}/plots"],
]
SUBPROCESS_LINES = [["run.py"], ["run.py", "dnc_sac", *BASE, "--lr", "nan"], ["run.py", "dnc_sac", *BASE, "--log_dir", "{file}"],
                    ["run.py", "resume", "--snapshot_dir", "{chunk_missing}", "--n_epochs", "5"],
                    ["sweep.py", "{grid}", "--address", "127.0.0.1:{closed_port}"],
                    ["run_policy.py", "--snapshot_dir", "{run}", "--video_width", "100000"]]
CASE_SECONDS = 120
"""Every case ends within this time (a hang fails the test instead of stalling the suite)."""


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
    damaged = damaged_runs(root, config.run_dir)
    big = parse_command_line(["dnc_sac", *BASE, "--name", "big", "--log_dir", str(runs), "--replay_buffer_size",
                              str(10 ** 11), "--n_epochs", "1"])
    garage_experiments.launch(big, announce=lambda message: None)
    records = recorded_metrics(root, config.run_dir)
    grid = root / "grid.yaml"
    grid.write_text(json.dumps({"name": "bad", "envs": ["PointReach-v0"], "seeds": [1], "n_epochs": 1,
                                "overrides": {"wandb": False, "batch_size": 20, "min_buffer_size": 20},
                                "experiments": [{"label": "a", "experiment": "dnc_sac"}]}))
    (root / "bad.yaml").write_text("name: bad\nenvs: [PointReach-v0\nexperiments:")
    return {"root": str(root), "runs": str(runs), "run": str(config.run_dir), "file": str(root / "a_file"),
            "grid": str(grid), "bad_yaml": str(root / "bad.yaml"), "closed_port": str(closed_port()),
            "big_buffer": str(big.run_dir), **records, **damaged,
            **{name: str(root / name) for name in [*defects, "bad_checkpoint", "no_config"]}}


def closed_port() -> int:
    """A local TCP port where nothing listens (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def damaged_runs(root: Path, run_dir: Path) -> dict[str, str]:
    """Copies of a trained run (2 epochs), each with one defect a resume must refuse before writing."""
    import torch

    def copy(name: str) -> Path:
        target = root / name
        shutil.copytree(run_dir, target)
        (target / "run.lock").unlink(missing_ok=True)
        return target

    def edit_checkpoint(folder: Path, change) -> None:
        state = torch.load(folder / "checkpoint.pt", weights_only=False)
        change(state)
        torch.save(state, folder / "checkpoint.pt")

    folders = {}
    folders["metrics_missing"] = copy("metrics_missing")
    (folders["metrics_missing"] / "metrics.jsonl").unlink()
    folders["metrics_corrupt"] = copy("metrics_corrupt")
    lines = (folders["metrics_corrupt"] / "metrics.jsonl").read_text().splitlines()
    (folders["metrics_corrupt"] / "metrics.jsonl").write_text("\n".join([lines[0][:30], *lines[1:]]) + "\n")
    folders["metrics_short"] = copy("metrics_short")
    (folders["metrics_short"] / "metrics.jsonl").write_text(lines[1] + "\n")
    chunks = sorted((run_dir / "replay").iterdir())
    folders["chunk_missing"] = copy("chunk_missing")
    (folders["chunk_missing"] / "replay" / chunks[0].name).unlink()
    folders["chunk_truncated"] = copy("chunk_truncated")
    data = chunks[-1].read_bytes()
    (folders["chunk_truncated"] / "replay" / chunks[-1].name).write_bytes(data[:len(data) // 2])
    folders["chunk_garbage"] = copy("chunk_garbage")
    (folders["chunk_garbage"] / "replay" / chunks[0].name).write_bytes(b"PK\x03\x04" + b"\x00" * 200)
    folders["no_networks"] = copy("no_networks")
    edit_checkpoint(folders["no_networks"], lambda state: state.pop("networks"))
    folders["no_epoch"] = copy("no_epoch")
    edit_checkpoint(folders["no_epoch"], lambda state: state.update(next_epoch="two"))
    folders["no_buffer"] = copy("no_buffer")
    edit_checkpoint(folders["no_buffer"], lambda state: state["buffer"].pop("total_added"))
    return {name: str(folder) for name, folder in folders.items()}


def recorded_metrics(root: Path, run_dir: Path) -> dict[str, str]:
    """Records folders (learning/sweeps/records.py's layout) whose metrics.jsonl.gz is cut in half or not gzip."""
    from learning.sweeps.records import compressed_rows
    from learning.training.logger import read_metrics

    folders = {}
    for name, data in (("truncated_records", compressed_rows(read_metrics(run_dir))[:-20]),
                       ("foreign_records", b"not gzip at all")):
        target = root / name / "runs" / run_dir.name
        target.mkdir(parents=True)
        shutil.copy(run_dir / "config.json", target / "config.json")
        (target / "metrics.jsonl.gz").write_bytes(data)
        folders[name] = str(root / name)
    return folders


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


class Hang(BaseException):
    """A case ran past CASE_SECONDS (a BaseException, so no ``except Exception`` of the code swallows it)."""


@pytest.fixture
def time_limit():
    """Fail a case that runs longer than CASE_SECONDS (SIGALRM)."""

    def expire(signum, frame):
        raise Hang(f"no answer within {CASE_SECONDS} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(CASE_SECONDS)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def call_main(main, argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as error:
        return int(error.code)


IN_PROCESS_LINES = (RUN_LINES + NAME_AND_RESOURCE_LINES + DRY_RUN_LINES + RESUME_LINES
                    + [["run_policy", *line] for line in POLICY_LINES] + [["sweep", *line] for line in SWEEP_LINES]
                    + [["analysis", *line] for line in ANALYSIS_LINES])


@pytest.mark.parametrize("line", IN_PROCESS_LINES, ids=lambda line: " ".join(line)[:70] or "(empty)")
def test_bad_line_is_one_line_and_exit_2(line, places, capsys, monkeypatch, restore_sigterm, time_limit):
    monkeypatch.chdir(Path(places["root"]) / "cwd")
    before = snapshot(Path(places["root"]))
    mains = {"run_policy": run_policy.main, "sweep": sweep_script.main, "analysis": analysis_main}
    if line and line[0] in mains:
        code = call_main(mains[line[0]], fill(line[1:], places))
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
    assert len(IN_PROCESS_LINES) + len(SUBPROCESS_LINES) >= 150


@pytest.mark.parametrize("line", SUBPROCESS_LINES, ids=lambda line: " ".join(line)[:60])
def test_bad_line_as_a_real_process(line, places):
    argv = fill(line, places)
    if argv[0] == "run.py" and len(argv) > 1 and argv[1] != "resume" and "--log_dir" not in argv:
        argv += ["--log_dir", places["runs"]]
    before = snapshot(Path(places["root"]))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, str(REPO / argv[0]), *argv[1:]], cwd=Path(places["root"]) / "cwd",
                            capture_output=True, text=True, timeout=CASE_SECONDS, env=env)
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr
    assert snapshot(Path(places["root"])) == before
