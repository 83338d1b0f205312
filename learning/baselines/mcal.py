"""Multi-Critic Actor Learning (Mysore et al. 2022; docs/fidelity.md#mcal), on the task axis.

One multihead actor shared by all tasks, per-task critics (separate networks, or multihead for the
paper's MCAL-MH variant), one temperature with the per-task family's log-alpha loss, per-task
buffers. The critics train as in per-task SAC; the actor's loss is the mean over every task's samples
of ``alpha log pi(a|s) - min(Q1_k, Q2_k)(s, a)``, each sample scored by the critics of its own task k.

The original updated the actor once per task's gradient step (G actor steps per iteration, each on
``B // T`` samples of every task). Here one batched gradient step updates all T critics at once, so it
is followed by T actor (and temperature) steps, each on a ``B // T`` slice of every task's batch: the
same number of actor steps on the same amount of data. The original fed raw observations to the
critics in the actor loss (docs/fidelity.md#mcal-raw-observations); here every network sees what the policy acts on.
"""

from __future__ import annotations

import torch

from learning.core.sac import MultiTaskSAC


class MultiCriticActorSAC(MultiTaskSAC):
    """A shared multihead actor trained on every task's own critics."""

    def _reduce(self, per_sample: torch.Tensor, term: str, weight: torch.Tensor | None = None) -> torch.Tensor:
        """Critics: the per-task family's sum of per-task means; actor and temperature: the mean over all
        tasks' samples (one network, one temperature)."""
        if term == "critic":
            return super()._reduce(per_sample, term, weight)
        return per_sample.mean()

    def actor_and_temperature_step(self, obs: torch.Tensor, weight: torch.Tensor | None = None
                                   ) -> dict[str, torch.Tensor]:
        """T actor and temperature steps, each on a ``B // T`` slice of every task's observations."""
        tasks, batch = obs.shape[:2]
        per_step = max(batch // tasks, 1)
        slices = (torch.arange(tasks * per_step, device=obs.device) % batch).reshape(tasks, per_step)
        stats: dict[str, torch.Tensor] = {}
        for rows in slices:
            stats = super().actor_and_temperature_step(obs[:, rows])
        return stats
