"""sweep.py on a real local Ray instance (shared by the tests of this module) with real run.py runs of
PointReach-v0 at tiny budgets; grid expansion and the paper recipes against run.py's own parser."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from learning.sweeps.grid import GridError, expand, grid_from_dict, in_order, select_methods
from learning.sweeps.recipes import PAPER_GRIDS, load_grid
from learning.sweeps.runner import (
    Reporter,
    RunProgress,
    SweepOptions,
    estimate_seconds_left,
    read_status,
    run_sweep,
    wandb_env,
)
from learning.training.logger import read_metrics

ROOT = Path(__file__).resolve().parent.parent
TINY = {"wandb": False, "batch_size": 20, "gradient_steps_per_itr": 5, "min_buffer_size": 20,
        "num_evaluation_episodes": 1, "hidden_sizes": [8]}


def tiny_grid(experiments: list[dict], seeds=(1,), n_epochs: int = 1):
    return grid_from_dict({"name": "test", "envs": ["PointReach-v0"], "seeds": list(seeds), "n_epochs": n_epochs,
                           "overrides": TINY, "experiments": experiments}, "test")


def metric_epochs(run_dir: Path) -> list[int]:
    return [json.loads(line)["epoch"] for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line]


@pytest.fixture(scope="module")
def ray_instance():
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def quiet() -> Reporter:
    return Reporter(live=False, stream=io.StringIO())


def test_two_by_two_grid_of_one_epoch_runs_then_nothing_to_do(ray_instance, tmp_path):
    runs = expand(tiny_grid([{"label": "SAC", "experiment": "dnc_sac"}, {"label": "QMP", "experiment": "qmp_dnc"}],
                            seeds=(1, 2)))
    sweep_dir, records = tmp_path / "sweep", tmp_path / "records"
    result = run_sweep(runs, sweep_dir, SweepOptions(poll_seconds=0.5, records_dir=records), quiet())
    assert sorted(item.state for item in result.progress) == ["finished"] * 4
    for run in runs:
        config = json.loads((run.run_dir(sweep_dir) / "config.json").read_text())
        assert (config["experiment"], config["seed"], config["n_epochs"]) == (run.experiment, run.seed, 1)
        assert metric_epochs(run.run_dir(sweep_dir)) == [0]
        assert read_metrics(records / "runs" / run.run_name) == read_metrics(run.run_dir(sweep_dir))  # recorded
    assert sorted(path.name for path in (sweep_dir / "runs").iterdir()) == [
        "dnc_sac_PointReach-v0_sac_1", "dnc_sac_PointReach-v0_sac_2", "qmp_dnc_PointReach-v0_qmp_1",
        "qmp_dnc_PointReach-v0_qmp_2"]
    assert json.loads((records / "sweep.json").read_text())["runs"]["qmp_dnc_PointReach-v0_qmp_2"]["label"] == "QMP"
    again = run_sweep(runs, sweep_dir, SweepOptions(poll_seconds=0.5), quiet())
    assert [item.state for item in again.progress] == ["skipped"] * 4
    assert all(item.attempts == 0 for item in again.progress)


@pytest.mark.parametrize("stop, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_killed_sweep_reruns_only_what_is_left_and_resumes_the_half_finished_run(ray_instance, tmp_path, stop, code):
    grid_file = tmp_path / "grid.yaml"
    grid_file.write_text(json.dumps({  # JSON is YAML
        "name": "kill", "envs": ["PointReach-v0"], "seeds": [1], "overrides": TINY,
        "experiments": [{"label": "first", "experiment": "dnc_sac", "n_epochs": 1},
                        {"label": "second", "experiment": "dnc_sac", "n_epochs": 40}]}))
    sweep_dir = tmp_path / "sweep"
    first, second = expand(load_grid(str(grid_file)))
    records = tmp_path / "records"
    driver = subprocess.Popen([sys.executable, "sweep.py", str(grid_file), "--sweep_dir", str(sweep_dir), "--address",
                               ray_instance, "--cpus_per_run", "2", "--records", str(records)], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.time() + 120
    while time.time() < deadline and not (
            read_status(sweep_dir, first).get("state") == "finished"
            and (second.run_dir(sweep_dir) / "checkpoint.pt").exists()):
        time.sleep(0.2)
    driver.send_signal(stop)
    output = driver.communicate(timeout=60)[0].decode()
    assert driver.returncode == code, output
    assert "finished epochs are checkpointed. Continue with: python sweep.py" in output and "Traceback" not in output
    done_before = metric_epochs(second.run_dir(sweep_dir))
    assert 1 <= len(done_before) < 40
    assert len(read_metrics(records / "runs" / second.run_name)) >= len(done_before) - 1  # recorded as it stopped
    first_checkpoint = (first.run_dir(sweep_dir) / "checkpoint.pt").stat().st_mtime_ns
    time.sleep(1.0)  # a killed run.py still writing would show up as extra or repeated epochs below

    result = run_sweep([first, second], sweep_dir, SweepOptions(poll_seconds=0.5), quiet())
    assert [(item.state, item.action) for item in result.progress] == [("skipped", "skip"), ("finished", "resume")]
    assert (first.run_dir(sweep_dir) / "checkpoint.pt").stat().st_mtime_ns == first_checkpoint
    assert metric_epochs(second.run_dir(sweep_dir)) == list(range(40))
    assert "resume --snapshot_dir" in (sweep_dir / "logs" / f"{second.run_name}.log").read_text()


def test_a_run_that_fails_is_retried_then_reported_and_the_others_finish(ray_instance, tmp_path):
    good, diverging = expand(tiny_grid([{"label": "good", "experiment": "dnc_sac"},
                                        {"label": "diverging", "experiment": "dnc_sac",
                                         "flags": {"reward_scale": 1e30}}]))
    # expand() rejects an unknown experiment (test_bad_grids_are_one_line_errors); a run that gets past
    # it and still fails on bad input (e.g. a grid edited under a running sweep) must not be retried
    unknown = dataclasses.replace(good, label="unknown", slug="unknown", experiment="qmp_ppo")
    runs = [good, diverging, unknown]
    result = run_sweep(runs, tmp_path, SweepOptions(poll_seconds=0.5, max_retries=1), quiet())
    states = {item.run.label: item for item in result.progress}
    assert states["good"].state == "finished" and metric_epochs(good.run_dir(tmp_path)) == [0]
    # training diverges (NaN, exit 3) at every attempt: retried once, then reported
    assert (states["diverging"].state, states["diverging"].attempts) == ("failed", 2)
    assert states["diverging"].reason.startswith("exit 3: ") and "training diverged" in states["diverging"].reason
    assert read_status(tmp_path, diverging)["state"] == "failed"
    # an experiment run.py does not know: its one-line error, not retried (bad input fails again)
    assert (states["unknown"].state, states["unknown"].attempts) == ("failed", 1)
    assert states["unknown"].reason.startswith("exit 2: run.py: error:") and "qmp_ppo" in states["unknown"].reason


def test_budget_scale_scales_epochs_and_dnc_distillation_period():
    runs = {run.label: run for run in expand(PAPER_GRIDS["fig8_reacher"], budget_scale=0.1, seeds=(1,))}
    assert runs["QMP"].n_epochs == 200  # Reacher preset 2000 epochs
    assert runs["DnC"].budget_flags == ("--distillation_period", "20")  # 10 distillations over training
    assert runs["DnC (reg.)"].flags[-2:] == ("--kl_coeff", "0.001")
    maze = {run.label: run for run in expand(PAPER_GRIDS["fig7_maze"], seeds=(3,))}
    assert " ".join(maze["Parameters + QMP"].flags).endswith(
        "--policy_architecture multihead --Q_architecture multihead --hidden_sizes 834 834 --lr 0.0003 "
        "--qmp_warmup_iterations 100")
    assert [run.n_epochs for run in expand(PAPER_GRIDS["qmp_vs_ctpg"], seeds=(1,))][:3] == [500, 100, 60]


def test_estimated_time_left_and_wandb_grouping():
    runs = expand(PAPER_GRIDS["fig10"], seeds=(1, 2))  # Reacher: 2000 epochs each
    progress = [RunProgress(run) for run in runs]
    progress[0].state, progress[0].epoch, progress[0].epoch_seconds = "running", 9, 5.0  # 1990 epochs left
    progress[1].state, progress[2].state = "finished", "failed"
    # 1990 x 5 s + 3 queued runs x 2000 epochs x 5 s (the env's mean), over 2 slots
    assert estimate_seconds_left(progress, slots=2) == pytest.approx((1990 * 5 + 3 * 2000 * 5) / 2)
    assert estimate_seconds_left([RunProgress(runs[0])], slots=2) is None
    assert wandb_env(runs[2], "fig10") == {"WANDB_RUN_GROUP": "fig10",
                                           "WANDB_TAGS": "fig10,qmp-uniform,JacoReachMT5-v1"}


def test_every_recipe_command_is_accepted_by_run_py():
    from learning.training.config import ConfigError, parse_command_line

    rejected = set()
    for grid in PAPER_GRIDS.values():
        for run in expand(grid, seeds=(1,)):
            try:
                parse_command_line(run.start_command(Path("/tmp/sweep"))[2:])
            except ConfigError as error:
                rejected.add((run.experiment, str(error).split(";")[0]))
    assert rejected == set()


@pytest.mark.parametrize("data, message", [
    ({"envs": ["PointReach-v0"], "experiments": [{"experiment": "sac"}], "colour": 1}, "unknown grid key 'colour'"),
    ({"envs": ["PointReach-v0"], "experiments": [{"experiment": "sac", "flags": {"n_epochs": 3}}]},
     "flag 'n_epochs' is set by the sweep"),
    ({"envs": ["PointReach-v0"], "experiments": [{"experiment": "dnc_sac"}, {"experiment": "dnc_sac"}]},
     "share a directory"),
    ({"envs": ["PointReach-v0"], "seeds": 0, "experiments": [{"experiment": "sac"}]}, "seeds must be positive"),
    # flags are parsed as run.py will parse them, before any run starts
    ({"envs": ["JacoReachMT5-v1"], "experiments": [{"label": "QMP-Uniform", "experiment": "qmp_dnc",
                                                    "flags": {"qmp_mixtur": "uniform"}}]},
     "QMP-Uniform on JacoReachMT5-v1: unknown flag --qmp_mixtur"),
    ({"envs": ["JacoReachMT5-v1"], "experiments": [{"experiment": "dnc_sac", "flags": {"qmp_mixture": "uniform"}}]},
     "--qmp_mixture is a flag of"),
    ({"envs": ["JacoReachMT5-v1"], "experiments": [{"experiment": "qmp_dnc", "flags": {"qmp_mixture": "best"}}]},
     "qmp_mixture"),
    ({"envs": ["PointReach-v0"], "experiments": [{"experiment": "qmp_ppo"}]}, "unknown experiment 'qmp_ppo'"),
])
def test_bad_grids_are_one_line_errors(data, message):
    with pytest.raises(GridError, match=message):
        expand(grid_from_dict(data, "bad"))


def test_methods_select_and_order_a_grids_runs():
    runs = expand(PAPER_GRIDS["fig10"], seeds=(1, 2))
    chosen = select_methods(runs, ["QMP-Domain", "QMP"])
    assert [(run.label, run.seed) for run in chosen] == [("QMP-Domain", 1), ("QMP-Domain", 2), ("QMP", 1), ("QMP", 2)]
    with pytest.raises(GridError, match="no method 'QMP-Softmax' in the grid; its methods: 'QMP', 'QMP-Uniform'"):
        select_methods(runs, ["QMP-Softmax"])
    out = subprocess.run([sys.executable, "sweep.py", "fig10", "--dry_run", "--seeds", "1", "--methods", "QMP-Uniform",
                          "--sweep_dir", "/nonexistent/sweep"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.count("python run.py") == 1 and "--qmp_mixture uniform" in out.stdout


def test_seed_order_starts_every_method_of_a_seed_before_the_next_seed():
    runs = select_methods(expand(PAPER_GRIDS["fig10"], seeds=(2, 1)), ["QMP-Domain", "QMP"])
    assert [(run.label, run.seed) for run in in_order(runs, "seed")] == [
        ("QMP-Domain", 2), ("QMP", 2), ("QMP-Domain", 1), ("QMP", 1)]  # the seeds in the order given
    assert in_order(runs, "method") == runs
    with pytest.raises(GridError, match="unknown run order 'env'"):
        in_order(runs, "env")
    out = subprocess.run([sys.executable, "sweep.py", "fig10", "--dry_run", "--seeds", "1", "2", "--methods", "QMP",
                          "QMP-Uniform", "--sweep_dir", "/nonexistent/sweep"], cwd=ROOT, capture_output=True, text=True)
    names = [line.split()[1] for line in out.stdout.splitlines() if line.startswith("start")]
    assert [name.rsplit("_", 2)[-2:] for name in names] == [["qmp", "1"], ["qmp-uniform", "1"], ["qmp", "2"],
                                                             ["qmp-uniform", "2"]]


def test_progress_shows_the_newest_evaluation_when_the_last_epoch_has_none(tmp_path):
    run = expand(PAPER_GRIDS["qmp_vs_ctpg"], seeds=(1,))[0]
    run_dir = run.run_dir(tmp_path)
    run_dir.mkdir(parents=True)
    rows = [{"epoch": 4, "Train/TotalEnvSteps": 5000.0, "Evaluation/SuccessRate": 0.25, "Time/EpochSeconds": 3.0},
            {"epoch": 9, "Train/TotalEnvSteps": 10000.0, "Evaluation/SuccessRate": 0.75, "Time/EpochSeconds": 3.0},
            {"epoch": 10, "Train/TotalEnvSteps": 11000.0, "Time/EpochSeconds": 2.0}]
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows) + '{"epoch": 11, "Tr')
    progress = RunProgress(run)
    progress.read_metrics(tmp_path)  # the torn last line (a row being written) is skipped
    assert (progress.epoch, progress.env_steps, progress.success, progress.epoch_seconds) == (10, 11000.0, 0.75, 2.0)

def test_a_reader_that_stops_early_gets_no_traceback(tmp_path):
    """``python sweep.py fig7 --dry_run | head -1``: 180 runs' commands into a pipe closed after one line.
    The long sweep folder (in every command) makes the output exceed the pipe's 64 KB buffer."""
    sweep_dir = tmp_path / ("s" * 200)
    process = subprocess.Popen([sys.executable, "sweep.py", "fig7", "--dry_run", "--sweep_dir", str(sweep_dir)],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout.readline().startswith(b"fig7: 180 runs")
    process.stdout.close()
    stderr = process.communicate(timeout=120)[1].decode()
    assert stderr == "" and process.returncode == 141
    assert not sweep_dir.exists()


def test_the_results_grid_files_expand():
    """docs/results/*.yaml, the grids of the published reproductions, stay valid as flags change."""
    files = sorted((ROOT / "docs" / "results").glob("*.yaml"))
    assert len(files) >= 3
    for path in files:
        assert expand(load_grid(str(path)), seeds=(1,)), path


def test_toml_grid_file(tmp_path):
    path = tmp_path / "mixtures.toml"
    path.write_text('envs = ["JacoReachMT5-v1"]\nseeds = 2\nn_epochs = 7\n[overrides]\nwandb = false\n'
                    '[[experiments]]\nexperiment = "qmp_dnc"\n'
                    '[[experiments]]\nlabel = "QMP-Uniform"\nexperiment = "qmp_dnc"\n'
                    '[experiments.flags]\nqmp_mixture = "uniform"\n')
    runs = expand(load_grid(str(path)))
    assert [(run.run_name, run.n_epochs) for run in runs] == [
        ("qmp_dnc_JacoReachMT5-v1_qmp-dnc_1", 7), ("qmp_dnc_JacoReachMT5-v1_qmp-dnc_2", 7),
        ("qmp_dnc_JacoReachMT5-v1_qmp-uniform_1", 7), ("qmp_dnc_JacoReachMT5-v1_qmp-uniform_2", 7)]
    assert runs[3].flags[6:] == ("--qmp_mixture", "uniform", "--wandb", "False")
    (tmp_path / "broken.toml").write_text("envs = [")
    with pytest.raises(GridError, match="not valid TOML"):
        load_grid(str(tmp_path / "broken.toml"))


def test_dry_run_prints_commands_and_bad_input_exits_2(tmp_path):
    out = subprocess.run([sys.executable, "sweep.py", "qmp_vs_ctpg", "--dry_run", "--seeds", "1", "--budget_scale",
                          "0.1", "--sweep_dir", str(tmp_path)], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert f"python run.py ctpg_dnc --env MetaWorldMT10-v2 --seed 1 --name ctpg --log_dir {tmp_path}/runs " \
           f"--n_epochs 6" in out.stdout
    assert out.stdout.count("python run.py") == 9
    bad = subprocess.run([sys.executable, "sweep.py", "fig99"], cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "neither a recipe" in bad.stderr


def test_dry_run_says_how_far_a_run_to_resume_got(tmp_path):
    run = expand(PAPER_GRIDS["qmp_vs_ctpg"], seeds=(1,))[0]
    run_dir = run.run_dir(tmp_path)
    run_dir.mkdir(parents=True)
    (run_dir / "checkpoint.pt").write_bytes(b"")  # only its presence matters to the plan
    rows = [{"epoch": 0, "Train/TotalEnvSteps": 5000.0}, {"epoch": 1, "Train/TotalEnvSteps": 55000.0}]
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    out = subprocess.run([sys.executable, "sweep.py", "qmp_vs_ctpg", "--dry_run", "--seeds", "1",
                          "--sweep_dir", str(tmp_path)], cwd=ROOT, capture_output=True, text=True)
    line = next(line for line in out.stdout.splitlines() if run.run_name in line)
    assert line.startswith("resume") and f"(2 of {run.n_epochs} epochs done, 55,000 env steps)" in line


def add_seeds_to_manifest(sweep_dir: str, first_seed: int, count: int) -> None:
    """One of several processes adding runs to a shared manifest, one write per run."""
    from learning.sweeps.grid import write_manifest

    grid = tiny_grid([{"experiment": "dnc_sac"}])
    for seed in range(first_seed, first_seed + count):
        write_manifest(Path(sweep_dir), expand(grid, seeds=(seed,)))


def test_sweeps_sharing_a_folder_keep_every_manifest_entry(tmp_path):
    """Two drivers on one Ray cluster write the same sweep.json; without the folder lock one driver's
    read-modify-write drops the other's entries."""
    import multiprocessing

    context = multiprocessing.get_context("fork")
    writers = [context.Process(target=add_seeds_to_manifest, args=(str(tmp_path), 1000 * k, 40)) for k in range(1, 5)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(60)
        assert writer.exitcode == 0
    seeds = sorted(entry["seed"] for entry in json.loads((tmp_path / "sweep.json").read_text())["runs"].values())
    assert seeds == [1000 * k + i for k in range(1, 5) for i in range(40)]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["sweep.json"]  # no lock or temporary file left


def test_a_sweep_driver_imports_its_code_when_it_starts():
    """A driver that imported the records code only when its first run ended crashed (ImportError) when
    the working tree had changed in between; everything the loop needs is imported with the runner."""
    probe = "import sys, learning.sweeps.runner; print('learning.sweeps.records' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "True"
