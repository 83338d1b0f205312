"""QMP's mixture ablations (paper §7.4, appendix H.1; docs/fidelity.md#mixture-ablations): uniform, domain-knowledge and
softmax mixtures, and their combination with the Q-switch's other options."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from learning.behaviour.qswitch import QSwitchBehaviour, QSwitchOptions
from learning.experiments import domain_mixture_table
from learning.training.config import ConfigError, parse_command_line
from tests.test_qswitch import TargetCritic, fixed_policy

DRAWS = 3000


def frequencies(behaviour: QSwitchBehaviour, deterministic: bool = False, draws: int = DRAWS) -> np.ndarray:
    """How often each task (row) selected each candidate (column) over ``draws`` fresh selections."""
    tasks = behaviour.num_tasks
    counts = np.zeros((tasks, behaviour.num_candidates))
    for _ in range(draws):
        behaviour.episode_start(np.ones(tasks, dtype=bool))
        _, acting = behaviour.act(torch.zeros(tasks, 2), deterministic)
        counts[np.arange(tasks), acting.numpy()] += 1
    return counts / draws


def mixture(kind: str, means: list[list[float]], targets: list[list[float]], table=None,
            **options) -> QSwitchBehaviour:
    return QSwitchBehaviour(fixed_policy(means), TargetCritic(targets), lambda: torch.ones(len(means)),
                            QSwitchOptions(mixture=kind, **options), mixture_probabilities=table)


MEANS = [[2.0, 0.0], [0.0, 2.0], [-2.0, -2.0]]  # tanh: (0.96, 0), (0, 0.96), (-0.96, -0.96)
TARGETS = [[0.0, 1.0], [-1.0, -1.0], [1.0, 0.0]]  # arg-max choices: 1, 2, 0


def test_uniform_mixture_picks_every_policy_equally_often():
    torch.manual_seed(0)
    shares = frequencies(mixture("uniform", MEANS, TARGETS))
    assert np.allclose(shares, 1 / 3, atol=0.035)


def test_softmax_mixture_matches_the_softmax_of_the_scores():
    torch.manual_seed(0)
    behaviour = mixture("softmax", MEANS, TARGETS, softmax_temperature=0.5)
    candidates = np.tanh(np.array(MEANS))
    scores = -((candidates[None, :, :] - np.array(TARGETS)[:, None, :]) ** 2).sum(-1)  # [task, candidate]
    expected = np.exp(scores / 0.5) / np.exp(scores / 0.5).sum(1, keepdims=True)
    assert np.allclose(frequencies(behaviour), expected, atol=0.035)


def test_softmax_tends_to_the_argmax_as_the_temperature_goes_to_zero():
    torch.manual_seed(0)
    cold = frequencies(mixture("softmax", MEANS, TARGETS, softmax_temperature=1e-3), draws=500)
    assert np.array_equal(cold, np.eye(3)[[1, 2, 0]])  # the Q-switch's arg-max, every time
    hot = frequencies(mixture("softmax", MEANS, TARGETS, softmax_temperature=1e3))
    assert np.allclose(hot, 1 / 3, atol=0.035)  # and uniform as it grows


def test_domain_mixture_table_is_the_paper_jaco_table():
    # docs/fidelity.md#mixture-ablations: pi0mix = 2/3 pi0 + 1/3 pi1; pi1mix = 1/3 pi0 + 2/3 pi1; pi2mix = 5/6 pi2 + 1/6
    # pi3; pi3mix = 1/6 pi2 + 5/6 pi3; pi4mix = pi4 (row = receiving task, column = policy).
    expected = np.array([[2 / 3, 1 / 3, 0, 0, 0], [1 / 3, 2 / 3, 0, 0, 0], [0, 0, 5 / 6, 1 / 6, 0],
                         [0, 0, 1 / 6, 5 / 6, 0], [0, 0, 0, 0, 1]])
    assert np.allclose(domain_mixture_table("JacoReachMT5-v1"), expected)


def test_domain_mixture_draws_each_row_of_its_table():
    torch.manual_seed(0)
    table = domain_mixture_table("JacoReachMT5-v1")
    means = [[0.1 * j, 0.0] for j in range(5)]
    behaviour = mixture("domain", means, [[0.0, 0.0]] * 5, table=table)
    assert np.allclose(frequencies(behaviour), table, atol=0.035)


def test_mixtures_combine_with_h_step_holding_and_own_policy_probability():
    torch.manual_seed(0)
    behaviour = mixture("uniform", MEANS, TARGETS, sampling_freq=4, own_policy_prob=0.5)
    behaviour.episode_start(np.ones(3, dtype=bool))
    choices = [behaviour.act(torch.zeros(3, 2), False)[1].tolist() for _ in range(400)]
    blocks = np.array(choices).reshape(100, 4, 3)
    assert (blocks == blocks[:, :1]).all()  # held for H = 4 steps
    own_share = np.mean([blocks[:, 0, task] == task for task in range(3)])
    assert own_share == pytest.approx(0.5 + 0.5 / 3, abs=0.07)  # own with p = 0.5, else uniform


@pytest.mark.parametrize("argv, message", [
    (["qmp_dnc", "--env=MazeLarge-10-v0", "--qmp_mixture", "domain"], "only JacoReachMT5-v1 has"),
    (["qmp_dnc", "--qmp_mixture", "uniform", "--qmp_score_critic", "min"], "scores no candidates"),
    (["qmp_dnc", "--qmp_softmax_temperature", "0.1"], "without --qmp_mixture softmax"),
    (["qmp_dnc", "--qmp_mixture", "softmax", "--qmp_softmax_temperature", "0"], "must be positive"),
    (["dnc_sac", "--qmp_mixture", "uniform"], "not of dnc_sac"),
])
def test_mixture_flags_are_checked(argv, message):
    with pytest.raises(ConfigError, match=message):
        parse_command_line(argv)


def test_mixture_flags_combine_with_scoring_options():
    config = parse_command_line(["qmp_dnc", "--env=JacoReachMT5-v1", "--qmp_mixture", "softmax",
                                 "--qmp_softmax_temperature", "0.2", "--qmp_action_samples", "10",
                                 "--qmp_score_critic", "min", "--policy_sampling_freq", "5"])
    assert (config.qmp_mixture, config.qmp_softmax_temperature, config.qmp_action_samples) == ("softmax", 0.2, 10)
    assert parse_command_line(["qmp_dnc", "--env=JacoReachMT5-v1", "--qmp_mixture", "domain"]).qmp_mixture == "domain"
