"""Per-task replay buffers stored on the task axis (SPEC §6.4).

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

    @property
    def steps_per_task(self) -> int:
        return self.reward.shape[1]


class TaskReplayBuffer:
    """T ring buffers of ``capacity_per_task`` transitions; uniform sampling with replacement."""

    def __init__(self, num_tasks: int, obs_dim: int, action_dim: int, capacity_per_task: int,
                 device: torch.device | str = "cpu", initial_capacity: int = 4096) -> None:
        self.num_tasks, self.obs_dim, self.action_dim = num_tasks, obs_dim, action_dim
        self.capacity = int(capacity_per_task)
        self.device = torch.device(device)
        self.size = 0
        self.position = 0
        self._allocated = 0
        self._data: dict[str, torch.Tensor] = {}
        self._grow(min(self.capacity, initial_capacity))

    def _shape(self, name: str, length: int) -> tuple[int, ...]:
        base = (self.num_tasks, length)
        if name in ("observation", "next_observation"):
            return base + (self.obs_dim,)
        if name == "action":
            return base + (self.action_dim,)
        return base

    def _grow(self, length: int) -> None:
        length = min(self.capacity, length)
        if length <= self._allocated:
            return
        for name in FIELDS:
            new = torch.zeros(self._shape(name, length), dtype=torch.float32, device=self.device)
            if self._allocated:
                new[:, : self._allocated] = self._data[name]
            self._data[name] = new
        self._allocated = length

    def add(self, transitions: Transitions) -> None:
        """Append ``n`` transitions to every task's buffer (overwriting the oldest when full)."""
        count = transitions.steps_per_task
        if count == 0:
            return
        if transitions.reward.shape[0] != self.num_tasks:
            raise ValueError(f"expected {self.num_tasks} task rows, got {transitions.reward.shape[0]}")
        if count > self.capacity:  # only the newest `capacity` transitions survive
            transitions = Transitions(*(getattr(transitions, name)[:, -self.capacity:] for name in FIELDS))
            count = self.capacity
        if self.size < self.capacity:
            needed = self.size + count
            self._grow(max(needed, 2 * self._allocated))
        indices = (self.position + np.arange(count)) % self.capacity
        index_tensor = torch.as_tensor(indices, device=self.device)
        for name in FIELDS:
            values = torch.as_tensor(np.asarray(getattr(transitions, name), dtype=np.float32), device=self.device)
            self._data[name][:, index_tensor] = values
        self.position = int((self.position + count) % self.capacity)
        self.size = min(self.capacity, self.size + count)

    def sample(self, batch_per_task: int, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """``batch_per_task`` transitions from each task: a dict of tensors ``[T, batch, ...]``."""
        if self.size == 0:
            raise RuntimeError("cannot sample from an empty replay buffer")
        indices = torch.randint(0, self.size, (self.num_tasks, batch_per_task), device=self.device, generator=generator)
        rows = torch.arange(self.num_tasks, device=self.device).unsqueeze(1)
        return {name: self._data[name][rows, indices] for name in FIELDS}

    def sample_tasks(self, tasks: torch.Tensor, batch_per_task: int) -> dict[str, torch.Tensor]:
        """``batch_per_task`` transitions from each listed task buffer: ``[len(tasks), batch, ...]``."""
        indices = torch.randint(0, self.size, (len(tasks), batch_per_task), device=self.device)
        rows = tasks.to(self.device).unsqueeze(1)
        return {name: self._data[name][rows, indices] for name in FIELDS}

    def state_dict(self) -> dict:
        """The filled part of the buffers (CPU tensors), for checkpoints."""
        return {"size": self.size, "position": self.position, "capacity": self.capacity,
                **{name: self._data[name][:, : self.size].cpu() for name in FIELDS}}

    def load_state_dict(self, state: dict) -> None:
        if state["capacity"] != self.capacity:
            raise ValueError(f"replay capacity differs: checkpoint {state['capacity']}, run {self.capacity}")
        size = int(state["size"])
        self._grow(max(size, 1))
        for name in FIELDS:
            if state[name].shape[0] != self.num_tasks or tuple(state[name].shape[2:]) != self._shape(name, 0)[2:]:
                raise ValueError(f"replay buffer field {name!r} has shape {tuple(state[name].shape)}, "
                                 f"which does not fit this run")
            self._data[name][:, :size] = state[name].to(self.device)
        self.size, self.position = size, int(state["position"])
