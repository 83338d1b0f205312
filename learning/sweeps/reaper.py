"""The processes of a sweep end with its driver, however the driver ends (SIGKILL included).

A driver that starts Ray on its machine starts this module as a small watcher process
(:func:`start_reaper`), connected to it by a pipe that only the driver holds open. The watcher notes,
twice a second, every process descended from the driver that was not there when it started (Ray's
GCS, raylet, agents and workers, and the workers' run.py processes). When the pipe reaches end of
file without the driver having said goodbye (:meth:`Reaper.stand_down`), the driver is dead: the
watcher sends SIGTERM to the noted processes that still run (run.py unwinds, its last checkpoint
stays), and SIGKILL to those still there a few seconds later (Ray's agents ignore SIGTERM).

Standard library only, and Linux's /proc: it runs beside the driver, before and after Ray.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

GOODBYE = b"x"
READY = b"r"
SCAN_SECONDS = 0.5
GRACE_SECONDS = 3.0


def process_table() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, start time) of every process, from /proc (a process gone mid-read is skipped)."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        table[int(entry.name)] = (int(fields[1]), fields[19])  # ppid, starttime (fields 4 and 22 of stat)
    return table


def command_line(pid: int) -> str | None:
    """The command line of ``pid`` (arguments joined by spaces); None when the process is gone."""
    try:
        return (Path(f"/proc/{pid}") / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None


def descendants(root: int, table: dict[int, tuple[int, str]]) -> dict[int, str]:
    """pid -> start time of every process below ``root``."""
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in table.items():
        children.setdefault(parent, []).append(pid)
    found, stack = {}, list(children.get(root, []))
    while stack:
        pid = stack.pop()
        found[pid] = table[pid][1]
        stack.extend(children.get(pid, []))
    return found


def still_running(noted: dict[int, str]) -> list[int]:
    """The noted processes that still run (the same pid and start time, not a zombie)."""
    alive = []
    for pid, started in noted.items():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[19] == started and fields[0] != "Z":
            alive.append(pid)
    return alive


def send(pids: list[int], number: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, number)


def watch(driver: int, pipe: int, ready: int) -> None:
    """Note the driver's new descendants until the pipe closes; then, without a goodbye, stop them.
    ``ready`` gets one byte once the processes already there are known (they are never touched)."""
    me = os.getpid()
    before = set(descendants(driver, process_table()))
    os.write(ready, READY)
    noted: dict[int, str] = {}
    while True:
        readable, _, _ = select.select([pipe], [], [], SCAN_SECONDS)
        if readable:
            message = os.read(pipe, 1)
            if message == GOODBYE:
                return
            if not message:
                break
        noted.update({pid: started for pid, started in descendants(driver, process_table()).items()
                      if pid not in before and pid != me})
    send(still_running(noted), signal.SIGTERM)
    deadline = time.time() + GRACE_SECONDS
    while still_running(noted) and time.time() < deadline:
        time.sleep(0.1)
    send(still_running(noted), signal.SIGKILL)


class Reaper:
    """The driver's end of the watcher: keep it open while the sweep runs; :meth:`stand_down` at the end."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.process = process

    def stand_down(self) -> None:
        """The driver stopped Ray itself: the watcher exits without stopping anything."""
        assert self.process.stdin is not None  # started with stdin=PIPE
        try:
            self.process.stdin.write(GOODBYE)
            self.process.stdin.close()
        except OSError:
            pass
        self.process.wait()


def start_reaper() -> Reaper:
    """Start the watcher of this process (the driver) in a session of its own, so Ctrl-C in the terminal
    reaches the driver but not the watcher; returns once it watches (call it before starting Ray)."""
    process = subprocess.Popen([sys.executable, __file__, str(os.getpid())], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, start_new_session=True, close_fds=True)
    assert process.stdout is not None
    process.stdout.read(1)
    return Reaper(process)


if __name__ == "__main__":
    watch(int(sys.argv[1]), sys.stdin.fileno(), sys.stdout.fileno())
