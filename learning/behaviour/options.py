"""The behaviour policies' options, declared once: each field's type, default, flag name, help and choices.

The command line (``learning/training/config.py``) makes one flag and one ``Config`` field of every
field that names a flag, keeping the original's flag names (``--policy_sampling_freq`` for the
Q-switch's ``sampling_freq``), and :func:`options_from` reads them back into the options a behaviour
policy takes. Fields without a flag are fixed constants of the method. No torch here: the command
line reads this module without loading the learning code.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, TypeVar

MIXTURES = ("qswitch", "uniform", "domain", "softmax")
FILTER_GATES = ("masked", "unmasked", "off")


def option(default: Any, flag: str | None = None, help: str = "", choices: tuple[str, ...] | None = None) -> Any:
    """A dataclass field whose default is ``default``; ``flag`` names its command-line flag and Config field."""
    return field(default=default, metadata={"flag": flag, "help": help, "choices": choices})


@dataclass(frozen=True)
class QSwitchOptions:
    """The Q-switch's choices. Defaults are the original's (docs/fidelity.md#q-switch)."""

    sampling_freq: int = option(1, "policy_sampling_freq", "QMP: re-run the Q-switch every H steps")
    """H: re-run the switch every H steps of an episode; in between the chosen policy keeps acting."""
    score_critic: str = option("q1", "qmp_score_critic", "QMP: score candidates with Q1 (original) or min(Q1, Q2)",
                               choices=("q1", "min"))
    action_samples: int = option(0, "qmp_action_samples", "QMP: score by the mean Q of k sampled actions; 0 scores "
                                 "the mean action (original)")
    entropy_term: bool = option(False, "qmp_entropy_term", "QMP: add alpha_i times the candidate's entropy estimate "
                                "(paper Eq. 3)")
    """Add alpha_i * H[pi_j(.|s)] (paper Eq. 3), estimated by -log pi_j of the sampled action(s)."""
    warmup_iterations: int = option(0, "qmp_warmup_iterations", "QMP: act with the own policy only during the first "
                                    "W iterations")
    own_policy_prob: float = option(0.0, "qmp_own_policy_prob", "QMP: probability of acting with the own policy "
                                    "instead of the Q-switch at each selection (paper's MT10 setting: 0.7)")
    mixture: str = option("qswitch", "qmp_mixture", "QMP ablation (paper §7.4, H.1): qswitch = arg-max of the "
                          "scores (QMP); uniform over all policies; domain = the environment's fixed table (Jaco); "
                          "softmax over the scores", choices=MIXTURES)
    """How a selection picks the candidate: "qswitch" (arg-max of the scores, QMP), "uniform" (every
    candidate equally likely), "domain" (row i of a fixed table), "softmax" (of scores / temperature)."""
    softmax_temperature: float = option(1.0, "qmp_softmax_temperature", "QMP: temperature of --qmp_mixture softmax")
    """Toward 0 the softmax mixture becomes the arg-max, large it becomes uniform."""


@dataclass(frozen=True)
class CTPGOptions:
    """CTPG's hyperparameters; defaults are the official code's (docs/ctpg.md; GitHub Mayyoungyoung/gbi,
    ``config/agent/components/guide_multitask.yaml``)."""

    guide_step: int = option(10, "guide_step", "CTPG: K, the guide picks a control policy every K steps")
    """K: a guide decision at every episode start and then every K steps."""
    guide_update_freq: int = option(10, "guide_update_freq", "CTPG: one guide update per this many environment "
                                    "steps of each task")
    guide_lr: float = option(1e-4, "guide_lr", "CTPG: Adam learning rate of the guide actor, critics and temperature")
    filter_gate: str = option("masked", "filter_gate", "CTPG: policy-filter gate: masked = sample among candidates "
                              "whose comparable guide value is at least V_i(s) (paper); unmasked = sample among all, "
                              "the mask only triggers the own-policy fallback (official code); off",
                              choices=FILTER_GATES)
    block_gate: bool = option(True, "block_gate", "CTPG: do not guide tasks whose log alpha exceeds the mean")
    """Do not guide tasks whose log alpha_i exceeds the mean."""
    block_gate_freq: int = option(10_000, "block_gate_freq", "CTPG: refresh the guide-block gate every this many "
                                  "environment steps of each task")
    """The official code refreshes the block gate at every evaluation, every 10,000 steps."""
    guide_hindsight: bool = option(True, "guide_hindsight", "CTPG: relabel each segment's guide action as the "
                                   "control policy that best explains its actions")
    filter_start_steps: int = option(10_000, "filter_start_steps", "CTPG: the policy filter acts after this many "
                                     "environment steps per task after the warm-up")
    """The policy filter acts once each task has collected this many environment steps after the warm-up (the
    steps the guides train on)."""
    value_samples: int = option(5)
    """Samples of pi_i in the estimate of V_i(s) (``v_sample_time``)."""
    tau: float = option(0.01)
    """Polyak rate of the guide critics' targets."""
    grad_clip: float = option(0.1)
    """Gradient-norm clip of every guide optimiser step."""
    max_alpha: float = option(1.0)
    """Upper bound of each guide temperature."""
    target_entropy_ratio: float = option(0.98)
    """Guide target entropy = ratio * log C."""


BEHAVIOUR_OPTIONS: dict[str, type] = {"QMP": QSwitchOptions, "CTPG": CTPGOptions}
"""Flag group -> the options dataclass whose flagged fields are that group's flags."""


@dataclass(frozen=True)
class OptionFlag:
    """One flagged field of an options dataclass, as the command line needs it."""

    flag: str
    field: str
    type: str
    """The field's annotation: "int", "float", "str" or "bool"."""
    default: Any
    help: str
    choices: tuple[str, ...] | None


def option_flags(options: type) -> tuple[OptionFlag, ...]:
    """The flagged fields of an options dataclass, in declaration order."""
    return tuple(OptionFlag(f.metadata["flag"], f.name, str(f.type), f.default, f.metadata["help"],
                            f.metadata["choices"]) for f in dataclasses.fields(options) if f.metadata.get("flag"))


OptionsT = TypeVar("OptionsT")


def options_from(options: type[OptionsT], config: object) -> OptionsT:
    """The options whose flagged fields take the values of ``config``'s fields of the same flag names."""
    return options(**{flagged.field: getattr(config, flagged.flag) for flagged in option_flags(options)})
