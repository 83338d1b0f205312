"""One source of truth for hyperparameters: the flags, their defaults, the per-environment presets.

The command line is generated from :data:`FLAGS`. Parsing follows the original's three passes
(docs/fidelity.md#flags): read the experiment name and ``--env``, install that environment's presets
(docs/fidelity.md#presets) as defaults, then parse the line, so an explicit flag always wins over a preset.
Method-specific flags are accepted only by the experiments they belong to (docs/fidelity.md#flags). The result is a
frozen :class:`Config` that is saved with every run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from learning.behaviour.options import CTPGOptions, QSwitchOptions, option_flags
from learning.experiment_table import (
    BEHAVIOUR_LABELS,
    CTPG,
    CTPG_FLAGS,
    DATA_SHARING_FLAGS,
    DNC_FLAGS,
    EXPERIMENT_TABLE,
    PCGRAD_FLAGS,
    QMP_FLAGS,
    QSWITCH,
    RESUME,
    Experiment,
    experiment_names,
    takes_flag_group,
)

# Environment id -> "module:function" returning QMP-Domain's fixed mixture table [T, T]
# (docs/fidelity.md#mixture-ablations).
DOMAIN_MIXTURES: dict[str, str] = {"JacoReachMT5-v1": "environments.jaco:domain_mixture_probabilities"}

ARCHITECTURES = ("separate", "shared", "multihead")


class ConfigError(ValueError):
    """A bad command line or configuration; its message is one line for the user."""


def parse_bool(text: str) -> bool:
    """The original's boolean flags take ``True``/``False`` (and we accept 1/0, yes/no)."""
    lowered = str(text).strip().lower()
    if lowered in ("true", "1", "yes", "y", "t"):
        return True
    if lowered in ("false", "0", "no", "n", "f"):
        return False
    raise argparse.ArgumentTypeError(f"expected True or False, got {text!r}")


def parse_device(text: str) -> int | None:
    """``resume --gpu``: a CUDA device id, or ``cpu`` (None, as an absent ``--gpu`` of a new run)."""
    if str(text).strip().lower() == "cpu":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a CUDA device id or cpu, got {text!r}") from None


def resumed_config(saved: Config, resume: Config) -> Config:
    """The saved configuration of a run continued by ``resume``: its ``--n_epochs`` when given (0 keeps the
    saved one) and its ``--gpu`` when typed (a run may move between devices); everything else as saved."""
    changes: dict[str, Any] = {"n_epochs": resume.n_epochs if resume.n_epochs > 0 else saved.n_epochs}
    if "gpu" in resume.explicit_flags:
        changes["gpu"] = resume.gpu
    return Config.from_dict({**saved.to_dict(), **changes})


BOOL_FLAG: dict[str, Any] = dict(type=parse_bool, nargs="?", const=True, metavar="{True,False}")
"""argparse keywords of every boolean flag of the project's commands: ``--flag True``, ``--flag False``,
or a bare ``--flag`` meaning True."""


@dataclass(frozen=True)
class Flag:
    """One command-line flag: its name (= Config field), type, default and who accepts it."""

    name: str
    type: Callable[[str], Any]
    default: Any
    help: str
    nargs: str | None = None
    choices: Sequence[Any] | None = None
    experiments: Callable[[str], bool] | None = None
    """Predicate on the experiment name; None = every experiment."""
    envs: tuple[str, ...] | None = None
    """Environment ids that accept this flag; None = every environment."""

    def applies_to(self, experiment: str) -> bool:
        return self.experiments is None or self.experiments(experiment)


def _envs_taking(key: str) -> tuple[str, ...]:
    """The environment ids whose builder takes the configuration key ``key`` (environments.ENV_KWARGS)."""
    from environments import ENV_KWARGS

    return tuple(env_id for env_id, keys in ENV_KWARGS.items() if key in keys)


# Who takes a method's flags: the experiments whose row in learning/experiment_table.py has its flag group.
def _is_qmp(experiment: str) -> bool:
    """Experiments that take the Q-switch's flags."""
    return takes_flag_group(experiment, QMP_FLAGS)


def _is_dnc(experiment: str) -> bool:
    """Experiments with the DnC penalty and distillation (the original also let uds_dnc and decaf parse
    them, only to assert they were off)."""
    return takes_flag_group(experiment, DNC_FLAGS)


def _is_data_sharing(experiment: str) -> bool:
    return takes_flag_group(experiment, DATA_SHARING_FLAGS)


def _is_shared_buffer_sac(experiment: str) -> bool:
    """The SAC family (one loss over all tasks' samples), where PCGrad applies."""
    return takes_flag_group(experiment, PCGRAD_FLAGS)


def _is_ctpg(experiment: str) -> bool:
    """Experiments that take CTPG's flags (docs/ctpg.md)."""
    return takes_flag_group(experiment, CTPG_FLAGS)


_OPTION_TYPES: dict[str, Callable[[str], Any]] = {"int": int, "float": float, "str": str, "bool": parse_bool}


def _behaviour_flags(options: type, experiments: Callable[[str], bool]) -> tuple[Flag, ...]:
    """The flags of a behaviour policy's options, declared once in learning/behaviour/options.py."""
    return tuple(Flag(flagged.flag, _OPTION_TYPES[flagged.type], flagged.default, flagged.help,
                      choices=flagged.choices, experiments=experiments) for flagged in option_flags(options))


FLAGS: tuple[Flag, ...] = (
    # Run identity and infrastructure.
    Flag("env", str, "MazeLarge-10-v0", "environment id ('python run.py --help' lists them)"),
    Flag("seed", int, 0, "global random seed"),
    Flag("name", str, "None", "run-name suffix"),
    Flag("gpu", int, None, "CUDA device id for networks and replay buffers; CPU when absent"),
    Flag("compile", parse_bool, False, "torch.compile the SAC losses on CUDA (untested; a no-op on CPU)"),
    Flag("notes", str, "", "W&B notes"),
    Flag("wandb", parse_bool, True, "log to Weights & Biases (offline when not logged in)"),
    Flag("wandb_project", str, "qmp-reproduction", "W&B project"),
    Flag("wandb_entity", str, None, "W&B entity (your default entity when absent)"),
    Flag("log_dir", str, "data/local/experiment", "root folder of run directories"),
    Flag("num_threads", int, 1, "CPU threads of torch (1 is fastest for these network sizes; more for large ones)"),
    # Sampling and training budget.
    Flag("n_epochs", int, 1000, "number of epochs"),
    Flag("steps_per_epoch", int, 1, "collect-and-train iterations per epoch"),
    Flag("batch_size", int, 1000, "environment steps collected per iteration, total over tasks"),
    Flag("gradient_steps_per_itr", int, 1000, "gradient steps per iteration, total over tasks"),
    Flag("min_buffer_size", int, 10000, "warm-up size (per task for per-task buffers, total for one shared buffer)"),
    Flag("buffer_batch_size", int, 32, "minibatch size (per task for per-task buffers, total for one shared buffer)"),
    Flag("replay_buffer_size", int, 1_000_000, "replay capacity per task buffer (shared buffer: in total)"),
    # SAC.
    Flag("discount", float, 0.99, "discount factor"),
    Flag("target_update_tau", float, 0.005, "Polyak rate: target <- (1 - tau) target + tau online"),
    Flag("target_entropy", float, None, "temperature target entropy; -|A| when absent"),
    Flag("reward_scale", float, 1.0, "reward multiplier in the critic target"),
    Flag("lr", float, 3e-4, "Adam learning rate for policy, critics and temperature"),
    # Networks.
    Flag("hidden_sizes", int, (256, 256), "hidden layer sizes of every MLP", nargs="+"),
    Flag("layer_norm", parse_bool, False,
         "layer normalisation in the Q networks, before each hidden Linear (garage's)"),
    Flag("policy_architecture", str, "separate", "policy networks", choices=ARCHITECTURES),
    Flag("Q_architecture", str, "separate", "Q networks", choices=ARCHITECTURES),
    Flag("include_task_id", parse_bool, False, "let networks see the task one-hot"),
    # Environment.
    Flag("n_policies", int, None, "number of tasks/policies; must equal the environment's task count"),
    Flag("task_name", str, None, "comma list of task indices to keep (Maze, Meta-World, Kitchen)",
         envs=_envs_taking("task_name")),
    Flag("sparse_tasks", int, (), "task indices with sparse rewards (Maze, Meta-World, Kitchen)", nargs="*",
         envs=_envs_taking("sparse_tasks")),
    Flag("external_forces", parse_bool, False,
         "Walker: the paper's random external forces (the original never applies them)",
         envs=_envs_taking("external_forces")),
    Flag("corrected_kitchen_goal", parse_bool, False,
         "Kitchen: observe the true goal of the 'off' tasks (original: inverted)",
         envs=_envs_taking("corrected_kitchen_goal")),
    Flag("guide_policies", str, "up,right,up_right", "PointReach: fixed candidate policies QMP may pick, comma list of "
         "up, down, left, right, up_right, up_left, down_right, down_left; 'none' for no candidates",
         envs=_envs_taking("guide_policies")),
    # Evaluation, logging, checkpoints.
    Flag("num_evaluation_episodes", int, 10, "evaluation episodes per evaluation, total over tasks"),
    Flag("evaluation_frequency", int, 1, "evaluate every k epochs"),
    Flag("snapshot_gap", int, 1, "1 keeps only the latest checkpoint; k > 1 also keeps every k-th epoch's"),
    Flag("vis_freq", int, -1, "evaluation videos at epoch 0 and every k epochs (a multiple of --evaluation_frequency); "
         "-1: never"),
    Flag("vis_num", int, 10, "video episodes per video epoch, split across tasks (at least 1 per task)"),
    Flag("vis_width", int, 500, "video width in pixels"),
    Flag("vis_height", int, 500, "video height in pixels"),
    Flag("vis_fps", int, 40, "video frames per second"),
    Flag("vis_format", str, "mp4", "video format: mp4, gif, or auto (mp4 when ffmpeg is available)",
         choices=("mp4", "gif", "auto")),
    Flag("snapshot_dir", str, None, "run directory to continue (resume only)", experiments=lambda e: e == RESUME),
    # QMP behaviour policy (docs/fidelity.md#q-switch-and-qmp-options).
    *_behaviour_flags(QSwitchOptions, _is_qmp),
    # DnC (docs/fidelity.md#dnc).
    Flag("kl_coeff", float, (0.0,), "DnC: KL coefficient beta, one value for every pair of policies or T*T "
         "values row-major by receiving policy (1->1 2->1 ... T->1 1->2 ...); the diagonal is ignored; "
         "0 = no penalty", nargs="+", experiments=_is_dnc),
    Flag("sampling_type", str, "all", "DnC: states of the penalty between receiving policy i and source j: all = "
         "batch/T from every task's buffer, i = task i's, j = task j's, i+j = half of each; also the rows per "
         "task of a distillation step (batch/T for all and i, batch for j, batch/2 for i+j)",
         choices=("all", "i", "j", "i+j", "ixj"), experiments=_is_dnc),
    Flag("regularize_representation", parse_bool, False, "DnC: penalise the squared distance between the "
         "policies' last hidden layers instead of the KL", experiments=_is_dnc),
    Flag("distillation_period", int, None, "DnC: every P epochs distil all task policies into a centroid "
         "policy and copy it back; absent = no distillation", experiments=_is_dnc),
    Flag("distillation_n_epochs", int, 100, "DnC: gradient steps per distillation", experiments=_is_dnc),
    # Online data sharing (docs/fidelity.md#uds-and-cds).
    Flag("sharing_quantile", float, 0.0, "data sharing: share another task's transition when task i's Q1 "
         "exceeds this quantile of its own batch (0 = share all, 0.8 = 80th percentile)",
         experiments=_is_data_sharing),
    Flag("unsupervised", parse_bool, True, "data sharing: True = UDS (shared rewards = the env's minimum reward); "
         "False = CDS (task i's reward function; Jaco and Maze)", experiments=_is_data_sharing),
    # PCGrad (docs/fidelity.md#pcgrad).
    Flag("use_pc_grad", parse_bool, False, "PCGrad gradient surgery on the actor and critics",
         experiments=_is_shared_buffer_sac),
    Flag("skip_alpha_pc_grad", parse_bool, True, "PCGrad: leave the temperature loss out of the surgery",
         experiments=_is_shared_buffer_sac),
    # CTPG behaviour policy (docs/ctpg.md; defaults: the official code's config files).
    *_behaviour_flags(CTPGOptions, _is_ctpg),
)

FLAG_BY_NAME: dict[str, Flag] = {flag.name: flag for flag in FLAGS}

# Sections of ``run.py EXPERIMENT --help``: title -> flag names, in display order. A flag in no
# section is listed under "other"; a section with no flag of the experiment is not shown.
FLAG_GROUPS: dict[str, tuple[str, ...]] = {
    "run": ("env", "seed", "name", "gpu", "compile", "num_threads", "log_dir", "snapshot_dir"),
    "budget": ("n_epochs", "steps_per_epoch", "batch_size", "gradient_steps_per_itr", "min_buffer_size",
               "buffer_batch_size", "replay_buffer_size"),
    "SAC": ("discount", "target_update_tau", "target_entropy", "reward_scale", "lr"),
    "networks": ("hidden_sizes", "layer_norm", "policy_architecture", "Q_architecture", "include_task_id"),
    "environment": ("n_policies", "task_name", "sparse_tasks", "external_forces", "corrected_kitchen_goal",
                    "guide_policies"),
    "evaluation and logging": ("num_evaluation_episodes", "evaluation_frequency", "snapshot_gap", "wandb",
                               "wandb_project", "wandb_entity", "notes"),
    "videos": ("vis_freq", "vis_num", "vis_width", "vis_height", "vis_fps", "vis_format"),
    "QMP": tuple(flagged.flag for flagged in option_flags(QSwitchOptions)),
    "DnC": ("kl_coeff", "sampling_type", "regularize_representation", "distillation_period", "distillation_n_epochs"),
    "data sharing": ("sharing_quantile", "unsupervised"),
    "PCGrad": ("use_pc_grad", "skip_alpha_pc_grad"),
    "CTPG": tuple(flagged.flag for flagged in option_flags(CTPGOptions)),
}

# Flags that print instead of training (run.py handles them); they never reach the Config.
PRINT_CONFIG_FLAGS: tuple[str, ...] = ("print_config", "dry_run")

# Flags of the original that this codebase does not take, with the reason shown to the user.
REMOVED_FLAGS: dict[str, str] = {
    "max_n_worker": "environments step in one vector env; there are no sampler workers",
    "sampler_type": "there is one lockstep vector-env sampler",
    "worker_type": "there is one lockstep vector-env sampler",
    "discrete_action": "it was parsed but unused in the original",
    "grad_clip": "it was parsed but never used in the original",
    "reward_params": "it was parsed but unused in the original",
    "reward_type": "it was parsed but unused in the original",
    "control_penalty": "the original asserted it is 0",
    "partition": "tasks are identified by the task axis; random partitions are not supported",
    "norm_obs": "observation normalisation is not supported (it was off by default)",
    "stagewise": "the original's stage mask was broken (docs/fidelity.md#stagewise-mask)",
}

# Per-environment presets (docs/fidelity.md#presets), one row per environment id. Only these keys change;
# explicit flags win.
PRESET_KEYS = ("n_policies", "batch_size", "gradient_steps_per_itr", "min_buffer_size", "buffer_batch_size",
               "steps_per_epoch", "lr", "hidden_sizes", "n_epochs", "num_evaluation_episodes")
_PRESET_ROWS: dict[str, tuple[Any, ...]] = {
    # env id               tasks  batch  grads  min buf  minibatch  iters  lr      hidden      epochs  eval eps
    "PointReach-v0":      (1,     200,   200,   1000,    128,       1,     1e-3,   (64, 64),   40,     10),
    "JacoReachMT5-v1":    (5,     1000,  1000,  10000,   32,        1,     3e-4,   (256, 256), 2000,   50),
    "MazeLarge-10-v0":    (10,    6000,  1000,  3000,    256,       1,     3e-4,   (256, 256), 2000,   100),
    "Walker2dMT4-v0":     (4,     4000,  6000,  10000,   32,        1,     3e-4,   (256, 256), 2000,   40),
    "MetaWorldCDS-v1":    (4,     2000,  200,   5000,    256,       10,    1.5e-3, (256, 256), 500,    40),
    "MetaWorldMT10-v2":   (10,    5000,  500,   5000,    2560,      10,    1.5e-3, (256, 256), 1000,   100),
    "MetaWorldMT50-v2":   (50,    25000, 2500,  1500,    1280,      8,     3e-4,   (400, 400), 1000,   250),
    # The original's Kitchen block sets "num_epochs=500", not a real flag, so it kept 1000 epochs. We read
    # it as the intended n_epochs=500 (docs/fidelity.md#kitchen-epochs-typo; listed in the README's deviations).
    "KitchenMTEasy-v0":   (10,    2000,  500,   2000,    1280,      5,     3e-4,   (256, 256), 500,    50),
}
ENV_PRESETS: dict[str, dict[str, Any]] = {env: dict(zip(PRESET_KEYS, row, strict=True))
                                          for env, row in _PRESET_ROWS.items()}
ENV_PRESETS["PointReach-v0"]["target_entropy"] = 1.0


_QSWITCH, _CTPG = QSwitchOptions(), CTPGOptions()


@dataclass(frozen=True)
class Config:
    """Every hyperparameter of a run. Field names are the original's flag names."""

    experiment: str
    env: str = "MazeLarge-10-v0"
    seed: int = 0
    name: str = "None"
    gpu: int | None = None
    compile: bool = False
    notes: str = ""
    wandb: bool = True
    wandb_project: str = "qmp-reproduction"
    wandb_entity: str | None = None
    log_dir: str = "data/local/experiment"
    num_threads: int = 1
    n_epochs: int = 1000
    steps_per_epoch: int = 1
    batch_size: int = 1000
    gradient_steps_per_itr: int = 1000
    min_buffer_size: int = 10000
    buffer_batch_size: int = 32
    replay_buffer_size: int = 1_000_000
    discount: float = 0.99
    target_update_tau: float = 0.005
    target_entropy: float | None = None
    reward_scale: float = 1.0
    lr: float = 3e-4
    hidden_sizes: tuple[int, ...] = (256, 256)
    layer_norm: bool = False
    policy_architecture: str = "separate"
    Q_architecture: str = "separate"
    include_task_id: bool = False
    n_policies: int | None = None
    task_name: str | None = None
    sparse_tasks: tuple[int, ...] = ()
    external_forces: bool = False
    corrected_kitchen_goal: bool = False
    guide_policies: str = "up,right,up_right"
    num_evaluation_episodes: int = 10
    evaluation_frequency: int = 1
    snapshot_gap: int = 1
    vis_freq: int = -1
    vis_num: int = 10
    vis_width: int = 500
    vis_height: int = 500
    vis_fps: int = 40
    vis_format: str = "mp4"
    snapshot_dir: str | None = None
    # The Q-switch's and CTPG's options (learning/behaviour/options.py declares them; tests/test_config.py
    # checks that these fields are exactly their flagged fields).
    policy_sampling_freq: int = _QSWITCH.sampling_freq
    qmp_score_critic: str = _QSWITCH.score_critic
    qmp_action_samples: int = _QSWITCH.action_samples
    qmp_entropy_term: bool = _QSWITCH.entropy_term
    qmp_warmup_iterations: int = _QSWITCH.warmup_iterations
    qmp_own_policy_prob: float = _QSWITCH.own_policy_prob
    qmp_mixture: str = _QSWITCH.mixture
    qmp_softmax_temperature: float = _QSWITCH.softmax_temperature
    kl_coeff: tuple[float, ...] = (0.0,)
    sampling_type: str = "all"
    regularize_representation: bool = False
    distillation_period: int | None = None
    distillation_n_epochs: int = 100
    sharing_quantile: float = 0.0
    unsupervised: bool = True
    use_pc_grad: bool = False
    skip_alpha_pc_grad: bool = True
    guide_step: int = _CTPG.guide_step
    guide_update_freq: int = _CTPG.guide_update_freq
    guide_lr: float = _CTPG.guide_lr
    filter_gate: str = _CTPG.filter_gate
    block_gate: bool = _CTPG.block_gate
    block_gate_freq: int = _CTPG.block_gate_freq
    guide_hindsight: bool = _CTPG.guide_hindsight
    filter_start_steps: int = _CTPG.filter_start_steps
    explicit_flags: tuple[str, ...] = field(default=(), compare=False)
    """Flags the user typed (the rest came from defaults or presets); kept for the record."""

    # ----------------------------------------------------------------------------- derived facts
    @property
    def spec(self) -> Experiment:
        """The experiment's row of the experiment table (KeyError for ``resume``)."""
        return EXPERIMENT_TABLE[self.experiment]

    @property
    def is_qmp(self) -> bool:
        """Does the experiment collect data with the Q-switch behaviour policy?"""
        return self.spec.behaviour == QSWITCH

    @property
    def is_ctpg(self) -> bool:
        """Does the experiment collect data with CTPG's guides?"""
        return self.spec.behaviour == CTPG

    @property
    def shares_behaviour(self) -> bool:
        """Can another task's policy act in task i (QMP, CTPG)? Then the acting matrix is logged."""
        return self.spec.shares_behaviour

    @property
    def per_task_buffers(self) -> bool:
        """Per-task buffers and per-task SAC losses (DnC family) vs one shared buffer (SAC family)."""
        return self.spec.per_task_buffers

    @property
    def dnc_penalty(self) -> bool:
        """Is the DnC penalty between policies on (any KL coefficient non-zero)?"""
        return any(value != 0 for value in self.kl_coeff)

    @property
    def run_name(self) -> str:
        """The original's run name: ``{experiment}_{env}_{name}_{seed}``."""
        return f"{self.experiment}_{self.env}_{self.name.replace(' ', '-')}_{self.seed}"

    @property
    def run_dir(self) -> Path:
        return Path(self.log_dir) / self.run_name

    def env_kwargs(self) -> dict[str, Any]:
        """Keyword arguments forwarded to this environment's TaskSet builder."""
        from environments import ENV_KWARGS

        return {key: getattr(self, key) for key in ENV_KWARGS.get(self.env, ())}

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["hidden_sizes"] = list(self.hidden_sizes)
        data["sparse_tasks"] = list(self.sparse_tasks)
        data["kl_coeff"] = list(self.kl_coeff)
        data["explicit_flags"] = list(self.explicit_flags)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Config:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"saved configuration has unknown keys {unknown}; it was written by another version")
        values = dict(data)
        for key in ("hidden_sizes", "sparse_tasks", "kl_coeff", "explicit_flags"):
            if key in values and values[key] is not None:
                values[key] = tuple(values[key])
        return cls(**values)

    def save(self, path: Path) -> None:
        """Write the configuration as JSON (atomically)."""
        temporary = path.with_suffix(path.suffix + ".tmp")
        temporary.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True))
        temporary.replace(path)

    @classmethod
    def load(cls, path: Path) -> Config:
        """Read a saved configuration; anything unreadable, incomplete or mistyped is a ConfigError."""
        return load_saved_config(Path(path))


# --------------------------------------------------------------------------------------------- parsing
class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors raise ``error_type(message)`` (ConfigError unless given) instead of
    printing usage and exiting, so every command turns bad input into one line. Subparsers get the same
    behaviour with ``add_subparsers(parser_class=functools.partial(OneLineParser, error_type=...))``."""

    def __init__(self, *args: Any, error_type: type[Exception] = ConfigError, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.error_type = error_type

    def error(self, message: str) -> NoReturn:
        raise self.error_type(message)


def _flag_owner_text(flag: Flag) -> str:
    owners = [e for e in experiment_names() if flag.applies_to(e)]
    return ", ".join(owners)


def _type_name(flag: Flag) -> str:
    """The metavar of a flag in the help: INT, FLOAT, STR or {True,False}."""
    names = {int: "INT", float: "FLOAT", str: "STR", parse_bool: "{True,False}"}
    return names.get(flag.type, getattr(flag.type, "__name__", "VALUE").upper())


def _default_text(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, (tuple, list)):
        return " ".join(map(str, value)) if value else "(empty)"
    return str(value)


def _help_text(flag: Flag, default: Any, preset_env: str | None) -> str:
    """A flag's help line: what it does, its type and its default (marked when a preset set it)."""
    origin = f", {preset_env} preset" if preset_env else ""
    return f"{flag.help} [default: {_default_text(default)}{origin}]".replace("%", "%%")


def _build_parser(experiment: str, env_id: str | None) -> OneLineParser:
    """The experiment's parser, flags grouped as in FLAG_GROUPS, defaults from ``env_id``'s preset
    (the base defaults when ``env_id`` is None, which only ``--help`` without ``--env`` uses)."""
    row = EXPERIMENT_TABLE[experiment]
    paper_name, summary = row.paper_name, row.summary
    preset_note = (f"Defaults are those of {env_id}; '{env_id} preset' marks the ones its preset sets."
                   if env_id else "Defaults shown without an environment preset; add --env ID to see its defaults.")
    parser = OneLineParser(prog=f"run.py {experiment}", usage="python %(prog)s --env ID [flags]",
                            add_help=True, allow_abbrev=False,
                            description=f"{experiment}: {summary}" + (f" (paper: {paper_name})" if paper_name else "")
                            + f". {preset_note}")
    defaults = dict(ENV_PRESETS.get(env_id, {})) if env_id else {}
    group_of = {name: title for title, names in FLAG_GROUPS.items() for name in names}
    sections = {title: parser.add_argument_group(title) for title in [*FLAG_GROUPS, "other"]}
    sections["run"].add_argument(*(f"--{name}" for name in PRINT_CONFIG_FLAGS), action="store_true",
                                 help="print the resolved configuration and the run directory, then exit "
                                      "without creating anything")
    for flag in FLAGS:
        if not flag.applies_to(experiment) or (env_id and flag.envs is not None and env_id not in flag.envs):
            continue
        default = defaults.get(flag.name, flag.default)
        help_text = (f"{flag.help} [required, except for resume]" if flag.name == "env"
                     else _help_text(flag, default, env_id if flag.name in defaults else None))
        kwargs: dict[str, Any] = dict(type=flag.type, default=default, metavar=_type_name(flag), help=help_text)
        if flag.nargs:
            kwargs["nargs"] = flag.nargs
        if flag.type is parse_bool:
            kwargs.update(BOOL_FLAG)
        if flag.choices:
            kwargs["choices"] = flag.choices
            kwargs["metavar"] = "{" + ",".join(map(str, flag.choices)) + "}"
        sections[group_of.get(flag.name, "other")].add_argument(f"--{flag.name}", **kwargs)
    return parser


def _typed_flag_names(argv: Sequence[str]) -> list[str]:
    names = []
    for token in argv:
        if token.startswith("--"):
            names.append(token[2:].split("=", 1)[0])
    return names


def parse_command_line(argv: Sequence[str], require_env: bool = False) -> Config:
    """Parse ``EXPERIMENT [flags]`` into a validated Config. Raises ConfigError on bad input.

    For ``resume`` only ``--snapshot_dir`` and ``--n_epochs`` are read here; the run's saved
    configuration is loaded by the launcher. ``require_env`` (run.py's command line) makes ``--env``
    mandatory for every experiment but resume. ``--help`` prints the experiment's flags and raises
    SystemExit(0); ``--print_config``/``--dry_run`` are accepted and left to the caller.
    """
    argv = list(argv)
    if not argv or argv[0].startswith("-"):
        raise ConfigError(f"the first argument must be an experiment: {', '.join(experiment_names())}")
    experiment, rest = argv[0], argv[1:]
    if experiment not in experiment_names():
        raise ConfigError(f"unknown experiment {experiment!r}; choose one of: {', '.join(experiment_names())}")

    typed = _typed_flag_names(rest)
    for name in typed:
        if name in REMOVED_FLAGS:
            raise ConfigError(f"--{name} is not supported: {REMOVED_FLAGS[name]}")
        flag = FLAG_BY_NAME.get(name)
        if name != "help" and name not in PRINT_CONFIG_FLAGS and flag is None:
            raise ConfigError(f"unknown flag --{name}")
        if experiment == RESUME and name not in ("snapshot_dir", "n_epochs", "gpu", "help", *PRINT_CONFIG_FLAGS):
            raise ConfigError(f"resume takes only --snapshot_dir, --n_epochs and --gpu, not --{name}")
        if flag is not None and not flag.applies_to(experiment):
            raise ConfigError(f"--{name} is a flag of {_flag_owner_text(flag)}, not of {experiment}")

    if experiment == RESUME:
        parser = OneLineParser(prog="run.py resume", allow_abbrev=False)
        parser.add_argument("--snapshot_dir", type=str, required=True, help="run directory to continue")
        parser.add_argument("--n_epochs", type=int, default=None, help="new total number of epochs")
        parser.add_argument("--gpu", type=parse_device, default=None, metavar="{ID,cpu}",
                            help="continue on CUDA device ID, or on the CPU (default: where the run was trained)")
        parser.add_argument(*(f"--{name}" for name in PRINT_CONFIG_FLAGS), action="store_true",
                            help="print the saved configuration and the run directory, then exit")
        args = parser.parse_args(rest)
        if args.n_epochs is not None and args.n_epochs <= 0:
            raise ConfigError("--n_epochs must be positive")
        if not Path(args.snapshot_dir).is_dir():
            raise ConfigError(f"--snapshot_dir {args.snapshot_dir!r} is not a directory")
        return Config(experiment=RESUME, snapshot_dir=args.snapshot_dir,
                      n_epochs=args.n_epochs if args.n_epochs is not None else 0, gpu=args.gpu,
                      explicit_flags=tuple(typed))

    env_parser = OneLineParser(add_help=False, allow_abbrev=False)
    env_parser.add_argument("--env", type=str, default=FLAG_BY_NAME["env"].default)
    env_id = env_parser.parse_known_args(rest)[0].env
    from environments import available_env_ids

    if "env" not in typed and any(token in ("-h", "--help") for token in rest):
        _build_parser(experiment, None).parse_args(rest)  # prints the help and exits
    if require_env and "env" not in typed:
        raise ConfigError(f"--env is required; choose one of: {', '.join(available_env_ids())}")
    if env_id not in available_env_ids():
        raise ConfigError(f"unknown environment id {env_id!r}; known ids: {', '.join(available_env_ids())}")
    for name in typed:
        flag = FLAG_BY_NAME.get(name)
        if flag is not None and flag.envs is not None and env_id not in flag.envs:
            raise ConfigError(f"--{name} applies only to {', '.join(flag.envs)}, not to {env_id}")

    args = _build_parser(experiment, env_id).parse_args(rest)
    values = {key: value for key, value in vars(args).items() if key not in PRINT_CONFIG_FLAGS}
    for key in ("hidden_sizes", "sparse_tasks", "kl_coeff"):
        if key in values:
            values[key] = tuple(values[key])
    config = Config(experiment=experiment, explicit_flags=tuple(typed), **values)
    validate(config)
    return config


def validate(config: Config) -> None:
    """Check value ranges and experiment/architecture combinations (docs/fidelity.md#experiments). Raises
    ConfigError."""
    positive = ("n_epochs", "steps_per_epoch", "batch_size", "gradient_steps_per_itr", "buffer_batch_size",
                "replay_buffer_size", "num_evaluation_episodes", "num_threads", "evaluation_frequency", "snapshot_gap",
                "policy_sampling_freq", "vis_num", "vis_width", "vis_height", "vis_fps")
    for key in positive:
        if getattr(config, key) <= 0:
            raise ConfigError(f"--{key} must be positive, got {getattr(config, key)}")
    for key in ("min_buffer_size", "qmp_action_samples", "qmp_warmup_iterations"):
        if getattr(config, key) < 0:
            raise ConfigError(f"--{key} must not be negative, got {getattr(config, key)}")
    _validate_run_identity(config)
    if not (config.vis_freq == -1 or (config.vis_freq > 0 and config.vis_freq % config.evaluation_frequency == 0)):
        raise ConfigError(f"--vis_freq must be -1 or a positive multiple of --evaluation_frequency "
                          f"({config.evaluation_frequency}), got {config.vis_freq}")
    if config.n_policies is not None and config.n_policies <= 0:
        raise ConfigError(f"--n_policies must be positive, got {config.n_policies}")
    if any(size <= 0 for size in config.hidden_sizes):
        raise ConfigError(f"--hidden_sizes must be positive, got {list(config.hidden_sizes)}")
    if not 0.0 <= config.discount <= 1.0:
        raise ConfigError(f"--discount must be in [0, 1], got {config.discount}")
    if not 0.0 < config.target_update_tau <= 1.0:
        raise ConfigError(f"--target_update_tau must be in (0, 1], got {config.target_update_tau}")
    if not config.lr > 0 or math.isnan(config.lr):
        raise ConfigError(f"--lr must be positive, got {config.lr}")
    if not 0.0 <= config.qmp_own_policy_prob <= 1.0:
        raise ConfigError(f"--qmp_own_policy_prob must be in [0, 1], got {config.qmp_own_policy_prob}")
    if config.is_qmp and config.qmp_warmup_iterations >= config.n_epochs:
        raise ConfigError(f"--qmp_warmup_iterations ({config.qmp_warmup_iterations}) must be below --n_epochs "
                          f"({config.n_epochs}): the Q-switch would never act and the run would be its method "
                          f"without QMP")

    policy, q = config.policy_architecture, config.Q_architecture
    experiment, row = config.experiment, config.spec
    if not row.architectures.allows(policy, q):
        raise ConfigError(f"{experiment} {row.architectures.hint}")
    if row.shares_behaviour and config.include_task_id:
        raise ConfigError(f"{BEHAVIOUR_LABELS[row.behaviour]} experiments hide the task identity from the networks; "
                          f"drop --include_task_id")
    _validate_method_flags(config)
    if row.shared_networks_need_task_id and "shared" in (policy, q) and not config.include_task_id:
        raise ConfigError(f"{experiment} with shared networks needs --include_task_id True (or use multihead networks)")


def reject_repeated_flags(argv: Sequence[str]) -> None:
    """A flag typed twice on the command line is an error (argparse would silently keep the last
    value). run.py calls this; :func:`parse_command_line` itself keeps argparse's last-wins, so
    scripts and tests can append overrides to a base line."""
    seen: set[str] = set()
    for name in _typed_flag_names(argv):
        if name in seen:
            raise ConfigError(f"--{name} is given more than once")
        seen.add(name)


MAX_SEED = 2 ** 31 - 1
MAX_INTEGER = 2 ** 53
"""Integer flags stay within what numpy's int64 index arithmetic and float64 counters hold exactly."""
"""Seeds reach numpy (which takes < 2^32) with offsets added for tasks and evaluation."""


def _validate_run_identity(config: Config) -> None:
    """Finite floats, seed range, run name and log directory, buffer sizes (what a run needs to exist)."""
    for flag in FLAGS:
        value = getattr(config, flag.name)
        values = value if isinstance(value, tuple) else (value,)
        shown = value if flag.nargs is None else list(value)
        if any(isinstance(item, float) and not math.isfinite(item) for item in values):
            raise ConfigError(f"--{flag.name} must be a finite number, got {shown}")
        if any(isinstance(item, int) and abs(item) > MAX_INTEGER for item in values):
            raise ConfigError(f"--{flag.name} is too large (at most {MAX_INTEGER}), got {shown}")
    if not 0 <= config.seed <= MAX_SEED:
        raise ConfigError(f"--seed must be in [0, {MAX_SEED}], got {config.seed}")
    if not config.log_dir.strip():
        raise ConfigError("--log_dir must not be empty")
    if ("/" in config.name or "\\" in config.name or ".." in config.name
            or not all(char.isprintable() for char in config.name)):
        raise ConfigError(f"--name must not contain '/', '\\', '..' or control characters (it names a folder "
                          f"inside --log_dir), got {config.name!r}")
    if config.replay_buffer_size < config.min_buffer_size:
        raise ConfigError(f"--replay_buffer_size ({config.replay_buffer_size}) is smaller than --min_buffer_size "
                          f"({config.min_buffer_size}): training would never start")
    _validate_names_and_sizes(config)


MAX_NAME_BYTES = 255
"""Longest file name of Linux file systems: the run directory's name and every --log_dir component."""
MAX_PATH_BYTES = 4000
"""Longest run directory path, leaving room below Linux's 4096 for the files inside it."""
MAX_VIDEO_SIDE = 4096
"""Largest video width or height (4K); MuJoCo's offscreen buffer and the encoders stop not far above."""
MAX_THREADS = 1024
WANDB_FORBIDDEN = "/\\#?%:"
"""Characters W&B refuses in project names (and entities); a project name has at most 128 of them."""


def _validate_names_and_sizes(config: Config) -> None:
    """Names the file system and W&B accept, and sizes no machine has."""
    name_bytes = len(config.run_name.encode())
    if name_bytes > MAX_NAME_BYTES:
        raise ConfigError(f"the run directory's name {config.run_name[:40]}... has {name_bytes} bytes, more than "
                          f"the {MAX_NAME_BYTES} a file name may have; shorten --name")
    long_part = next((part for part in Path(config.log_dir).parts if len(part.encode()) > MAX_NAME_BYTES), None)
    if long_part is not None:
        raise ConfigError(f"--log_dir has a folder name of {len(long_part.encode())} bytes, more than the "
                          f"{MAX_NAME_BYTES} a file name may have")
    path_bytes = len(str(Path(config.log_dir).absolute() / config.run_name).encode())
    if path_bytes > MAX_PATH_BYTES:
        raise ConfigError(f"the run directory's path has {path_bytes} bytes, more than {MAX_PATH_BYTES}; "
                          f"choose a shorter --log_dir")
    for flag, value in (("wandb_project", config.wandb_project), ("wandb_entity", config.wandb_entity)):
        if value is None:
            continue
        bad = sorted({char for char in value if char in WANDB_FORBIDDEN or not char.isprintable()})
        if not value.strip() or bad or len(value) > 128:
            reason = (f"contains {' '.join(map(repr, bad))}" if bad else "is empty" if not value.strip()
                      else f"has {len(value)} characters, more than 128")
            raise ConfigError(f"--{flag} {value[:40]!r} is not a W&B name: it {reason}")
    if max(config.vis_width, config.vis_height) > MAX_VIDEO_SIDE:
        raise ConfigError(f"--vis_width and --vis_height must be at most {MAX_VIDEO_SIDE}, got {config.vis_width} x "
                          f"{config.vis_height}")
    if config.num_threads > MAX_THREADS:
        raise ConfigError(f"--num_threads must be at most {MAX_THREADS}, got {config.num_threads}")


def _has_flag_type(value: Any, flag: Flag) -> bool:
    """Is a JSON value one the flag could have parsed to (None only where the default is None)?"""
    if value is None:
        return flag.default is None
    if flag.type is parse_bool:
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    types: dict[Callable[[str], Any], tuple[type, ...]] = {int: (int,), float: (int, float), str: (str,)}
    expected = types.get(flag.type, (object,))
    return isinstance(value, expected)


def load_saved_config(path: Path) -> Config:
    """A run's ``config.json``: valid JSON, every key present, every value of its flag's type, valid."""
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else str(error).splitlines()[0]
        raise ConfigError(f"{path} is not a readable JSON configuration: {reason}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} is not a configuration (a JSON object)")
    required = {f.name for f in dataclasses.fields(Config)} - {"explicit_flags"}
    experiment_name = data.get("experiment")
    if isinstance(experiment_name, str) and experiment_name in EXPERIMENT_TABLE:
        # A run written before a method-specific flag existed: a flag its experiment does not take
        # has no effect on it, so the flag's default is filled in and the run resumes.
        for flag in FLAGS:
            if flag.name not in data and not flag.applies_to(experiment_name):
                data[flag.name] = list(flag.default) if isinstance(flag.default, tuple) else flag.default
    missing = sorted(required - set(data))
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise ConfigError(f"{path} lacks the keys {shown}; it is not a complete run configuration")
    for flag in FLAGS:
        value = data[flag.name]
        items = value if isinstance(value, list) else [value]
        if (flag.nargs is not None) != isinstance(value, list) or not all(_has_flag_type(item, flag) for item in items):
            raise ConfigError(f"{path}: {flag.name} has a value of the wrong type: {value!r}")
    config = Config.from_dict(data)
    if config.experiment not in EXPERIMENT_TABLE:
        raise ConfigError(f"{path}: unknown experiment {config.experiment!r}")
    validate(config)
    return config


def _validate_method_flags(config: Config) -> None:
    """Ranges of the method-specific flags, and flags typed where they would have no effect."""
    typed = set(config.explicit_flags)

    def typed_without_effect(names: tuple[str, ...], reason: str) -> None:
        for name in names:
            if name in typed:
                raise ConfigError(f"--{name} has no effect {reason}")

    if _is_dnc(config.experiment):
        if any(value < 0 for value in config.kl_coeff):
            raise ConfigError(f"--kl_coeff must not be negative, got {list(config.kl_coeff)}")
        if config.sampling_type == "ixj":
            raise ConfigError("--sampling_type ixj is not supported: the original does not document its meaning; "
                              "use all, i, j or i+j")
        if not config.dnc_penalty:
            typed_without_effect(("regularize_representation",), "without a non-zero --kl_coeff")
            if config.distillation_period is None:
                typed_without_effect(("sampling_type",), "without a non-zero --kl_coeff or --distillation_period")
        if config.distillation_period is None:
            typed_without_effect(("distillation_n_epochs",), "without --distillation_period")
        elif config.distillation_period <= 0 or config.distillation_period % config.evaluation_frequency != 0:
            raise ConfigError(f"--distillation_period must be a positive multiple of --evaluation_frequency "
                              f"({config.evaluation_frequency}), got {config.distillation_period}")
        if config.distillation_n_epochs <= 0:
            raise ConfigError(f"--distillation_n_epochs must be positive, got {config.distillation_n_epochs}")
    if _is_data_sharing(config.experiment) and not 0.0 <= config.sharing_quantile <= 1.0:
        raise ConfigError(f"--sharing_quantile must be in [0, 1], got {config.sharing_quantile}")
    if _is_ctpg(config.experiment):
        for key in ("guide_step", "guide_update_freq", "block_gate_freq"):
            if getattr(config, key) <= 0:
                raise ConfigError(f"--{key} must be positive, got {getattr(config, key)}")
        if not config.guide_lr > 0 or math.isnan(config.guide_lr):
            raise ConfigError(f"--guide_lr must be positive, got {config.guide_lr}")
        if config.filter_start_steps < 0:
            raise ConfigError(f"--filter_start_steps must not be negative, got {config.filter_start_steps}")
        if config.filter_gate == "off":
            typed_without_effect(("filter_start_steps",), "with --filter_gate off")
        if not config.block_gate:
            typed_without_effect(("block_gate_freq",), "with --block_gate False")
    if _is_shared_buffer_sac(config.experiment) and not config.use_pc_grad:
        typed_without_effect(("skip_alpha_pc_grad",), "without --use_pc_grad True")
    if _is_qmp(config.experiment):
        if not config.qmp_softmax_temperature > 0:
            raise ConfigError(f"--qmp_softmax_temperature must be positive, got {config.qmp_softmax_temperature}")
        if config.qmp_mixture != "softmax":
            typed_without_effect(("qmp_softmax_temperature",), "without --qmp_mixture softmax")
        if config.qmp_mixture in ("uniform", "domain"):
            typed_without_effect(("qmp_score_critic", "qmp_action_samples", "qmp_entropy_term"),
                                 f"with --qmp_mixture {config.qmp_mixture}, which scores no candidates")
        if config.qmp_mixture == "domain" and config.env not in DOMAIN_MIXTURES:
            raise ConfigError(f"--qmp_mixture domain needs a domain-knowledge mixture table, which only "
                              f"{', '.join(DOMAIN_MIXTURES)} has (docs/fidelity.md#mixture-ablations), "
                              f"not {config.env}")


def main_error(message: str) -> NoReturn:
    """Print one line on stderr and exit with code 2."""
    print(f"run.py: error: {message}", file=sys.stderr)
    raise SystemExit(2)
