"""Replay buffers checkpointed as append-only chunk files: a checkpoint writes only
the epoch's new transitions, a restored buffer holds the same transitions in the same slots (so it
samples the same minibatches), through ring wrap-around, and a kill between writing a chunk and
replacing the checkpoint loses nothing."""

from __future__ import annotations

import numpy as np
import torch

from learning.core.replay_buffer import TaskReplayBuffer, Transitions
from learning.training.replay_files import ReplayFiles

T, OBS, ACT, CAPACITY = 3, 4, 2, 50


def block(generator: np.random.Generator, steps: int) -> Transitions:
    return Transitions(generator.standard_normal((T, steps, OBS), np.float32),
                       generator.uniform(-1, 1, (T, steps, ACT)).astype(np.float32),
                       generator.standard_normal((T, steps), np.float32),
                       generator.standard_normal((T, steps, OBS), np.float32),
                       (generator.random((T, steps)) < 0.1).astype(np.float32))


def same_buffer(a: TaskReplayBuffer, b: TaskReplayBuffer) -> bool:
    fields_equal = all(torch.equal(a._data[name][:, :a.size], b._data[name][:, :b.size]) for name in a.fields)
    return fields_equal and (a.size, a.position, a.total_added) == (b.size, b.position, b.total_added)


def test_chunks_restore_the_buffer_slot_for_slot_through_wrap_around(tmp_path):
    generator = np.random.default_rng(0)
    buffer = TaskReplayBuffer(T, OBS, ACT, CAPACITY, initial_capacity=8)
    files = ReplayFiles(tmp_path)
    for epoch, steps in enumerate([20, 7, 30, 1, 26]):  # 84 transitions per task: the ring wraps
        buffer.add(block(generator, steps))
        state = files.commit_new(buffer)
        files.prune()
        written = np.load(tmp_path / "replay" / state["chunks"][-1])
        assert written["reward"].shape == (T, steps)  # only the epoch's new transitions were written
        restored = TaskReplayBuffer(T, OBS, ACT, CAPACITY, initial_capacity=8)
        ReplayFiles(tmp_path).restore(restored, state)
        assert same_buffer(buffer, restored), f"epoch {epoch}"
        assert torch.equal(buffer.sample(5, torch.Generator().manual_seed(epoch))["observation"],
                           restored.sample(5, torch.Generator().manual_seed(epoch))["observation"])
    # chunks holding only overwritten transitions are gone: the oldest live one is number 84 - 50 = 34,
    # so 0-20 and 20-27 went and 27-57 is read from 34 on
    assert sorted(p.name for p in (tmp_path / "replay").iterdir()) == sorted(state["chunks"])
    assert state["chunks"][0] == "000000000027_000000000057.npz"


def test_a_kill_between_chunk_and_checkpoint_resumes_from_the_previous_checkpoint(tmp_path):
    generator = np.random.default_rng(1)
    buffer = TaskReplayBuffer(T, OBS, ACT, CAPACITY)
    files = ReplayFiles(tmp_path)
    buffer.add(block(generator, 10))
    committed = files.commit_new(buffer)  # "checkpoint.pt" names this state
    files.prune()
    reference = TaskReplayBuffer(T, OBS, ACT, CAPACITY)
    reference.add(Transitions(**{k: v for k, v in vars(block(np.random.default_rng(1), 10)).items()}))
    buffer.add(block(generator, 5))
    files.commit_new(buffer)  # killed here: the chunk exists, the checkpoint was not replaced
    resumed = TaskReplayBuffer(T, OBS, ACT, CAPACITY)
    resumed_files = ReplayFiles(tmp_path)
    resumed_files.restore(resumed, committed)
    assert same_buffer(resumed, reference)
    resumed.add(block(np.random.default_rng(9), 5))
    state = resumed_files.commit_new(resumed)  # the epoch again: same chunk name, rewritten
    assert state["chunks"] == committed["chunks"] + ["000000000010_000000000015.npz"]
    again = TaskReplayBuffer(T, OBS, ACT, CAPACITY)
    ReplayFiles(tmp_path).restore(again, state)
    assert same_buffer(again, resumed)
