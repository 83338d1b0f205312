"""One launcher per experiment name: build environments, networks, behaviour policy, algorithm, trainer.

Every experiment is plain multi-task SAC; they differ only in the network architecture, the loss
family (per-task buffers vs one shared buffer, SPEC §9.1-9.2), the number of temperatures, and the
behaviour policy that collects data (own policy vs the Q-switch, SPEC §7). That is QMP's point: it
changes data collection only, so "X + QMP" is X with another behaviour policy.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from environments import make_task_set
from environments.base import TaskSet
from learning.behaviour import OwnPolicyBehaviour, QSwitchBehaviour, QSwitchOptions
from learning.checkpoint import CHECKPOINT_FILE, CONFIG_FILE, CheckpointError, load_checkpoint
from learning.config import Config, ConfigError
from learning.evaluation import Evaluator
from learning.logger import RunLogger
from learning.networks import TanhGaussianPolicy, TwinQFunction
from learning.replay_buffer import TaskReplayBuffer
from learning.sac import MultiTaskSAC, SACSettings
from learning.sampler import LockstepSampler
from learning.trainer import RunParts, Trainer

EVALUATION_SEED_OFFSET = 10_000


@dataclass(frozen=True)
class ExperimentRecipe:
    """How an experiment name maps onto the shared machinery."""

    qmp: bool
    """Collect with the Q-switch (and evaluate both the mixture and each task's own policy)."""
    per_task_buffers: bool
    temperature_per_task: bool


RECIPES: dict[str, ExperimentRecipe] = {
    "sac": ExperimentRecipe(qmp=False, per_task_buffers=False, temperature_per_task=False),
    "mtsac": ExperimentRecipe(qmp=False, per_task_buffers=False, temperature_per_task=True),
    "qmp_sac": ExperimentRecipe(qmp=True, per_task_buffers=False, temperature_per_task=True),
    "dnc_sac": ExperimentRecipe(qmp=False, per_task_buffers=True, temperature_per_task=True),
    "qmp_dnc": ExperimentRecipe(qmp=True, per_task_buffers=True, temperature_per_task=True),
}


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
    return task_set


def build_parts(config: Config, task_set: TaskSet) -> RunParts:
    """Construct every component of a run from its configuration."""
    recipe = RECIPES[config.experiment]
    device = resolve_device(config.gpu)
    torch.set_num_threads(config.num_threads)
    seed_everything(config.seed)
    num_tasks = task_set.num_tasks
    layout = task_set.observation_layout
    network_input = partial(layout.network_input, include_task_id=config.include_task_id)
    obs_dim = layout.network_dim(config.include_task_id)

    sampler = LockstepSampler(task_set, None, network_input, device, config.seed, config.discount)
    action_dim = int(sampler.envs.single_action_space.shape[0])
    policy = TanhGaussianPolicy(config.policy_architecture, num_tasks, obs_dim, action_dim, config.hidden_sizes)
    critic = TwinQFunction(config.Q_architecture, num_tasks, obs_dim, action_dim, config.hidden_sizes,
                           config.layer_norm)
    settings = SACSettings(discount=config.discount, tau=config.target_update_tau, reward_scale=config.reward_scale,
                           lr=config.lr, target_entropy=config.target_entropy,
                           per_task_losses=recipe.per_task_buffers, temperature_per_task=recipe.temperature_per_task)
    sac = MultiTaskSAC(policy.to(device), critic.to(device), settings).to(device)

    def own() -> OwnPolicyBehaviour:
        return OwnPolicyBehaviour(sac.policy)

    if recipe.qmp:
        options = QSwitchOptions(
            sampling_freq=config.policy_sampling_freq, score_critic=config.qmp_score_critic,
            action_samples=config.qmp_action_samples, entropy_term=config.qmp_entropy_term,
            warmup_iterations=config.qmp_warmup_iterations, own_policy_prob=config.qmp_own_policy_prob,
        )

        def qswitch() -> QSwitchBehaviour:
            return QSwitchBehaviour(sac.policy, sac.critic, sac.alpha, options, task_set.guide_policies)

        sampler.behaviour = qswitch()
        evaluation_behaviours = {"Evaluation/": qswitch(), "Evaluation/p/": own()}
    else:
        sampler.behaviour = own()
        evaluation_behaviours = {"Evaluation/": own()}

    capacity = config.replay_buffer_size if recipe.per_task_buffers else max(config.replay_buffer_size // num_tasks, 1)
    buffer = TaskReplayBuffer(num_tasks, obs_dim, action_dim, capacity, device)
    evaluator = Evaluator(task_set, network_input, device, config.seed + EVALUATION_SEED_OFFSET, config.discount)
    return RunParts(config, task_set, device, sac, sampler, evaluator, buffer, evaluation_behaviours)


def count_parameters(module: torch.nn.Module) -> int:
    return sum(parameter.numel() for parameter in module.parameters())


def prepare_run(config: Config) -> tuple[Config, TaskSet, Path, dict | None]:
    """Validate everything that can fail before anything is written to disk.

    Returns the effective configuration (for resume: the saved one), the task set, the run
    directory and, for resume, the loaded checkpoint.
    """
    checkpoint = None
    if config.experiment == "resume":
        run_dir = Path(config.snapshot_dir)
        config_path = run_dir / CONFIG_FILE
        if not config_path.is_file():
            raise ConfigError(f"{run_dir} holds no {CONFIG_FILE}; is it a run directory?")
        saved = Config.load(config_path)
        try:
            checkpoint = load_checkpoint(run_dir / CHECKPOINT_FILE)
        except CheckpointError as error:
            raise ConfigError(str(error)) from None
        stored = Config.from_dict(checkpoint["config"])
        if {**stored.to_dict(), "n_epochs": 0} != {**saved.to_dict(), "n_epochs": 0}:
            raise ConfigError(f"{run_dir / CHECKPOINT_FILE} does not belong to {config_path} (configurations differ)")
        n_epochs = config.n_epochs if config.n_epochs > 0 else saved.n_epochs
        config = Config.from_dict({**saved.to_dict(), "n_epochs": n_epochs})
        task_set = build_task_set(config)
        return config, task_set, run_dir, checkpoint
    task_set = build_task_set(config)
    resolve_device(config.gpu)
    run_dir = config.run_dir
    if (run_dir / CHECKPOINT_FILE).exists():
        raise ConfigError(f"{run_dir} already holds a run; continue it with 'python run.py resume --snapshot_dir "
                          f"{run_dir}' or choose another --name, --seed or --log_dir")
    return config, task_set, run_dir, checkpoint


def launch(config: Config, announce: Callable[[str], None] = print) -> tuple[Trainer, dict[str, float]]:
    """Run (or resume) an experiment end to end; returns the trainer and its last evaluation."""
    config, task_set, run_dir, checkpoint = prepare_run(config)
    run_dir.mkdir(parents=True, exist_ok=True)
    config.save(run_dir / CONFIG_FILE)
    parts = build_parts(config, task_set)
    logger = RunLogger(config, run_dir, resume=checkpoint is not None)
    trainer = Trainer(parts, run_dir, logger)
    if checkpoint is not None:
        try:
            trainer.load_state_dict(checkpoint)
        except (KeyError, ValueError, RuntimeError) as error:
            logger.close()
            raise ConfigError(f"checkpoint in {run_dir} does not match this run: {str(error).splitlines()[0]}") from None
        logger.truncate_after(trainer.next_epoch - 1)
        announce(f"resuming {config.run_name} at epoch {trainer.next_epoch} of {config.n_epochs}")
    else:
        announce(f"{config.run_name}: {task_set.num_tasks} tasks, policy parameters "
                 f"{count_parameters(parts.sac.policy)}, Q parameters {count_parameters(parts.sac.critic)}, "
                 f"W&B {logger.mode}, run directory {run_dir}")
    try:
        last = trainer.train()
    finally:
        logger.close()
        parts.sampler.close()
        parts.evaluator.close()
    return trainer, last
