"""A run's budget per task: how much each iteration collects, the warm-up, the buffer capacity and the
gradient steps, from the flags and the loss family (docs/fidelity.md#iteration).

The flags count over all tasks; the two loss families split them differently. Per-task buffers (the DnC
family) keep ``--min_buffer_size`` and ``--replay_buffer_size`` per task, sample ``--buffer_batch_size``
per task and divide ``--gradient_steps_per_itr`` among the tasks; one shared buffer (the SAC family)
holds every count in total. The trainer, the replay buffers (learning/experiments.py) and the memory
estimate all read these numbers here. :class:`Schedule` holds the rest of what the training loop reads:
when it evaluates, records videos and keeps extra checkpoints.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from learning.training.config import Config


@dataclass(frozen=True)
class Budget:
    """The per-task numbers of one run."""

    num_tasks: int
    per_task_buffers: bool
    batch_size: int
    min_buffer_size: int
    replay_buffer_size: int
    buffer_batch_size: int
    gradient_steps_per_itr: int
    n_epochs: int
    steps_per_epoch: int

    @classmethod
    def of(cls, config: Config, num_tasks: int) -> Budget:
        return cls(num_tasks, config.per_task_buffers, config.batch_size, config.min_buffer_size,
                   config.replay_buffer_size, config.buffer_batch_size, config.gradient_steps_per_itr,
                   config.n_epochs, config.steps_per_epoch)

    @property
    def steps_per_task(self) -> int:
        """Environment steps of each task in one iteration after the warm-up: ``ceil(batch_size / T)``."""
        return math.ceil(self.batch_size / self.num_tasks)

    @property
    def warm_up_per_task(self) -> int:
        """Transitions each task's buffer needs before the first gradient step."""
        return self.min_buffer_size if self.per_task_buffers else math.ceil(self.min_buffer_size / self.num_tasks)

    def warming_up(self, buffer_size: int) -> bool:
        """Is a buffer holding ``buffer_size`` transitions per task still below ``--min_buffer_size``?"""
        if self.per_task_buffers:
            return buffer_size < self.min_buffer_size
        return buffer_size * self.num_tasks < self.min_buffer_size

    @property
    def capacity_per_task(self) -> int:
        """Transitions each task's buffer holds at most."""
        return self.replay_buffer_size if self.per_task_buffers else max(self.replay_buffer_size // self.num_tasks, 1)

    @property
    def gradient_steps(self) -> int:
        """Gradient steps per iteration (each one on every task's loss at once)."""
        if self.per_task_buffers:
            return max(self.gradient_steps_per_itr // self.num_tasks, 1)
        return self.gradient_steps_per_itr

    @property
    def minibatch_per_task(self) -> int:
        """Transitions of each task in one gradient step's minibatch."""
        if self.per_task_buffers:
            return self.buffer_batch_size
        return max(math.ceil(self.buffer_batch_size / self.num_tasks), 1)

    @property
    def reachable_transitions_per_task(self) -> int:
        """Transitions per task a buffer can hold by the end of the run: min(capacity, steps collected)."""
        collected = self.warm_up_per_task + self.n_epochs * self.steps_per_epoch * self.steps_per_task
        return min(self.capacity_per_task, collected)


@dataclass(frozen=True)
class Schedule:
    """When the training loop evaluates, records videos and keeps numbered checkpoints, and how it reports."""

    run_name: str
    """Shown on the progress bar."""
    evaluation_frequency: int
    """Evaluate every this many epochs (and at epoch 0)."""
    evaluation_episodes_per_task: int
    snapshot_gap: int
    """Above 1: also keep ``checkpoint_epoch{N}.pt`` every this many epochs."""
    video_frequency: int
    """Record evaluation videos every this many epochs; 0 or less never."""
    videos_per_task: int
    video_width: int
    video_height: int
    video_fps: int
    video_format: str
    logs_acting_matrix: bool
    """Does another task's policy act (QMP, CTPG)? Then the acting matrix is logged."""

    @classmethod
    def of(cls, config: Config, num_tasks: int) -> Schedule:
        return cls(config.run_name, config.evaluation_frequency, max(config.num_evaluation_episodes // num_tasks, 1),
                   config.snapshot_gap, config.vis_freq, max(config.vis_num // num_tasks, 1), config.vis_width,
                   config.vis_height, config.vis_fps, config.vis_format, config.shares_behaviour)

    def evaluates(self, epoch: int) -> bool:
        return epoch % self.evaluation_frequency == 0

    def records_videos(self, epoch: int) -> bool:
        return self.video_frequency > 0 and epoch % self.video_frequency == 0

    def keeps_numbered_checkpoint(self, epoch: int) -> bool:
        return self.snapshot_gap > 1 and epoch % self.snapshot_gap == 0
