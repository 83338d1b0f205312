"""The interface every behaviour policy implements: the own policy, the Q-switch and CTPG.

The sampler and the evaluator call only these; a new behaviour policy (a row of the experiment
table with a new ``behaviour``) is a class with these members. Policies whose evaluation can run
every task's E episodes in lockstep add ``lockstep_evaluation = True`` and ``act_rows``
(learning/training/evaluation.py asks with ``getattr``).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch


@runtime_checkable
class BehaviourPolicy(Protocol):
    """Who acts in each task while collecting data (and in evaluation, deterministically)."""

    num_candidates: int
    """C: the policies that can act (T learned policies, then any fixed guide policies); acting indices are < C."""

    def act(self, obs: torch.Tensor, deterministic: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Actions ``[T, A]`` for the observations ``[T, obs]`` and the candidate ``[T]`` that acted in each task."""
        ...

    def episode_start(self, started: np.ndarray) -> None:
        """Tasks ``[T]`` (bool) whose episode starts at the next :meth:`act`."""
        ...

    def begin_iteration(self, iteration: int) -> None:
        """The training iteration about to collect (warm-up schedules read it)."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """What the policy holds across steps, for an exact resume."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None:
        ...


def best_candidate(scores: torch.Tensor) -> torch.Tensor:
    """The arg-max over the candidates (the last axis) of scores ``[..., C]``; ties go to the lowest index."""
    return scores.argmax(dim=-1)
