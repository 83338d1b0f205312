"""The per-task budget of the two loss families (docs/fidelity.md#iteration), by hand for three tasks."""

from __future__ import annotations

from learning.training.budget import Budget


def budget(per_task_buffers: bool, **overrides: int) -> Budget:
    values = dict(batch_size=1000, min_buffer_size=100, replay_buffer_size=1000, buffer_batch_size=32,
                  gradient_steps_per_itr=1000, n_epochs=2, steps_per_epoch=1)
    return Budget(num_tasks=3, per_task_buffers=per_task_buffers, **{**values, **overrides})


def test_per_task_buffers_keep_the_flags_per_task_and_split_the_gradient_steps():
    b = budget(per_task_buffers=True)
    assert (b.steps_per_task, b.warm_up_per_task, b.capacity_per_task) == (334, 100, 1000)
    assert (b.gradient_steps, b.minibatch_per_task) == (333, 32)
    assert b.warming_up(99) and not b.warming_up(100)
    assert b.reachable_transitions_per_task == 100 + 2 * 334  # below the capacity


def test_one_shared_buffer_splits_the_flags_among_the_tasks():
    b = budget(per_task_buffers=False)
    assert (b.steps_per_task, b.warm_up_per_task, b.capacity_per_task) == (334, 34, 333)
    assert (b.gradient_steps, b.minibatch_per_task) == (1000, 11)
    assert b.warming_up(33) and not b.warming_up(34)  # 3 * 33 = 99 < 100 <= 3 * 34
    assert b.reachable_transitions_per_task == 333  # capped by the capacity


def test_tiny_flags_still_give_one_step_and_one_slot():
    b = budget(per_task_buffers=False, replay_buffer_size=2, buffer_batch_size=1, gradient_steps_per_itr=1)
    assert (b.capacity_per_task, b.minibatch_per_task, b.gradient_steps) == (1, 1, 1)
    assert budget(per_task_buffers=True, gradient_steps_per_itr=2).gradient_steps == 1


def test_the_schedule_reads_the_flags_the_training_loop_needs():
    """Evaluation, videos and numbered checkpoints at the epochs the flags name; episodes and videos
    divided among the tasks (at least one each); the acting matrix logged only where behaviour is shared."""
    from learning.training.budget import Schedule
    from learning.training.config import parse_command_line

    config = parse_command_line(["qmp_dnc", "--env", "JacoReachMT5-v1", "--evaluation_frequency", "5",
                                 "--num_evaluation_episodes", "12", "--vis_freq", "10", "--vis_num", "3",
                                 "--snapshot_gap", "4", "--wandb", "False"])
    schedule = Schedule.of(config, num_tasks=5)
    assert (schedule.evaluation_episodes_per_task, schedule.videos_per_task, schedule.logs_acting_matrix) == (2, 1, True)
    assert [e for e in range(12) if schedule.evaluates(e)] == [0, 5, 10]
    assert [e for e in range(21) if schedule.records_videos(e)] == [0, 10, 20]
    assert [e for e in range(9) if schedule.keeps_numbered_checkpoint(e)] == [0, 4, 8]
    plain = Schedule.of(parse_command_line(["dnc_sac", "--env", "JacoReachMT5-v1", "--wandb", "False"]), num_tasks=5)
    assert not plain.logs_acting_matrix and not any(plain.records_videos(e) for e in range(5))
    assert not any(plain.keeps_numbered_checkpoint(e) for e in range(5))
