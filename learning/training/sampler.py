"""Data collection: all task environments step in lockstep (docs/fidelity.md#sampler, with the deviation below).

:class:`TaskEnvs` holds one environment per task (row t = task t) with same-step autoreset, as
gymnasium's ``SyncVectorEnv`` with ``AutoresetMode.SAME_STEP`` does. Each iteration asks for ``n``
steps per task; the behaviour policy answers all tasks in one batched call per step. Episodes
continue across iterations (the original ran whole episodes round-robin and overshot the budget);
per-task step counts are therefore always equal, which makes the original's proportional split of
gradient steps an equal split.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np
import torch
from numpy.typing import ArrayLike
from tqdm import tqdm

from environments.base import TaskSet, get_env_state, set_env_state
from learning.behaviour.protocol import BehaviourPolicy
from learning.core.replay_buffer import Transitions


@dataclass
class EpisodeRecord:
    """One finished episode of one task."""

    task: int
    total_return: float
    discounted_return: float
    length: int
    success: bool
    terminated: bool
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class SampleBatch:
    """What one iteration of collection produced."""

    transitions: Transitions
    episodes: list[EpisodeRecord]
    acting_counts: np.ndarray
    """``[T, C]``: how many steps of task i candidate policy j executed."""


class EpisodeTracker:
    """Running per-task episode statistics (return, length, success, env-info metrics)."""

    def __init__(self, num_tasks: int, metric_aggregations: Mapping[str, str], discount: float) -> None:
        self.num_tasks, self.aggregations, self.discount = num_tasks, dict(metric_aggregations), discount
        self.reset_all()

    def reset_all(self) -> None:
        t = self.num_tasks
        self.returns = np.zeros(t)
        self.discounted = np.zeros(t)
        self.lengths = np.zeros(t, dtype=np.int64)
        self.success = np.zeros(t, dtype=bool)
        self.metric_values = {key: np.zeros(t) for key in self.aggregations}

    def record_infos(self, tasks: ArrayLike, rewards: ArrayLike, infos: Sequence[dict]) -> None:
        """Add one step of each listed task from separately stepped envs (``infos[k]`` is task
        ``tasks[k]``'s step info)."""
        success = np.array([bool(info.get("success", False)) for info in infos])
        present = {key: np.array([key in info for info in infos]) for key in self.aggregations}
        values = {key: np.array([float(info.get(key, 0.0)) for info in infos]) for key in self.aggregations}
        self.record_steps(np.asarray(tasks), np.asarray(rewards, dtype=np.float64), success, values, present)

    def record_steps(self, tasks: np.ndarray, rewards: np.ndarray, success: np.ndarray,
                     metric_values: dict[str, np.ndarray], metric_present: dict[str, np.ndarray]) -> None:
        """Add one step of each listed task at once (arrays aligned with ``tasks``)."""
        self.discounted[tasks] += (self.discount ** self.lengths[tasks]) * rewards
        self.returns[tasks] += rewards
        self.lengths[tasks] += 1
        self.success[tasks] |= success
        for key, how in self.aggregations.items():
            if key not in metric_values:
                continue
            rows, values = tasks[metric_present[key]], metric_values[key][metric_present[key]]
            current = self.metric_values[key]
            if how == "last":
                current[rows] = values
            elif how == "max":
                current[rows] = np.where(self.lengths[rows] == 1, values, np.maximum(current[rows], values))
            else:  # mean and sum accumulate a sum
                current[rows] += values

    def finish(self, task: int, terminated: bool) -> EpisodeRecord:
        metrics = {}
        for key, how in self.aggregations.items():
            value = self.metric_values[key][task]
            metrics[key] = value / max(self.lengths[task], 1) if how == "mean" else value
        record = EpisodeRecord(task, float(self.returns[task]), float(self.discounted[task]), int(self.lengths[task]),
                               bool(self.success[task]), bool(terminated), metrics)
        self.returns[task] = self.discounted[task] = 0.0
        self.lengths[task] = 0
        self.success[task] = False
        for values in self.metric_values.values():
            values[task] = 0.0
        return record

    def state_dict(self) -> dict:
        return {"returns": self.returns.copy(), "discounted": self.discounted.copy(), "lengths": self.lengths.copy(),
                "success": self.success.copy(), "metric_values": {k: v.copy() for k, v in self.metric_values.items()}}

    def load_state_dict(self, state: dict) -> None:
        self.returns, self.discounted = state["returns"].copy(), state["discounted"].copy()
        self.lengths, self.success = state["lengths"].copy(), state["success"].copy()
        # a metric added after the checkpoint was written starts its running episodes from 0
        self.metric_values = {key: np.zeros(self.num_tasks) for key in self.aggregations}
        self.metric_values.update({k: v.copy() for k, v in state["metric_values"].items()})


@dataclass
class LockstepStep:
    """One lockstep step of the T task environments (row t = task t)."""

    observation: np.ndarray
    """``[T, ...]`` the next observations: the reset observation where an episode ended."""
    reward: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    final_observation: np.ndarray
    """``[T, ...]`` the observations the step returned (before any reset)."""
    infos: tuple[dict, ...]
    """Each env's step info (not its reset info)."""


class TaskEnvs:
    """One environment per task stepped in lockstep with same-step autoreset: a finished env is reset
    right after its step, before the next env steps (``SyncVectorEnv`` with ``AutoresetMode.SAME_STEP``,
    without merging every step's info dictionaries into arrays)."""

    def __init__(self, envs: list[gym.Env]) -> None:
        self.envs = envs
        self.single_action_space = envs[0].action_space
        shape = self.single_action_space.shape
        assert shape is not None, "task environments have Box action spaces"
        self.action_dim = int(shape[0])
        self.single_observation_space = envs[0].observation_space

    def step(self, actions: np.ndarray) -> LockstepStep:
        """Step env t with ``actions[t]``."""
        results, resets = [], {}
        for index, (env, action) in enumerate(zip(self.envs, actions)):
            result = env.step(action)
            results.append(result)
            if result[2] or result[3]:
                resets[index] = env.reset()[0]
        observations, rewards, terminated, truncated, infos = zip(*results)
        dtype = self.single_observation_space.dtype
        final_observation = np.stack(observations).astype(dtype, copy=False)
        observation = final_observation
        if resets:
            observation = final_observation.copy()
            for index, reset_observation in resets.items():
                observation[index] = reset_observation
        return LockstepStep(observation, np.array(rewards, dtype=np.float64), np.array(terminated, dtype=bool),
                            np.array(truncated, dtype=bool), final_observation, infos)

    def close(self) -> None:
        for env in self.envs:
            env.close()


class LockstepSampler:
    """Collects ``n`` steps of every task per call, all tasks stepping together.

    With ``keep_raw_observations`` the transitions also carry the environments' raw observations.
    """

    def __init__(self, task_set: TaskSet, behaviour: BehaviourPolicy | None,
                 network_input: Callable[[np.ndarray], np.ndarray], device: torch.device, seed: int, discount: float,
                 keep_raw_observations: bool = False) -> None:
        self._behaviour, self.task_set, self.network_input = behaviour, task_set, network_input
        self.device, self.seed = device, seed
        self.keep_raw_observations = keep_raw_observations  # CDS relabelling reads slots networks do not see
        self.num_tasks = task_set.num_tasks
        self.envs = TaskEnvs([task_set.make_env(index, False) for index in range(self.num_tasks)])
        self.tracker = EpisodeTracker(self.num_tasks, task_set.episode_metrics, discount)
        self.raw_obs: np.ndarray | None = None
        self.env_steps_per_task = np.zeros(self.num_tasks, dtype=np.int64)

    @property
    def behaviour(self) -> BehaviourPolicy:
        """The behaviour policy that acts (None until build_parts sets it, after the networks exist)."""
        if self._behaviour is None:
            raise RuntimeError("the sampler has no behaviour policy yet")
        return self._behaviour

    @behaviour.setter
    def behaviour(self, behaviour: BehaviourPolicy) -> None:
        self._behaviour = behaviour

    @property
    def total_env_steps(self) -> int:
        return int(self.env_steps_per_task.sum())

    def _start(self) -> None:
        """First reset of every task env (seed + task index), one by one with a progress bar: lazily
        built environments (Meta-World) are constructed here."""
        observations = []
        envs = tqdm(self.envs.envs, desc="starting environments", unit="env", leave=False,
                    disable=not sys.stderr.isatty())
        for index, env in enumerate(envs):
            observation, _ = env.reset(seed=self.seed + index)
            observations.append(observation)
        self.raw_obs = np.stack(observations)
        self.behaviour.episode_start(np.ones(self.num_tasks, dtype=bool))

    def collect(self, steps_per_task: int) -> SampleBatch:
        """Run ``steps_per_task`` lockstep steps and return the transitions, finished episodes and
        the acting-policy counts."""
        if self.raw_obs is None:
            self._start()
        assert self.raw_obs is not None
        t = self.num_tasks
        observations = self.network_input(self.raw_obs)
        obs_dim = observations.shape[-1]
        action_dim = self.envs.action_dim
        buffers = Transitions(
            observation=np.zeros((t, steps_per_task, obs_dim), np.float32),
            action=np.zeros((t, steps_per_task, action_dim), np.float32),
            reward=np.zeros((t, steps_per_task), np.float32),
            next_observation=np.zeros((t, steps_per_task, obs_dim), np.float32),
            terminal=np.zeros((t, steps_per_task), np.float32),
            raw_observation=(np.zeros((t, steps_per_task, self.raw_obs.shape[-1]), np.float32)
                             if self.keep_raw_observations else None),
            raw_next_observation=(np.zeros((t, steps_per_task, self.raw_obs.shape[-1]), np.float32)
                                  if self.keep_raw_observations else None),
        )
        acting_counts = np.zeros((t, self.behaviour.num_candidates), dtype=np.int64)
        episodes: list[EpisodeRecord] = []
        rows = np.arange(t)
        for step in range(steps_per_task):
            obs_tensor = torch.as_tensor(observations, device=self.device)
            action_tensor, acting = self.behaviour.act(obs_tensor, deterministic=False)
            actions = np.clip(action_tensor.cpu().numpy(), -1.0, 1.0)
            stepped = self.envs.step(actions)
            done = np.logical_or(stepped.terminated, stepped.truncated)
            next_observations = self.network_input(stepped.final_observation)
            buffers.observation[:, step] = observations
            if buffers.raw_observation is not None and buffers.raw_next_observation is not None:
                buffers.raw_observation[:, step] = self.raw_obs
                buffers.raw_next_observation[:, step] = stepped.final_observation
            buffers.action[:, step] = actions
            buffers.reward[:, step] = stepped.reward
            buffers.next_observation[:, step] = next_observations
            buffers.terminal[:, step] = stepped.terminated
            acting_counts[rows, acting.cpu().numpy()] += 1
            self.tracker.record_infos(rows, stepped.reward, stepped.infos)
            for index in np.flatnonzero(done):
                episodes.append(self.tracker.finish(int(index), bool(stepped.terminated[index])))
            if done.any():
                self.behaviour.episode_start(done)
                observations = self.network_input(stepped.observation)
            else:
                observations = next_observations
            self.raw_obs = stepped.observation
        self.env_steps_per_task += steps_per_task
        return SampleBatch(buffers, episodes, acting_counts)

    def state_dict(self) -> dict:
        """Environments mid-episode, the current observation and running episode statistics."""
        return {"raw_obs": None if self.raw_obs is None else self.raw_obs.copy(),
                "envs": [get_env_state(env) for env in self.envs.envs],
                "tracker": self.tracker.state_dict(), "env_steps_per_task": self.env_steps_per_task.copy(),
                "behaviour": self.behaviour.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.raw_obs = None if state["raw_obs"] is None else state["raw_obs"].copy()
        for env, env_state in zip(self.envs.envs, state["envs"]):
            set_env_state(env, env_state)
        self.tracker.load_state_dict(state["tracker"])
        self.env_steps_per_task = state["env_steps_per_task"].copy()
        self.behaviour.load_state_dict(state["behaviour"])

    def close(self) -> None:
        self.envs.close()
