"""CTPG (docs/ctpg.md): each piece against hand computations, a learning check, resume mid-segment."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import garage_experiments
from learning import experiments
from learning.behaviour.ctpg import (CTPGBehaviour, CTPGOptions, GuideNetworks, block_gate, filter_mask,
                                     gated_choice, own_soft_value)
from learning.behaviour.ctpg_learner import (SegmentStore, candidate_log_likelihoods, discrete_sac_actor_losses,
                                             gather_segments, smdp_target, soft_state_value)
from learning.core.networks import TanhGaussianPolicy
from learning.core.replay_buffer import TaskReplayBuffer, Transitions
from learning.training.config import ConfigError, parse_command_line
from learning.training.logger import read_metrics
from learning.training.trainer import Trainer

OBS = 2


def fixed_policy(pre_tanh_means: list[list[float]], log_std: float) -> TanhGaussianPolicy:
    """Separate policies that ignore the observation: policy j has pre-tanh mean ``pre_tanh_means[j]``."""
    actions = len(pre_tanh_means[0])
    policy = TanhGaussianPolicy("separate", len(pre_tanh_means), OBS, actions, (4,))
    with torch.no_grad():
        policy.mlp.head.weight.zero_()
        policy.mlp.head.bias[:, 0, :actions] = torch.tensor(pre_tanh_means)
        policy.mlp.head.bias[:, 0, actions:] = log_std
    return policy


class ConstantCritic(torch.nn.Module):
    """Q1 = q1[i], Q2 = q2[i] in task i, whatever the state and action."""

    def __init__(self, q1: list[float], q2: list[float]) -> None:
        super().__init__()
        self.values = torch.tensor([q1, q2])

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.values[:, :, None].expand(2, *obs.shape[:2])


def guide_preferring(tasks: int, candidates: int, preferred: list[int]) -> GuideNetworks:
    """Guides whose actor puts (almost) all probability on ``preferred[i]`` in task i."""
    guide = GuideNetworks("separate", tasks, OBS, candidates, (4,))
    with torch.no_grad():
        guide.actor.head.weight.zero_()
        guide.actor.head.bias.zero_()
        for task, candidate in enumerate(preferred):
            guide.actor.head.bias[task, 0, candidate] = 50.0
    return guide


def behaviour(tasks: int, preferred: list[int], options: CTPGOptions, guides=()) -> CTPGBehaviour:
    policy = fixed_policy([[0.0, 0.0]] * tasks, -3.0)
    critic = ConstantCritic([0.0] * tasks, [0.0] * tasks)
    return CTPGBehaviour(policy, critic, lambda: torch.ones(tasks), guide_preferring(tasks, tasks + len(guides),
                                                                                      preferred), options, guides)


# ------------------------------------------------------------------------------------------ segments
def test_segments_start_at_decisions_and_end_after_k_steps_or_with_the_episode():
    ctpg = behaviour(2, [1, 0], CTPGOptions(guide_step=3))
    obs = torch.zeros(2, OBS)
    for step in range(6):
        _, acting = ctpg.act(obs, deterministic=False)
        assert acting.tolist() == [1, 0]
        if step == 1:
            ctpg.episode_start(np.array([True, False]))  # task 0's episode ended with step 1
    log = ctpg.drain_log()
    assert log["segment_start"].astype(int).tolist() == [[1, 0, 1, 0, 0, 1], [1, 0, 0, 1, 0, 0]]
    assert log["segment_end"].astype(int).tolist() == [[0, 1, 0, 0, 1, 0], [0, 0, 1, 0, 0, 1]]
    assert log["guide_action"].tolist() == [[1] * 6, [0] * 6]
    assert ctpg.drain_log()["guide_action"].shape == (2, 0)


def segment_fixture(capacity: int = 16):
    """Two tasks, K = 4, rewards r_t = t + 1 in slots 0..7. Segments: slots 0-1 (the episode ends at
    slot 1: a terminal in task 0, a time limit in task 1), 2-5 (K steps), 6-7 (still open)."""
    tasks, steps = 2, 8
    buffer = TaskReplayBuffer(tasks, OBS, 1, capacity)
    next_obs = np.zeros((tasks, steps, OBS), np.float32)
    next_obs[:, :, 0] = np.arange(steps) + 100  # tells which slot a bootstrap state came from
    terminal = np.zeros((tasks, steps), np.float32)
    terminal[0, 1] = 1.0
    buffer.add(Transitions(np.zeros((tasks, steps, OBS), np.float32), np.zeros((tasks, steps, 1), np.float32),
                           np.tile(np.arange(1, steps + 1, dtype=np.float32), (tasks, 1)), next_obs, terminal))
    store = SegmentStore(tasks, capacity, "cpu")
    starts = np.zeros((tasks, steps), bool)
    starts[:, [0, 2, 6]] = True
    ends = np.zeros((tasks, steps), bool)
    ends[:, [1, 5]] = True
    store.add({"guide_action": np.tile([3, 3, 1, 1, 1, 1, 2, 2], (tasks, 1)), "segment_start": starts,
               "segment_end": ends})
    return buffer, store


def test_k_step_target_with_a_done_inside_the_segment():
    buffer, store = segment_fixture()
    starts = torch.tensor([[0, 2, 6], [0, 2, 6]])
    batch = gather_segments(store, buffer, starts, torch.ones_like(starts, dtype=torch.bool), steps=4)
    assert batch.alive.tolist()[0] == [[1, 1, 0, 0], [1, 1, 1, 1], [1, 1, 0, 0]]
    assert batch.length.tolist() == [[2, 4, 2], [2, 4, 2]]
    assert batch.valid.tolist() == [[1, 1, 0], [1, 1, 0]]  # the open segment at the write head is not used
    assert batch.last_terminal.tolist() == [[1, 0, 0], [0, 0, 0]]
    assert batch.last_next_observation[..., 0].tolist() == [[101, 105, 107], [101, 105, 107]]
    assert batch.guide_action.tolist() == [[3, 1, 2], [3, 1, 2]]
    target = smdp_target(batch.reward, batch.alive, batch.length, batch.last_terminal,
                         torch.full((2, 3), 10.0), discount=0.5)
    # task 0, segment 0: 1 + 0.5 * 2, no bootstrap after the terminal; task 1: the time limit bootstraps
    # with 0.5^2 * 10; segment 1: 3 + 0.5 * 4 + 0.25 * 5 + 0.125 * 6 + 0.0625 * 10.
    assert target[:, :2].tolist() == [[2.0, 7.625], [4.5, 7.625]]


def test_segments_across_the_ring_boundary():
    buffer, store = segment_fixture(capacity=8)
    buffer.add(Transitions(np.zeros((2, 3, OBS), np.float32), np.zeros((2, 3, 1), np.float32),
                           np.full((2, 3), 9.0, np.float32), np.zeros((2, 3, OBS), np.float32),
                           np.zeros((2, 3), np.float32)))
    # slots 0-2 are overwritten: the segment open at slots 6-7 runs on into slots 0-1 (K = 4 steps),
    # and a new segment starts at slot 2 (open).
    store.add({"guide_action": np.full((2, 3), 2), "segment_start": np.array([[0, 0, 1]] * 2, bool),
               "segment_end": np.array([[0, 1, 0]] * 2, bool)})
    batch = gather_segments(store, buffer, torch.tensor([[6], [2]]), torch.tensor([[True], [True]]), steps=4)
    assert batch.alive.tolist() == [[[1, 1, 1, 1]], [[1, 0, 0, 0]]]
    assert batch.reward[0, 0].tolist() == [7.0, 8.0, 9.0, 9.0]
    assert batch.valid.tolist() == [[1.0], [0.0]]  # slot 6's segment is complete; slot 2's is still open


# ------------------------------------------------------------------------------------------ gates
def test_filter_mask_and_fallback():
    mask = filter_mask(torch.tensor([[1.0, 3.0, 2.0], [0.0, 0.0, 0.0]]), torch.tensor([2.0, 1.0]))
    assert mask.tolist() == [[False, True, True], [False, False, False]]
    logits = torch.tensor([[10.0, 0.0, 0.0], [10.0, 0.0, 0.0]]).expand(500, 2, 3).reshape(1000, 3)
    many_masks = mask.repeat(500, 1)
    own = torch.tensor([0, 1]).repeat(500)
    masked = gated_choice(logits, many_masks, True, own).reshape(500, 2)
    unmasked = gated_choice(logits, many_masks, False, own).reshape(500, 2)
    assert set(masked[:, 0].tolist()) == {1, 2}  # only passing candidates (paper)
    assert (unmasked[:, 0] == 0).float().mean() > 0.99  # the vendored code samples the unmasked logits
    assert masked[:, 1].tolist() == [1] * 500 and unmasked[:, 1].tolist() == [1] * 500  # none passes: own


def test_own_value_is_the_mean_of_the_twin_critics_minus_the_entropy_term():
    policy = fixed_policy([[0.0], [0.0]], math.log(0.5))
    critic = ConstantCritic([1.0, 4.0], [3.0, 0.0])
    value = own_soft_value(policy, critic, torch.zeros(2), torch.zeros(2, 1, OBS), samples=5)
    assert value[:, 0].tolist() == [2.0, 2.0]  # (Q1 + Q2) / 2, not Q1 and not the minimum
    torch.manual_seed(0)
    with_entropy = own_soft_value(policy, critic, torch.tensor([1.0, 0.0]), torch.zeros(2, 1, OBS), samples=5)
    torch.manual_seed(0)
    action, log_prob, _, _ = policy.sample(torch.zeros(2, 5, OBS))
    assert with_entropy[0, 0].item() == pytest.approx(2.0 - log_prob[0].mean().item(), abs=1e-5)


def test_the_filter_acts_after_its_start_and_falls_back_to_the_own_policy():
    options = CTPGOptions(guide_step=1, filter_start_steps=2)
    ctpg = behaviour(2, [1, 0], options)
    with torch.no_grad():  # comparable values: candidate 0 at 5, candidate 1 at -5; V_i(s) = 0 in both tasks
        ctpg.guide.comparable.head.weight.zero_()
        ctpg.guide.comparable.head.bias.zero_()
        ctpg.guide.comparable.head.bias[:, 0, 0] = 5.0
        ctpg.guide.comparable.head.bias[:, 0, 1] = -5.0
        ctpg.policy.mlp.head.bias[:, 0, 2:] = -20.0
    ctpg.alpha = lambda: torch.zeros(2)
    obs = torch.zeros(2, OBS)
    assert [ctpg.act(obs, False)[1].tolist() for _ in range(2)] == [[1, 0], [1, 0]]  # filter not yet active
    assert ctpg.act(obs, False)[1].tolist() == [0, 0]  # task 0: candidate 1 filtered out, candidate 0 sampled
    with torch.no_grad():
        ctpg.guide.comparable.head.bias[:, 0, 0] = -5.0
    assert ctpg.act(obs, False)[1].tolist() == [0, 1]  # none passes: each task acts with its own policy
    counts = ctpg.drain_gate_counts()
    assert counts["filtered_decisions"].tolist() == [2, 2] and counts["fallback"].tolist() == [1, 1]
    assert counts["passed"].tolist() == [0.5, 0.5]


def test_block_gate_blocks_tasks_above_the_mean_log_alpha_from_their_next_episode():
    assert block_gate(torch.tensor([0.0, 1.0, -1.0, 0.5])).tolist() == [False, True, False, True]
    ctpg = behaviour(2, [1, 0], CTPGOptions(guide_step=1))
    obs = torch.zeros(2, OBS)
    assert ctpg.act(obs, False)[1].tolist() == [1, 0]
    ctpg.set_block(np.array([True, False]))
    assert ctpg.act(obs, False)[1].tolist() == [1, 0]  # still guided until its episode restarts
    ctpg.episode_start(np.array([True, False]))
    assert ctpg.act(obs, False)[1].tolist() == [0, 0]
    assert ctpg.drain_gate_counts()["blocked_decisions"].tolist() == [1, 0]


# ------------------------------------------------------------------------------------------ hindsight
def test_hindsight_picks_the_candidate_that_best_explains_the_segment_actions():
    policy = fixed_policy([[1.0], [-1.0]], math.log(0.3))
    guide_mean = math.tanh(1.0)
    actions = torch.tensor([math.tanh(1.0)] * 2 + [math.tanh(-1.0)] * 3).view(1, 1, 5, 1).expand(2, 1, 5, 1)
    observation = torch.zeros(2, 1, 5, OBS)
    means, stds = torch.tensor([[guide_mean]]), torch.tensor([0.01])
    full = torch.ones(2, 1, 5)
    first_two = torch.tensor([1.0, 1.0, 0.0, 0.0, 0.0]).expand(2, 1, 5)
    assert candidate_log_likelihoods(policy, None, None, observation, actions, full).argmax(0).tolist() == [[1], [1]]
    assert candidate_log_likelihoods(policy, None, None, observation, actions, first_two).argmax(0).tolist() == [[0], [0]]
    with_guide = candidate_log_likelihoods(policy, means, stds, observation, actions, first_two)
    assert with_guide.argmax(0).tolist() == [[2], [2]]  # the narrow fixed guide centred on the actions
    # policy 0 at a = tanh(1): Normal(1; 1, 0.3) density minus the tanh Jacobian, twice.
    by_hand = 2 * (-math.log(0.3) - 0.5 * math.log(2 * math.pi) - math.log(1 - math.tanh(1.0) ** 2 + 1e-6))
    assert with_guide[0, 0, 0].item() == pytest.approx(by_hand, abs=1e-3)
    assert with_guide[2, 0, 0].item() == pytest.approx(2 * (-math.log(0.01) - 0.5 * math.log(2 * math.pi)), abs=1e-3)


# ------------------------------------------------------------------------------------------ discrete SAC
def test_discrete_sac_losses_by_hand():
    logits = torch.log(torch.tensor([[[0.25, 0.75]]]))
    q = torch.tensor([[[1.0, 2.0]]])
    log_alpha = torch.tensor([math.log(0.5)], requires_grad=True)
    actor, alpha_loss, entropy = discrete_sac_actor_losses(logits, q, log_alpha, target_entropy=0.3)
    h = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    assert entropy.item() == pytest.approx(h)
    assert actor.item() == pytest.approx(0.25 * (0.5 * math.log(0.25) - 1.0) + 0.75 * (0.5 * math.log(0.75) - 2.0))
    assert alpha_loss.item() == pytest.approx(0.5 * (h - 0.3))
    alpha_loss.sum().backward()
    assert log_alpha.grad.item() == pytest.approx(0.5 * (h - 0.3))  # H > target: the temperature falls
    value = soft_state_value(logits, q, torch.tensor([0.5]))
    assert value.item() == pytest.approx(0.25 * (1 - 0.5 * math.log(0.25)) + 0.75 * (2 - 0.5 * math.log(0.75)))
    assert soft_state_value(logits, q, None).item() == pytest.approx(1.75)


def test_guide_update_fits_the_critic_of_the_chosen_candidate_only():
    """One task, segments of one step with a terminal: the guide critic's target is the reward."""
    config = parse_command_line(["ctpg_dnc", "--env=PointReach-v0", "--wandb", "False", "--guide_hindsight", "False",
                                 "--guide_lr", "1e-2", "--guide_step", "1", "--block_gate", "False",
                                 "--hidden_sizes", "16", "16"])
    parts = experiments.build_parts(config, experiments.build_task_set(config))
    learner, steps = parts.behaviour_learner, 64
    parts.buffer.add(Transitions(np.random.rand(1, steps, 2).astype(np.float32), np.zeros((1, steps, 2), np.float32),
                                 np.full((1, steps), 3.0, np.float32), np.zeros((1, steps, 2), np.float32),
                                 np.ones((1, steps), np.float32)))
    learner.store.add({"guide_action": np.full((1, steps), 2), "segment_start": np.ones((1, steps), bool),
                       "segment_end": np.ones((1, steps), bool)})
    for _ in range(200):
        stats = learner.update(16)
    after = learner.guide.critic(torch.zeros(1, 1, 2)).detach()
    assert after[:, 0, 0, 2].tolist() == pytest.approx([3.0, 3.0], abs=0.3)
    assert stats["GuideCriticLoss"].item() < 0.1
    assert after[:, 0, 0, [0, 1, 3]].max() < 2.0  # the other candidates are not fitted to that reward
    assert learner.guide.alpha().item() <= 1.0
    parts.sampler.close()
    parts.evaluator.close()


# ------------------------------------------------------------------------------------------ end to end
TINY = ["--wandb", "False", "--batch_size", "100", "--min_buffer_size", "20", "--gradient_steps_per_itr", "20",
        "--buffer_batch_size", "16", "--hidden_sizes", "16", "16", "--num_evaluation_episodes", "10"]


def test_config_accepts_ctpg_flags_only_for_ctpg():
    config = parse_command_line(["ctpg_dnc"])
    assert (config.guide_step, config.guide_update_freq, config.guide_lr, config.filter_gate, config.block_gate,
            config.guide_hindsight, config.filter_start_steps) == (10, 10, 1e-4, "masked", True, True, 10_000)
    assert config.per_task_buffers and not parse_command_line(
        ["ctpg_sac", "--policy_architecture", "multihead", "--Q_architecture", "multihead"]).per_task_buffers
    for argv, message in [(["qmp_dnc", "--guide_step", "5"], "guide_step is a flag of ctpg_dnc, ctpg_sac"),
                          (["ctpg_sac"], "ctpg_sac needs --policy_architecture multihead"),
                          (["ctpg_dnc", "--include_task_id", "True"], "hide the task identity"),
                          (["ctpg_dnc", "--guide_step", "0"], "guide_step must be positive"),
                          (["ctpg_dnc", "--filter_gate", "off", "--filter_start_steps", "5"], "no effect")]:
        with pytest.raises(ConfigError, match=message):
            parse_command_line(argv)


def launch(argv, log_dir):
    config = parse_command_line([*argv, "--log_dir", str(log_dir)])
    trainer, last = garage_experiments.launch(config, announce=lambda message: None)
    return config, trainer, last


def comparable(rows):
    return [{k: v for k, v in row.items() if not k.startswith("Time/")} for row in rows]


def test_resume_mid_segment_continues_exactly(tmp_path):
    """115 steps per task per iteration: iterations end mid-segment (K = 10) and mid-episode, guide
    updates owe a remainder (every 3 steps), the filter and the block gate are active."""
    argv = ["ctpg_sac", "--env=MazeLarge-10-v0", *TINY, "--policy_architecture", "multihead", "--Q_architecture",
            "multihead", "--use_pc_grad", "True", "--task_name", "1,2,3", "--n_policies", "3", "--batch_size", "345",
            "--num_evaluation_episodes", "3",
            "--guide_update_freq", "3", "--filter_start_steps", "30"]
    straight, trainer, last = launch([*argv, "--n_epochs", "3", "--name", "straight"], tmp_path)
    assert trainer.parts.sampler.behaviour.steps_in_segment.tolist() != [0, 0, 0]
    stopped, _, _ = launch([*argv, "--n_epochs", "2", "--name", "stopped"], tmp_path)
    resumed = parse_command_line(["resume", "--snapshot_dir", str(stopped.run_dir), "--n_epochs", "3"])
    garage_experiments.launch(resumed, announce=lambda message: None)
    rows = read_metrics(straight.run_dir)
    assert comparable(read_metrics(stopped.run_dir)) == comparable(rows)
    assert "Evaluation/p/SuccessRate" not in last  # CTPG evaluates each task's own policy only
    assert len(rows[-1]["Train/ActingPolicyCounts"]) == 3 and sum(rows[-1]["Train/ActingPolicyCounts"][0]) == 115
    assert rows[-1]["Train/FilterPassRate"] < 1.0 or rows[-1]["Train/FilterFallbackRate"] > 0.0
    for key in ("GuideCriticLoss", "GuideComparableLoss", "GuideActorLoss", "GuideTemperature", "HindsightRelabelRate",
                "BlockedDecisionRate", "GuideBlocked"):
        assert f"Train/{key}" in rows[-1] and f"Train/LocalPolicy2/{key}" in rows[-1]


def test_ctpg_dnc_runs_on_maze(tmp_path):
    config, trainer, last = launch(["ctpg_dnc", "--env=MazeLarge-10-v0", *TINY, "--n_epochs", "2"], tmp_path)
    rows = read_metrics(config.run_dir)
    assert rows[1]["Train/TotalEnvSteps"] == 10 * 20 + 100
    counts = rows[1]["Train/ActingPolicyCounts"]
    assert len(counts) == 10 and all(sum(row) == 10 for row in counts)
    assert rows[1]["Train/LocalPolicy3/MixtureProbs"] == pytest.approx(counts[3][3] / 10)


# Learning check: PointReach-v0 has one task and fixed guide candidates (up, right, up_right). The
# learned control policy does not reach the goal in this budget (README); a guide that learns to pick
# the up_right candidate does. One guide decision per episode (K = 20 = the episode length); a high
# guide learning rate so the guide critic fits returns of about -8 within a few epochs (the guide
# temperature is capped at 1, so the guide turns decisive only when its Q-gaps exceed 1).
def test_guide_learns_to_pick_the_candidate_that_reaches_the_goal(tmp_path):
    config = parse_command_line(["ctpg_dnc", "--env=PointReach-v0", "--wandb", "False", "--num_evaluation_episodes",
                                 "1", "--discount", "0.9", "--lr", "1e-2", "--gradient_steps_per_itr", "20",
                                 "--hidden_sizes", "32", "32", "--seed", "2", "--guide_step", "20",
                                 "--guide_lr", "3e-2", "--guide_update_freq", "2"])
    parts = experiments.build_parts(config, experiments.build_task_set(config))
    trainer = Trainer(parts, tmp_path, logger=None)
    shares, successes = [], []
    for epoch in range(6):
        episodes, counts, _ = trainer.run_iteration()
        shares.append(counts[0, 3] / counts[0].sum())
        successes.append(np.mean([episode.success for episode in episodes]))
    evaluation = trainer.evaluate(0)
    parts.sampler.close()
    parts.evaluator.close()
    assert shares[0] < 0.4 and successes[0] < 0.4  # epoch 0: the untrained guide
    assert np.mean(shares[-2:]) > 0.6 and np.mean(successes[-2:]) > 0.6
    assert evaluation["Evaluation/SuccessRate"] == 0.0  # the own policy alone does not reach the goal yet
