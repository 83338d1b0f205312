"""Online data sharing between tasks: UDS and CDS (Yu et al. 2021, 2022; docs/fidelity.md#uds-and-cds), on the task
axis.

At every gradient step every receiving task i is offered ``B // (T - 1)`` transitions from each other
task's buffer (B = its own minibatch size). Their rewards are relabelled for task i:

* UDS (``--unsupervised True``): the environment's minimum reward ``TaskSet.min_reward``;
* CDS (``--unsupervised False``): task i's reward function on the stored (observation, action, next
  observation), raw.

An offered transition is shared when task i's first critic rates it above the threshold of task i's
own batch: ``theta = [-inf, sorted Q1_i(own batch)][floor(B * k)]`` with k = ``--sharing_quantile``
(k = 0 shares everything), compared strictly (Q1_i > theta). Task i then trains on its own batch plus
the shared transitions: the batch ``[T, B + offered]`` carries a weight (1 own, 1 shared, 0 not
shared) and every per-task loss is the weighted mean, i.e. the mean over own + shared.

CDS needs rewards the network input may hide (Jaco's hand position is zeroed). Instead of storing raw
observations and calling the reward function at every gradient step, :class:`RewardTableReplayBuffer`
evaluates every task's reward function once, when transitions are stored, and keeps the table
``[T (collected in), capacity, T (task rewarded)]``: T floats per transition and no reward-function
call on the hot path.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from learning.core.networks import TanhGaussianPolicy, TwinQFunction
from learning.core.replay_buffer import FIELDS, TaskReplayBuffer, Transitions
from learning.core.sac import MultiTaskSAC, SACSettings

RewardFunction = Callable[[np.ndarray, np.ndarray, np.ndarray, int], np.ndarray]
"""``reward_function(raw_obs, action, raw_next_obs, task_index)``: task_index's rewards of transitions."""


def sharing_threshold(own_q: torch.Tensor, quantile: float) -> torch.Tensor:
    """Per-task threshold ``[T]`` from the own batch's Q-values ``[T, B]`` (docs/fidelity.md#uds-and-cds, step 3).

    The value at position ``floor(B * quantile)`` of ``[-inf, ascending Q-values]``: quantile 0 gives
    -inf (share everything), 0.8 about the 80th percentile, 1 the maximum (share nothing).
    """
    batch = own_q.shape[-1]
    position = math.floor(batch * quantile)
    if position == 0:
        return torch.full(own_q.shape[:-1], -math.inf, device=own_q.device, dtype=own_q.dtype)
    return own_q.sort(dim=-1).values[..., position - 1]


class RewardTableReplayBuffer(TaskReplayBuffer):
    """Per-task buffers that also keep each transition's reward under every task's reward function (CDS).

    The extra field ``task_rewards [T, capacity, T]``: entry (j, n, i) is task i's reward of the n-th
    transition collected in task j. Needs transitions with raw observations (the sampler's
    ``keep_raw_observations``).
    """

    def __init__(self, num_tasks: int, obs_dim: int, action_dim: int, capacity_per_task: int,
                 reward_function: RewardFunction, device: torch.device | str = "cpu") -> None:
        super().__init__(num_tasks, obs_dim, action_dim, capacity_per_task, device,
                         extra_fields={"task_rewards": (num_tasks,)})
        self.reward_function = reward_function

    def _field_values(self, transitions: Transitions) -> dict[str, np.ndarray]:
        values = super()._field_values(transitions)
        if transitions.raw_observation is None or transitions.raw_next_observation is None:
            raise ValueError("CDS relabelling needs the raw observations; build the sampler with "
                             "keep_raw_observations=True")
        tasks, count = transitions.reward.shape
        raw = transitions.raw_observation.reshape(tasks * count, -1)
        raw_next = transitions.raw_next_observation.reshape(tasks * count, -1)
        actions = transitions.action.reshape(tasks * count, -1)
        table = [np.asarray(self.reward_function(raw, actions, raw_next, task), dtype=np.float32).reshape(tasks, count)
                 for task in range(self.num_tasks)]  # once per stored block, not per gradient step
        values["task_rewards"] = np.stack(table, axis=-1)
        return values


class DataSharingSAC(MultiTaskSAC):
    """Per-task SAC on batches augmented with other tasks' relabelled transitions (UDS or CDS)."""

    def __init__(self, policy: TanhGaussianPolicy, critic: TwinQFunction, settings: SACSettings,
                 buffer: TaskReplayBuffer, sharing_quantile: float, min_reward: float | None) -> None:
        """``min_reward`` None selects CDS: ``buffer`` must then be a :class:`RewardTableReplayBuffer`."""
        super().__init__(policy, critic, settings)
        if min_reward is None and not isinstance(buffer, RewardTableReplayBuffer):
            raise ValueError("CDS relabelling needs a RewardTableReplayBuffer")
        self.buffer, self.sharing_quantile, self.min_reward = buffer, sharing_quantile, min_reward

    def relabelled_rewards(self, offered: dict[str, torch.Tensor]) -> torch.Tensor:
        """Rewards ``[T, M]`` of the offered transitions for their receiving task (row)."""
        if self.min_reward is not None:
            return torch.full_like(offered["reward"], self.min_reward)
        return offered["task_rewards"].diagonal(dim1=0, dim2=2).transpose(0, 1)

    @torch.no_grad()
    def shared_batch(self, batch: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """The own batch ``[T, B]`` extended by the offered transitions, with the sharing weight, and
        the fraction ``[T]`` of offered transitions each task shares."""
        tasks, own = batch["reward"].shape
        if tasks == 1:  # nobody to share with
            return batch, torch.zeros(1, device=batch["reward"].device)
        offered = self.buffer.sample_others(max(own // (tasks - 1), 1))
        offered["reward"] = self.relabelled_rewards(offered)
        threshold = sharing_threshold(self.critic.q1(batch["observation"], batch["action"]), self.sharing_quantile)
        shared = (self.critic.q1(offered["observation"], offered["action"]) > threshold.unsqueeze(1)).float()
        combined = {name: torch.cat([batch[name], offered[name]], dim=1) for name in FIELDS}
        combined["weight"] = torch.cat([torch.ones_like(batch["reward"]), shared], dim=1)
        return combined, shared.mean(dim=1)

    def update(self, batch: dict[str, torch.Tensor], with_stats: bool = True) -> dict[str, torch.Tensor]:
        """One gradient step of every task on its own plus its shared transitions; logs SharedData, the
        fraction of the offered transitions that task shared at this step."""
        combined, shared_fraction = self.shared_batch(batch)
        stats = super().update(combined, with_stats)
        if with_stats:
            stats["SharedData"] = shared_fraction
        return stats
