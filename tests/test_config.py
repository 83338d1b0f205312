"""The command line: presets (docs/fidelity.md#presets), explicit overrides, per-experiment flags and clear errors."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from learning.behaviour.ctpg import CTPGOptions
from learning.behaviour.options import option_flags
from learning.behaviour.qswitch import QSwitchOptions
from learning.experiments import build_parts, build_task_set
from learning.training.config import ENV_PRESETS, FLAG_BY_NAME, Config, ConfigError, parse_command_line

REPO = Path(__file__).resolve().parents[1]


def test_maze_preset_matches_the_original_table():
    config = parse_command_line(["qmp_dnc", "--env=MazeLarge-10-v0"])
    assert (config.n_policies, config.batch_size, config.gradient_steps_per_itr) == (10, 6000, 1000)
    assert (config.min_buffer_size, config.buffer_batch_size, config.steps_per_epoch) == (3000, 256, 1)
    assert (config.lr, config.hidden_sizes, config.n_epochs, config.num_evaluation_episodes) == (3e-4, (256, 256), 2000, 100)


@pytest.mark.parametrize("env_id, expected", [
    ("JacoReachMT5-v1", dict(n_policies=5, batch_size=1000, gradient_steps_per_itr=1000, min_buffer_size=10000,
                             buffer_batch_size=32, n_epochs=2000, num_evaluation_episodes=50)),
    ("Walker2dMT4-v0", dict(n_policies=4, batch_size=4000, gradient_steps_per_itr=6000, buffer_batch_size=32)),
    ("MetaWorldCDS-v1", dict(n_policies=4, batch_size=2000, gradient_steps_per_itr=200, min_buffer_size=5000,
                             steps_per_epoch=10, lr=1.5e-3, n_epochs=500)),
    ("MetaWorldMT10-v2", dict(n_policies=10, batch_size=5000, buffer_batch_size=2560, lr=1.5e-3, n_epochs=1000)),
    ("MetaWorldMT50-v2", dict(n_policies=50, batch_size=25000, min_buffer_size=1500, buffer_batch_size=1280,
                              steps_per_epoch=8, hidden_sizes=(400, 400), num_evaluation_episodes=250)),
    ("KitchenMTEasy-v0", dict(n_policies=10, batch_size=2000, gradient_steps_per_itr=500, min_buffer_size=2000,
                              buffer_batch_size=1280, steps_per_epoch=5, n_epochs=500, num_evaluation_episodes=50)),
])
def test_environment_presets(env_id, expected):
    config = parse_command_line(["dnc_sac", f"--env={env_id}"])
    for key, value in expected.items():
        assert getattr(config, key) == value, key


def test_base_defaults_where_presets_are_silent():
    config = parse_command_line(["dnc_sac", "--env=JacoReachMT5-v1"])
    assert (config.discount, config.target_update_tau, config.reward_scale) == (0.99, 0.005, 1.0)
    assert config.target_entropy is None and config.evaluation_frequency == 1 and config.gpu is None


def test_explicit_flag_wins_over_preset_in_any_position():
    config = parse_command_line(["dnc_sac", "--batch_size", "120", "--env=MazeLarge-10-v0", "--hidden_sizes", "64", "32"])
    assert config.batch_size == 120 and config.hidden_sizes == (64, 32)
    assert config.gradient_steps_per_itr == ENV_PRESETS["MazeLarge-10-v0"]["gradient_steps_per_itr"]


def test_boolean_flags_take_true_false():
    assert parse_command_line(["dnc_sac", "--wandb", "False"]).wandb is False
    assert parse_command_line(["dnc_sac", "--layer_norm", "True"]).layer_norm is True


def test_qmp_flags_only_for_qmp_experiments():
    assert parse_command_line(["qmp_dnc", "--policy_sampling_freq", "5"]).policy_sampling_freq == 5
    with pytest.raises(ConfigError, match="policy_sampling_freq is a flag of .*qmp_dnc.*not of dnc_sac"):
        parse_command_line(["dnc_sac", "--policy_sampling_freq", "5"])


@pytest.mark.parametrize("argv, message", [
    (["ppo"], "unknown experiment"),
    (["dnc_sac", "--env=Nope-v0"], "unknown environment id"),
    (["dnc_sac", "--batch_size", "-5"], "batch_size must be positive"),
    (["dnc_sac", "--hidden_sizes", "0"], "hidden_sizes must be positive"),
    (["dnc_sac", "--min_buffer_size", "-1"], "must not be negative"),
    (["dnc_sac", "--bogus", "1"], "unknown flag --bogus"),
    (["dnc_sac", "--sampler_type", "local"], "not supported"),
    (["mtsac"], "multihead or shared"),
    (["qmp_sac"], "multihead"),
    (["dnc_sac", "--policy_architecture", "multihead"], "separate networks"),
    (["qmp_dnc", "--include_task_id", "True"], "hide the task identity"),
    (["qmp_sac", "--env=MazeLarge-10-v0", "--policy_architecture", "multihead", "--Q_architecture", "multihead",
      "--qmp_warmup_iterations", "100", "--n_epochs", "100"], r"qmp_warmup_iterations \(100\) must be below"),
    (["qmp_dnc", "--qmp_warmup_iterations", "5", "--n_epochs", "4"], "the Q-switch would never act"),
    (["dnc_sac", "--env=JacoReachMT5-v1", "--task_name", "0,1"], "applies only to"),
    (["resume"], "required"),
    (["resume", "--snapshot_dir", "/nonexistent/run"], "is not a directory"),
    (["resume", "--snapshot_dir", ".", "--seed", "3"], "resume takes only"),
    (["resume", "--snapshot_dir", ".", "--gpu", "gpu0"], "expected a CUDA device id or cpu"),
])
def test_bad_input_raises_one_line_config_error(argv, message):
    with pytest.raises(ConfigError, match=message) as error:
        parse_command_line(argv)
    assert "\n" not in str(error.value)


def test_config_round_trips_through_json(tmp_path):
    config = parse_command_line(["qmp_sac", "--policy_architecture", "multihead", "--Q_architecture", "multihead",
                                 "--hidden_sizes", "32", "32", "--seed", "4"])
    config.save(tmp_path / "config.json")
    assert Config.load(tmp_path / "config.json") == config


def _run_cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "run.py"), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("args, message", [
    (["dnc_sac", "--env=MazeLarge-10-v0", "--n_policies", "4"], "does not match MazeLarge-10-v0"),
    (["dnc_sac", "--env=MazeLarge-10-v0", "--task_name", "0,1,99", "--n_policies", "3"], "out of range"),
    (["dnc_sac", "--env=Nope-v0"], "unknown environment id"),
    (["resume", "--snapshot_dir", "missing_dir"], "is not a directory"),
])
def test_cli_errors_exit_2_with_one_line_and_create_nothing(tmp_path, args, message):
    result = _run_cli([*args, "--log_dir", str(tmp_path / "runs")] if args[0] != "resume" else args, tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert not (tmp_path / "runs").exists()
    assert list(tmp_path.iterdir()) == []


MULTIHEAD = ["--policy_architecture", "multihead", "--Q_architecture", "multihead"]


def test_every_experiment_of_the_original_is_implemented():
    for argv in (["uds_dnc"], ["qmp_uds_dnc"], ["decaf"], ["mcal", "--policy_architecture", "multihead"],
                 ["qmp_mcal", "--policy_architecture", "multihead"]):
        assert parse_command_line(argv).experiment == argv[0]


def test_method_flags_have_the_original_names_and_defaults():
    dnc = parse_command_line(["dnc_sac"])  # docs/fidelity.md#flags
    assert (dnc.kl_coeff, dnc.sampling_type, dnc.regularize_representation) == ((0.0,), "all", False)
    assert (dnc.distillation_period, dnc.distillation_n_epochs) == (None, 100)
    assert parse_command_line(["dnc_sac", "--sampling_type", "j", "--distillation_period", "4"]).sampling_type == "j"
    uds = parse_command_line(["uds_dnc"])
    assert (uds.sharing_quantile, uds.unsupervised) == (0.0, True)
    mtsac = parse_command_line(["mtsac", *MULTIHEAD])
    assert (mtsac.use_pc_grad, mtsac.skip_alpha_pc_grad) == (False, True)
    qmp = parse_command_line(["qmp_dnc"])
    assert (qmp.qmp_mixture, qmp.qmp_softmax_temperature) == ("qswitch", 1.0)


def test_kl_coefficients_parse_as_a_list():
    assert parse_command_line(["dnc_sac", "--kl_coeff", "0.001"]).kl_coeff == (0.001,)
    assert parse_command_line(["qmp_dnc", "--env=JacoReachMT5-v1", "--kl_coeff", *["0.1"] * 25]).kl_coeff == (0.1,) * 25


@pytest.mark.parametrize("argv, message", [
    (["uds_dnc", "--kl_coeff", "0.1"], "kl_coeff is a flag of dnc_sac, qmp_dnc, not of uds_dnc"),
    (["dnc_sac", "--sharing_quantile", "0.8"], "sharing_quantile is a flag of uds_dnc, qmp_uds_dnc, not of dnc_sac"),
    (["dnc_sac", "--use_pc_grad", "True"], "use_pc_grad is a flag of sac, mtsac, qmp_sac, ctpg_sac, not of dnc_sac"),
    (["uds_dnc", "--sharing_quantile", "1.5"], r"must be in \[0, 1\]"),
    (["dnc_sac", "--kl_coeff", "-1"], "must not be negative"),
    (["dnc_sac", "--kl_coeff", "0.1", "--sampling_type", "ixj"], "ixj is not supported"),
    (["dnc_sac", "--sampling_type", "j"], "without a non-zero --kl_coeff"),
    (["dnc_sac", "--distillation_n_epochs", "5"], "without --distillation_period"),
    (["dnc_sac", "--distillation_period", "3", "--evaluation_frequency", "2"], "multiple of --evaluation_frequency"),
    (["mtsac", *MULTIHEAD, "--skip_alpha_pc_grad", "False"], "without --use_pc_grad True"),
    (["mcal"], "needs --policy_architecture multihead"),
    (["qmp_mcal", "--policy_architecture", "multihead", "--Q_architecture", "shared"], "per-task critics"),
    (["decaf", "--policy_architecture", "multihead"], "separate networks"),
    (["uds_dnc", "--Q_architecture", "multihead"], "separate networks"),
    (["dnc_sac", "--stagewise", "True"], "not supported"),
])
def test_method_flag_errors(argv, message):
    with pytest.raises(ConfigError, match=message) as error:
        parse_command_line(argv)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("args, message", [
    (["dnc_sac", "--env=MazeLarge-10-v0", "--kl_coeff", "1", "2"], "takes 1 or 100 values"),
    (["uds_dnc", "--env=PointReach-v0", "--unsupervised", "False"], "does not provide"),
])
def test_task_set_dependent_errors_come_before_anything_is_written(tmp_path, args, message):
    import garage_experiments

    with pytest.raises(ConfigError, match=message):
        garage_experiments.prepare_run(parse_command_line([*args, "--log_dir", str(tmp_path / "runs")]))
    assert not (tmp_path / "runs").exists()



@pytest.mark.parametrize("experiment, defaults, flag, option", [
    ("qmp_dnc", QSwitchOptions(), "--policy_sampling_freq", "sampling_freq"),
    ("ctpg_dnc", CTPGOptions(), "--guide_step", "guide_step"),
])
def test_default_flags_give_the_behaviours_default_options(tmp_path, experiment, defaults, flag, option):
    """The options declare the flags' defaults, and build_parts passes the flags on."""
    for extra, expected in (([], defaults), ([flag, "7"], replace(defaults, **{option: 7}))):
        config = parse_command_line([experiment, "--env=PointReach-v0", "--log_dir", str(tmp_path), *extra])
        parts = build_parts(config, build_task_set(config))
        parts.sampler.close()
        assert parts.sampler.behaviour.options == expected


def test_a_qmp_warm_up_one_epoch_shorter_than_the_run_is_accepted():
    config = parse_command_line(["qmp_dnc", "--env=PointReach-v0", "--qmp_warmup_iterations", "4", "--n_epochs", "5"])
    assert (config.qmp_warmup_iterations, config.n_epochs) == (4, 5)
    assert parse_command_line(["dnc_sac", "--env=PointReach-v0", "--n_epochs", "5"]).qmp_warmup_iterations == 0


@pytest.mark.parametrize("options", [QSwitchOptions, CTPGOptions])
def test_behaviour_options_are_declared_once(options):
    """Every flagged option is one flag and one Config field with the option's type, default and help."""
    flagged = option_flags(options)
    assert flagged and all(FLAG_BY_NAME[item.flag].default == item.default and FLAG_BY_NAME[item.flag].help == item.help
                           for item in flagged)
    fields = {field.name: field for field in dataclasses.fields(Config)}
    assert all(fields[item.flag].default == item.default and fields[item.flag].type == item.type for item in flagged)
    assert parse_command_line(["qmp_dnc"]).policy_sampling_freq == QSwitchOptions().sampling_freq == 1
