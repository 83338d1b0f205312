"""What each experiment name builds: environments, networks, behaviour policy, algorithm, sampler.

Every experiment is multi-task SAC; they differ in the network architecture, the loss family
(per-task buffers vs one shared buffer, docs/fidelity.md#networks-and-sac), the number of temperatures, the algorithm's
extension of the SAC update (DnC, data sharing, PCGrad, DECAF, MCAL; docs/baselines.md), and the
behaviour policy that collects data (own policy vs the Q-switch, docs/fidelity.md#q-switch). That is QMP's point: it
changes data collection only, so "X + QMP" is X with another behaviour policy. Which name is which is
the experiment table's row (learning/experiment_table.py); this module builds a row's parts, with
:data:`UPDATE_BUILDERS` for its update.

This is the composition root of the library: it imports the core, the behaviour policies, the
baselines and the training loop, and nothing below it imports it. ``garage_experiments.launch`` and
``learning.analysis.runs.load_run`` both build a run's parts here.
"""

from __future__ import annotations

import importlib
import random
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import cast

import numpy as np
import torch

from environments import make_task_set
from environments.base import TaskSet
from learning.baselines.data_sharing import DataSharingSAC, RewardTableReplayBuffer
from learning.baselines.decaf import DecafTwinQFunction
from learning.baselines.dnc import DnCSAC
from learning.baselines.mcal import MultiCriticActorSAC
from learning.baselines.pcgrad import PCGradSAC
from learning.behaviour.ctpg import CTPGBehaviour, GuideNetworks
from learning.behaviour.ctpg_learner import CTPGLearner
from learning.behaviour.options import CTPGOptions, QSwitchOptions, options_from
from learning.behaviour.own_policy import OwnPolicyBehaviour
from learning.behaviour.protocol import BehaviourPolicy
from learning.behaviour.qswitch import QSwitchBehaviour
from learning.core.networks import TanhGaussianPolicy, TwinQFunction
from learning.core.replay_buffer import TaskReplayBuffer
from learning.core.sac import MultiTaskSAC, SACSettings
from learning.experiment_table import CTPG, DATA_SHARING, DECAF, DNC, DNC_FLAGS, MCAL, QSWITCH, SAC
from learning.training.budget import Budget, Schedule
from learning.training.config import DOMAIN_MIXTURES, Config, ConfigError
from learning.training.evaluation import Evaluator
from learning.training.memory import check_memory, relabels_rewards
from learning.training.metric_names import EVALUATION_PREFIX, OWN_EVALUATION_PREFIX
from learning.training.sampler import LockstepSampler
from learning.training.trainer import RunParts

EVALUATION_SEED_OFFSET = 10_000


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (the environments are seeded at their first reset)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_device(gpu: int | None) -> torch.device:
    """``--gpu ID`` -> that CUDA device; absent -> CPU (as in the original)."""
    if gpu is None:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ConfigError(f"--gpu {gpu} was given but no CUDA device is available")
    if not 0 <= gpu < torch.cuda.device_count():
        raise ConfigError(f"--gpu {gpu} does not exist; this machine has {torch.cuda.device_count()} CUDA device(s)")
    return torch.device(f"cuda:{gpu}")


def build_task_set(config: Config) -> TaskSet:
    """The environment's TaskSet, checked against ``--n_policies``. Raises ConfigError."""
    try:
        task_set = make_task_set(config.env, **config.env_kwargs())
    except (KeyError, ValueError) as error:
        raise ConfigError(str(error).strip("'\"")) from None
    if config.n_policies is not None and config.n_policies != task_set.num_tasks:
        raise ConfigError(f"--n_policies {config.n_policies} does not match {config.env}, which has "
                          f"{task_set.num_tasks} tasks with these settings")
    tasks = task_set.num_tasks
    if DNC_FLAGS in config.spec.flag_groups and len(config.kl_coeff) not in (1, tasks * tasks):
        raise ConfigError(f"--kl_coeff takes 1 or {tasks * tasks} values for the {tasks} tasks of {config.env}, "
                          f"got {len(config.kl_coeff)}")
    if config.spec.update == DATA_SHARING and not config.unsupervised and task_set.reward_function is None:
        raise ConfigError(f"--unsupervised False (CDS) relabels with the tasks' reward functions, which "
                          f"{config.env} does not provide")
    return task_set


def domain_mixture_table(env_id: str) -> np.ndarray:
    """QMP-Domain's fixed mixture ``[T, T]`` of an environment listed in DOMAIN_MIXTURES
    (docs/fidelity.md#mixture-ablations)."""
    module_name, function_name = DOMAIN_MIXTURES[env_id].split(":")
    return np.asarray(getattr(importlib.import_module(module_name), function_name)())


def _sac(config: Config, task_set: TaskSet, policy: TanhGaussianPolicy, critic: TwinQFunction,
         settings: SACSettings, buffer: TaskReplayBuffer) -> MultiTaskSAC:
    """Plain multi-task SAC; PCGrad's surgery on one shared buffer's loss when --use_pc_grad asks for it."""
    if not config.per_task_buffers and config.use_pc_grad:
        return PCGradSAC(policy, critic, settings, config.skip_alpha_pc_grad)
    return MultiTaskSAC(policy, critic, settings)


def _dnc(config: Config, task_set: TaskSet, policy: TanhGaussianPolicy, critic: TwinQFunction,
         settings: SACSettings, buffer: TaskReplayBuffer) -> MultiTaskSAC:
    """DnC when its penalty or distillation is on, else plain SAC (Separated)."""
    if config.dnc_penalty or config.distillation_period is not None:
        return DnCSAC(policy, critic, settings, buffer, config.buffer_batch_size, config.kl_coeff,
                      config.sampling_type, config.regularize_representation, config.distillation_period,
                      config.distillation_n_epochs)
    return _sac(config, task_set, policy, critic, settings, buffer)


def _data_sharing(config: Config, task_set: TaskSet, policy: TanhGaussianPolicy, critic: TwinQFunction,
                  settings: SACSettings, buffer: TaskReplayBuffer) -> MultiTaskSAC:
    """UDS (shared rewards = the environment's minimum reward) or CDS (--unsupervised False)."""
    min_reward = task_set.min_reward if config.unsupervised else None
    return DataSharingSAC(policy, critic, settings, buffer, config.sharing_quantile, min_reward)


def _mcal(config: Config, task_set: TaskSet, policy: TanhGaussianPolicy, critic: TwinQFunction,
          settings: SACSettings, buffer: TaskReplayBuffer) -> MultiTaskSAC:
    return MultiCriticActorSAC(policy, critic, settings)


def _twin_critic(config: Config, num_tasks: int, obs_dim: int, action_dim: int) -> TwinQFunction:
    return TwinQFunction(config.Q_architecture, num_tasks, obs_dim, action_dim, config.hidden_sizes, config.layer_norm)


def _decaf_critic(config: Config, num_tasks: int, obs_dim: int, action_dim: int) -> TwinQFunction:
    """DECAF's critics answer the calls of the twin critics (``q1``, ``q2``, ``forward``)."""
    return cast(TwinQFunction, DecafTwinQFunction(num_tasks, obs_dim, action_dim, config.hidden_sizes,
                                                  config.layer_norm))


@dataclass(frozen=True)
class UpdateBuilder:
    """How one update of the experiment table is built: its critic, then its algorithm."""

    algorithm: Callable[[Config, TaskSet, TanhGaussianPolicy, TwinQFunction, SACSettings, TaskReplayBuffer],
                        MultiTaskSAC]
    critic: Callable[[Config, int, int, int], TwinQFunction] = _twin_critic
    """``(config, num_tasks, obs_dim, action_dim)`` -> the twin critics."""


UPDATE_BUILDERS: dict[str, UpdateBuilder] = {
    SAC: UpdateBuilder(_sac),
    DNC: UpdateBuilder(_dnc),
    DATA_SHARING: UpdateBuilder(_data_sharing),
    DECAF: UpdateBuilder(_sac, critic=_decaf_critic),
    MCAL: UpdateBuilder(_mcal),
}
"""The ``update`` of an experiment-table row -> how it is built (a new update registers here)."""


def build_parts(config: Config, task_set: TaskSet) -> RunParts:
    """Construct every component of a run from its configuration."""
    row = config.spec
    update = UPDATE_BUILDERS[row.update]
    device = resolve_device(config.gpu)
    torch.set_num_threads(config.num_threads)
    seed_everything(config.seed)
    num_tasks = task_set.num_tasks
    layout = task_set.observation_layout
    network_input = partial(layout.network_input, include_task_id=config.include_task_id)
    obs_dim = layout.network_dim(config.include_task_id)

    behaviour_learner: CTPGLearner | None = None
    evaluation_behaviours: dict[str, BehaviourPolicy]
    relabel_rewards = relabels_rewards(config)
    sampler = LockstepSampler(task_set, None, network_input, device, config.seed, config.discount,
                              keep_raw_observations=relabel_rewards)
    action_dim = sampler.envs.action_dim
    try:
        check_memory(config, num_tasks, obs_dim, action_dim, device.type, device.index)
    except ConfigError:
        sampler.close()
        raise
    policy = TanhGaussianPolicy(config.policy_architecture, num_tasks, obs_dim, action_dim, config.hidden_sizes)
    critic = update.critic(config, num_tasks, obs_dim, action_dim)
    settings = SACSettings(discount=config.discount, tau=config.target_update_tau, reward_scale=config.reward_scale,
                           lr=config.lr, target_entropy=config.target_entropy,
                           per_task_losses=config.per_task_buffers, temperature_per_task=row.temperature_per_task)
    budget = Budget.of(config, num_tasks)
    capacity = budget.capacity_per_task
    buffer: TaskReplayBuffer
    if relabel_rewards:
        assert task_set.reward_function is not None  # build_task_set checked it
        buffer = RewardTableReplayBuffer(num_tasks, obs_dim, action_dim, capacity, task_set.reward_function, device)
    else:
        buffer = TaskReplayBuffer(num_tasks, obs_dim, action_dim, capacity, device)
    sac = update.algorithm(config, task_set, policy.to(device), critic.to(device), settings, buffer).to(device)
    if config.compile and device.type == "cuda":  # never run on CUDA so far (docs/performance.md)
        sac.compile_losses()

    def own() -> OwnPolicyBehaviour:
        return OwnPolicyBehaviour(sac.policy)

    if row.behaviour == QSWITCH:
        options = options_from(QSwitchOptions, config)
        table = domain_mixture_table(config.env) if config.qmp_mixture == "domain" else None

        def qswitch() -> QSwitchBehaviour:
            return QSwitchBehaviour(sac.policy, sac.critic, sac.alpha, options, task_set.guide_policies, table)

        sampler.behaviour = qswitch()
        evaluation_behaviours = {EVALUATION_PREFIX: qswitch(), OWN_EVALUATION_PREFIX: own()}
    elif row.behaviour == CTPG:
        ctpg_options = options_from(CTPGOptions, config)
        guide = GuideNetworks(config.policy_architecture, num_tasks, obs_dim,
                              num_tasks + len(task_set.guide_policies), config.hidden_sizes).to(device)
        behaviour = CTPGBehaviour(sac.policy, sac.critic, sac.alpha, guide, ctpg_options, task_set.guide_policies)
        sampler.behaviour = behaviour
        behaviour_learner = CTPGLearner(sac, guide, behaviour, buffer, ctpg_options, config.discount,
                                        config.reward_scale)
        evaluation_behaviours = {EVALUATION_PREFIX: own()}  # CTPG evaluates each task's own policy
    else:
        sampler.behaviour = own()
        evaluation_behaviours = {EVALUATION_PREFIX: own()}

    evaluator = Evaluator(task_set, network_input, device, config.seed + EVALUATION_SEED_OFFSET, config.discount)
    return RunParts(config.to_dict(), budget, Schedule.of(config, num_tasks), task_set, device, sac, sampler,
                    evaluator, buffer, evaluation_behaviours, behaviour_learner)


def count_parameters(module: torch.nn.Module) -> int:
    return sum(parameter.numel() for parameter in module.parameters())


