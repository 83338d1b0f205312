"""Replay buffers in append-only chunk files in the run directory, so a checkpoint writes only the
transitions its epoch added.

Each checkpoint adds one file ``replay/{first:012d}_{end:012d}.npz`` with the field arrays
``[T, end - first, ...]`` of the transitions numbered ``first .. end - 1`` (the buffer's write
counter), then the checkpoint names the files that hold the live transitions. The order keeps it
atomic: the chunk is written to a temporary name, flushed and renamed before the checkpoint is
replaced, and files are deleted only after the new checkpoint names others. A kill at any moment
leaves a checkpoint whose files all exist (at worst an unnamed chunk of the epoch in progress, which
the resumed run rewrites under the same name).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from learning.core.replay_buffer import TaskReplayBuffer

REPLAY_DIR = "replay"
FORMAT = "chunks"


def _chunk_name(first: int, end: int) -> str:
    return f"{first:012d}_{end:012d}.npz"


def _span(name: str) -> tuple[int, int]:
    first, end = Path(name).stem.split("_")
    return int(first), int(end)


class ReplayFiles:
    """Writes a buffer's new transitions as chunk files and restores a buffer from them."""

    def __init__(self, run_dir: Path, keep_all: bool = False) -> None:
        self.directory = Path(run_dir) / REPLAY_DIR
        self.keep_all = keep_all
        """Never delete chunks (older snapshot checkpoints may name them)."""
        self.chunks: list[str] = []
        self.stale: list[str] = []
        self.saved_until = 0

    def commit_new(self, buffer: TaskReplayBuffer) -> dict:
        """Write the transitions added since the last call; returns the checkpoint's buffer entry."""
        new = buffer.total_added - self.saved_until
        if new > 0:
            self.directory.mkdir(parents=True, exist_ok=True)
            first = buffer.total_added - min(new, buffer.size)
            name = _chunk_name(first, buffer.total_added)
            temporary = self.directory / (name + ".tmp")
            with temporary.open("wb") as handle:
                np.savez(handle, **buffer.newest(buffer.total_added - first))  # type: ignore[arg-type]
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.directory / name)
            self.chunks.append(name)
            self.saved_until = buffer.total_added
        oldest_live = buffer.total_added - buffer.size
        self.stale = [name for name in self.chunks if _span(name)[1] <= oldest_live]
        self.chunks = [name for name in self.chunks if _span(name)[1] > oldest_live]
        return {"format": FORMAT, "chunks": list(self.chunks), "total_added": buffer.total_added,
                "size": buffer.size, "capacity": buffer.capacity}

    def prune(self) -> None:
        """After the checkpoint naming the live chunks is in place: delete the chunks it no longer names."""
        if not self.keep_all:
            for name in self.stale:
                (self.directory / name).unlink(missing_ok=True)
        self.stale = []

    def restore(self, buffer: TaskReplayBuffer, state: dict) -> None:
        """Fill ``buffer`` from the chunks a checkpoint names (oldest first)."""
        if state["capacity"] != buffer.capacity:
            raise ValueError(f"replay capacity differs: checkpoint {state['capacity']}, run {buffer.capacity}")
        for name in state["chunks"]:
            path = self.directory / name
            if not path.is_file():
                raise ValueError(f"replay chunk {path} is missing")
            with np.load(path) as arrays:
                values = {field: arrays[field] for field in buffer.fields}
            first, end = _span(name)
            oldest_live = int(state["total_added"]) - int(state["size"])
            if first < oldest_live:  # partly overwritten in the ring
                values = {field: value[:, oldest_live - first:] for field, value in values.items()}
                first = oldest_live
            buffer.write_at(first, values)
        if buffer.total_added != int(state["total_added"]) or buffer.size != int(state["size"]):
            raise ValueError("replay chunks do not add up to the checkpoint's buffer")
        self.chunks, self.saved_until = list(state["chunks"]), int(state["total_added"])
