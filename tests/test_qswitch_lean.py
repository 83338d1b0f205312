"""The Q-switch's straight path for the default scoring picks the same candidates and executes the
same actions as its general path, in training and in evaluation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from learning.behaviour.qswitch import QSwitchBehaviour, QSwitchOptions
from learning.core.networks import TanhGaussianPolicy, TwinQFunction

T, OBS, ACT = 6, 5, 2


def pair(architecture: str, options: QSwitchOptions) -> tuple[QSwitchBehaviour, QSwitchBehaviour]:
    torch.manual_seed(0)
    policy = TanhGaussianPolicy(architecture, T, OBS, ACT, (32, 32))
    critic = TwinQFunction(architecture, T, OBS, ACT, (32, 32))
    lean = QSwitchBehaviour(policy, critic, lambda: torch.ones(T), options)
    general = QSwitchBehaviour(policy, critic, lambda: torch.ones(T), options)
    general.lean = False
    return lean, general


@pytest.mark.parametrize("architecture", ["separate", "multihead"])
@pytest.mark.parametrize("options", [QSwitchOptions(), QSwitchOptions(sampling_freq=3, own_policy_prob=0.4),
                                     QSwitchOptions(warmup_iterations=1)])
def test_lean_path_selects_and_acts_like_the_general_path(architecture, options):
    lean, general = pair(architecture, options)
    assert lean.lean
    states = torch.Generator().manual_seed(5)
    chosen = set()
    for step in range(12):
        obs = 3 * torch.randn(T, OBS, generator=states)  # a distinct state in every task at every step
        deterministic = step % 4 == 3
        for behaviour in (lean, general):
            behaviour.begin_iteration(step // 6)
            if step == 6:
                behaviour.episode_start(np.array([True, False] * (T // 2)))
        torch.manual_seed(step)
        lean_action, lean_acting = lean.act(obs, deterministic)
        torch.manual_seed(step)
        general_action, general_acting = general.act(obs, deterministic)
        assert torch.equal(lean_acting, general_acting)
        assert torch.equal(lean_action, general_action)
        assert np.array_equal(lean.steps_since_selection, general.steps_since_selection)
        chosen.update(lean_acting.tolist())
    assert len(chosen) > 2  # the switch did pick other tasks' policies, so selections were compared


def test_options_outside_the_default_scoring_take_the_general_path():
    for options in (QSwitchOptions(score_critic="min"), QSwitchOptions(action_samples=2),
                    QSwitchOptions(entropy_term=True), QSwitchOptions(mixture="uniform")):
        lean, _ = pair("separate", options)
        assert not lean.lean
