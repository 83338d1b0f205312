"""The experiment table: adding a method is one row (plus its update class when it has a new one)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

import garage_experiments
import run
from learning import experiments
from learning.baselines.data_sharing import DataSharingSAC
from learning.behaviour.ctpg import CTPGBehaviour
from learning.behaviour.protocol import BehaviourPolicy, best_candidate
from learning.core.sac import MultiTaskSAC
from learning.experiment_table import (
    CTPG,
    CTPG_FLAGS,
    DATA_SHARING,
    DATA_SHARING_FLAGS,
    EXPERIMENT_TABLE,
    OWN,
    SEPARATE_NETWORKS,
    Experiment,
)
from learning.training.config import ConfigError, parse_command_line
from learning.training.logger import read_metrics
from learning.training.metric_names import ACTING_COUNTS_METRIC

REPO = Path(__file__).resolve().parents[1]
TINY = ["--env=PointReach-v0", "--wandb", "False", "--n_epochs", "2", "--batch_size", "40", "--min_buffer_size", "20",
        "--gradient_steps_per_itr", "6", "--buffer_batch_size", "16", "--hidden_sizes", "16", "16",
        "--num_evaluation_episodes", "2"]
CTPG_UDS = Experiment(paper_name="Data + CTPG", summary="uds_dnc with CTPG's guides collecting data", behaviour=CTPG,
                      update=DATA_SHARING, per_task_buffers=True, temperature_per_task=True,
                      architectures=SEPARATE_NETWORKS, flag_groups=(CTPG_FLAGS, DATA_SHARING_FLAGS),
                      method_name="UDS + CTPG")


def test_the_table_imports_neither_torch_nor_the_library():
    code = ("import sys, learning.experiment_table; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'environments', 'numpy') "
            "or m.startswith('learning.') and m != 'learning.experiment_table'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True).stdout
    assert out.strip() == "[]"


def test_a_new_experiment_is_one_row(tmp_path, monkeypatch, capsys):
    """CTPG on data sharing, a combination neither paper ran: one row, and it parses, builds and trains."""
    monkeypatch.setitem(EXPERIMENT_TABLE, "ctpg_uds_dnc", CTPG_UDS)
    assert run.main(["--help"]) == 0
    assert any(line.split()[:1] == ["ctpg_uds_dnc"] and "Data + CTPG" in line for line in capsys.readouterr().out.splitlines())
    with pytest.raises(ConfigError, match="ctpg_uds_dnc uses separate networks"):
        parse_command_line(["ctpg_uds_dnc", *TINY, "--policy_architecture", "multihead"])
    with pytest.raises(ConfigError, match="--policy_sampling_freq is a flag of qmp_dnc, .*, not of ctpg_uds_dnc"):
        parse_command_line(["ctpg_uds_dnc", *TINY, "--policy_sampling_freq", "2"])
    config = parse_command_line(["ctpg_uds_dnc", *TINY, "--guide_step", "3", "--sharing_quantile", "0.5",
                                 "--log_dir", str(tmp_path)])
    assert config.is_ctpg and config.per_task_buffers
    trainer, last = garage_experiments.launch(config, announce=lambda message: None)
    parts = trainer.parts
    assert isinstance(parts.sac, DataSharingSAC) and parts.sac.sharing_quantile == 0.5
    assert isinstance(parts.sampler.behaviour, CTPGBehaviour) and parts.sampler.behaviour.options.guide_step == 3
    assert parts.behaviour_learner is not None
    rows = read_metrics(config.run_dir)
    assert [row["epoch"] for row in rows] == [0, 1]
    assert ACTING_COUNTS_METRIC in rows[-1] and "Train/SharedData" in rows[-1] and "Evaluation/SuccessRate" in last


class CountingSAC(MultiTaskSAC):
    """A new update class: SAC that counts its gradient steps."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))

    def update(self, batch, with_stats: bool = True):
        self.updates += 1
        return super().update(batch, with_stats)


def test_a_new_update_is_one_row_and_its_builder(tmp_path, monkeypatch):
    monkeypatch.setitem(experiments.UPDATE_BUILDERS, "counting", experiments.UpdateBuilder(
        lambda config, task_set, policy, critic, settings, buffer: CountingSAC(policy, critic, settings)))
    monkeypatch.setitem(EXPERIMENT_TABLE, "counting_sac", Experiment(
        "Counting", "SAC that counts its updates", OWN, "counting", True, True, SEPARATE_NETWORKS))
    config = parse_command_line(["counting_sac", *TINY, "--log_dir", str(tmp_path)])
    trainer, _ = garage_experiments.launch(config, announce=lambda message: None)
    # PointReach has one task: 40 steps per iteration fill the 20-step warm-up in epoch 0, so both epochs
    # take their 6 gradient steps
    assert isinstance(trainer.parts.sac, CountingSAC) and int(trainer.parts.sac.updates) == 2 * 6


@pytest.mark.parametrize("experiment, behaviour", [("dnc_sac", "OwnPolicyBehaviour"), ("qmp_dnc", "QSwitchBehaviour"),
                                                   ("ctpg_dnc", "CTPGBehaviour")])
def test_every_behaviour_of_the_table_is_a_behaviour_policy(tmp_path, experiment, behaviour):
    config = parse_command_line([experiment, *TINY, "--log_dir", str(tmp_path)])
    parts = experiments.build_parts(config, experiments.build_task_set(config))
    parts.sampler.close()
    assert type(parts.sampler.behaviour).__name__ == behaviour
    assert isinstance(parts.sampler.behaviour, BehaviourPolicy)
    assert all(isinstance(evaluated, BehaviourPolicy) for evaluated in parts.evaluation_behaviours.values())


def test_best_candidate_is_the_arg_max_over_the_last_axis_with_ties_to_the_lowest_index():
    scores = torch.tensor([[0.0, 2.0, 2.0], [5.0, -1.0, 4.0]])
    assert best_candidate(scores).tolist() == [1, 0]
    assert best_candidate(scores.reshape(2, 1, 3)).tolist() == [[1], [0]]


def test_every_row_names_known_flag_groups_and_accepts_exactly_their_flags():
    from learning.experiment_table import METHOD_FLAG_GROUPS
    from learning.training.config import FLAG_BY_NAME, FLAG_GROUPS

    assert set(METHOD_FLAG_GROUPS) <= set(FLAG_GROUPS)
    for name, row in EXPERIMENT_TABLE.items():
        assert set(row.flag_groups) <= set(METHOD_FLAG_GROUPS), name
        for group in METHOD_FLAG_GROUPS:
            assert all(FLAG_BY_NAME[flag].applies_to(name) == (group in row.flag_groups)
                       for flag in FLAG_GROUPS[group]), (name, group)
