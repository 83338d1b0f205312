"""``--compare_with CHECKOUT``: a benchmark's ``measure`` run against another checkout of this project.

The measurement runs in a new process whose ``learning`` and ``environments`` packages come from that
checkout (an older commit, say), so both trees are timed by the same benchmark code on the same machine.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

_PROBE = ("import importlib.util, json, sys; sys.path.insert(0, sys.argv[1]); "
          "spec = importlib.util.spec_from_file_location('benchmark_probe', sys.argv[2]); "
          "probe = importlib.util.module_from_spec(spec); spec.loader.exec_module(probe); "
          "print('RESULT' + json.dumps(probe.measure(*json.loads(sys.argv[3]))))")


def measure_in(tree: Path, benchmark_file: str, *args: Any) -> dict:
    """``measure(*args)`` of ``benchmark_file`` in a process importing the project from ``tree``.
    The arguments and the result travel as JSON."""
    done = subprocess.run([sys.executable, "-c", _PROBE, str(tree), str(Path(benchmark_file).resolve()),
                           json.dumps(list(args))], cwd=tree, capture_output=True, text=True)
    for line in done.stdout.splitlines():
        if line.startswith("RESULT"):
            return json.loads(line[len("RESULT"):])
    raise RuntimeError(f"measurement in {tree} failed:\n{done.stderr[-2000:]}")
