"""Run a grid on Ray: every run its own ``run.py`` process, resumable, retried, with live progress.

Ray core tasks, not Ray Tune: a run already is a resumable process with its own checkpoints and
metrics (run.py), so the engine only has to place processes on CPUs/GPUs and report when they end.
One remote function that starts ``run.py`` and returns its exit code is all of it; Tune would add a
second checkpoint and experiment-state layer beside run.py's and restore by its own trial ids rather
than by our run directories.

State lives in files under the sweep folder, so a re-run (after a crash, a Ctrl-C, or on a bigger
machine) continues where the last one stopped:

* ``runs/{run}/``: the run directory (run.py's checkpoint, metrics.jsonl, W&B);
* ``status/{run}.json``: how the run's last attempt ended (finished or failed, epochs, reason);
* ``logs/{run}.log``: stdout and stderr of every attempt;
* ``claims/{run}.lock``: locked by the driver that runs it, so two drivers never run one run;
* ``sweep.json``: the manifest (label, experiment, env, seed, flags of every planned run).

A sweep that cannot run stops within seconds with one line: no cluster at ``--address``, no node with
``--cpus_per_run``/``--gpus_per_run``. A driver that started Ray itself has a watcher process
(learning/sweeps/reaper.py) that stops Ray and the runs if the driver dies first; a run.py left
running without a driver is stopped by the next driver of its run (:func:`stop_orphans`).

With a records folder (``SweepOptions.records_dir``), each run's record (config and metrics, for git;
learning/sweeps/records.py) is updated when an attempt ends and for every run when the sweep stops.

A run is finished when its last attempt exited 0 with at least the requested epochs and its
checkpoint exists: it is skipped. A run with a checkpoint is continued with ``run.py resume
--n_epochs N`` (which also extends a run trained with a smaller budget). A run without one starts
afresh (files of an attempt that died before its first checkpoint are removed). A failed attempt is
retried ``max_retries`` times, except exit code 2 (bad input: run.py's one-line error), which would
fail again.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shlex
import shutil
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from learning.sweeps import task
from learning.sweeps.grid import RUNS_FOLDER, RunSpec, changed_runs, write_manifest
from learning.sweeps.reaper import Reaper, start_reaper
from learning.sweeps.records import RecordsError, update_records
from learning.training.checkpoint import CHECKPOINT_FILE
from learning.training.metric_names import EPOCH_SECONDS_METRIC, EVALUATION_PREFIX, OWN_EVALUATION_PREFIX, STEP_METRIC
from learning.training.run_guard import Terminated

STATUS_FOLDER = "status"
LOGS_FOLDER = "logs"
BAD_INPUT_EXIT = 2
REPOSITORY = Path(__file__).resolve().parents[2]


class SweepError(RuntimeError):
    """The sweep cannot start; one-line message."""


# ----------------------------------------------------------------------------------------- run state on disk
def status_path(sweep_dir: Path, run: RunSpec) -> Path:
    return Path(sweep_dir) / STATUS_FOLDER / f"{run.run_name}.json"


def log_path(sweep_dir: Path, run: RunSpec) -> Path:
    return Path(sweep_dir) / LOGS_FOLDER / f"{run.run_name}.log"


def read_status(sweep_dir: Path, run: RunSpec) -> dict[str, Any]:
    path = status_path(sweep_dir, run)
    return json.loads(path.read_text()) if path.is_file() else {}


def write_status(sweep_dir: Path, run: RunSpec, **status: Any) -> None:
    path = status_path(sweep_dir, run)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(status, indent=1))
    temporary.replace(path)


def next_action(sweep_dir: Path, run: RunSpec) -> str:
    """"skip" (finished), "resume" (has a checkpoint) or "start"."""
    has_checkpoint = (run.run_dir(sweep_dir) / CHECKPOINT_FILE).is_file()
    status = read_status(sweep_dir, run)
    if has_checkpoint and status.get("state") == "finished" and status.get("n_epochs", 0) >= run.n_epochs:
        return "skip"
    return "resume" if has_checkpoint else "start"


def command_for(sweep_dir: Path, run: RunSpec, action: str, on_gpu: bool) -> list[str]:
    return run.resume_command(sweep_dir) if action == "resume" else run.start_command(sweep_dir, on_gpu)


def clear_unstarted(sweep_dir: Path, run: RunSpec) -> None:
    """Remove what an attempt that died before its first checkpoint left (its metrics rows would be
    appended to by the next start)."""
    run_dir = run.run_dir(sweep_dir)
    if run_dir.is_dir() and not (run_dir / CHECKPOINT_FILE).exists():
        shutil.rmtree(run_dir)


def recent_rows(run_dir: Path) -> list[dict[str, Any]]:
    """The complete rows of the last 64 KB of a run's metrics.jsonl, newest first ([] without one)."""
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return []
    with path.open("rb") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        handle.seek(max(0, size - 65536))
        lines = handle.read().decode(errors="replace").splitlines()
    rows = []
    for line in reversed(lines):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # the first (cut) line of the tail, or a line being written
            continue
    return rows


def latest_row(run_dir: Path) -> dict[str, Any]:
    """The last complete row of a run's metrics.jsonl (read from the end of the file), or {}."""
    rows = recent_rows(run_dir)
    return rows[0] if rows else {}


# ----------------------------------------------------------------------------------------- progress
@dataclass
class RunProgress:
    run: RunSpec
    state: str = "queued"
    action: str = "start"
    attempts: int = 0
    epoch: int = -1
    env_steps: float = 0.0
    success: float | None = None
    epoch_seconds: float | None = None
    reason: str = ""
    started_at: float = 0.0
    log_offset: int = 0
    """Size of the run's log when its attempt was submitted: the attempt has started once it grows."""
    command: str = ""

    def read_metrics(self, sweep_dir: Path) -> None:
        rows = recent_rows(self.run.run_dir(sweep_dir))
        if not rows:
            return
        row = rows[0]
        self.epoch = int(row.get("epoch", -1))
        self.env_steps = float(row.get(STEP_METRIC) or 0.0)
        self.epoch_seconds = row.get(EPOCH_SECONDS_METRIC, self.epoch_seconds)
        for evaluated in rows:  # the newest evaluation: epochs between evaluations log none
            own = f"{OWN_EVALUATION_PREFIX}SuccessRate"  # QMP runs: each task's own policy, as the tables
            key = own if own in evaluated else f"{EVALUATION_PREFIX}SuccessRate"
            if key in evaluated:
                self.success = evaluated[key]
                break

    @property
    def remaining_epochs(self) -> int:
        return 0 if self.state in ("finished", "skipped", "failed") else self.run.n_epochs - self.epoch - 1


def estimate_seconds_left(progress: list[RunProgress], slots: int) -> float | None:
    """Remaining epochs times seconds per epoch (the run's own, else its environment's mean), spread
    over the runs that can run at once. None until some run has finished an epoch."""
    by_env: dict[str, list[float]] = {}
    for item in progress:
        if item.epoch_seconds:
            by_env.setdefault(item.run.env, []).append(item.epoch_seconds)
    total = 0.0
    for item in progress:
        if item.remaining_epochs <= 0:
            continue
        seconds = item.epoch_seconds or (sum(by_env[item.run.env]) / len(by_env[item.run.env])
                                         if item.run.env in by_env else None)
        if seconds is None:
            return None
        total += item.remaining_epochs * seconds
    return total / max(1, slots)


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


class Reporter:
    """A live table on a terminal, one line per event otherwise."""

    def __init__(self, live: bool | None = None, stream=None) -> None:
        self.stream = stream or sys.stdout
        self.live = self.stream.isatty() if live is None else live
        self.drawn_lines = 0

    def event(self, text: str) -> None:
        if not self.live:
            print(f"[{time.strftime('%H:%M:%S')}] {text}", file=self.stream, flush=True)

    def table(self, progress: list[RunProgress], slots: int) -> None:
        if not self.live:
            return
        counts = {state: sum(item.state == state for item in progress)
                  for state in ("queued", "running", "finished", "skipped", "failed")}
        header = (f"queued {counts['queued']}  running {counts['running']}  finished "
                  f"{counts['finished'] + counts['skipped']}  failed {counts['failed']}  "
                  f"ETA {format_duration(estimate_seconds_left(progress, slots))}")
        order = {"running": 0, "failed": 1, "queued": 2, "finished": 3, "skipped": 4}
        rows = [f"{'run':<58}{'state':>9}{'epoch':>12}{'env steps':>12}{'success':>9}{'try':>5}"]
        for item in sorted(progress, key=lambda item: order[item.state]):
            success = "-" if item.success is None else f"{item.success:.2f}"
            rows.append(f"{item.run.run_name[:57]:<58}{item.state:>9}{f'{item.epoch + 1}/{item.run.n_epochs}':>12}"
                        f"{int(item.env_steps):>12}{success:>9}{item.attempts:>5}")
        height = max(5, shutil.get_terminal_size((120, 40)).lines - 3)
        if len(rows) > height:
            rows = rows[:height - 1] + [f"... {len(rows) - height + 1} more"]
        text = "\n".join([header, *rows])
        erase = f"\x1b[{self.drawn_lines}F\x1b[J" if self.drawn_lines else ""
        print(erase + text, file=self.stream, flush=True)
        self.drawn_lines = text.count("\n") + 1


# ----------------------------------------------------------------------------------------- Ray
def wandb_env(run: RunSpec, group: str) -> dict[str, str]:
    """W&B's standard variables: one group per sweep, tags recipe, method, environment."""
    return {"WANDB_RUN_GROUP": group, "WANDB_TAGS": ",".join((run.grid, run.slug, run.env))}


@dataclass
class SweepOptions:
    cpus_per_run: float = 1.0
    gpus_per_run: float = 0.0
    max_retries: int = 1
    address: str | None = None
    poll_seconds: float = 2.0
    records_dir: Path | None = None
    """Where each run's record goes as it ends (learning/sweeps/records.py); None: no records."""
    method_order: tuple[str, ...] = ()
    """The grid's method labels, in order: the records' manifest follows it."""


@dataclass
class SweepResult:
    progress: list[RunProgress] = field(default_factory=list)

    def of(self, state: str) -> list[RunProgress]:
        return [item for item in self.progress if item.state == state]


def check_address(address: str, timeout: float = 3.0) -> None:
    """Fail within seconds when nothing listens at ``address`` (``HOST:PORT`` or ``ray://HOST:PORT``; ``auto``
    finds the cluster started on this machine and fails fast by itself), instead of Ray's minute of retries.
    Raises SweepError."""
    if address == "auto":
        return
    host, _, port = address.split("://", 1)[-1].rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise SweepError(f"--address {address!r} is not HOST:PORT, ray://HOST:PORT or auto")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as error:
        reason = "no answer" if isinstance(error, TimeoutError) else error.strerror or str(error)
        raise SweepError(f"no Ray cluster answers at {address} ({reason}); start one with 'ray start --head' "
                         f"(docs/reproducing.md), or leave out --address to run on this machine") from None


def use_cluster_token() -> None:
    """Ray (2.59 on) turns token authentication on for clusters started on a machine that has a token, but a
    driver that joins one by an explicit address does not turn it on by itself: with a token at hand
    (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token) and RAY_AUTH_MODE unset, send it. A cluster
    without authentication ignores it."""
    token_file = Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token")
    if "RAY_AUTH_MODE" not in os.environ and (os.environ.get("RAY_AUTH_TOKEN") or token_file.is_file()):
        os.environ["RAY_AUTH_MODE"] = "token"


def check_fit(cpus_per_run: float, gpus_per_run: float, address: str | None) -> None:
    """Some live node of the cluster can hold one run, else no run would ever start. Raises SweepError."""
    import ray

    nodes = [node.get("Resources", {}) for node in ray.nodes() if node.get("Alive")]
    if any(node.get("CPU", 0) >= cpus_per_run and node.get("GPU", 0) >= gpus_per_run for node in nodes):
        return
    largest: dict[str, Any] = max(nodes, key=lambda node: (node.get("CPU", 0), node.get("GPU", 0)), default={})
    where = f"the Ray cluster at {address}" if address else "this machine"
    raise SweepError(f"a run needs {cpus_per_run:g} CPUs and {gpus_per_run:g} GPUs on one node, but no node of {where} "
                     f"has them (the largest: {largest.get('CPU', 0):g} CPUs, {largest.get('GPU', 0):g} GPUs); lower "
                     f"--cpus_per_run/--gpus_per_run")


@dataclass
class RayConnection:
    """How this driver uses Ray: whether it started Ray (and so shuts it down), and the watcher that stops
    Ray's processes and the runs if the driver dies first (learning/sweeps/reaper.py)."""

    started: bool = False
    reaper: Reaper | None = None

    def close(self) -> None:
        import ray

        if self.started:
            ray.shutdown()
        if self.reaper is not None:
            self.reaper.stand_down()


def connect(options: SweepOptions) -> RayConnection:
    """Start Ray with this machine's cores, or join the cluster at ``options.address``, and check that a
    run fits on some node. An instance already running in-process is reused. Raises SweepError."""
    address = options.address
    if address:
        check_address(address)
        use_cluster_token()  # before Ray reads its configuration, which it does once, when it is imported
    import ray

    if ray.is_initialized():
        check_fit(options.cpus_per_run, options.gpus_per_run, address)
        return RayConnection()
    connection = RayConnection(started=True)
    try:
        if address:
            ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR)
        else:
            connection.reaper = start_reaper()
            # "local": a new instance even when `ray start` runs here (join that one with --address auto)
            ray.init(address="local", include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
        check_fit(options.cpus_per_run, options.gpus_per_run, address)
    except SweepError:
        connection.close()
        raise
    except (ConnectionError, RuntimeError, ValueError) as error:
        connection.close()
        raise SweepError(f"cannot start Ray{f' at {address}' if address else ''}: "
                         f"{str(error).strip().splitlines()[0]}") from None
    except BaseException:
        connection.close()
        raise
    return connection


# ----------------------------------------------------------------------------------------- one driver per run
CLAIMS_FOLDER = "claims"


class SweepClaim:
    """One driver per run of a sweep folder: the driver holds an ``flock`` on ``claims/{run}.lock`` for
    each of its runs as long as it lives (the kernel drops them when it dies, however it dies). A second
    driver on the same runs is refused with one line naming the first; drivers of other runs (other
    seeds or methods of a grid) share the folder."""

    def __init__(self, sweep_dir: Path, runs: list[RunSpec]) -> None:
        self.folder = Path(sweep_dir) / CLAIMS_FOLDER
        self.runs = runs
        self._descriptors: list[int] = []

    def acquire(self) -> SweepClaim:
        """Claim every run or none; raises SweepError naming the driver that holds one."""
        note = f"pid {os.getpid()} on host {socket.gethostname()}\n".encode()
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            for run in self.runs:
                descriptor = os.open(self.folder / f"{run.run_name}.lock", os.O_RDWR | os.O_CREAT, 0o644)
                try:
                    fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    holder = os.pread(descriptor, 200, 0).decode(errors="replace").strip() or "another process"
                    os.close(descriptor)
                    self.release()
                    raise SweepError(f"{run.run_name} of {self.folder.parent} is in use by another sweep driver "
                                     f"({holder}); wait for it to finish or stop it first") from None
                os.ftruncate(descriptor, 0)
                os.pwrite(descriptor, note, 0)
                self._descriptors.append(descriptor)
        except OSError as error:
            self.release()
            raise SweepError(f"cannot use the sweep folder {self.folder.parent}: {error.strerror}") from None
        return self

    def release(self) -> None:
        for descriptor in self._descriptors:
            os.close(descriptor)
        self._descriptors = []


def _command_key(argv: list[str]) -> tuple[str, ...]:
    """A run.py command line up to its budget (``--n_epochs``), without the interpreter: which run it trains."""
    tail = argv[1:]
    return tuple(tail[:tail.index("--n_epochs")] if "--n_epochs" in tail else tail)


def stop_orphans(sweep_dir: Path, runs: list[RunSpec], reporter: Reporter) -> None:
    """Stop the run.py processes of ``runs`` on this machine that a driver killed without its watcher left
    behind (the caller has claimed these runs, so no live driver owns them): SIGTERM, on which run.py
    unwinds and keeps its last checkpoint, then SIGKILL for any still there after 20 s."""
    keys = {_command_key(command) for run in runs
            for command in (run.start_command(sweep_dir), run.start_command(sweep_dir, on_gpu=True),
                            run.resume_command(sweep_dir))}
    orphans = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").rstrip("\0").split("\0")
        except OSError:
            continue
        if len(argv) > 1 and argv[1] == "run.py" and _command_key(argv) in keys:
            orphans.append(int(entry.name))
    for pid in orphans:
        reporter.event(f"stopping pid {pid}, a run of {sweep_dir} left behind by a driver that is gone")
        _signal(pid, signal.SIGTERM)
    deadline = time.time() + 20
    while orphans and time.time() < deadline:
        orphans = [pid for pid in orphans if _alive(pid)]
        time.sleep(0.1)
    for pid in orphans:
        _signal(pid, signal.SIGKILL)


def _signal(pid: int, number: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, number)


def _alive(pid: int) -> bool:
    """Is ``pid`` a process that has not exited (a zombie counts as exited)?"""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def record(sweep_dir: Path, options: SweepOptions, runs: list[RunSpec], reporter: Reporter) -> None:
    """Update the records of ``runs`` (no records folder: nothing); a record not written is an event."""
    if options.records_dir is None or not (sweep_dir / RUNS_FOLDER).is_dir():  # no records, or no run started
        return
    try:
        updates = update_records(sweep_dir, options.records_dir, [run.run_name for run in runs], options.method_order)
    except RecordsError as error:
        reporter.event(f"records not updated: {error}")
        return
    for update in updates:
        if update.action in ("kept", "refused"):
            reporter.event(f"record {update.describe()}")


def run_sweep(runs: list[RunSpec], sweep_dir: Path, options: SweepOptions, reporter: Reporter | None = None
              ) -> SweepResult:
    """Run every unfinished run of ``runs``; returns each run's final progress. Ctrl-C cancels the
    running attempts (their last checkpoints stay) and re-raises KeyboardInterrupt; so does SIGTERM, raising
    run_guard.Terminated."""
    sweep_dir = Path(sweep_dir).resolve()
    changed = changed_runs(sweep_dir, runs)
    if changed:
        raise SweepError(f"{len(changed)} run(s) of {sweep_dir} were started with other flags (e.g. {changed[0]}); "
                         f"use another sweep folder")
    reporter = reporter or Reporter()
    connection = connect(options)
    lock = None
    try:
        lock = SweepClaim(sweep_dir, runs).acquire()
        stop_orphans(sweep_dir, runs, reporter)
        return _run_locked(runs, sweep_dir, options, reporter)
    finally:
        if lock is not None:
            lock.release()
        connection.close()


def _run_locked(runs: list[RunSpec], sweep_dir: Path, options: SweepOptions, reporter: Reporter) -> SweepResult:
    """run_sweep once Ray is up and the sweep folder is this driver's."""
    import ray

    write_manifest(sweep_dir, runs)
    for folder in (STATUS_FOLDER, LOGS_FOLDER):
        (sweep_dir / folder).mkdir(parents=True, exist_ok=True)
    group = sweep_dir.name  # the W&B group: one per sweep folder
    progress = [RunProgress(run) for run in runs]
    queue: list[RunProgress] = []
    for item in progress:
        item.action = next_action(sweep_dir, item.run)
        if item.action == "skip":
            item.state = "skipped"
            item.read_metrics(sweep_dir)
            reporter.event(f"skip {item.run.run_name}: finished")
        else:
            queue.append(item)

    terminated = threading.Event()
    if threading.current_thread() is threading.main_thread():
        # SIGTERM stops the sweep as Ctrl-C does. Installed after ray.init (which has its own handler), and
        # only a flag: an exception raised inside Ray's wait breaks it.
        signal.signal(signal.SIGTERM, lambda signum, frame: terminated.set())
    ray.cloudpickle.register_pickle_by_value(task)  # workers need not import the repository
    remote = ray.remote(task.execute_run).options(num_cpus=options.cpus_per_run, num_gpus=options.gpus_per_run,
                                                  max_retries=0)
    slots = max(1, int(ray.cluster_resources().get("CPU", 1) // max(options.cpus_per_run, 1e-3)))
    threads = str(max(1, int(options.cpus_per_run)))
    pending: dict[Any, RunProgress] = {}

    def submit(item: RunProgress) -> None:
        item.action = next_action(sweep_dir, item.run)
        if item.action == "start":
            clear_unstarted(sweep_dir, item.run)
        command = command_for(sweep_dir, item.run, item.action, options.gpus_per_run > 0)
        env_vars = {**wandb_env(item.run, group), "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
        log = log_path(sweep_dir, item.run)
        item.state, item.attempts, item.command = "queued", item.attempts + 1, shlex.join(command)
        item.log_offset = log.stat().st_size if log.exists() else 0
        pending[remote.remote(command, str(REPOSITORY), str(log), env_vars)] = item

    def notice_started(item: RunProgress) -> None:
        """Ray queues tasks until resources free up; an attempt runs once it has written to its log."""
        log = log_path(sweep_dir, item.run)
        if item.state == "queued" and log.exists() and log.stat().st_size > item.log_offset:
            item.state, item.started_at = "running", time.time()
            reporter.event(f"{item.action} {item.run.run_name} (attempt {item.attempts}): {item.command}")

    try:
        for item in queue:
            submit(item)
        while pending:
            if terminated.is_set():
                raise Terminated()
            done: list[Any] = []
            deadline = time.time() + options.poll_seconds
            while not done and not terminated.is_set() and time.time() < deadline:  # SIGTERM seen within 0.2 s
                done, _ = ray.wait(list(pending), num_returns=1, timeout=min(0.2, options.poll_seconds))
            for ref in done:
                item = pending.pop(ref)
                notice_started(item)
                try:
                    code, last_line = ray.get(ref)
                except ray.exceptions.RayError as error:  # the worker died (out of memory, node lost)
                    code, last_line = -1, f"Ray: {str(error).strip().splitlines()[0]}"
                item.read_metrics(sweep_dir)
                record(sweep_dir, options, [item.run], reporter)
                minutes = format_duration(time.time() - item.started_at)
                if code == 0:
                    item.state = "finished"
                    write_status(sweep_dir, item.run, state="finished", n_epochs=item.run.n_epochs,
                                 attempts=item.attempts)
                    success = "-" if item.success is None else f"{item.success:.2f}"
                    reporter.event(f"finished {item.run.run_name} in {minutes}: {int(item.env_steps)} env steps, "
                                   f"success {success}")
                elif code != BAD_INPUT_EXIT and item.attempts <= options.max_retries:
                    reporter.event(f"retry {item.run.run_name}: attempt {item.attempts} exited {code}: {last_line}")
                    submit(item)
                else:
                    item.state, item.reason = "failed", f"exit {code}: {last_line}"
                    write_status(sweep_dir, item.run, state="failed", n_epochs=item.run.n_epochs,
                                 attempts=item.attempts, reason=item.reason)
                    reporter.event(f"failed {item.run.run_name} after {item.attempts} attempt(s): {item.reason} "
                                   f"(log: {log_path(sweep_dir, item.run)})")
            for item in pending.values():
                notice_started(item)
                item.read_metrics(sweep_dir)
            reporter.table(progress, slots)
    except (KeyboardInterrupt, Terminated):
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
    finally:
        record(sweep_dir, options, runs, reporter)
    reporter.table(progress, slots)
    return SweepResult(progress)
