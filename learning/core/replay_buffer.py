"""Per-task replay buffers stored on the task axis (docs/fidelity.md#replay-buffers).

All tasks' ring buffers live in tensors ``[T, capacity, ...]`` on the training device. The sampler
steps all tasks in lockstep, so every task adds the same number of transitions and one size and one
write position serve all tasks. Memory grows by doubling up to the capacity instead of being
allocated up front (Meta-World MT50 would otherwise reserve 50 x 1e6 transitions at start).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

FIELDS = ("observation", "action", "reward", "next_observation", "terminal")


@dataclass
class Transitions:
    """A block of transitions, task axis first: arrays ``[T, n, ...]`` (reward, terminal ``[T, n]``)."""

    observation: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    next_observation: np.ndarray
    terminal: np.ndarray
    raw_observation: np.ndarray | None = None
    """The environments' raw observations ``[T, n, raw]`` of ``observation``, when the sampler keeps
    them (CDS relabelling reads slots the networks do not see)."""
    raw_next_observation: np.ndarray | None = None
    """The raw observations ``[T, n, raw]`` of ``next_observation``, kept with ``raw_observation``."""

    @property
    def steps_per_task(self) -> int:
        return self.reward.shape[1]


class TaskReplayBuffer:
    """T ring buffers of ``capacity_per_task`` transitions; uniform sampling with replacement.

    ``extra_fields`` maps the name of an additional per-transition field to its trailing shape;
    subclasses fill it in :meth:`_field_values` (CDS stores every task's reward of each transition).
    """

    def __init__(self, num_tasks: int, obs_dim: int, action_dim: int, capacity_per_task: int,
                 device: torch.device | str = "cpu", initial_capacity: int = 4096,
                 extra_fields: dict[str, tuple[int, ...]] | None = None) -> None:
        self.num_tasks, self.obs_dim, self.action_dim = num_tasks, obs_dim, action_dim
        self.capacity = int(capacity_per_task)
        self.device = torch.device(device)
        self.fields: dict[str, tuple[int, ...]] = {
            "observation": (obs_dim,), "action": (action_dim,), "reward": (), "next_observation": (obs_dim,),
            "terminal": (), **(extra_fields or {})}
        self.size = 0
        self.position = 0
        self.total_added = 0
        """The ring's write counter: transitions stored per task so far (slot = counter mod capacity);
        checkpoints append what is new since the last one."""
        self._allocated = 0
        self._data: dict[str, torch.Tensor] = {}
        self._grow(min(self.capacity, initial_capacity))

    def _shape(self, name: str, length: int) -> tuple[int, ...]:
        return (self.num_tasks, length, *self.fields[name])

    def _grow(self, length: int) -> None:
        length = min(self.capacity, length)
        if length <= self._allocated:
            return
        for name in self.fields:
            new = torch.zeros(self._shape(name, length), dtype=torch.float32, device=self.device)
            if self._allocated:
                new[:, : self._allocated] = self._data[name]
            self._data[name] = new
        self._allocated = length

    def _field_values(self, transitions: Transitions) -> dict[str, np.ndarray]:
        """The arrays ``[T, n, ...]`` stored for a block of transitions, one per field."""
        return {name: getattr(transitions, name) for name in FIELDS}

    def add(self, transitions: Transitions) -> None:
        """Append ``n`` transitions to every task's buffer (overwriting the oldest when full)."""
        count = transitions.steps_per_task
        if count == 0:
            return
        if transitions.reward.shape[0] != self.num_tasks:
            raise ValueError(f"expected {self.num_tasks} task rows, got {transitions.reward.shape[0]}")
        self.write_at(self.total_added, self._field_values(transitions))

    def write_at(self, first: int, values: dict[str, np.ndarray]) -> None:
        """Store field arrays ``[T, n, ...]`` as transitions number ``first .. first + n - 1`` of every
        task (slot = number mod capacity); they become the newest."""
        count = next(iter(values.values())).shape[1]
        if count > self.capacity:  # only the newest `capacity` transitions survive, written from `first` on
            values = {name: value[:, -self.capacity:] for name, value in values.items()}
            count = self.capacity
        end = first + count
        if self.size < self.capacity:
            self._grow(max(min(end, self.capacity), 2 * self._allocated))
        indices = (first + np.arange(count)) % self.capacity
        index_tensor = torch.as_tensor(indices, device=self.device)
        for name, value in values.items():
            self._data[name][:, index_tensor] = torch.as_tensor(np.asarray(value, dtype=np.float32), device=self.device)
        self.total_added = end
        self.position = int(end % self.capacity)
        self.size = min(self.capacity, end)

    def newest(self, count: int) -> dict[str, np.ndarray]:
        """The ``count`` newest transitions of every task in the order they were added: CPU arrays
        ``[T, count, ...]``."""
        count = min(count, self.size)
        indices = torch.as_tensor((self.total_added - count + np.arange(count)) % self.capacity, device=self.device)
        return {name: data[:, indices].cpu().numpy() for name, data in self._data.items()}

    def sample(self, batch_per_task: int, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """``batch_per_task`` transitions from each task: a dict of tensors ``[T, batch, ...]``."""
        if self.size == 0:
            raise RuntimeError("cannot sample from an empty replay buffer")
        indices = torch.randint(0, self.size, (self.num_tasks, batch_per_task), device=self.device, generator=generator)
        rows = torch.arange(self.num_tasks, device=self.device).unsqueeze(1)
        return {name: data[rows, indices] for name, data in self._data.items()}

    def gather(self, slots: torch.Tensor) -> dict[str, torch.Tensor]:
        """The transitions in ring ``slots [T, ...]`` (row t indexes task t's buffer): tensors ``[T, ..., field]``."""
        rows = torch.arange(self.num_tasks, device=self.device).view(-1, *([1] * (slots.dim() - 1)))
        return {name: data[rows, slots] for name, data in self._data.items()}

    def sample_tasks(self, tasks: torch.Tensor, batch_per_task: int) -> dict[str, torch.Tensor]:
        """``batch_per_task`` transitions from each listed task buffer: ``[len(tasks), batch, ...]``."""
        indices = torch.randint(0, self.size, (len(tasks), batch_per_task), device=self.device)
        rows = tasks.to(self.device).unsqueeze(1)
        return {name: data[rows, indices] for name, data in self._data.items()}

    def sample_others(self, per_source: int) -> dict[str, torch.Tensor]:
        """For every receiving task i, ``per_source`` transitions from each other task's buffer.

        Returns tensors ``[T, (T - 1) * per_source, ...]`` (row i holds no transition of task i) and
        ``"source_task" [T, (T - 1) * per_source]``, the task each transition was collected in.
        """
        if self.size == 0:
            raise RuntimeError("cannot sample from an empty replay buffer")
        tasks = self.num_tasks
        slots = torch.arange(tasks - 1, device=self.device).unsqueeze(0)
        receivers = torch.arange(tasks, device=self.device).unsqueeze(1)
        sources = slots + (slots >= receivers).long()  # [T, T - 1]: every task but the receiver
        indices = torch.randint(0, self.size, (tasks, tasks - 1, per_source), device=self.device)
        rows = sources.unsqueeze(-1).expand_as(indices)
        count = (tasks - 1) * per_source
        batch = {name: data[rows, indices].reshape(tasks, count, *self.fields[name])
                 for name, data in self._data.items()}
        batch["source_task"] = rows.reshape(tasks, count)
        return batch

    def state_dict(self) -> dict:
        """The filled part of the buffers (CPU tensors), for checkpoints."""
        def filled(tensor: torch.Tensor) -> torch.Tensor:
            # A slice would be saved with its whole storage: copy unless the buffer is full.
            part = tensor[:, : self.size]
            return part.cpu() if self.size == self._allocated else part.clone().cpu()

        return {"size": self.size, "position": self.position, "capacity": self.capacity,
                "total_added": self.total_added, **{name: filled(self._data[name]) for name in self.fields}}

    def load_state_dict(self, state: dict) -> None:
        if state["capacity"] != self.capacity:
            raise ValueError(f"replay capacity differs: checkpoint {state['capacity']}, run {self.capacity}")
        size = int(state["size"])
        self._grow(max(size, 1))
        for name in self.fields:
            if state[name].shape[0] != self.num_tasks or tuple(state[name].shape[2:]) != self.fields[name]:
                raise ValueError(f"replay buffer field {name!r} has shape {tuple(state[name].shape)}, "
                                 f"which does not fit this run")
            self._data[name][:, :size] = state[name].to(self.device)
        self.size, self.position = size, int(state["position"])
        self.total_added = int(state.get("total_added", size))
