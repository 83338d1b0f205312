"""Online UDS / CDS (docs/fidelity.md#uds-and-cds): the quantile threshold, which offered transitions are shared, their
relabelled rewards, the weighted losses, the reward table of CDS and the raw observations it needs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from environments import make_task_set
from learning.baselines.data_sharing import DataSharingSAC, RewardTableReplayBuffer, sharing_threshold
from learning.behaviour.own_policy import OwnPolicyBehaviour
from learning.core.networks import TanhGaussianPolicy, TwinQFunction
from learning.core.replay_buffer import TaskReplayBuffer, Transitions
from learning.core.sac import SACSettings
from learning.training.sampler import LockstepSampler

T, OBS, ACT, HIDDEN = 3, 2, 1, 4
MIN_REWARD = -5.0
SOURCE_Q = [1.5, 2.0, 3.0]  # Q1 of the one stored transition of each task's buffer (= its first coordinate)


def first_coordinate_critic() -> TwinQFunction:
    """Twin critics whose every task has Q1(s, a) = Q2(s, a) = relu(s[0])."""
    critic = TwinQFunction("separate", T, OBS, ACT, (HIDDEN,))
    with torch.no_grad():
        for parameter in critic.parameters():
            parameter.zero_()
        critic.mlp.hidden[0].weight[:, 0, 0] = 1.0
        critic.mlp.head.weight[:, 0, 0] = 1.0
    return critic


def transitions(first: list[float], rewards: list[float]) -> Transitions:
    """One transition per task: observation (first[t], t), action t/10, next observation (first[t] + 1, t)."""
    obs = np.array([[[value, task]] for task, value in enumerate(first)], dtype=np.float32)
    return Transitions(obs, np.arange(T, dtype=np.float32).reshape(T, 1, 1) / 10,
                       np.array(rewards, dtype=np.float32).reshape(T, 1), obs + np.array([1.0, 0.0], np.float32),
                       np.array([[0.0], [1.0], [0.0]], dtype=np.float32))


def sharing_sac(quantile: float, buffer: TaskReplayBuffer, min_reward: float | None = MIN_REWARD) -> DataSharingSAC:
    policy = TanhGaussianPolicy("separate", T, OBS, ACT, (HIDDEN,))
    return DataSharingSAC(policy, first_coordinate_critic(), SACSettings(), buffer, quantile, min_reward)


def own_batch() -> dict[str, torch.Tensor]:
    """Task i's own batch of B = 5 transitions with Q1 = 1, 2, 3, 4, 5 (in shuffled order)."""
    q = torch.tensor([5.0, 1.0, 4.0, 2.0, 3.0])
    obs = torch.stack([q, torch.zeros(5)], dim=-1).expand(T, 5, OBS)
    return {"observation": obs, "action": torch.zeros(T, 5, ACT), "reward": torch.ones(T, 5),
            "next_observation": obs, "terminal": torch.zeros(T, 5)}


def filled_buffer() -> TaskReplayBuffer:
    buffer = TaskReplayBuffer(T, OBS, ACT, 100)
    buffer.add(transitions(SOURCE_Q, [10.0, 20.0, 30.0]))
    return buffer


def test_threshold_is_the_quantile_position_of_the_own_batch():
    q = torch.tensor([[5.0, 1.0, 4.0, 2.0, 3.0]])  # [-inf, 1, 2, 3, 4, 5][floor(5 k)]
    assert sharing_threshold(q, 0.0).item() == -math.inf
    assert sharing_threshold(q, 0.4).item() == 2.0
    assert sharing_threshold(q, 0.8).item() == 4.0
    assert sharing_threshold(q, 1.0).item() == 5.0


def test_sample_others_never_offers_a_task_its_own_data():
    buffer = filled_buffer()
    offered = buffer.sample_others(4)
    assert offered["observation"].shape == (T, (T - 1) * 4, OBS)
    for receiver in range(T):
        sources = offered["source_task"][receiver].tolist()
        assert receiver not in sources and sorted(set(sources)) == [t for t in range(T) if t != receiver]
        assert offered["observation"][receiver, :, 0].tolist() == [SOURCE_Q[s] for s in sources]


@pytest.mark.parametrize("quantile, shared_sources", [
    (0.0, {0: [1, 2], 1: [0, 2], 2: [0, 1]}),  # share everything
    (0.4, {0: [2], 1: [2], 2: []}),  # threshold 2: Q = 1.5 and (strictly) 2.0 are not shared
    (0.8, {0: [], 1: [], 2: []}),  # threshold 4
])
def test_uds_shares_above_the_threshold_with_the_minimum_reward(quantile, shared_sources):
    sac = sharing_sac(quantile, filled_buffer())
    batch, fraction = sac.shared_batch(own_batch())
    per_source = 5 // (T - 1)
    assert batch["observation"].shape == (T, 5 + (T - 1) * per_source, OBS)
    assert torch.equal(batch["weight"][:, :5], torch.ones(T, 5))  # own data always counts
    for receiver in range(T):
        offered_q = batch["observation"][receiver, 5:, 0]
        weights = batch["weight"][receiver, 5:]
        shared_q = sorted(set(offered_q[weights == 1].tolist()))
        assert shared_q == [SOURCE_Q[s] for s in shared_sources[receiver]]
        assert fraction[receiver].item() == pytest.approx(len(shared_sources[receiver]) / (T - 1))
        assert torch.equal(batch["reward"][receiver, 5:], torch.full((len(offered_q),), MIN_REWARD))
        for position in range(5, batch["reward"].shape[1]):  # next state and terminal stay the source's
            source = SOURCE_Q.index(batch["observation"][receiver, position, 0].item())
            assert batch["next_observation"][receiver, position, 0].item() == SOURCE_Q[source] + 1.0
            assert batch["terminal"][receiver, position].item() == (1.0 if source == 1 else 0.0)


def test_weighted_losses_are_the_mean_over_own_and_shared_samples():
    sac = sharing_sac(0.0, filled_buffer())
    per_sample = torch.tensor([[1.0, 2.0, 3.0, 10.0], [4.0, 4.0, 4.0, 4.0]])
    weight = torch.tensor([[1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 0.0, 1.0]])
    assert sac._reduce(per_sample, "critic", weight).item() == pytest.approx(2.0 + 4.0)


def test_update_logs_the_shared_fraction_of_each_task():
    torch.manual_seed(0)
    sac = sharing_sac(0.4, filled_buffer())
    stats = sac.update(own_batch())
    assert stats["SharedData"].tolist() == [0.5, 0.5, 0.0]  # per task, not one aliased running mean
    assert stats["Qf1Loss"].shape == (T,)


def reward_of_hidden_slot(raw_obs: np.ndarray, action: np.ndarray, raw_next_obs: np.ndarray, task: int) -> np.ndarray:
    """A CDS reward that reads slot 2 of the raw observation, which the networks never see."""
    return 100.0 * raw_obs[..., 2] + 10.0 * task + action[..., 0]


def test_cds_relabels_with_the_receiving_task_reward_function_of_the_raw_observation():
    buffer = RewardTableReplayBuffer(T, OBS, ACT, 100, reward_of_hidden_slot)
    block = transitions(SOURCE_Q, [0.0, 0.0, 0.0])
    block.raw_observation = np.array([[[SOURCE_Q[t], t, 0.5 * t]] for t in range(T)], dtype=np.float32)
    block.raw_next_observation = block.raw_observation + 1.0
    buffer.add(block)
    sac = sharing_sac(0.0, buffer, min_reward=None)
    batch, _ = sac.shared_batch(own_batch())
    for receiver in range(T):
        for position in range(5, batch["reward"].shape[1]):
            source = SOURCE_Q.index(batch["observation"][receiver, position, 0].item())
            expected = 100.0 * 0.5 * source + 10.0 * receiver + source / 10
            assert batch["reward"][receiver, position].item() == pytest.approx(expected)
    with pytest.raises(ValueError, match="raw observations"):
        buffer.add(transitions(SOURCE_Q, [0.0, 0.0, 0.0]))


def test_reward_table_survives_a_checkpoint():
    buffer = RewardTableReplayBuffer(T, OBS, ACT, 100, reward_of_hidden_slot)
    block = transitions(SOURCE_Q, [0.0, 0.0, 0.0])
    block.raw_observation = np.ones((T, 1, 3), dtype=np.float32)
    block.raw_next_observation = np.ones((T, 1, 3), dtype=np.float32)
    buffer.add(block)
    restored = RewardTableReplayBuffer(T, OBS, ACT, 100, reward_of_hidden_slot)
    restored.load_state_dict(buffer.state_dict())
    offered = restored.sample_others(1)  # receiver 0 is offered task 1's transition: raw slot 1, action 0.1
    assert torch.allclose(offered["task_rewards"][0, 0], torch.tensor([100.1, 110.1, 120.1]))


def test_sampler_keeps_the_raw_observations_it_masks():
    task_set = make_task_set("PointReach-v0", guide_policies="none")
    layout = task_set.observation_layout
    policy = TanhGaussianPolicy("separate", 1, layout.network_dim(), 2, (4,))
    sampler = LockstepSampler(task_set, OwnPolicyBehaviour(policy), layout.network_input, torch.device("cpu"),
                              seed=0, discount=0.99, keep_raw_observations=True)
    block = sampler.collect(25).transitions  # crosses an episode boundary (20 steps)
    sampler.close()
    assert block.raw_observation.shape == (1, 25, 3)
    assert np.array_equal(layout.network_input(block.raw_observation), block.observation)
    assert np.all(block.raw_observation[..., 2] == 1.0)  # the task one-hot the networks do not see
    assert np.array_equal(block.raw_observation[0, 20, :2], [0.0, 0.0])  # the reset observation


def test_cds_rewards_on_the_maze_are_what_each_task_env_returns():
    """Random transitions (s, a, s') collected by the real sampler in task j: task i's relabelled reward
    equals the reward task i's env returns for action a from state s (the maze rewards s')."""
    task_set = make_task_set("MazeLarge-10-v0", task_name="0,3,7")
    layout = task_set.observation_layout
    policy = TanhGaussianPolicy("separate", 3, layout.network_dim(), 2, (4,))
    sampler = LockstepSampler(task_set, OwnPolicyBehaviour(policy), layout.network_input, torch.device("cpu"),
                              seed=0, discount=0.99, keep_raw_observations=True)
    block = sampler.collect(30).transitions
    sampler.close()
    np.testing.assert_array_equal(layout.network_input(block.raw_next_observation), block.next_observation)
    buffer = RewardTableReplayBuffer(3, layout.network_dim(), 2, 100, task_set.reward_function)
    table = buffer._field_values(block)["task_rewards"]  # [collected in j, n, rewarded task i]
    np.testing.assert_allclose(table.diagonal(axis1=0, axis2=2).T, block.reward, rtol=0, atol=1e-6)
    for receiver in range(3):
        env = task_set.make_env(receiver).unwrapped
        env.reset(seed=0)
        for source in range(3):
            for step in range(30):
                state = block.raw_observation[source, step].astype(np.float64)
                env.set_state(state[:2], state[2:4])
                _, reward, *_ = env.step(block.action[source, step])
                assert table[source, step, receiver] == pytest.approx(reward, abs=1e-5)
