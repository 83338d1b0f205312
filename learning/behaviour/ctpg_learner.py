"""CTPG's learner: the guides' discrete soft actor-critic over K-step segments (official ``mtrl/agent/guide_sac.py``).

The control SAC update is untouched; this learner trains only the guides, from segments of the
same replay buffers. Per guide update (every ``guide_update_freq`` environment steps per task):

1. sample, per task, segments that start at a guide decision (``SegmentStore``, aligned with the
   TaskReplayBuffer slot for slot: guide action, segment start, segment end);
2. hindsight (optional): relabel each segment's guide action as ``argmax_j sum_t log pi_j(a_t|s_t)``
   over the segment's stored actions under the current candidate policies;
3. guide critic on the SMDP target ``sum_{t<L} g^t r_t + g^L (1 - terminal) V^g(s_L)`` with
   ``V^g(s) = sum_j Pi^g(j|s) [min Q^g_targ(s, j) - alpha^g log Pi^g(j|s)]`` and L <= K the segment
   length (a segment ends after K steps or with its episode);
4. comparable critic on ``sum_{t<L} g^t (r_t - alpha_i log pi_i(a~_t|s_t)) + g^L (1 - terminal)
   sum_j Pi^g(j|s_L) min Q^comp_targ(s_L, j)`` with ``a~_t ~ pi_i`` (the scale of V_i);
5. guide actor ``sum_j Pi^g(j|s) [alpha^g log Pi^g(j|s) - min Q^g(s, j)]`` and temperature
   ``alpha^g (H - 0.98 log C)``, alpha^g clamped to at most 1; Polyak targets.

Losses are per-task means over valid segments, summed over the tasks the block gate guides.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from learning.behaviour.ctpg import CTPGBehaviour, CTPGOptions, GuideNetworks, block_gate
from learning.core.networks import tanh_gaussian_log_prob
from learning.core.replay_buffer import TaskReplayBuffer
from learning.core.sac import MultiTaskSAC, make_adam

ACTION_BOUND = 1.0 - 1e-6


class SegmentStore:
    """Per transition of the TaskReplayBuffer, in the same ring slots: the acting candidate (the
    stored guide action), whether a guide decision started a segment there, and whether the segment
    ended there. Grows by doubling like the replay buffer."""

    def __init__(self, num_tasks: int, capacity: int, device: torch.device, initial_capacity: int = 4096) -> None:
        self.num_tasks, self.capacity, self.device = num_tasks, int(capacity), torch.device(device)
        self.size = self.position = self._allocated = 0
        self.guide_action = torch.zeros(num_tasks, 0, dtype=torch.int16, device=self.device)
        self.segment_start = torch.zeros(num_tasks, 0, dtype=torch.bool, device=self.device)
        self.segment_end = torch.zeros(num_tasks, 0, dtype=torch.bool, device=self.device)
        self._grow(min(self.capacity, initial_capacity))

    def _grow(self, length: int) -> None:
        length = min(self.capacity, length)
        if length <= self._allocated:
            return
        for name in ("guide_action", "segment_start", "segment_end"):
            old = getattr(self, name)
            new = torch.zeros(self.num_tasks, length, dtype=old.dtype, device=self.device)
            new[:, : old.shape[1]] = old
            setattr(self, name, new)
        self._allocated = length

    def add(self, log: dict[str, np.ndarray]) -> None:
        """Append ``n`` steps ``[T, n]`` (the same ring arithmetic as TaskReplayBuffer.add)."""
        count = log["guide_action"].shape[1]
        if count == 0:
            return
        values = {name: np.asarray(log[name]) for name in ("guide_action", "segment_start", "segment_end")}
        if count > self.capacity:
            values = {name: value[:, -self.capacity:] for name, value in values.items()}
            count = self.capacity
        if self.size < self.capacity:
            self._grow(max(self.size + count, 2 * self._allocated))
        index = torch.as_tensor((self.position + np.arange(count)) % self.capacity, device=self.device)
        for name, value in values.items():
            target = getattr(self, name)
            target[:, index] = torch.as_tensor(value, device=self.device).to(target.dtype)
        self.position = int((self.position + count) % self.capacity)
        self.size = min(self.capacity, self.size + count)

    def state_dict(self) -> dict:
        return {"size": self.size, "position": self.position, "capacity": self.capacity,
                **{name: getattr(self, name)[:, : self.size].clone().cpu()
                   for name in ("guide_action", "segment_start", "segment_end")}}

    def load_state_dict(self, state: dict) -> None:
        if state["capacity"] != self.capacity:
            raise ValueError(f"segment store capacity differs: checkpoint {state['capacity']}, run {self.capacity}")
        size = int(state["size"])
        self._grow(max(size, 1))
        for name in ("guide_action", "segment_start", "segment_end"):
            getattr(self, name)[:, :size] = state[name].to(self.device)
        self.size, self.position = size, int(state["position"])


@dataclass
class SegmentBatch:
    """``B`` segments per task, padded to K steps: tensors ``[T, B, K, ...]`` and per segment ``[T, B]``."""

    observation: torch.Tensor
    action: torch.Tensor
    reward: torch.Tensor
    alive: torch.Tensor
    """``[T, B, K]`` float: step t belongs to the segment."""
    length: torch.Tensor
    """``[T, B]`` long: L, the number of steps in the segment (1..K)."""
    last_next_observation: torch.Tensor
    """``[T, B, obs]``: s_L, where the target bootstraps."""
    last_terminal: torch.Tensor
    guide_action: torch.Tensor
    """``[T, B]`` long: the stored (or relabelled) candidate."""
    valid: torch.Tensor
    """``[T, B]`` float: a complete segment (the open segment at the write head is not)."""


def sample_segment_starts(store: SegmentStore, count: int, oversample: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` segment starts per task, uniform over the stored starts: draw ``count * oversample``
    slots, keep starts first in random order. Returns slots ``[T, count]`` and whether each is a start."""
    tasks = store.num_tasks
    candidates = torch.randint(0, store.size, (tasks, count * oversample), device=store.device)
    rows = torch.arange(tasks, device=store.device).unsqueeze(1)
    is_start = store.segment_start[rows, candidates]
    key = is_start.float() + 0.5 * torch.rand(candidates.shape, device=store.device)
    chosen = key.topk(count, dim=1).indices
    return candidates.gather(1, chosen), is_start.gather(1, chosen)


def gather_segments(store: SegmentStore, buffer: TaskReplayBuffer, starts: torch.Tensor, is_start: torch.Tensor,
                    steps: int) -> SegmentBatch:
    """The K-step windows from ``starts [T, B]``, cut at each segment's end."""
    tasks, count = starts.shape
    offsets = torch.arange(steps, device=starts.device)
    available = (store.position - starts - 1) % store.capacity + 1  # stored steps from the start onwards
    in_range = offsets < available.unsqueeze(-1)
    # Slots past the write head are read as the start itself (then masked): below capacity they may lie
    # beyond the allocated storage.
    slots = torch.where(in_range, (starts.unsqueeze(-1) + offsets) % store.capacity, starts.unsqueeze(-1))  # [T, B, K]
    rows = torch.arange(tasks, device=starts.device).view(tasks, 1, 1)
    ends = store.segment_end[rows, slots] & in_range
    ends_before = ends.long().cumsum(-1) - ends.long()
    alive = (ends_before == 0) & in_range
    complete = ends.any(dim=-1)
    data = buffer.gather(slots)
    length = alive.sum(dim=-1)
    last = (length - 1).clamp_min(0)
    pick = last.view(tasks, count, 1)
    last_next = data["next_observation"].gather(2, pick.unsqueeze(-1).expand(
        tasks, count, 1, data["next_observation"].shape[-1])).squeeze(2)
    return SegmentBatch(
        observation=data["observation"], action=data["action"], reward=data["reward"], alive=alive.float(),
        length=length, last_next_observation=last_next,
        last_terminal=data["terminal"].gather(2, pick).squeeze(2),
        guide_action=store.guide_action[rows[..., 0], starts].long(),
        valid=(is_start & complete).float())


def k_step_return(reward: torch.Tensor, alive: torch.Tensor, discount: float) -> torch.Tensor:
    """``sum_t alive_t g^t r_t`` over the last axis: ``[..., K] -> [...]``."""
    powers = discount ** torch.arange(reward.shape[-1], device=reward.device, dtype=reward.dtype)
    return (reward * alive * powers).sum(dim=-1)


def smdp_target(reward: torch.Tensor, alive: torch.Tensor, length: torch.Tensor, terminal: torch.Tensor,
                bootstrap: torch.Tensor, discount: float) -> torch.Tensor:
    """``sum_{t<L} g^t r_t + g^L (1 - terminal) bootstrap``; ``reward, alive [T, B, K]``, rest ``[T, B]``."""
    return k_step_return(reward, alive, discount) + discount ** length.to(reward.dtype) * (1.0 - terminal) * bootstrap


def soft_state_value(logits: torch.Tensor, q: torch.Tensor, alpha: torch.Tensor | None) -> torch.Tensor:
    """``sum_j Pi(j|s) [q_j - alpha log Pi(j|s)]`` (no entropy term when ``alpha`` is None). ``[T, B, C] -> [T, B]``."""
    log_probs = F.log_softmax(logits, dim=-1)
    inside = q if alpha is None else q - alpha.view(-1, 1, 1) * log_probs
    return (log_probs.exp() * inside).sum(dim=-1)


def discrete_sac_actor_losses(logits: torch.Tensor, q: torch.Tensor, log_alpha: torch.Tensor, target_entropy: float
                              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-sample guide actor loss ``sum_j p_j (alpha log p_j - q_j)``, temperature loss
    ``alpha (H - target)`` (official form) and the entropy H, each ``[T, B]``. ``q`` is a constant."""
    log_probs = F.log_softmax(logits, dim=-1)
    probs = log_probs.exp()
    alpha = log_alpha.exp().view(-1, 1, 1)
    actor = (probs * (alpha.detach() * log_probs - q.detach())).sum(dim=-1)
    entropy = -(probs * log_probs).sum(dim=-1)
    alpha_loss = log_alpha.exp().view(-1, 1) * (entropy - target_entropy).detach()
    return actor, alpha_loss, entropy


def masked_task_means(values: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Per-task weighted means ``[T]`` of ``values [T, B]``; 0 for a task without weight."""
    return (values * weight).sum(dim=-1) / weight.sum(dim=-1).clamp_min(1.0)


def candidate_log_likelihoods(policy, guide_means: torch.Tensor | None, guide_stds: torch.Tensor | None,
                              observation: torch.Tensor, action: torch.Tensor, alive: torch.Tensor) -> torch.Tensor:
    """``sum_t alive_t log pi_j(a_t | s_t)`` of every candidate j: ``[T, B, K, .] -> [C, T, B]``."""
    tasks, count, steps, obs_dim = observation.shape
    rows = observation.reshape(-1, obs_dim)
    stored = action.reshape(-1, action.shape[-1]).clamp(-ACTION_BOUND, ACTION_BOUND)
    mean, log_std = policy.all_policies(rows)  # [T (policy), N, A]
    pre_tanh = torch.atanh(stored).unsqueeze(0).expand_as(mean)
    log_prob = tanh_gaussian_log_prob(mean, log_std, pre_tanh, stored.unsqueeze(0).expand_as(mean))
    if guide_means is not None and guide_stds is not None:
        z = (stored.unsqueeze(0) - guide_means.unsqueeze(1)) / guide_stds.view(-1, 1, 1)
        fixed = (-0.5 * z.pow(2) - torch.log(guide_stds).view(-1, 1, 1) - 0.5 * math.log(2 * math.pi)).sum(-1)
        log_prob = torch.cat([log_prob, fixed], dim=0)
    log_prob = log_prob.reshape(-1, tasks, count, steps)
    return (log_prob * alive.unsqueeze(0)).sum(dim=-1)


class CTPGLearner:
    """Stores the guide data of collected steps, trains the guides, refreshes the block gate."""

    def __init__(self, sac: MultiTaskSAC, guide: GuideNetworks, behaviour: CTPGBehaviour, buffer: TaskReplayBuffer,
                 options: CTPGOptions, discount: float, reward_scale: float) -> None:
        self.sac, self.guide, self.behaviour, self.buffer, self.options = sac, guide, behaviour, buffer, options
        self.discount, self.reward_scale = discount, reward_scale
        self.num_tasks = guide.num_tasks
        self.store = SegmentStore(self.num_tasks, buffer.capacity, buffer.device)
        self.target_entropy = options.target_entropy_ratio * math.log(guide.num_candidates)
        lr = options.guide_lr
        self.actor_optimizer = make_adam(guide.actor.parameters(), lr)
        self.critic_optimizer = make_adam(guide.critic.parameters(), lr)
        self.comparable_optimizer = make_adam(guide.comparable.parameters(), lr)
        self.alpha_optimizer = make_adam([guide.log_alpha], lr)
        self.pending_steps = 0
        self.updates = 0
        self.block_periods = 0
        """Completed periods of ``block_gate_freq`` environment steps per task at the last refresh."""

    # ------------------------------------------------------------------------------ the trainer's hooks
    def store_collected(self) -> None:
        """Move the behaviour's log of the steps just added to the replay buffer into the store."""
        self.store.add(self.behaviour.drain_log())
        if (self.store.size, self.store.position) != (self.buffer.size, self.buffer.position):
            raise RuntimeError("CTPG's segment store is out of step with the replay buffer")

    def train(self, steps_per_task: int, batch_per_task: int | None) -> dict[str, torch.Tensor]:
        """Guide updates owed for ``steps_per_task`` new steps (0 for the warm-up collection; none while
        ``batch_per_task`` is None), each on ``batch_per_task`` segments per task (the official B / T);
        then the block gate's refresh when the run passed a multiple of ``block_gate_freq`` environment
        steps per task. Returns the statistics ``[T]``: gate rates of the steps since the last call and
        the last update's losses."""
        stats: dict[str, torch.Tensor] = {}
        self.behaviour.trained_steps += steps_per_task
        if batch_per_task is not None:
            self.pending_steps += steps_per_task
            updates, self.pending_steps = divmod(self.pending_steps, self.options.guide_update_freq)
            for _ in range(updates):
                stats = self.update(max(batch_per_task, 1))
        periods = self.behaviour.env_steps // self.options.block_gate_freq
        if periods > self.block_periods:
            self.block_periods = periods
            self.refresh_block_gate()
        stats.update(self.gate_statistics())
        return stats

    def refresh_block_gate(self) -> None:
        """Block the tasks whose control log alpha exceeds the mean (effective at their next episodes)."""
        if self.options.block_gate:
            log_alpha = self.sac.log_alpha.detach().expand(self.num_tasks)
            self.behaviour.set_block(block_gate(log_alpha).cpu().numpy())

    def gate_statistics(self) -> dict[str, torch.Tensor]:
        counts = self.behaviour.drain_gate_counts()
        filtered = counts["filtered_decisions"]
        as_tensor = lambda values: torch.as_tensor(values, dtype=torch.float32)  # noqa: E731
        return {
            "FilterPassRate": as_tensor(np.where(filtered > 0, counts["passed"] / np.maximum(filtered, 1), 1.0)),
            "FilterFallbackRate": as_tensor(counts["fallback"] / np.maximum(filtered, 1)),
            "BlockedDecisionRate": as_tensor(counts["blocked_decisions"] / np.maximum(counts["decisions"], 1)),
            "GuideBlocked": as_tensor(self.behaviour.blocked_next.astype(np.float32)),
        }

    # ------------------------------------------------------------------------------ one guide update
    def sample(self, segments: int) -> SegmentBatch:
        starts, is_start = sample_segment_starts(self.store, segments, oversample=4 * self.options.guide_step)
        batch = gather_segments(self.store, self.buffer, starts, is_start, self.options.guide_step)
        batch.reward = batch.reward * self.reward_scale
        return batch

    @torch.no_grad()
    def hindsight(self, batch: SegmentBatch) -> torch.Tensor:
        """The candidate ``[T, B]`` whose current policy best explains each segment's actions."""
        behaviour = self.behaviour
        scores = candidate_log_likelihoods(self.sac.policy, behaviour.guide_means, behaviour.guide_stds,
                                           batch.observation, batch.action, batch.alive)
        return scores.argmax(dim=0)

    @torch.no_grad()
    def targets(self, batch: SegmentBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """The SMDP targets ``[T, B]`` of the guide critic (bootstrapping ``V^g`` with the target guide
        critic and the guide's entropy term) and of the comparable critic (rewards less the control
        entropy term ``alpha_i log pi_i(a~_t|s_t)``, ``a~_t ~ pi_i``; no guide entropy term)."""
        guide = self.guide
        next_logits = guide.logits(batch.last_next_observation)
        target_q = guide.target_critic(batch.last_next_observation).min(dim=0).values
        guide_target = smdp_target(batch.reward, batch.alive, batch.length, batch.last_terminal,
                                   soft_state_value(next_logits, target_q, guide.alpha()), self.discount)
        tasks, count, steps, obs_dim = batch.observation.shape
        _, own_log_prob, _, _ = self.sac.policy.sample(batch.observation.reshape(tasks, count * steps, obs_dim))
        entropy_reward = batch.reward - self.sac.alpha().view(-1, 1, 1) * own_log_prob.reshape(tasks, count, steps)
        target_comparable = guide.target_comparable(batch.last_next_observation).min(dim=0).values
        comparable_target = smdp_target(entropy_reward, batch.alive, batch.length, batch.last_terminal,
                                        soft_state_value(next_logits, target_comparable, None), self.discount)
        return guide_target, comparable_target

    def update(self, segments: int) -> dict[str, torch.Tensor]:
        """One guide update on ``segments`` segments per task; statistics ``[T]``."""
        guide, options = self.guide, self.options
        batch = self.sample(segments)
        stored = batch.guide_action
        if options.guide_hindsight:
            batch.guide_action = self.hindsight(batch)
        weight = batch.valid * torch.as_tensor(~self.behaviour.blocked_next, dtype=torch.float32,
                                               device=batch.valid.device).unsqueeze(1)
        start = batch.observation[:, :, 0]
        chosen = batch.guide_action.unsqueeze(-1)
        guide_target, comparable_target = self.targets(batch)
        q = guide.critic(start).gather(-1, chosen.unsqueeze(0).expand(2, *chosen.shape)).squeeze(-1)
        critic_errors = (q - guide_target.unsqueeze(0)).pow(2).sum(dim=0)
        critic_loss = masked_task_means(critic_errors, weight)
        self._step(self.critic_optimizer, critic_loss.sum(), guide.critic.parameters())
        comparable = guide.comparable(start).gather(-1, chosen.unsqueeze(0).expand(2, *chosen.shape)).squeeze(-1)
        comparable_errors = (comparable - comparable_target.unsqueeze(0)).pow(2).sum(dim=0)
        comparable_loss = masked_task_means(comparable_errors, weight)
        self._step(self.comparable_optimizer, comparable_loss.sum(), guide.comparable.parameters())

        with torch.no_grad():
            current_q = guide.critic(start).min(dim=0).values
        actor, alpha_loss, entropy = discrete_sac_actor_losses(guide.logits(start), current_q, guide.log_alpha,
                                                               self.target_entropy)
        actor_loss, temperature_loss = masked_task_means(actor, weight), masked_task_means(alpha_loss, weight)
        self._step(self.actor_optimizer, actor_loss.sum(), guide.actor.parameters())
        self._step(self.alpha_optimizer, temperature_loss.sum(), [guide.log_alpha])
        with torch.no_grad():
            guide.log_alpha.clamp_(max=math.log(options.max_alpha))
            torch._foreach_lerp_(list(guide.target_critic.parameters()), list(guide.critic.parameters()), options.tau)
            torch._foreach_lerp_(list(guide.target_comparable.parameters()), list(guide.comparable.parameters()),
                                 options.tau)
        self.updates += 1
        valid = batch.valid
        return {
            "GuideCriticLoss": critic_loss.detach(), "GuideComparableLoss": comparable_loss.detach(),
            "GuideActorLoss": actor_loss.detach(), "GuideAlphaLoss": temperature_loss.detach(),
            "GuideTemperature": guide.alpha().detach().clone(),
            "GuideEntropy": masked_task_means(entropy.detach(), valid),
            "GuideQ": masked_task_means(q.detach().mean(dim=0), valid),
            "GuideSegmentLength": masked_task_means(batch.length.float(), valid),
            "HindsightRelabelRate": masked_task_means((batch.guide_action != stored).float(), valid),
        }

    def _step(self, optimizer: torch.optim.Optimizer, loss: torch.Tensor, parameters) -> None:
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(parameters), self.options.grad_clip)
        optimizer.step()

    # ------------------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict:
        return {"guide": self.guide.state_dict(), "store": self.store.state_dict(),
                "optimizers": {name: getattr(self, f"{name}_optimizer").state_dict()
                               for name in ("actor", "critic", "comparable", "alpha")},
                "pending_steps": self.pending_steps, "updates": self.updates, "block_periods": self.block_periods}

    def load_state_dict(self, state: dict) -> None:
        self.guide.load_state_dict(state["guide"])
        self.store.load_state_dict(state["store"])
        for name, optimizer_state in state["optimizers"].items():
            getattr(self, f"{name}_optimizer").load_state_dict(optimizer_state)
        self.pending_steps, self.updates = int(state["pending_steps"]), int(state["updates"])
        self.block_periods = int(state["block_periods"])
