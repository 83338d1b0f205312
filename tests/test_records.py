"""Run records (learning/sweeps/records.py): the committed copy of a sweep's runs reads like the sweep
folder, gives stable bytes, is never shortened, refuses a run made with other flags, and is written by
``sweep.py --record_only`` and by a sweep as its runs end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from learning.analysis.__main__ import main as analysis_main
from learning.analysis.results import load_sweep
from learning.sweeps.grid import load_grid_file
from learning.sweeps.records import update_records
from learning.training.logger import RECORDED_METRICS_FILE, read_metrics
from tests.test_results import sweep  # noqa: F401  (the fixture: a synthetic sweep folder)

ROOT = Path(__file__).resolve().parent.parent


def test_records_read_like_the_sweep_folder(sweep, tmp_path_factory, capsys):  # noqa: F811
    records = tmp_path_factory.mktemp("records")
    updates = update_records(sweep, records)
    assert sorted(update.action for update in updates) == ["written"] * 5
    assert sorted(path.name for path in (records / "runs").iterdir()) == sorted(
        path.name for path in (sweep / "runs").iterdir())
    assert not list(records.rglob("metrics.jsonl"))  # only the compressed rows
    for live, recorded in zip(load_sweep(sweep), load_sweep(records)):
        assert (live.label, live.run_dir.name) == (recorded.label, recorded.run_dir.name)
        assert (live.steps == recorded.steps).all() and (live.scores == recorded.scores).all()
    tables = []
    for folder in (sweep, records):
        assert analysis_main(["table", str(folder), "--env_steps", "500000", "--aggregate", "mean", "--reps", "300"]) == 0
        tables.append(capsys.readouterr().out)
    assert tables[0] == tables[1] and "0.39" in tables[0]  # (.15 + .625) / 2 for Separated + QMP
    assert json.loads((records / "sweep.json").read_text())["runs"]["qmp_0"] == {"label": "Separated + QMP"}
    update_records(sweep, records, method_order=("Separated", "Separated + QMP"))  # the grid's order: tables follow it
    assert list(json.loads((records / "sweep.json").read_text())["runs"]) == [
        "sep_0", "sep_1", "sep_short", "qmp_0", "qmp_1"]
    assert [run.label for run in load_sweep(records)][:3] == ["Separated"] * 3


def test_an_unchanged_run_keeps_its_bytes_and_a_record_is_never_shortened(sweep, tmp_path_factory):  # noqa: F811
    records = tmp_path_factory.mktemp("records")
    update_records(sweep, records)
    record = records / "runs" / "qmp_0" / RECORDED_METRICS_FILE
    first = record.read_bytes()
    assert {update.action for update in update_records(sweep, records)} == {"unchanged"}
    assert record.read_bytes() == first

    live = sweep / "runs" / "qmp_0" / "metrics.jsonl"
    lines = live.read_text().splitlines()
    live.write_text(lines[0] + "\n")  # the run started again from scratch elsewhere: one epoch so far
    (kept,) = update_records(sweep, records, ["qmp_0"])
    assert (kept.action, kept.epochs) == ("kept", 3) and "only 1 epochs" in kept.reason
    assert record.read_bytes() == first

    extra = {"epoch": 3, "Train/TotalEnvSteps": 1e6, **{f"Evaluation/p/Task{task}/SuccessRate": 1.0 for task in range(4)}}
    live.write_text("\n".join([*lines, json.dumps(extra)]) + "\n")
    (written,) = update_records(sweep, records, ["qmp_0"])
    assert (written.action, written.epochs) == ("written", 4)
    assert read_metrics(record.parent)[-1]["Train/TotalEnvSteps"] == 1e6


def test_a_run_made_with_other_flags_than_its_record_is_refused(sweep, tmp_path_factory):  # noqa: F811
    records = tmp_path_factory.mktemp("records")
    manifest = json.loads((sweep / "sweep.json").read_text())
    manifest["runs"]["sep_0"]["flags"] = ["--seed", "1"]
    (sweep / "sweep.json").write_text(json.dumps(manifest))
    update_records(sweep, records, ["sep_0"])
    manifest["runs"]["sep_0"]["flags"] = ["--seed", "1", "--kl_coeff", "0.001"]
    (sweep / "sweep.json").write_text(json.dumps(manifest))
    (refused,) = update_records(sweep, records, ["sep_0"])
    assert refused.action == "refused" and "--seed 1" in refused.reason
    assert json.loads((records / "sweep.json").read_text())["runs"]["sep_0"]["flags"] == ["--seed", "1"]


def test_the_grids_records_key_is_relative_to_the_grid_file(tmp_path):
    path = tmp_path / "grids" / "demo.yaml"
    path.parent.mkdir()
    path.write_text("envs: [PointReach-v0]\nrecords: records/demo\nexperiments:\n  - experiment: dnc_sac\n")
    assert load_grid_file(path).records == tmp_path / "grids" / "records" / "demo"
    assert load_grid_file(ROOT / "docs" / "results" / "reacher.yaml").records == ROOT / "docs" / "results" / "records" / "reacher"


def test_record_only_writes_the_grids_records_and_needs_a_folder(tmp_path):
    grid = tmp_path / "demo.yaml"
    grid.write_text("envs: [PointReach-v0]\nrecords: kept\nexperiments:\n  - label: SAC\n    experiment: dnc_sac\n")
    sweep_dir = tmp_path / "sweep"
    run_dir = sweep_dir / "runs" / "dnc_sac_PointReach-v0_sac_1"
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps({"experiment": "dnc_sac", "env": "PointReach-v0"}))
    (run_dir / "metrics.jsonl").write_text(json.dumps({"epoch": 0, "Train/TotalEnvSteps": 100.0}) + "\n")
    command = [sys.executable, "sweep.py", str(grid), "--sweep_dir", str(sweep_dir), "--record_only"]
    out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "written   dnc_sac_PointReach-v0_sac_1  (1 epochs)" in out.stdout
    assert read_metrics(tmp_path / "kept" / "runs" / run_dir.name) == read_metrics(run_dir)

    grid.write_text("envs: [PointReach-v0]\nexperiments:\n  - label: SAC\n    experiment: dnc_sac\n")
    bad = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "needs a records folder" in bad.stderr
    missing = subprocess.run([*command[:-1], "--record_only", "--records", str(tmp_path / "r"), "--sweep_dir",
                              str(tmp_path / "nowhere")], cwd=ROOT, capture_output=True, text=True)
    assert missing.returncode == 2 and "holds no runs/ folder" in missing.stderr
    inside = subprocess.run([*command, "--records", str(sweep_dir / "records")], cwd=ROOT, capture_output=True, text=True)
    assert inside.returncode == 2 and "outside the sweep folder" in inside.stderr
