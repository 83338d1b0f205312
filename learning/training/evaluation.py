"""Deterministic evaluation on separate evaluation environments (SPEC §10.1) and episode metrics.

Each task runs ``episodes_per_task`` episodes (= num_evaluation_episodes // T, at least 1) on its own
evaluation instance; all tasks step together and the behaviour policy executes mean actions.
Metric names follow the original (SPEC §10.2): ``{prefix}AverageReturn``, ``{prefix}Task{k}/SuccessRate``...
"""

from __future__ import annotations

import re
from typing import Callable, Iterable

import numpy as np
import torch
from tqdm import tqdm

from environments.base import TaskSet, get_env_state, set_env_state
from learning.training.logger import is_terminal
from learning.training.sampler import EpisodeRecord, EpisodeTracker

# Env-info keys whose metric name is not their CamelCase (SPEC §10.2).
METRIC_NAMES = {"x_velocity": "Velocity"}


def metric_name(info_key: str) -> str:
    """``stages_completed`` -> ``StagesCompleted``; ``x_velocity`` -> ``Velocity``."""
    return METRIC_NAMES.get(info_key, "".join(part.capitalize() for part in re.split(r"[_\s]+", info_key) if part))


def summarize_episodes(episodes: Iterable[EpisodeRecord], num_tasks: int, prefix: str,
                       metric_keys: Iterable[str] = ()) -> dict[str, float]:
    """Aggregate finished episodes into the original's metrics, overall and per task."""
    episodes = list(episodes)
    metric_keys = list(metric_keys)
    out: dict[str, float] = {}

    def fill(target_prefix: str, group: list[EpisodeRecord]) -> None:
        out[f"{target_prefix}NumEpisodes"] = float(len(group))
        if not group:
            return
        returns = np.array([e.total_return for e in group])
        out[f"{target_prefix}AverageReturn"] = float(returns.mean())
        out[f"{target_prefix}StdReturn"] = float(returns.std())
        out[f"{target_prefix}MaxReturn"] = float(returns.max())
        out[f"{target_prefix}MinReturn"] = float(returns.min())
        out[f"{target_prefix}AverageDiscountedReturn"] = float(np.mean([e.discounted_return for e in group]))
        out[f"{target_prefix}AverageEpisodeLength"] = float(np.mean([e.length for e in group]))
        out[f"{target_prefix}SuccessRate"] = float(np.mean([e.success for e in group]))
        out[f"{target_prefix}TerminationRate"] = float(np.mean([e.terminated for e in group]))
        for key in metric_keys:
            values = [e.metrics[key] for e in group if key in e.metrics]
            if values:
                out[f"{target_prefix}{metric_name(key)}"] = float(np.mean(values))

    fill(prefix, episodes)
    for task in range(num_tasks):
        fill(f"{prefix}Task{task}/", [e for e in episodes if e.task == task])
    return out


class Evaluator:
    """Runs deterministic evaluation episodes of every task on separate evaluation environments."""

    def __init__(self, task_set: TaskSet, network_input: Callable[[np.ndarray], np.ndarray],
                 device: torch.device, seed: int, discount: float) -> None:
        self.task_set, self.network_input, self.device, self.seed = task_set, network_input, device, seed
        self.discount = discount
        self.num_tasks = task_set.num_tasks
        self.envs = [task_set.make_env(index, True) for index in range(self.num_tasks)]
        self._seeded = False

    def run(self, behaviour, episodes_per_task: int) -> tuple[list[EpisodeRecord], np.ndarray]:
        """Evaluate; returns the episodes and the ``[T, C]`` acting-policy counts."""
        t = self.num_tasks
        tracker = EpisodeTracker(t, self.task_set.episode_metrics, self.discount)
        acting_counts = np.zeros((t, behaviour.num_candidates), dtype=np.int64)
        episodes: list[EpisodeRecord] = []
        # The bar counts env steps (all tasks step together, so episodes would all end at once).
        progress = tqdm(total=t * episodes_per_task * self.task_set.max_episode_steps, desc="evaluation",
                        unit="step", leave=False, disable=not is_terminal())
        for _ in range(episodes_per_task):
            raw = np.stack([
                env.reset(seed=None if self._seeded else self.seed + index)[0] for index, env in enumerate(self.envs)
            ])
            self._seeded = True
            behaviour.episode_start(np.ones(t, dtype=bool))
            active = np.ones(t, dtype=bool)
            while active.any():
                obs = torch.as_tensor(self.network_input(raw), device=self.device)
                action_tensor, acting = behaviour.act(obs, deterministic=True)
                actions = np.clip(action_tensor.cpu().numpy(), -1.0, 1.0)
                acting_np = acting.cpu().numpy()
                stepping = np.flatnonzero(active)
                results = [self.envs[index].step(actions[index]) for index in stepping]
                progress.update(len(stepping))
                acting_counts[stepping, acting_np[stepping]] += 1
                tracker.record_infos(stepping, [result[1] for result in results], [result[4] for result in results])
                for index, (next_raw, _, terminated, truncated, _) in zip(stepping, results):
                    raw[index] = next_raw
                    if terminated or truncated:
                        episodes.append(tracker.finish(index, bool(terminated)))
                        active[index] = False
        progress.close()
        return episodes, acting_counts

    def state_dict(self) -> dict:
        return {"seeded": self._seeded, "envs": [get_env_state(env) for env in self.envs]}

    def load_state_dict(self, state: dict) -> None:
        self._seeded = bool(state["seeded"])
        for env, env_state in zip(self.envs, state["envs"]):
            set_env_state(env, env_state)

    def close(self) -> None:
        for env in self.envs:
            env.close()
