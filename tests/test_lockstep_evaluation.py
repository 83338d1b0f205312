"""Lockstep evaluation (all T x E episodes side by side) gives the episodes, metrics and acting counts
of the one-by-one loop: a reference written here as the straightforward loop (each task's env runs
its episodes one after another, the first reset seeded with seed + task, later ones continuing its
random generator), on the real Reacher environments."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from gymnasium.wrappers import TimeLimit

from environments import make_task_set
from learning.behaviour.own_policy import OwnPolicyBehaviour
from learning.behaviour.qswitch import QSwitchBehaviour, QSwitchOptions
from learning.core.networks import TanhGaussianPolicy, TwinQFunction
from learning.training.evaluation import Evaluator, summarize_episodes
from learning.training.sampler import EpisodeTracker

ENV, SEED, DISCOUNT, ACT = "JacoReachMT5-v1", 7, 0.99, 6


def reacher(episode_steps: int = 40):
    """The Reacher's task set with shorter episodes (the test's budget)."""
    task_set = make_task_set(ENV)
    return dataclasses.replace(
        task_set, make_env=lambda task, evaluation: TimeLimit(task_set.make_env(task, evaluation).env, episode_steps))


class SliceWise:
    """A behaviour's ``act_rows`` computed one episode column at a time: every network call has the
    shapes of ``act`` on T rows, so the arithmetic is the one-by-one loop's to the last bit (batched
    matrix products round differently for different row counts)."""

    lockstep_evaluation = True

    def __init__(self, behaviour) -> None:
        self.behaviour, self.num_candidates = behaviour, behaviour.num_candidates

    def act(self, obs, deterministic):
        return self.behaviour.act(obs, deterministic)

    def act_rows(self, obs):
        parts = [self.behaviour.act_rows(obs[:, column:column + 1]) for column in range(obs.shape[1])]
        return torch.cat([p[0] for p in parts], dim=1), torch.cat([p[1] for p in parts], dim=1)

    def episode_start(self, started):
        self.behaviour.episode_start(started)


def reference_evaluations(task_set, behaviour, episodes_per_task: int, evaluations: int):
    """The one-by-one loop: per evaluation, E rounds in which every task's env plays one episode."""
    layout = task_set.observation_layout
    envs = [task_set.make_env(task, True) for task in range(task_set.num_tasks)]
    seeded = False
    results = []
    for _ in range(evaluations):
        episodes, counts = [], np.zeros((task_set.num_tasks, behaviour.num_candidates), dtype=np.int64)
        for _ in range(episodes_per_task):
            for task, env in enumerate(envs):
                tracker = EpisodeTracker(1, task_set.episode_metrics, DISCOUNT)
                raw = env.reset(seed=None if seeded else SEED + task)[0]
                round_episode = None
                while round_episode is None:
                    obs = torch.as_tensor(layout.network_input(np.stack([raw] * task_set.num_tasks)))
                    action, acting = behaviour.act(obs, deterministic=True)
                    raw, reward, terminated, truncated, info = env.step(np.clip(action[task].numpy(), -1.0, 1.0))
                    counts[task, int(acting[task])] += 1
                    tracker.record_infos(np.array([0]), [reward], [info])
                    if terminated or truncated:
                        round_episode = tracker.finish(0, bool(terminated))
                        round_episode.task = task
                episodes.append(round_episode)
            seeded = True
        # the loop's order: round, then finishing step, then task
        rounds = [episodes[i:i + task_set.num_tasks] for i in range(0, len(episodes), task_set.num_tasks)]
        ordered = [e for group in rounds for e in sorted(group, key=lambda e: (e.length, e.task))]
        results.append((ordered, counts))
    return results


def behaviours(task_set, kind: str, architecture: str = "separate"):
    """The own policies or the Q-switch on random networks of ``architecture`` (separate per task, or
    the multihead networks of Parameters and Parameters + QMP)."""
    torch.manual_seed(0)
    layout, t = task_set.observation_layout, task_set.num_tasks
    policy = TanhGaussianPolicy(architecture, t, layout.network_dim(), ACT, (16, 16))
    if kind == "own":
        return OwnPolicyBehaviour(policy)
    critic = TwinQFunction(architecture, t, layout.network_dim(), ACT, (16, 16))
    return QSwitchBehaviour(policy, critic, lambda: torch.ones(t), QSwitchOptions())


@pytest.mark.parametrize("architecture", ["separate", "multihead"])
@pytest.mark.parametrize("kind", ["own", "qswitch"])
def test_lockstep_evaluation_gives_the_one_by_one_episodes(kind, architecture):
    task_set = reacher()
    behaviour = behaviours(task_set, kind, architecture)
    assert behaviour.lockstep_evaluation
    expected = reference_evaluations(task_set, behaviour, 3, 2)
    # 10 environments at most side by side: the 3 episodes per task run in chunks of 2 and 1
    evaluator = Evaluator(task_set, task_set.observation_layout.network_input, torch.device("cpu"), SEED, DISCOUNT,
                          max_lockstep_envs=10)
    assert evaluator.independent
    for episodes_expected, counts_expected in expected:
        episodes, counts = evaluator.run(SliceWise(behaviour), 3)
        assert episodes == episodes_expected
        assert np.array_equal(counts, counts_expected)
        metrics = summarize_episodes(episodes, task_set.num_tasks, "Evaluation/", task_set.episode_metrics)
        assert metrics == summarize_episodes(episodes_expected, task_set.num_tasks, "Evaluation/",
                                             task_set.episode_metrics)
    assert len({e.total_return for e in episodes}) == len(episodes)  # distinct starts: the seeding was compared
    assert max(len(envs) for envs in evaluator.copies) == 2
    # the copies of a task simulate with its one model, each in its own data
    assert all(copy.unwrapped.model is envs[0].unwrapped.model and copy.unwrapped.data is not envs[0].unwrapped.data
               for envs in evaluator.copies for copy in envs[1:])


def test_evaluator_state_resumes_the_generator_chain():
    task_set = reacher()
    behaviour = SliceWise(behaviours(task_set, "own"))
    def make() -> Evaluator:
        return Evaluator(task_set, task_set.observation_layout.network_input, torch.device("cpu"), SEED, DISCOUNT)

    uninterrupted, resumed = make(), make()
    uninterrupted.run(behaviour, 1)
    resumed.load_state_dict(uninterrupted.state_dict())
    assert "envs" not in uninterrupted.state_dict()  # generators, not pickled simulators
    assert resumed.run(behaviour, 2)[0] == uninterrupted.run(behaviour, 2)[0]


@pytest.mark.parametrize("architecture", ["separate", "multihead"])
def test_batched_rows_agree_with_one_column_at_a_time(architecture):
    """With E rows per network call the actions differ from the column-wise ones only by the
    rounding of the matrix products; the choices are the same."""
    task_set = reacher()
    behaviour = behaviours(task_set, "qswitch", architecture)
    obs = torch.randn(task_set.num_tasks, 6, task_set.observation_layout.network_dim())
    actions, acting = behaviour.act_rows(obs)
    column_actions, column_acting = SliceWise(behaviour).act_rows(obs)
    assert torch.equal(acting, column_acting)
    assert torch.allclose(actions, column_actions, atol=1e-5)
    assert actions.shape == (task_set.num_tasks, 6, ACT) and len(set(acting.flatten().tolist())) > 1
