"""End to end: every baseline recipe (docs/fidelity.md#recipes) from the command line on Maze and on the 2-D point task,
exact resume with the baselines' extra state, and a short learning check per method family."""

from __future__ import annotations

import dataclasses

import pytest

import garage_experiments
from learning import experiments
from learning.training.config import ConfigError, parse_command_line
from learning.training.logger import read_metrics
from learning.training.trainer import Trainer

TINY = ["--wandb", "False", "--n_epochs", "2", "--min_buffer_size", "20", "--gradient_steps_per_itr", "20",
        "--buffer_batch_size", "16", "--hidden_sizes", "16", "16", "--num_evaluation_episodes", "2"]
MAZE = ["--env=MazeLarge-10-v0", "--task_name", "0,5", "--n_policies", "2", "--batch_size", "40"]
POINT = ["--env=PointReach-v0", "--batch_size", "40"]
MULTIHEAD = ["--policy_architecture", "multihead", "--Q_architecture", "multihead"]

# Recipes (docs/fidelity.md#recipes) beyond the five core experiments (tests/test_training.py), with the metrics each
# adds.
RECIPES = [
    ("dnc", ["dnc_sac", "--kl_coeff", "0.001", "--distillation_period", "1", "--distillation_n_epochs", "5"],
     ["Train/LocalPolicy1/PolicyKL", "Train/LocalPolicy0/BetaKL"]),
    ("dnc_regularisation_only", ["dnc_sac", "--kl_coeff", "0.0001", "--sampling_type", "i+j"], ["Train/PolicyKLPenalty"]),
    ("dnc_representation", ["qmp_dnc", "--kl_coeff", "0.001", "--regularize_representation", "True"], ["Train/PolicyKL"]),
    ("data_sharing", ["uds_dnc", "--sharing_quantile", "0.8"], ["Train/LocalPolicy1/SharedData"]),
    ("data_sharing_qmp", ["qmp_uds_dnc", "--sharing_quantile", "0"], ["Train/LocalPolicy0/SharedData"]),
    ("pcgrad", ["mtsac", *MULTIHEAD, "--use_pc_grad", "True"], []),
    ("pcgrad_qmp", ["qmp_sac", *MULTIHEAD, "--use_pc_grad", "True", "--skip_alpha_pc_grad", "False"], []),
    ("mcal", ["mcal", "--policy_architecture", "multihead"], []),
    ("mcal_qmp", ["qmp_mcal", "--policy_architecture", "multihead", "--Q_architecture", "multihead"], []),
    ("decaf", ["decaf"], []),
    ("mixture_softmax", ["qmp_dnc", "--qmp_mixture", "softmax", "--qmp_softmax_temperature", "0.1",
                         "--policy_sampling_freq", "5"], []),
    ("mixture_uniform", ["qmp_sac", *MULTIHEAD, "--qmp_mixture", "uniform", "--qmp_warmup_iterations", "1"], []),
]


def launch(argv: list[str], log_dir):
    config = parse_command_line([*argv, "--log_dir", str(log_dir)])
    trainer, last = garage_experiments.launch(config, announce=lambda message: None)
    return config, trainer, last


def comparable(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if not k.startswith("Time/")} for row in rows]


@pytest.mark.parametrize("env", ["maze", "point"])
@pytest.mark.parametrize("name, argv, metrics", RECIPES, ids=[recipe[0] for recipe in RECIPES])
def test_recipe_runs_from_the_command_line(tmp_path, env, name, argv, metrics):
    environment = MAZE if env == "maze" else POINT
    config, trainer, last = launch([*argv, *TINY, *environment], tmp_path)
    rows = read_metrics(config.run_dir)
    assert [row["epoch"] for row in rows] == [0, 1]
    assert 0.0 <= last["Evaluation/SuccessRate"] <= 1.0
    assert ("Evaluation/p/SuccessRate" in last) == config.is_qmp
    if env == "maze":  # two tasks: every sharing statistic exists per task
        for key in metrics:
            assert key in rows[-1], key
    if "SharedData" in " ".join(metrics) and env == "maze":
        assert 0.0 <= rows[-1]["Train/SharedData"] <= 1.0


def test_cds_on_maze_relabels_and_errors_where_no_reward_function_exists(tmp_path):
    config, trainer, _ = launch(["uds_dnc", "--unsupervised", "False", *TINY, *MAZE], tmp_path)
    assert "task_rewards" in trainer.parts.buffer.state_dict()
    assert read_metrics(config.run_dir)[-1]["Train/LocalPolicy0/SharedData"] == 1.0  # quantile 0 shares all
    with pytest.raises(ConfigError, match="does not provide"):
        launch(["uds_dnc", "--unsupervised", "False", *TINY, "--env=Walker2dMT4-v0"], tmp_path)


@pytest.mark.parametrize("argv", [
    ["uds_dnc", "--unsupervised", "False", *MAZE, "--batch_size", "700"],  # the CDS reward table is checkpointed
    ["dnc_sac", "--kl_coeff", "0.01", "--distillation_period", "1", "--distillation_n_epochs", "20", *POINT],
], ids=["cds", "dnc"])
def test_resume_continues_exactly(tmp_path, argv):
    argv = [*argv, *TINY]
    straight, _, _ = launch([*argv, "--n_epochs", "3", "--name", "straight"], tmp_path)
    stopped, _, _ = launch([*argv, "--n_epochs", "2", "--name", "stopped"], tmp_path)
    garage_experiments.launch(parse_command_line(["resume", "--snapshot_dir", str(stopped.run_dir),
                                                  "--n_epochs", "3"]), announce=lambda message: None)
    assert comparable(read_metrics(stopped.run_dir)) == comparable(read_metrics(straight.run_dir))


def test_distillation_runs_after_the_epochs_of_its_period(tmp_path):
    config, _, _ = launch(["dnc_sac", "--distillation_period", "2", *TINY, *POINT, "--n_epochs", "5"], tmp_path)
    distilled = [row["epoch"] for row in read_metrics(config.run_dir) if "Train/DistillationLoss" in row]
    assert distilled == [2, 4]


def test_with_one_task_mcal_and_data_sharing_take_exactly_the_separate_sac_steps(tmp_path):
    # One task: MCAL's multihead actor is one policy (one actor step per gradient step), UDS has nobody
    # to share with. Both must reproduce per-task SAC exactly, which checks their reductions and slicing.
    argv = [*TINY, *POINT, "--n_epochs", "3"]
    reference, _, _ = launch(["qmp_dnc", *argv], tmp_path)
    expected = comparable(read_metrics(reference.run_dir))
    for experiment in (["qmp_mcal", "--policy_architecture", "multihead"], ["qmp_uds_dnc"]):
        config, _, _ = launch([*experiment, *argv], tmp_path)
        rows = read_metrics(config.run_dir)
        assert [{key: row[key] for key in reference_row} for row, reference_row in zip(rows, expected)] == expected


# Learning checks on PointReach-v0. It has one task, so the multi-task mechanisms are idle there (DnC's
# distillation is the exception: it fits the policy to the replayed actions); the checks make sure each
# family's update and collection learn end to end. Plain SAC does not solve the point task in a short
# budget (the environment's purpose, docs/tutorial.md), so each family is checked in its QMP combination: the
# Q-switch must learn to reach the goal (by picking the up-right guide policy). Fast settings: discount
# 0.9, lr 1e-2, 100 gradient steps per epoch; one deterministic evaluation episode per epoch.
FAST = ["--discount", "0.9", "--lr", "1e-2", "--gradient_steps_per_itr", "100", "--seed", "2"]
LEARNING = [
    ("dnc", ["qmp_dnc", "--kl_coeff", "0.001", "--distillation_period", "4", "--distillation_n_epochs", "50"]),
    ("data_sharing", ["qmp_uds_dnc"]),
    ("pcgrad", ["qmp_sac", *MULTIHEAD, "--use_pc_grad", "True"]),
    ("mixture_softmax", ["qmp_dnc", "--qmp_mixture", "softmax", "--qmp_softmax_temperature", "0.05"]),
]
LEARNING_EPOCHS = 12


@pytest.mark.parametrize("name, argv", LEARNING, ids=[entry[0] for entry in LEARNING])
def test_learning_check_on_the_point_task(tmp_path, name, argv):
    config = parse_command_line([*argv, *FAST, "--env=PointReach-v0", "--wandb", "False",
                                 "--num_evaluation_episodes", "1", "--log_dir", str(tmp_path)])
    config = dataclasses.replace(config, n_epochs=LEARNING_EPOCHS)
    parts = experiments.build_parts(config, experiments.build_task_set(config))
    trainer = Trainer(parts, tmp_path, logger=None)
    returns, success_epoch = [], None
    for epoch in range(LEARNING_EPOCHS):  # the trainer's epoch without logging and checkpoints
        trainer.run_iteration()
        evaluation = trainer.evaluate(epoch)
        parts.sac.end_of_epoch(epoch)
        returns.append(evaluation["Evaluation/AverageReturn"])
        if evaluation["Evaluation/SuccessRate"] == 1.0:
            success_epoch = epoch
            break
    parts.sampler.close()
    parts.evaluator.close()
    assert success_epoch is not None, f"{name}: the mixture did not reach the goal in {LEARNING_EPOCHS} epochs"
    assert returns[-1] > returns[0] + 2.0  # from about -19.8: standing 14 away from the goal
