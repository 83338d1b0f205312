"""Evaluation wall time against raw environment stepping of the same steps (not run by CI).

For the own policy and the Q-switch (paper-sized networks, T tasks, E episodes per task): the
lockstep evaluator (all T x E episodes side by side), the one-by-one loop it replaces (E rounds of
the T tasks), and raw stepping of the very same episodes with no policy at all: an untimed run of
the evaluator records every reset's random generator and every action, the timed run starts from
the same evaluator state, and the recording is replayed (same states, same contacts, same physics
cost) twice: one env after another ("sequential", the baseline of the target) and the T x E envs
round-robin as the lockstep evaluator steps them (each env's memory leaves the cache before its
next step). The policy's share (seconds in ``act_rows``) is printed too. Interleaved in one process.
Target: lockstep <= 1.5 x raw stepping.

    OMP_NUM_THREADS=1 python -m benchmarks.bench_evaluation --env MazeLarge-10-v0 [--episodes_per_task 10]
"""

from __future__ import annotations

import argparse
import copy
import os
import time

import numpy as np
import torch

from environments import make_task_set
from learning.behaviour.own_policy import OwnPolicyBehaviour
from learning.behaviour.qswitch import QSwitchBehaviour, QSwitchOptions
from learning.core.networks import TanhGaussianPolicy, TwinQFunction
from learning.training.evaluation import Evaluator


class EpisodeRecorder:
    """Records an env's episodes (the random generator and arguments of each reset, then the actions)."""

    def __init__(self, env) -> None:
        self.env, self.episodes = env, []
        self._reset, self._step = env.reset, env.step
        env.reset, env.step = self.reset, self.step

    def reset(self, **kwargs):
        self.episodes.append((copy.deepcopy(self.env.unwrapped.np_random), kwargs, []))
        return self._reset(**kwargs)

    def step(self, action):
        self.episodes[-1][2].append(np.array(action, copy=True))
        return self._step(action)

    def detach(self) -> None:
        del self.env.reset, self.env.step


def replay_seconds(recorders: list[EpisodeRecorder], round_robin: bool) -> float:
    """Replay the recorded episodes: each env's episodes in turn, or every env once per round."""

    def start(recorder: EpisodeRecorder, episode: int) -> list:
        generator, kwargs, actions = recorder.episodes[episode]
        recorder.env.unwrapped.np_random = copy.deepcopy(generator)
        recorder.env.reset(**kwargs)
        return actions

    started = time.perf_counter()
    if not round_robin:
        for recorder in recorders:
            for episode in range(len(recorder.episodes)):
                for action in start(recorder, episode):
                    recorder.env.step(action)
        return time.perf_counter() - started
    for episode in range(max(len(recorder.episodes) for recorder in recorders)):
        playing = [(recorder.env, start(recorder, episode)) for recorder in recorders if episode < len(recorder.episodes)]
        for step in range(max(len(actions) for _, actions in playing)):
            for env, actions in playing:
                if step < len(actions):
                    env.step(actions[step])
    return time.perf_counter() - started


class TimedActRows:
    """A behaviour whose ``act_rows`` time is summed (the policy's share of the evaluation)."""

    def __init__(self, behaviour) -> None:
        self.behaviour, self.seconds = behaviour, 0.0

    def __getattr__(self, name: str):
        return getattr(self.behaviour, name)

    def act_rows(self, obs):
        started = time.perf_counter()
        result = self.behaviour.act_rows(obs)
        self.seconds += time.perf_counter() - started
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="MazeLarge-10-v0")
    parser.add_argument("--episodes_per_task", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    task_set = make_task_set(args.env)
    layout, t = task_set.observation_layout, task_set.num_tasks
    action_dim = task_set.make_env(0, True).action_space.shape[0]
    policy = TanhGaussianPolicy("separate", t, layout.network_dim(), action_dim, (256, 256))
    critic = TwinQFunction("separate", t, layout.network_dim(), action_dim, (256, 256))
    behaviours = {"own policy": OwnPolicyBehaviour(policy),
                  "Q-switch": QSwitchBehaviour(policy, critic, lambda: torch.ones(t), QSwitchOptions())}
    print(f"{args.env}: T = {t}, {args.episodes_per_task} episodes per task, (256, 256) networks, 1 thread, "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    for name, behaviour in behaviours.items():
        lockstep = Evaluator(task_set, layout.network_input, torch.device("cpu"), 0, 0.99)
        rounds = Evaluator(task_set, layout.network_input, torch.device("cpu"), 0, 0.99)
        lockstep.run(behaviour, 1)
        width = min(args.episodes_per_task, lockstep.max_lockstep_envs // t)
        envs = [env for task_envs in lockstep._environment_copies(width) for env in task_envs]  # built untimed
        rounds._run_rounds(behaviour, 1)
        state = lockstep.state_dict()
        recorders = [EpisodeRecorder(env) for env in envs]
        lockstep.run(behaviour, args.episodes_per_task)  # the episodes the timed run will play again
        for recorder in recorders:
            recorder.detach()
        lockstep.load_state_dict(state)
        timed = TimedActRows(behaviour)
        started = time.perf_counter()
        episodes, _ = lockstep.run(timed, args.episodes_per_task)
        lockstep_seconds = time.perf_counter() - started
        started = time.perf_counter()
        rounds._run_rounds(behaviour, args.episodes_per_task)
        rounds_seconds = time.perf_counter() - started
        sequential = replay_seconds(recorders, round_robin=False)
        round_robin = replay_seconds(recorders, round_robin=True)
        steps = sum(e.length for e in episodes)
        assert steps == sum(len(actions) for recorder in recorders for _, _, actions in recorder.episodes)
        print(f"{name:>10}: {steps} steps | raw stepping {sequential:6.2f} s ({1e6 * sequential / steps:.1f} us/step), "
              f"round-robin {round_robin:6.2f} s ({1e6 * round_robin / steps:.1f} us/step) | lockstep evaluation "
              f"{lockstep_seconds:6.2f} s (x{lockstep_seconds / sequential:.2f} raw, x{lockstep_seconds / round_robin:.2f} "
              f"round-robin; target <= 1.5), of which act_rows {timed.seconds:5.2f} s | one-by-one loop "
              f"{rounds_seconds:6.2f} s (x{rounds_seconds / sequential:.2f} raw)", flush=True)


if __name__ == "__main__":
    main()
