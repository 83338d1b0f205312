"""What keeps a run from losing data or failing silently (docs/robustness.md).

- :class:`RunLock`: one process per run directory (an ``flock`` on the directory, taken before the
  directory is read, checked or written; the kernel releases it when the holder dies, so a lock left
  by a killed process is never in the way).
- :func:`install_termination_handler`: SIGTERM raises :class:`Terminated`, so it unwinds like Ctrl-C.
- :class:`TrainingDiverged` and :func:`first_non_finite`: non-finite losses or parameters stop a run.
- :class:`WriteFailure` and :func:`write_failure`: a full disk said in one line (what, where, how much).
- :func:`check_writable_directory`: a directory we are about to create can be created.
- :func:`write_atomically`: a file appears whole or not at all (temporary file, fsync, rename).
- :func:`route_mujoco_warnings`: MuJoCo's warnings go to a log file of ours, not ``./MUJOCO_LOG.TXT``.
- :func:`tolerate_closed_pipes`: output to a reader that went away (``run.py ... | head``) is dropped.

This module imports only the standard library at import time, so that run.py can install its
handlers before torch and MuJoCo load.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import signal
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

LOCK_FILE = "run.lock"
EXIT_DIVERGED = 3
EXIT_WRITE_FAILED = 4
EXIT_INTERRUPTED = 130  # 128 + SIGINT
EXIT_TERMINATED = 143  # 128 + SIGTERM


# --------------------------------------------------------------------------------------------- signals
class Terminated(BaseException):
    """SIGTERM (schedulers, Ray, ``kill``) as an exception, so it unwinds like KeyboardInterrupt."""


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated()


def install_termination_handler() -> None:
    """Make SIGTERM raise :class:`Terminated` in the main thread (Ctrl-C already raises KeyboardInterrupt)."""
    signal.signal(signal.SIGTERM, _raise_terminated)


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Hold SIGTERM and Ctrl-C while the body runs and deliver them when it ends. A signal raised inside
    ``torch.save``'s C++ writer comes out as a RuntimeError, which would read as a failed write (exit 4)
    instead of a termination (exit 143 or 130). Outside the main thread signals cannot be caught: no-op."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    held = (signal.SIGTERM, signal.SIGINT)
    previous = {number: signal.getsignal(number) for number in held}
    for number in held:
        signal.signal(number, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, signal.SIG_DFL if handler is None else handler)
        for signum in dict.fromkeys(received):
            signal.raise_signal(signum)  # the handler in force now acts, as if it had come now


def interruption_exit_code(error: BaseException) -> int:
    """130 for Ctrl-C (SIGINT), 143 for SIGTERM: the shell's 128 + signal number."""
    return EXIT_TERMINATED if isinstance(error, Terminated) else EXIT_INTERRUPTED


def interruption_name(error: BaseException) -> str:
    return "terminated (SIGTERM)" if isinstance(error, Terminated) else "interrupted (Ctrl-C)"


# --------------------------------------------------------------------------------------------- lock
class RunLockError(RuntimeError):
    """Another live process holds the run directory; one-line message naming it."""


def _holder(run_dir: Path) -> str:
    """Who the holder says it is (``RUN_DIR/run.lock``), or "another process" before it has said so."""
    try:
        text = (Path(run_dir) / LOCK_FILE).read_text().strip()
    except (OSError, UnicodeDecodeError):
        text = ""
    return text or "another process"


def _open_directory(run_dir: Path) -> int:
    return os.open(run_dir, os.O_RDONLY | os.O_DIRECTORY)


def lock_holder(run_dir: Path) -> str | None:
    """Who holds ``run_dir``'s lock ("pid 123 on host h"), or None when nobody alive does (or the
    directory does not exist). Reads nothing but the holder's note and writes nothing."""
    try:
        descriptor = _open_directory(run_dir)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _holder(run_dir)
        return None
    finally:
        os.close(descriptor)


class RunLock:
    """An exclusive lock on a run directory for the life of this process (or until :meth:`release`).

    The lock is an ``flock`` on the directory itself, so taking it writes nothing: a process can lock
    a run directory first and only then read, check and write it, and a check that fails leaves the
    directory as it was. The kernel drops the lock with the process, so a lock left by a killed
    process is never in the way. Once the holder has claimed the directory it names itself in
    ``RUN_DIR/run.lock`` (:meth:`name_holder`), which a refused process quotes.
    """

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self._descriptor: int | None = None

    def acquire(self) -> RunLock:
        """Lock the (existing) directory or raise RunLockError naming the holder."""
        descriptor = _open_directory(self.run_dir)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            raise RunLockError(f"{self.run_dir} is in use by {_holder(self.run_dir)}; wait for it to finish "
                               f"or stop it first") from None
        self._descriptor = descriptor
        return self

    def name_holder(self) -> None:
        """Write ``pid N on host H`` to ``RUN_DIR/run.lock`` (after the directory was claimed)."""
        (self.run_dir / LOCK_FILE).write_text(f"pid {os.getpid()} on host {socket.gethostname()}\n")

    def release(self) -> None:
        if self._descriptor is not None:
            os.close(self._descriptor)  # closing the descriptor drops the flock
            self._descriptor = None


# --------------------------------------------------------------------------------------------- non-finite values
class TrainingDiverged(RuntimeError):
    """A loss or a parameter became NaN or infinite; one-line message."""


def first_non_finite(stats: dict[str, Any], named_parameters: Iterable[tuple[str, Any]]) -> str | None:
    """The first non-finite value among the per-task statistics (losses first) and the parameters,
    described in words ("Qf1Loss is nan (task 2)"); None when everything is finite."""
    import torch

    ordered = sorted(stats, key=lambda key: (not key.endswith("Loss"), key))
    for key in ordered:
        value = torch.as_tensor(stats[key]).detach()
        finite = torch.isfinite(value)
        if not bool(finite.all()):
            bad = int((~finite).reshape(-1).nonzero()[0].item())
            task = f" (task {bad})" if value.dim() > 0 else ""
            return f"{key} is {value.reshape(-1)[bad].item()}{task}"
    parameters = list(named_parameters)
    if not parameters:
        return None
    if bool(torch.stack([torch.isfinite(p.detach()).all() for _, p in parameters]).all()):
        return None
    for name, parameter in parameters:
        if not bool(torch.isfinite(parameter.detach()).all()):
            return f"parameter {name} is not finite"
    return None


# --------------------------------------------------------------------------------------------- writes
class WriteFailure(RuntimeError):
    """A file of the run could not be written (usually: disk full); one-line message."""


def is_out_of_space(error: BaseException) -> bool:
    """ENOSPC/EDQUOT anywhere in the chain, or torch's wording for a failed write."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if "No space left" in str(seen) or "file write failed" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def megabytes(size: float) -> str:
    return f"{size / 1e6:.1f} MB"


def write_failure(what: str, path: Path, needed_bytes: int, error: BaseException) -> WriteFailure:
    """One line: what could not be written, where, how much it needs and how much is free."""
    path = Path(path)
    try:
        free = shutil.disk_usage(path.parent).free
    except OSError:
        free = None
    free_text = "" if free is None else f", {megabytes(free)} free"
    if is_out_of_space(error):
        return WriteFailure(f"no space left on device writing {what} {path} (needs about "
                            f"{megabytes(needed_bytes)}{free_text})")
    reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error).splitlines()[0]
    return WriteFailure(f"cannot write {what} {path}: {reason}")


def payload_bytes(value: Any) -> int:
    """Bytes of the tensors and arrays in a nested state (what a checkpoint of it needs, roughly)."""
    import numpy as np
    import torch

    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, np.ndarray):
        return value.nbytes
    if isinstance(value, dict):
        return sum(payload_bytes(item) for item in value.values())
    if isinstance(value, (list, tuple)):
        return sum(payload_bytes(item) for item in value)
    return 64


def write_atomically(path: str | Path, write: Callable[[IO[bytes]], object]) -> None:
    """Call ``write`` on a temporary file beside ``path``, flush it to disk, then rename it over
    ``path``: a kill, a signal or a full disk leaves the previous file (or none), never a torn one."""
    path = Path(path)
    temporary = path.with_name(path.name + ".tmp")
    try:
        with temporary.open("wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def check_writable_directory(path: str | Path, flag: str) -> str | None:
    """Why ``path`` (a directory we will create or write into) cannot be used, or None when it can."""
    path = Path(path)
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        return f"{flag} {str(path)!r}: {probe} is not a directory"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"{flag} {str(path)!r}: {probe} is not writable"
    return None


# --------------------------------------------------------------------------------------------- output
class ClosedPipeTolerantStream:
    """A text stream whose writes to a closed pipe (``run.py ... | head`` once ``head`` has exited) are
    dropped instead of raising BrokenPipeError: the output was only for the reader that left."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._dropping = False

    def write(self, text: str) -> int:
        if not self._dropping:
            try:
                return self._stream.write(text)
            except BrokenPipeError:
                self._drop()
        return len(text)

    def flush(self) -> None:
        if not self._dropping:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._drop()

    def _drop(self) -> None:
        """From now on write nowhere; the descriptor goes to /dev/null, so the interpreter's own flush at
        exit finds no broken pipe either."""
        self._dropping = True
        try:
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, self._stream.fileno())
            os.close(null)
        except (OSError, ValueError):
            pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def tolerate_closed_pipes() -> None:
    """Wrap ``sys.stdout`` and ``sys.stderr`` in :class:`ClosedPipeTolerantStream` (a script's entry point)."""
    import sys

    sys.stdout = ClosedPipeTolerantStream(sys.stdout)
    sys.stderr = ClosedPipeTolerantStream(sys.stderr)


# --------------------------------------------------------------------------------------------- MuJoCo warnings
def route_mujoco_warnings(log_path: Path | None) -> None:
    """Send MuJoCo's warnings to ``log_path`` (appended, one line each) or, with None, to stderr,
    instead of MuJoCo's default ``MUJOCO_LOG.TXT`` in the current directory."""
    import sys

    import mujoco

    def warn(message: str) -> None:
        line = f"MuJoCo warning: {message.strip()}\n"
        if log_path is None:
            sys.stderr.write(line)
            return
        try:
            with open(log_path, "a") as handle:
                handle.write(line)
        except OSError:
            sys.stderr.write(line)

    mujoco.set_mju_user_warning(warn)
