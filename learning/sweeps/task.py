"""The Ray task of a sweep: one ``run.py`` process. Standard library only: the runner ships this module
to the Ray workers by value, so a worker (on any node) needs nothing of the repository to start it."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys


def execute_run(command: list[str], cwd: str, log_file: str, env_vars: dict[str, str]) -> tuple[int, str]:
    """Body of the Ray task: run ``command`` (``python`` = this worker's interpreter) and return its exit
    code and last output line. The child gets SIGTERM if the worker dies (PR_SET_PDEATHSIG), so a
    cancelled or crashed sweep leaves no training process behind."""

    def die_with_worker() -> None:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG

    command = [sys.executable if part == "python" and index == 0 else part for index, part in enumerate(command)]
    with open(log_file, "ab") as log:
        log.write(f"\n$ {' '.join(command)}\n".encode())
        log.flush()
        start = log.tell()
        process = subprocess.run(command, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 env={**os.environ, **env_vars}, preexec_fn=die_with_worker)
    with open(log_file, "rb") as reader:
        reader.seek(start)
        lines = [line.strip() for line in reader.read().decode(errors="replace").splitlines() if line.strip()]
    return process.returncode, lines[-1] if lines else ""
