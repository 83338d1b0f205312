"""The experiment table: what every experiment name means, one row per name.

A row says which behaviour policy collects data (the task's own policy, the Q-switch, or CTPG's
guides), which SAC update trains the networks, whether buffers are per task or shared, how many
temperatures there are, which network architectures the name accepts, and which method-specific flag
groups it takes. The command line (flags, ``--help``, validation), ``learning.experiments.build_parts``,
the memory estimate and the analysis's method names read these rows; nothing else decodes an
experiment name. Adding a method is one row here (plus its update class, registered in
``learning.experiments.UPDATE_BUILDERS``, when it has a new one).

This module imports nothing of the library and no torch, so every layer may read it.
"""

from __future__ import annotations

from dataclasses import dataclass

# Behaviour policies (who acts in task i while collecting data).
OWN = "own"
"""Task i's own policy (learning/behaviour/own_policy.py)."""
QSWITCH = "qswitch"
"""QMP's Q-switch (learning/behaviour/qswitch.py)."""
CTPG = "ctpg"
"""CTPG's learned guides (learning/behaviour/ctpg.py, docs/ctpg.md)."""
BEHAVIOUR_LABELS = {OWN: "own policy", QSWITCH: "QMP", CTPG: "CTPG"}

# SAC updates (learning.experiments.UPDATE_BUILDERS builds each).
SAC = "sac"
"""Plain multi-task SAC; with PCGrad's surgery when the row has the PCGrad flag group and --use_pc_grad."""
DNC = "dnc"
"""SAC with DnC's KL penalty and periodic distillation when their flags ask for them, else plain SAC."""
DATA_SHARING = "data_sharing"
"""UDS (or CDS with --unsupervised False): online sharing of other tasks' transitions."""
DECAF = "decaf"
"""DECAF: separate policies on task-weighted mixtures of every task's critic."""
MCAL = "mcal"
"""MCAL: one multihead actor trained on per-task critics."""

# Flag groups of method-specific flags (the sections of ``run.py EXPERIMENT --help``).
QMP_FLAGS, DNC_FLAGS, DATA_SHARING_FLAGS, PCGRAD_FLAGS, CTPG_FLAGS = "QMP", "DnC", "data sharing", "PCGrad", "CTPG"
METHOD_FLAG_GROUPS = (QMP_FLAGS, DNC_FLAGS, DATA_SHARING_FLAGS, PCGRAD_FLAGS, CTPG_FLAGS)


@dataclass(frozen=True)
class Architectures:
    """The network architectures an experiment accepts, and the line shown when others are asked for."""

    policy: tuple[str, ...]
    q: tuple[str, ...]
    hint: str
    """The error after the experiment's name, e.g. "uses separate networks; drop ..."."""

    def allows(self, policy: str, q: str) -> bool:
        return policy in self.policy and q in self.q


SEPARATE_NETWORKS = Architectures(("separate",), ("separate",),
                                  "uses separate networks; drop --policy_architecture/--Q_architecture "
                                  "or use mtsac/qmp_sac for multihead")
SHARED_OR_MULTIHEAD = Architectures(("multihead", "shared"), ("multihead", "shared"),
                                    "needs --policy_architecture and --Q_architecture multihead or shared "
                                    "(use dnc_sac for separate networks)")
MULTIHEAD = Architectures(("multihead",), ("multihead",),
                          "needs --policy_architecture multihead --Q_architecture multihead")
MULTIHEAD_ACTOR = Architectures(("multihead",), ("separate", "multihead"),
                                "needs --policy_architecture multihead and per-task critics "
                                "(--Q_architecture separate, the default, or multihead)")


@dataclass(frozen=True)
class Experiment:
    """One experiment name's row."""

    paper_name: str
    """The paper's name of the method, shown by ``run.py --help``."""
    summary: str
    """What it trains, in one line of ``run.py --help``."""
    behaviour: str
    """Who collects data: OWN, QSWITCH or CTPG."""
    update: str
    """The SAC update: SAC, DNC, DATA_SHARING, DECAF or MCAL (or one registered with its class)."""
    per_task_buffers: bool
    """Per-task buffers and per-task SAC losses (DnC family) vs one shared buffer and one loss (SAC family)."""
    temperature_per_task: bool
    """One SAC temperature per task vs one for all tasks."""
    architectures: Architectures
    flag_groups: tuple[str, ...] = ()
    """Method-specific flag groups the name accepts (METHOD_FLAG_GROUPS); every name takes the common flags."""
    method_name: str | None = None
    """The default legend label of its runs in figures and tables (None: the experiment name)."""
    shared_networks_need_task_id: bool = False
    """Shared (not multihead) networks need ``--include_task_id True`` to tell the tasks apart."""

    @property
    def shares_behaviour(self) -> bool:
        """Can another task's policy act in task i? Then the acting matrix is logged and the networks
        must not see the task identity."""
        return self.behaviour != OWN


def _row(paper_name: str, summary: str, behaviour: str, update: str, buffers: str, temperatures: str,
         architectures: Architectures, flag_groups: tuple[str, ...] = (), method_name: str | None = None,
         **extra: bool) -> Experiment:
    """A row written as the table reads: buffers "per task"/"shared", temperatures "per task"/"one"."""
    return Experiment(paper_name, summary, behaviour, update, buffers == "per task", temperatures == "per task",
                      architectures, flag_groups, method_name, **extra)


EXPERIMENT_TABLE: dict[str, Experiment] = {
    #  name: paper name, summary, behaviour, update, buffers, temperatures, architectures, flag groups, label
    "sac": _row("Fully-Shared-Behaviours", "one network for all tasks, one temperature, one shared buffer",
                OWN, SAC, "shared", "one", SHARED_OR_MULTIHEAD, (PCGRAD_FLAGS,), "Fully shared"),
    "mtsac": _row("Parameter-Sharing", "multihead (or shared + task id) SAC, one temperature per task",
                  OWN, SAC, "shared", "per task", SHARED_OR_MULTIHEAD, (PCGRAD_FLAGS,), "Parameters",
                  shared_networks_need_task_id=True),
    "dnc_sac": _row("No-Sharing (Separated); DnC", "separate SAC per task; with --kl_coeff/--distillation_period DnC",
                    OWN, DNC, "per task", "per task", SEPARATE_NETWORKS, (DNC_FLAGS,), "Separated"),
    "qmp_dnc": _row("Separated + QMP", "separate SAC per task, Q-switch data collection",
                    QSWITCH, DNC, "per task", "per task", SEPARATE_NETWORKS, (QMP_FLAGS, DNC_FLAGS), "Separated + QMP"),
    "qmp_sac": _row("Parameters + QMP", "multihead SAC, Q-switch data collection",
                    QSWITCH, SAC, "shared", "per task", MULTIHEAD, (QMP_FLAGS, PCGRAD_FLAGS), "Parameters + QMP"),
    "uds_dnc": _row("Data-Sharing", "separate SAC per task + online data sharing (UDS; CDS with --unsupervised False)",
                    OWN, DATA_SHARING, "per task", "per task", SEPARATE_NETWORKS, (DATA_SHARING_FLAGS,), "UDS"),
    "qmp_uds_dnc": _row("Data + QMP", "uds_dnc with Q-switch data collection",
                        QSWITCH, DATA_SHARING, "per task", "per task", SEPARATE_NETWORKS,
                        (QMP_FLAGS, DATA_SHARING_FLAGS), "UDS + QMP"),
    "decaf": _row("DECAF", "separate policies, task-weighted mixtures of every task's critic",
                  OWN, DECAF, "per task", "per task", SEPARATE_NETWORKS, (), "DECAF"),
    "mcal": _row("MCAL", "one multihead actor, per-task critics",
                 OWN, MCAL, "per task", "one", MULTIHEAD_ACTOR, (), "MCAL"),
    "qmp_mcal": _row("QMP + MCAL", "mcal with Q-switch data collection",
                     QSWITCH, MCAL, "per task", "one", MULTIHEAD_ACTOR, (QMP_FLAGS,), "MCAL + QMP"),
    # CTPG (docs/ctpg.md): Separated + CTPG, and Parameters (multihead) + CTPG, with PCGrad by its flag.
    "ctpg_dnc": _row("Separated + CTPG", "separate SAC per task, CTPG's learned guides collect data (docs/ctpg.md)",
                     CTPG, SAC, "per task", "per task", SEPARATE_NETWORKS, (CTPG_FLAGS,), "Separated + CTPG"),
    "ctpg_sac": _row("Parameters + CTPG", "multihead SAC, CTPG's learned guides collect data (docs/ctpg.md)",
                     CTPG, SAC, "shared", "per task", MULTIHEAD, (CTPG_FLAGS, PCGRAD_FLAGS), "Parameters + CTPG"),
}
"""Experiment name -> its row, in the order of ``run.py --help``."""

RESUME = "resume"
RESUME_SUMMARY = "continue a run: resume --snapshot_dir DIR [--n_epochs N] [--gpu ID|cpu]"
"""``resume`` is a command, not an experiment: it continues a saved run under its saved experiment."""


def experiment_names() -> tuple[str, ...]:
    """Every name ``run.py`` takes first: the table's experiments, then ``resume``."""
    return (*EXPERIMENT_TABLE, RESUME)


def experiment(name: str) -> Experiment:
    """The row of ``name``; KeyError for a name not in the table (``resume`` included)."""
    return EXPERIMENT_TABLE[name]


def takes_flag_group(name: str, group: str) -> bool:
    """Does experiment ``name`` accept the method-specific flag group ``group``? (False for unknown names.)"""
    row = EXPERIMENT_TABLE.get(name)
    return row is not None and group in row.flag_groups
