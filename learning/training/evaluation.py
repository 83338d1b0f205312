"""Deterministic evaluation on separate evaluation environments (docs/fidelity.md#evaluation) and episode metrics.

Each task runs ``episodes_per_task`` episodes (= num_evaluation_episodes // T, at least 1) on its own
evaluation instance; the behaviour policy executes mean actions. Episode k + 1 of a task starts from
its environment's random generator as episode k's reset left it (the first episode ever resets with
``seed + task``). Where every environment's resets depend on nothing but that generator
(:func:`environments.base.independent_resets`) and the behaviour answers E states per task in one
call (``act_rows``), all T x E episodes step in lockstep on copies of the environments (in chunks of at
most ``max_lockstep_envs``), each copy reset from the generator state the one-by-one order would have
given it: the same episodes, one batched inference per step for all of them. Otherwise the T tasks
step together through the E episodes one after another.
Metric names follow the original (docs/fidelity.md#metrics): ``{prefix}AverageReturn``,
``{prefix}Task{k}/SuccessRate``...
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterable

import numpy as np
import torch
from tqdm import tqdm

from environments.base import TaskSet, get_env_state, independent_resets, set_env_state, share_model
from learning.behaviour.protocol import BehaviourPolicy
from learning.training.logger import is_terminal
from learning.training.sampler import EpisodeRecord, EpisodeTracker

# Env-info keys whose metric name is not their CamelCase (docs/fidelity.md#metrics). ``completed`` (the Reacher's:
# the episode finished its task) averages to the share of episodes that did, so it is named a rate;
# ``TerminationRate`` keeps the original's meaning, any termination before the time limit.
METRIC_NAMES = {"x_velocity": "Velocity", "completed": "CompletionRate"}


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
                 device: torch.device, seed: int, discount: float, max_lockstep_envs: int = 128) -> None:
        self.task_set, self.network_input, self.device, self.seed = task_set, network_input, device, seed
        self.discount = discount
        self.num_tasks = task_set.num_tasks
        self.max_lockstep_envs = max_lockstep_envs
        self.envs = [task_set.make_env(index, True) for index in range(self.num_tasks)]
        self.copies: list[list] = [[env] for env in self.envs]
        """Per task, the environments that run its episodes side by side (the first is ``envs[task]``)."""
        self.independent = all(independent_resets(env) for env in self.envs)
        self.generators: list | None = None
        """With independent resets: per task, its random generator as the last reset left it."""
        self._seeded = False

    def _reset(self, task: int, env) -> np.ndarray:
        """Reset ``env`` for the next episode of ``task`` (see the module docstring)."""
        if not self.independent:
            return env.reset(seed=None if self._seeded else self.seed + task)[0]
        if self.generators is None or self.generators[task] is None:  # the first episode of this task ever
            return env.reset(seed=self.seed + task)[0]
        env.unwrapped.np_random = copy.deepcopy(self.generators[task])
        return env.reset()[0]

    def _after_reset(self, task: int, env) -> None:
        if self.independent:
            if self.generators is None:
                self.generators = [None] * self.num_tasks
            self.generators[task] = copy.deepcopy(env.unwrapped.np_random)

    def run(self, behaviour: BehaviourPolicy, episodes_per_task: int) -> tuple[list[EpisodeRecord], np.ndarray]:
        """Evaluate; returns the episodes and the ``[T, C]`` acting-policy counts."""
        if self.independent and getattr(behaviour, "lockstep_evaluation", False):
            return self._run_lockstep(behaviour, episodes_per_task)
        return self._run_rounds(behaviour, episodes_per_task)

    def _environment_copies(self, count: int) -> list[list]:
        for task, envs in enumerate(self.copies):
            while len(envs) < count:
                envs.append(self.task_set.make_env(task, True))
                share_model(envs[-1], envs[0])
        return [envs[:count] for envs in self.copies]

    def _run_lockstep(self, behaviour, episodes_per_task: int) -> tuple[list[EpisodeRecord], np.ndarray]:
        """All T x E episodes side by side (chunks of E), one ``act_rows`` call per step."""
        t = self.num_tasks
        chunk = max(1, min(episodes_per_task, self.max_lockstep_envs // t))
        acting_counts = np.zeros((t, behaviour.num_candidates), dtype=np.int64)
        keyed: list[tuple[tuple[int, int, int], EpisodeRecord]] = []
        progress = tqdm(total=t * episodes_per_task * self.task_set.max_episode_steps, desc="evaluation",
                        unit="step", leave=False, disable=not is_terminal())
        for first in range(0, episodes_per_task, chunk):
            width = min(chunk, episodes_per_task - first)
            envs = [env for task_envs in self._environment_copies(width) for env in task_envs]  # row = task * width + e
            observations = []
            for task in range(t):
                for env in envs[task * width:(task + 1) * width]:
                    observations.append(self._reset(task, env))
                    self._after_reset(task, env)
            self._seeded = True
            raw = np.stack(observations)
            rows = t * width
            tracker = EpisodeTracker(rows, self.task_set.episode_metrics, self.discount)
            active = np.ones(rows, dtype=bool)
            while active.any():
                obs = torch.as_tensor(self.network_input(raw), device=self.device).reshape(t, width, -1)
                action_tensor, acting = behaviour.act_rows(obs)
                actions = np.clip(action_tensor.reshape(rows, -1).cpu().numpy(), -1.0, 1.0)
                acting_np = acting.reshape(rows).cpu().numpy()
                stepping = np.flatnonzero(active)
                next_raw, rewards, terminated, truncated, infos = zip(
                    *[envs[row].step(action) for row, action in zip(stepping.tolist(), actions[stepping])])
                raw[stepping] = next_raw
                np.add.at(acting_counts, (stepping // width, acting_np[stepping]), 1)
                tracker.record_infos(stepping, rewards, infos)
                progress.update(len(stepping))
                for index in np.flatnonzero(np.logical_or(terminated, truncated)).tolist():
                    row = int(stepping[index])
                    record = tracker.finish(row, bool(terminated[index]))
                    record.task = row // width
                    # the order of the one-by-one loop: episode round, then finishing step, then task
                    keyed.append(((first + row % width, record.length, record.task), record))
                    active[row] = False
        progress.close()
        keyed.sort(key=lambda item: item[0])
        return [record for _, record in keyed], acting_counts

    def _run_rounds(self, behaviour, episodes_per_task: int) -> tuple[list[EpisodeRecord], np.ndarray]:
        """The T tasks step together through their episodes one after another."""
        t = self.num_tasks
        tracker = EpisodeTracker(t, self.task_set.episode_metrics, self.discount)
        acting_counts = np.zeros((t, behaviour.num_candidates), dtype=np.int64)
        episodes: list[EpisodeRecord] = []
        # The bar counts env steps (all tasks step together, so episodes would all end at once).
        progress = tqdm(total=t * episodes_per_task * self.task_set.max_episode_steps, desc="evaluation",
                        unit="step", leave=False, disable=not is_terminal())
        for _ in range(episodes_per_task):
            observations = []
            for index, env in enumerate(self.envs):
                observations.append(self._reset(index, env))
                self._after_reset(index, env)
            raw = np.stack(observations)
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
                tracker.record_infos(stepping, [float(result[1]) for result in results],
                                     [result[4] for result in results])
                for index, (next_raw, _, terminated, truncated, _) in zip(stepping.tolist(), results):
                    raw[index] = next_raw
                    if terminated or truncated:
                        episodes.append(tracker.finish(index, bool(terminated)))
                        active[index] = False
        progress.close()
        return episodes, acting_counts

    def state_dict(self) -> dict:
        """With independent resets the generators are all the next evaluation needs (every episode
        starts with a reset); otherwise the environments themselves."""
        if self.independent:
            generators = None if self.generators is None else [g.bit_generator.state for g in self.generators]
            return {"seeded": self._seeded, "generators": generators}
        return {"seeded": self._seeded, "envs": [get_env_state(env) for env in self.envs]}

    def load_state_dict(self, state: dict) -> None:
        self._seeded = bool(state["seeded"])
        if "envs" in state:  # environments saved whole (and checkpoints written before generators were)
            for env, env_state in zip(self.envs, state["envs"]):
                set_env_state(env, env_state)
            if self.independent and self._seeded:
                self.generators = [copy.deepcopy(env.unwrapped.np_random) for env in self.envs]
            return
        self.generators = None
        if state["generators"] is not None:
            self.generators = []
            for bit_state in state["generators"]:
                generator = np.random.Generator(getattr(np.random, bit_state["bit_generator"])())
                generator.bit_generator.state = bit_state
                self.generators.append(generator)

    def close(self) -> None:
        for envs in self.copies:
            for env in envs:
                env.close()
