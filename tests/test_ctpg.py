"""CTPG (docs/ctpg.md): each piece against hand computations, a learning check, resume mid-segment."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import garage_experiments
from learning import experiments
from learning.behaviour.ctpg import (
    CTPGBehaviour,
    CTPGOptions,
    GuideNetworks,
    block_gate,
    filter_mask,
    gated_choice,
    own_soft_value,
)
from learning.behaviour.ctpg_learner import (
    CTPGLearner,
    SegmentStore,
    candidate_log_likelihoods,
    discrete_sac_actor_losses,
    gather_segments,
    smdp_target,
    soft_state_value,
)
from learning.core.networks import TanhGaussianPolicy, TwinQFunction
from learning.core.replay_buffer import TaskReplayBuffer, Transitions
from learning.core.sac import MultiTaskSAC, SACSettings
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


def test_segments_at_the_write_head_below_capacity_read_only_allocated_slots():
    """Capacity 100, storage allocated for the 20 steps written so far (write head = allocated size):
    a segment starting 5 slots before the head must not read slots 20..23."""
    buffer = TaskReplayBuffer(2, OBS, 1, 100, initial_capacity=8)
    store = SegmentStore(2, 100, "cpu", initial_capacity=8)
    buffer.add(Transitions(np.zeros((2, 20, OBS), np.float32), np.zeros((2, 20, 1), np.float32),
                           np.tile(np.arange(1, 21, dtype=np.float32), (2, 1)), np.zeros((2, 20, OBS), np.float32),
                           np.zeros((2, 20), np.float32)))
    store.add({"guide_action": np.zeros((2, 20), np.int64), "segment_start": np.zeros((2, 20), bool),
               "segment_end": np.zeros((2, 20), bool)})
    assert store.segment_end.shape[1] == store.position == 20
    batch = gather_segments(store, buffer, torch.tensor([[15], [15]]), torch.ones(2, 1, dtype=torch.bool), steps=9)
    assert batch.alive.tolist() == [[[1, 1, 1, 1, 1, 0, 0, 0, 0]]] * 2
    assert batch.reward[0, 0, :5].tolist() == [16.0, 17.0, 18.0, 19.0, 20.0]
    assert batch.valid.tolist() == [[0.0], [0.0]]  # the segment is still open


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
    ctpg.env_steps, ctpg.trained_steps = 100, 1  # the filter's clock: steps after the warm-up only
    assert [ctpg.act(obs, False)[1].tolist() for _ in range(2)] == [[1, 0], [1, 0]]  # filter not yet active
    ctpg.trained_steps = 2
    assert ctpg.act(obs, False)[1].tolist() == [0, 0]  # task 0: candidate 1 filtered out, candidate 0 sampled
    with torch.no_grad():
        ctpg.guide.comparable.head.bias[:, 0, 0] = -5.0
    assert ctpg.act(obs, False)[1].tolist() == [0, 1]  # none passes: each task acts with its own policy
    counts = ctpg.drain_gate_counts()
    assert counts["filtered_decisions"].tolist() == [2, 2] and counts["fallback"].tolist() == [1, 1]
    assert counts["passed"].tolist() == [0.5, 0.5]


def test_block_gate_blocks_tasks_above_the_mean_log_alpha_from_their_next_episode():
    assert block_gate(torch.tensor([0.0, 1.0, -1.0, 0.5])).tolist() == [False, True, False, True]
    assert block_gate(torch.tensor([0.0, 1.0, 2.0])).tolist() == [False, False, True]  # at the mean: guided
    assert block_gate(torch.zeros(3)).tolist() == [False, False, False]  # equal temperatures: all guided
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


# ------------------------------------------------------------------------------------------ the learner's wiring
# Two tasks with different control and guide temperatures; every guide network outputs constants
# (zero weights), so the targets and losses below are computed by hand.
GUIDE_PROBS = [[0.25, 0.75], [0.5, 0.5]]
GUIDE_ALPHA = [0.5, 0.25]
CONTROL_ALPHA = [2.0, 0.5]
ONLINE = [[[5.0, 6.0], [7.0, 8.0]], [[6.0, 5.0], [8.0, 9.0]]]  # [twin, task, candidate]
TARGET = [[[1.0, 2.0], [-1.0, 4.0]], [[3.0, 0.0], [2.0, 3.0]]]  # min over the twins: [[1, 0], [-1, 3]]
COMPARABLE_TARGET = [[[2.0, 4.0], [0.0, 1.0]], [[3.0, 1.0], [1.0, 5.0]]]  # min: [[2, 1], [0, 1]]


def set_constant(mlp, values) -> None:
    """Make a TaskMLP output ``values [ensemble, T, out]`` whatever its input."""
    values = torch.tensor(values, dtype=torch.float32)
    with torch.no_grad():
        mlp.head.weight.zero_()
        mlp.head.bias.copy_(values.reshape(-1, 1, values.shape[-1]))


def soft_value_by_hand(task: int, q_min: list[float], entropy: bool) -> float:
    probs, alpha = GUIDE_PROBS[task], GUIDE_ALPHA[task]
    return sum(p * (q - (alpha * math.log(p) if entropy else 0.0)) for p, q in zip(probs, q_min))


def wired_learner(buffer: TaskReplayBuffer, options: CTPGOptions, discount: float = 0.5) -> CTPGLearner:
    """A two-task learner on ``buffer`` with the constant guide networks above."""
    policy = fixed_policy([[0.3], [-0.2]], -1.0)
    sac = MultiTaskSAC(policy, TwinQFunction("separate", 2, OBS, 1, (4,)), SACSettings())
    with torch.no_grad():
        sac.log_alpha.copy_(torch.log(torch.tensor(CONTROL_ALPHA)))
    guide = GuideNetworks("separate", 2, OBS, 2, (4,))
    set_constant(guide.actor, [torch.log(torch.tensor(GUIDE_PROBS)).tolist()])
    set_constant(guide.critic, ONLINE)
    set_constant(guide.target_critic, TARGET)
    set_constant(guide.comparable, ONLINE)
    set_constant(guide.target_comparable, COMPARABLE_TARGET)
    with torch.no_grad():
        guide.log_alpha.copy_(torch.log(torch.tensor(GUIDE_ALPHA)))
    ctpg = CTPGBehaviour(sac.policy, sac.critic, sac.alpha, guide, options)
    return CTPGLearner(sac, guide, ctpg, buffer, options, discount, reward_scale=1.0)


def test_guide_and_comparable_targets_by_hand():
    """K = 4, discount 0.5. Segment 0 (slots 0-1) ends with its episode: a terminal in task 0, a time
    limit in task 1, which bootstraps after 2 steps; segment 1 (slots 2-5) bootstraps after K steps."""
    buffer, store = segment_fixture()
    learner = wired_learner(buffer, CTPGOptions(guide_step=4))
    batch = gather_segments(store, buffer, torch.tensor([[0, 2], [0, 2]]), torch.ones(2, 2, dtype=torch.bool), 4)
    torch.manual_seed(3)
    guide_target, comparable_target = learner.targets(batch)
    torch.manual_seed(3)  # the comparable target's only random draw: a~_t ~ pi_i at every stored step
    _, log_prob, _, _ = learner.sac.policy.sample(batch.observation.reshape(2, 8, OBS))
    log_prob = log_prob.reshape(2, 2, 4)
    target_min = [[1.0, 0.0], [-1.0, 3.0]]
    comparable_min = [[2.0, 1.0], [0.0, 1.0]]
    for task in range(2):
        v_guide = soft_value_by_hand(task, target_min[task], entropy=True)  # V^g(s_L) with the *target* critic
        v_comparable = soft_value_by_hand(task, comparable_min[task], entropy=False)
        bootstrap = 0.0 if task == 0 else 0.25  # 0.5^2 after the time limit; nothing after the terminal
        assert guide_target[task].tolist() == pytest.approx([1 + 0.5 * 2 + bootstrap * v_guide,
                                                             3 + 0.5 * 4 + 0.25 * 5 + 0.125 * 6 + 0.0625 * v_guide])
        entropy = [[CONTROL_ALPHA[task] * log_prob[task, segment, t].item() for t in range(4)] for segment in (0, 1)]
        assert comparable_target[task].tolist() == pytest.approx([
            1 - entropy[0][0] + 0.5 * (2 - entropy[0][1]) + bootstrap * v_comparable,
            sum(0.5 ** t * (3 + t - entropy[1][t]) for t in range(4)) + 0.0625 * v_comparable], abs=1e-5)


def repeated_segments(segments: int, capacity: int) -> TaskReplayBuffer:
    """Two tasks, ``segments`` stored segments of 2 steps each (rewards 1 then 2, the second step ends
    the episode by a time limit), all with guide action 1."""
    steps = 2 * segments
    buffer = TaskReplayBuffer(2, OBS, 1, capacity)
    buffer.add(Transitions(np.random.rand(2, steps, OBS).astype(np.float32), np.zeros((2, steps, 1), np.float32),
                           np.tile([1.0, 2.0], (2, segments)).astype(np.float32),
                           np.random.rand(2, steps, OBS).astype(np.float32), np.zeros((2, steps), np.float32)))
    return buffer


def test_update_fits_the_hand_target_and_leaves_blocked_tasks_out():
    """K = 3 but every segment ends after 2 steps (and bootstraps); task 1 is blocked."""
    buffer = repeated_segments(32, capacity=128)
    learner = wired_learner(buffer, CTPGOptions(guide_step=3, guide_hindsight=False))
    learner.store.add({"guide_action": np.ones((2, 64), np.int64), "segment_start": np.tile([True, False], (2, 32)),
                       "segment_end": np.tile([False, True], (2, 32))})
    learner.behaviour.set_block(np.array([False, True]))
    guide = learner.guide
    networks = {"actor": guide.actor, "critic": guide.critic, "comparable": guide.comparable}

    def members(task: int) -> dict[str, torch.Tensor]:  # separate networks: member k * T + task is task's
        return {f"{label}.{name}": value[task::2].detach().clone() for label, network in networks.items()
                for name, value in network.named_parameters()}

    before = [members(0), members(1)]
    stats = learner.update(16)
    target = 1 + 0.5 * 2 + 0.25 * soft_value_by_hand(0, [1.0, 0.0], entropy=True)
    online = [ONLINE[0][0][1], ONLINE[1][0][1]]  # task 0's twins at the chosen candidate 1
    assert stats["GuideCriticLoss"][0].item() == pytest.approx(sum((q - target) ** 2 for q in online), rel=1e-5)
    assert stats["GuideSegmentLength"][0].item() == 2.0
    assert stats["GuideCriticLoss"][1].item() == 0.0 and stats["GuideComparableLoss"][1].item() == 0.0
    assert stats["GuideActorLoss"][1].item() == 0.0 and stats["GuideAlphaLoss"][1].item() == 0.0
    after = [members(0), members(1)]
    assert all(torch.equal(before[1][name], after[1][name]) for name in before[1])  # the blocked task is not trained
    assert not torch.equal(before[0]["critic.head.bias"], after[0]["critic.head.bias"])
    assert not torch.equal(before[0]["actor.head.weight"], after[0]["actor.head.weight"])
    assert guide.log_alpha[1].item() == pytest.approx(math.log(GUIDE_ALPHA[1]), abs=1e-7)
    assert guide.log_alpha[0].item() != pytest.approx(math.log(GUIDE_ALPHA[0]), abs=1e-7)


def test_block_gate_refreshes_every_block_gate_freq_environment_steps():
    """Control temperatures 2 and 0.5: task 0's log alpha is above the mean. The gate is refreshed when
    the run passes a multiple of 10 steps per task (warm-up included), from the temperatures of then."""
    learner = wired_learner(TaskReplayBuffer(2, OBS, 1, 16), CTPGOptions(block_gate_freq=10))
    ctpg = learner.behaviour
    ctpg.env_steps = 9
    learner.train(0, None)
    assert ctpg.blocked_next.tolist() == [False, False]
    ctpg.env_steps = 12
    assert learner.train(0, None)["GuideBlocked"].tolist() == [1.0, 0.0]
    with torch.no_grad():
        learner.sac.log_alpha.copy_(learner.sac.log_alpha.flip(0))
    ctpg.env_steps = 19
    learner.train(0, None)
    assert ctpg.blocked_next.tolist() == [True, False]  # not refreshed before 20 steps
    ctpg.env_steps = 35  # one iteration passing two multiples: one refresh
    learner.train(0, None)
    assert ctpg.blocked_next.tolist() == [False, True] and learner.block_periods == 3
    resumed = wired_learner(TaskReplayBuffer(2, OBS, 1, 16), CTPGOptions(block_gate_freq=10))
    resumed.load_state_dict(learner.state_dict())
    resumed.behaviour.env_steps = 39
    resumed.train(0, None)
    assert resumed.behaviour.blocked_next.tolist() == [False, False]  # period 3 was refreshed before the checkpoint


def test_the_filter_clock_counts_steps_after_the_warm_up():
    learner = wired_learner(TaskReplayBuffer(2, OBS, 1, 16), CTPGOptions(filter_start_steps=30, guide_update_freq=100))
    ctpg = learner.behaviour
    ctpg.env_steps = 100  # the warm-up collection: the trainer reports no new steps
    learner.train(0, None)
    assert not ctpg.filter_active()
    learner.train(20, 4)
    assert not ctpg.filter_active()
    learner.train(10, 4)
    assert ctpg.filter_active() and learner.updates == 0


def test_each_guide_update_takes_the_control_minibatch_of_segments_per_task():
    """The official guide minibatch: B / T segments per task, B / T the control minibatch per task
    (here 8); ``train`` owes one update per ``guide_update_freq`` steps."""
    def learner_with_data() -> CTPGLearner:
        torch.manual_seed(4)
        np.random.seed(4)
        learner = wired_learner(repeated_segments(32, capacity=128), CTPGOptions(guide_step=3, guide_update_freq=10))
        learner.store.add({"guide_action": np.zeros((2, 64), np.int64),
                           "segment_start": np.tile([True, False], (2, 32)),
                           "segment_end": np.tile([False, True], (2, 32))})
        return learner

    trained, reference = learner_with_data(), learner_with_data()
    torch.manual_seed(5)
    trained.train(14, 8)
    torch.manual_seed(5)
    reference.update(8)
    assert trained.updates == 1 and trained.pending_steps == 4
    for (name, value), other in zip(trained.guide.state_dict().items(), reference.guide.state_dict().values()):
        assert torch.equal(value, other), name


# ------------------------------------------------------------------------------------------ end to end
TINY = ["--wandb", "False", "--batch_size", "100", "--min_buffer_size", "20", "--gradient_steps_per_itr", "20",
        "--buffer_batch_size", "16", "--hidden_sizes", "16", "16", "--num_evaluation_episodes", "10"]


def test_config_accepts_ctpg_flags_only_for_ctpg():
    config = parse_command_line(["ctpg_dnc"])
    assert (config.guide_step, config.guide_update_freq, config.guide_lr, config.filter_gate, config.block_gate,
            config.block_gate_freq, config.guide_hindsight, config.filter_start_steps) == (
        10, 10, 1e-4, "masked", True, 10_000, True, 10_000)
    assert config.per_task_buffers and not parse_command_line(
        ["ctpg_sac", "--policy_architecture", "multihead", "--Q_architecture", "multihead"]).per_task_buffers
    for argv, message in [(["qmp_dnc", "--guide_step", "5"], "guide_step is a flag of ctpg_dnc, ctpg_sac"),
                          (["ctpg_sac"], "ctpg_sac needs --policy_architecture multihead"),
                          (["ctpg_dnc", "--include_task_id", "True"], "hide the task identity"),
                          (["ctpg_dnc", "--guide_step", "0"], "guide_step must be positive"),
                          (["ctpg_dnc", "--filter_gate", "off", "--filter_start_steps", "5"], "no effect"),
                          (["ctpg_dnc", "--block_gate_freq", "0"], "block_gate_freq must be positive"),
                          (["ctpg_dnc", "--block_gate", "False", "--block_gate_freq", "5"], "no effect")]:
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
    updates owe a remainder (every 3 steps), the filter is active and the block gate refreshes every
    200 steps per task, in some iterations and not in others."""
    argv = ["ctpg_sac", "--env=MazeLarge-10-v0", *TINY, "--policy_architecture", "multihead", "--Q_architecture",
            "multihead", "--use_pc_grad", "True", "--task_name", "1,2,3", "--n_policies", "3", "--batch_size", "345",
            "--num_evaluation_episodes", "3",
            "--guide_update_freq", "3", "--filter_start_steps", "30", "--block_gate_freq", "200"]
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


def test_training_does_not_depend_on_the_evaluation_frequency(tmp_path):
    """Ten tasks, 10 steps per task per iteration after a warm-up of 20: the block gate refreshes every
    iteration and its verdict changes during the run; the filter acts in the last epoch.
    Evaluating every epoch or every third one trains the same."""
    argv = ["ctpg_dnc", "--env=MazeLarge-10-v0", *TINY, "--num_evaluation_episodes", "10", "--n_epochs", "4",
            "--block_gate_freq", "10", "--filter_start_steps", "20"]
    runs = [launch([*argv, "--evaluation_frequency", frequency, "--name", f"every{frequency}"], tmp_path)
            for frequency in ("1", "3")]
    rows = [[{k: v for k, v in row.items() if k.startswith("Train/")} for row in read_metrics(config.run_dir)]
            for config, _, _ in runs]
    assert rows[0] == rows[1]
    blocked = {tuple(row[f"Train/LocalPolicy{task}/GuideBlocked"] for task in range(10)) for row in rows[0]}
    assert len(blocked) >= 2  # the gate's verdict changed between evaluations
    states = [{**trainer.parts.sac.state_dict(), **trainer.parts.behaviour_learner.guide.state_dict()}
              for _, trainer, _ in runs]
    assert states[0].keys() == states[1].keys()
    assert all(torch.equal(states[0][key], states[1][key]) for key in states[0])


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
    for _epoch in range(6):
        episodes, counts, _ = trainer.run_iteration()
        shares.append(counts[0, 3] / counts[0].sum())
        successes.append(np.mean([episode.success for episode in episodes]))
    evaluation = trainer.evaluate(0)
    parts.sampler.close()
    parts.evaluator.close()
    assert shares[0] < 0.4 and successes[0] < 0.4  # epoch 0: the untrained guide
    assert np.mean(shares[-2:]) > 0.6 and np.mean(successes[-2:]) > 0.6
    assert evaluation["Evaluation/SuccessRate"] == 0.0  # the own policy alone does not reach the goal yet
