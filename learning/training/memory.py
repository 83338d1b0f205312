"""Does a run fit in memory? Checked before networks and replay buffers are allocated.

The estimate is deliberately simple (float32 everywhere, every task with its own copy of every
network): its job is to turn "allocate 73 TiB" into one line before anything is allocated, not to
predict memory use to the megabyte. Replay buffers grow as they fill, so they are counted at the
size they can reach within ``--n_epochs``; the limit is the machine's memory (or the cgroup's limit,
or the GPU's), not what happens to be free now.
"""

from __future__ import annotations

import os
from pathlib import Path

from learning.experiment_table import DATA_SHARING
from learning.training.budget import Budget
from learning.training.config import MAX_VIDEO_SIDE, Config, ConfigError

FLOAT_BYTES = 4
GIB = 2 ** 30


def memory_limit_bytes(device_type: str = "cpu", device_index: int | None = None) -> int:
    """Physical memory (or the cgroup v2 limit, when lower); a CUDA device's total memory for GPU runs."""
    if device_type == "cuda":
        import torch

        return int(torch.cuda.get_device_properties(device_index or 0).total_memory)
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    cgroup = Path("/sys/fs/cgroup/memory.max")
    try:
        text = cgroup.read_text().strip()
    except OSError:
        return total
    return min(total, int(text)) if text.isdigit() else total


def network_floats(config: Config, num_tasks: int, obs_dim: int, action_dim: int) -> int:
    """Floats of policy, twin critics, target critics, gradients and Adam moments (upper bound)."""

    def mlp(inputs: int, outputs: int) -> int:
        sizes = [inputs, *config.hidden_sizes, outputs]
        return sum((a + 1) * b for a, b in zip(sizes[:-1], sizes[1:]))

    policy = mlp(obs_dim, 2 * action_dim)
    critic = 2 * mlp(obs_dim + action_dim, 1)
    return num_tasks * (4 * policy + 5 * critic)  # weights, gradients, two Adam moments; critics also a target


def check_memory(config: Config, num_tasks: int, obs_dim: int, action_dim: int, device_type: str = "cpu",
                 device_index: int | None = None) -> None:
    """Raise ConfigError when the run cannot fit in this machine's memory."""
    transition = (2 * obs_dim + action_dim + 2 + (num_tasks if relabels_rewards(config) else 0)) * FLOAT_BYTES
    budget = Budget.of(config, num_tasks)
    buffers = num_tasks * budget.reachable_transitions_per_task * transition
    collected_per_task = max(budget.warm_up_per_task, budget.steps_per_task)
    collection = num_tasks * collected_per_task * transition * 2  # the sampler's arrays and their copy in
    minibatch = config.buffer_batch_size * (1 if not config.per_task_buffers else num_tasks)
    training = minibatch * (transition + FLOAT_BYTES * 4 * sum(config.hidden_sizes))
    networks = network_floats(config, num_tasks, obs_dim, action_dim) * FLOAT_BYTES
    needed = buffers + collection + training + networks
    limit = memory_limit_bytes(device_type, device_index)
    if needed <= limit:
        return
    parts = {"replay buffers": (buffers, "--replay_buffer_size"),
             "collected data": (collection, "--batch_size/--min_buffer_size"),
             "minibatches": (training, "--buffer_batch_size"), "networks": (networks, "--hidden_sizes")}
    largest, (size, flags) = max(parts.items(), key=lambda item: item[1][0])
    where = "GPU" if device_type == "cuda" else "machine"
    raise ConfigError(f"this run needs about {needed / GIB:.3g} GiB ({largest}: {size / GIB:.3g} GiB), more than "
                      f"the {limit / GIB:.3g} GiB of memory of this {where}; lower {flags}")


def relabels_rewards(config: Config) -> bool:
    """CDS buffers keep every task's reward of each transition."""
    return config.spec.update == DATA_SHARING and not config.unsupervised


def check_video_memory(width: int, height: int, episodes: int, episode_steps: int, video_format: str,
                       flags: str) -> None:
    """Raise ConfigError when one task's video cannot be made in this machine's memory. An mp4 is
    streamed (a few frames at a time); a GIF keeps every frame (one byte per pixel) until it is written."""
    if max(width, height) > MAX_VIDEO_SIDE:
        raise ConfigError(f"video frames of {width} x {height} pixels are larger than {MAX_VIDEO_SIDE} x "
                          f"{MAX_VIDEO_SIDE}; lower {flags}")
    frame = width * height
    kept_frames = episodes * (episode_steps + 1) if video_format == "gif" else 0
    needed = kept_frames * frame + 16 * frame  # kept frames, plus the renderer's, the overlay's and the encoder's
    limit = memory_limit_bytes()
    if needed > limit:
        raise ConfigError(f"a {video_format} video of {episodes} episode(s) of {episode_steps} steps at {width} x "
                          f"{height} needs about {needed / GIB:.3g} GiB, more than the {limit / GIB:.3g} GiB of "
                          f"memory of this machine; lower {flags} or use mp4")
