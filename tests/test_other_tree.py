"""``--compare_with``: a benchmark's ``measure`` runs in a new process against another checkout."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.other_tree import measure_in

REPO = Path(__file__).resolve().parents[1]


def test_measure_runs_in_the_other_tree_with_the_arguments_given(tmp_path):
    other = tmp_path / "old_checkout"
    (other / "environments").mkdir(parents=True)
    (other / "environments" / "__init__.py").write_text("WHICH = 'old'\n")
    probe = tmp_path / "bench_probe.py"
    probe.write_text("def measure(steps, names):\n"
                     "    import environments\n"
                     "    return {'tree': environments.WHICH, 'steps': steps * 2, 'names': names[::-1]}\n")
    assert measure_in(other, str(probe), 21, ["a", "b"]) == {"tree": "old", "steps": 42, "names": ["b", "a"]}


def test_a_failing_measurement_says_where_and_why(tmp_path):
    probe = tmp_path / "bench_probe.py"
    probe.write_text("def measure():\n    raise ValueError('no such env')\n")
    with pytest.raises(RuntimeError, match=f"measurement in {REPO} failed:(.|\\n)*ValueError: no such env"):
        measure_in(REPO, str(probe))
