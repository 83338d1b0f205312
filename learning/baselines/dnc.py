"""Divide-and-Conquer RL adapted to multi-task RL (Ghosh et al. 2018; docs/fidelity.md#dnc), on the task axis.

Per-task SAC (the per-task family of :class:`MultiTaskSAC`) with two ways of sharing behaviour:

* a penalty in the actor loss of every receiving policy i: the sum over source policies j != i of
  ``beta_ij * KL(pi_j(.|x) || pi_i(.|x))`` between the pre-tanh Gaussians, averaged over action
  dimensions and over states x (``--kl_coeff``; ``--sampling_type`` picks the states). With
  ``--regularize_representation`` the penalty is the squared distance between the policies' last
  hidden layers instead. Only pi_i receives the gradient of its penalty (pi_j is detached), as in the
  original, where pi_j's optimiser discarded it;
* periodic distillation (every ``--distillation_period`` epochs): a centroid policy is fitted by
  maximum likelihood to the stored actions of every task's buffer, then copied into every task policy.

"DnC (regularisation only)" is the penalty without distillation. All pairs (i, j) are one batched
computation: every policy is evaluated on the chosen states at once.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from learning.core.networks import TanhGaussianPolicy, TwinQFunction, tanh_gaussian_log_prob
from learning.core.replay_buffer import TaskReplayBuffer
from learning.core.sac import MultiTaskSAC, SACSettings, make_adam

SAMPLING_TYPES = ("all", "i", "j", "i+j")
ACTION_EPS = 1e-6
"""Stored actions are clamped into [-1 + eps, 1 - eps] before atanh recovers the pre-tanh value."""


def gaussian_kl(mean_p: torch.Tensor, log_std_p: torch.Tensor, mean_q: torch.Tensor,
                log_std_q: torch.Tensor) -> torch.Tensor:
    """``KL(N(mean_p, std_p^2) || N(mean_q, std_q^2))`` per element (one action dimension each)."""
    variance_ratio = torch.exp(2.0 * (log_std_p - log_std_q))
    squared_distance = (mean_p - mean_q).pow(2) * torch.exp(-2.0 * log_std_q)
    return log_std_q - log_std_p + 0.5 * (variance_ratio + squared_distance) - 0.5


def coefficient_matrix(kl_coeff: Sequence[float], num_tasks: int) -> torch.Tensor:
    """``[T, T]`` coefficients, row i = receiving policy, column j = source policy; zero diagonal.

    One value applies to every ordered pair; T*T values are read row-major (the original's
    "1->1 2->1 ... T->1 1->2 ..." order: the first T values are the sources of policy 1).
    """
    values = torch.as_tensor(list(kl_coeff), dtype=torch.float32)
    if values.numel() == 1:
        matrix = values.reshape(1, 1).expand(num_tasks, num_tasks).clone()
    elif values.numel() == num_tasks * num_tasks:
        matrix = values.reshape(num_tasks, num_tasks).clone()
    else:
        raise ValueError(f"--kl_coeff takes 1 or {num_tasks * num_tasks} values for {num_tasks} tasks, "
                         f"got {values.numel()}")
    matrix.fill_diagonal_(0.0)
    return matrix


class DnCSAC(MultiTaskSAC):
    """Per-task SAC with the DnC penalty between policies and optional periodic distillation.

    ``buffer_batch_size`` is ``--buffer_batch_size``, the minibatch of each task's SAC update; the
    penalty's and the distillation's state batches are sized from it by ``sampling_type``."""

    kl_coefficients: torch.Tensor
    """``[T, T]`` beta_ij (a non-persistent buffer)."""

    def __init__(self, policy: TanhGaussianPolicy, critic: TwinQFunction, settings: SACSettings,
                 buffer: TaskReplayBuffer, buffer_batch_size: int, kl_coeff: Sequence[float] = (0.0,),
                 sampling_type: str = "all", regularize_representation: bool = False,
                 distillation_period: int | None = None, distillation_steps: int = 100) -> None:
        super().__init__(policy, critic, settings)
        if sampling_type not in SAMPLING_TYPES:
            raise ValueError(f"unknown sampling type {sampling_type!r}; choose one of {', '.join(SAMPLING_TYPES)}")
        self.buffer, self.buffer_batch_size = buffer, buffer_batch_size
        self.sampling_type, self.regularize_representation = sampling_type, regularize_representation
        self.register_buffer("kl_coefficients", coefficient_matrix(kl_coeff, self.num_tasks), persistent=False)
        self.regularized = bool(self.kl_coefficients.abs().sum() > 0)
        self.distillation_period, self.distillation_steps = distillation_period, distillation_steps
        self.centroid: TanhGaussianPolicy | None = None
        if distillation_period is not None:
            self.centroid = single_policy_copy(policy, member=0)
            self.centroid_optimizer = make_adam(self.centroid.parameters(), settings.lr)

    # ------------------------------------------------------------------------------------ penalty
    def _policy_outputs(self, states: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Every policy on the states ``[N, obs]``: (mean, log_std) or (last hidden,), each ``[T, N, F]``."""
        if self.regularize_representation:
            expanded = states.unsqueeze(0).expand(self.num_tasks, *states.shape)
            return (self.policy.mlp.last_hidden(expanded)[0],)
        return self.policy.all_policies(states)

    def _divergence(self, source: tuple[torch.Tensor, ...], receiver: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """Element-wise divergence of the source policies' outputs (no gradient) from the receivers'."""
        if self.regularize_representation:
            return (source[0].detach() - receiver[0]).pow(2)
        return gaussian_kl(source[0].detach(), source[1].detach(), receiver[0], receiver[1])

    def pairwise_divergence(self) -> torch.Tensor:
        """``[T, T]``: entry (i, j) is the divergence of source j from receiver i on the sampled states."""
        tasks = self.num_tasks
        if self.sampling_type == "all":  # batch // T states from every task's buffer, shared by all pairs
            states = self.buffer.sample(max(self.buffer_batch_size // tasks, 1))["observation"]
            outputs = self._policy_outputs(states.reshape(-1, states.shape[-1]))
            source = tuple(output.unsqueeze(0) for output in outputs)
            receiver = tuple(output.unsqueeze(1) for output in outputs)
            return self._divergence(source, receiver).mean(dim=(-2, -1))
        per_task = max(self.buffer_batch_size // 2 if self.sampling_type == "i+j" else self.buffer_batch_size, 1)
        states = self.buffer.sample(per_task)["observation"]
        outputs = tuple(output.reshape(tasks, tasks, per_task, output.shape[-1])  # [policy, state task, k, F]
                        for output in self._policy_outputs(states.reshape(-1, states.shape[-1])))
        own = tuple(output.diagonal(dim1=0, dim2=1).permute(2, 0, 1) for output in outputs)  # [task, k, F]
        parts = []
        if self.sampling_type in ("i", "i+j"):  # on the receiving task's states
            source = tuple(output.transpose(0, 1) for output in outputs)
            receiver = tuple(output.unsqueeze(1) for output in own)
            parts.append(self._divergence(source, receiver).mean(dim=(-2, -1)))
        if self.sampling_type in ("j", "i+j"):  # on the source task's states
            source = tuple(output.unsqueeze(0) for output in own)
            parts.append(self._divergence(source, outputs).mean(dim=(-2, -1)))
        return torch.stack(parts).mean(dim=0)

    def actor_and_alpha_losses(self, obs: torch.Tensor, weight: torch.Tensor | None = None
                               ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """The SAC losses; the actor loss of task i gains ``sum_j beta_ij * divergence_ij``."""
        actor_loss, alpha_loss, stats = super().actor_and_alpha_losses(obs, weight)
        if self.regularized:
            divergence = self.pairwise_divergence()
            penalty = (self.kl_coefficients * divergence).sum(dim=1)
            actor_loss = actor_loss + penalty.sum()
            others = max(self.num_tasks - 1, 1)
            off_diagonal = 1.0 - torch.eye(self.num_tasks, device=divergence.device)
            stats["PolicyKLPenalty"] = penalty.detach()
            stats["PolicyKL"] = (divergence.detach() * off_diagonal).sum(dim=1) / others
            stats["BetaKL"] = self.kl_coefficients.sum(dim=1) / others
        return actor_loss, alpha_loss, stats

    # ------------------------------------------------------------------------------------ distillation
    def centroid_log_likelihood(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """The centroid's log-likelihood ``[N]`` of stored actions ``[..., A]`` at observations ``[..., obs]``."""
        obs = obs.reshape(1, -1, obs.shape[-1])
        action = action.reshape(1, -1, action.shape[-1]).clamp(-1.0 + ACTION_EPS, 1.0 - ACTION_EPS)
        assert self.centroid is not None, "no distillation without --distillation_period"
        mean, log_std = self.centroid(obs)
        return tanh_gaussian_log_prob(mean, log_std, torch.atanh(action), action)[0]

    def distillation_rows_per_task(self) -> int:
        """Transitions of every task in one distillation step, as the original's ``sample_all_transitions``
        for ``--sampling_type``: B // T for ``all`` (and ``i``, which the original sampled as ``all``),
        B for ``j``, B // 2 for ``i+j``."""
        batch = self.buffer_batch_size
        per_task = {"all": batch // self.num_tasks, "i": batch // self.num_tasks, "j": batch,
                    "i+j": batch // 2}[self.sampling_type]
        return max(per_task, 1)

    def distil(self) -> float:
        """Fit the centroid to every buffer's actions, then copy it into every task policy.

        Each of the ``distillation_steps`` steps uses :meth:`distillation_rows_per_task` transitions of
        every task. Returns the last step's negative log-likelihood. The task policies' optimiser states
        are kept.
        """
        per_task = self.distillation_rows_per_task()
        for _ in range(self.distillation_steps):
            data = self.buffer.sample(per_task)
            loss = -self.centroid_log_likelihood(data["observation"], data["action"]).mean()
            self.centroid_optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.centroid_optimizer.step()
        assert self.centroid is not None
        with torch.no_grad():
            for task_parameter, centroid_parameter in zip(self.policy.parameters(), self.centroid.parameters()):
                task_parameter.copy_(centroid_parameter.expand_as(task_parameter))
        return float(loss.detach())

    def end_of_epoch(self, epoch: int) -> dict[str, float]:
        """Distil at every epoch > 0 that is a multiple of the distillation period."""
        if self.centroid is None or self.distillation_period is None or epoch == 0 \
                or epoch % self.distillation_period != 0:
            return {}
        return {"Train/DistillationLoss": self.distil()}

    def optimizer_state(self) -> dict:
        state = super().optimizer_state()
        if self.centroid is not None:
            state["centroid"] = self.centroid_optimizer.state_dict()
        return state

    def load_optimizer_state(self, state: dict) -> None:
        super().load_optimizer_state(state)
        if self.centroid is not None:
            self.centroid_optimizer.load_state_dict(state["centroid"])


def single_policy_copy(policy: TanhGaussianPolicy, member: int) -> TanhGaussianPolicy:
    """A one-task policy holding a copy of member ``member`` of a "separate" policy ensemble."""
    if policy.mlp.architecture != "separate":
        raise ValueError("DnC distillation needs separate task policies")
    hidden_sizes = [layer.out_features for layer in policy.mlp.hidden]
    copy = TanhGaussianPolicy("separate", 1, policy.mlp.hidden[0].in_features, policy.action_dim, hidden_sizes)  # type: ignore[arg-type]
    copy = copy.to(next(policy.parameters()).device)
    with torch.no_grad():
        for copy_parameter, parameter in zip(copy.parameters(), policy.parameters()):
            copy_parameter.copy_(parameter[member: member + 1])
    return copy
