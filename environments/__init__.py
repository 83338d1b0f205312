"""Registry of the paper's multi-task benchmarks, by the paper's environment ids.

``make_task_set(env_id, **env_kwargs)`` builds a :class:`environments.base.TaskSet`. Modules are
imported lazily, so an environment whose dependencies are heavy (Meta-World, Kitchen) costs nothing
until it is used. ``ENV_KWARGS`` lists which command-line flags each id receives (docs/fidelity.md#presets).
"""

from __future__ import annotations

import importlib

from environments.base import GuidePolicy, ObservationLayout, TaskSet

# env id -> "module:function" building its TaskSet.
ENV_BUILDERS: dict[str, str] = {
    "PointReach-v0": "environments.point_reach:make_point_reach_task_set",
    "MazeLarge-10-v0": "environments.maze:make_maze_task_set",
    "JacoReachMT5-v1": "environments.jaco:make_jaco_task_set",
    "Walker2dMT4-v0": "environments.walker:make_walker_task_set",
    "MetaWorldCDS-v1": "environments.metaworld_envs:make_cds_task_set",
    "MetaWorldMT10-v2": "environments.metaworld_envs:make_mt10_task_set",
    "MetaWorldMT50-v2": "environments.metaworld_envs:make_mt50_task_set",
    "KitchenMTEasy-v0": "environments.kitchen:make_kitchen_task_set",
}

# env id -> the configuration keys forwarded to its builder as keyword arguments.
ENV_KWARGS: dict[str, tuple[str, ...]] = {
    "PointReach-v0": ("guide_policies",),
    "MazeLarge-10-v0": ("task_name", "sparse_tasks"),
    "JacoReachMT5-v1": (),
    "Walker2dMT4-v0": ("external_forces",),
    "MetaWorldCDS-v1": ("task_name", "sparse_tasks"),
    "MetaWorldMT10-v2": ("task_name", "sparse_tasks"),
    "MetaWorldMT50-v2": ("task_name", "sparse_tasks"),
    "KitchenMTEasy-v0": ("task_name", "sparse_tasks", "corrected_kitchen_goal"),
}

# env id -> (tasks, steps per episode, what it is): the lines of ``python run.py --help``, written out
# so the help needs no environment built (tests check them against the modules).
ENV_SUMMARIES: dict[str, tuple[int, int, str]] = {
    "PointReach-v0": (1, 20, "the paper's 2-D point-reaching example (plus fixed guide policies)"),
    "MazeLarge-10-v0": (10, 600, "point mass in the large maze, 10 goals"),
    "JacoReachMT5-v1": (5, 200, "Kinova Jaco multistage reacher"),
    "Walker2dMT4-v0": (4, 1000, "Walker2d: forward, backward, balance, crawl"),
    "MetaWorldCDS-v1": (4, 500, "Meta-World door and drawer, open and close"),
    "MetaWorldMT10-v2": (10, 500, "Meta-World MT10"),
    "MetaWorldMT50-v2": (50, 500, "Meta-World MT50"),
    "KitchenMTEasy-v0": (10, 140, "Franka Kitchen: open/close or on/off of 5 elements"),
}


def available_env_ids() -> list[str]:
    """The environment ids this codebase knows, in the paper's order."""
    return list(ENV_BUILDERS)


def make_task_set(env_id: str, **env_kwargs) -> TaskSet:
    """Build the TaskSet registered under ``env_id``.

    Raises KeyError for an unknown id and ValueError (one line) for bad keyword values.
    """
    if env_id not in ENV_BUILDERS:
        raise KeyError(f"unknown environment id {env_id!r}; known ids: {', '.join(ENV_BUILDERS)}")
    module_name, function_name = ENV_BUILDERS[env_id].split(":")
    builder = getattr(importlib.import_module(module_name), function_name)
    return builder(**env_kwargs)


__all__ = ["ENV_BUILDERS", "ENV_KWARGS", "ENV_SUMMARIES", "GuidePolicy", "ObservationLayout", "TaskSet",
           "available_env_ids", "make_task_set"]
