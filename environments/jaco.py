"""JacoReachMT5-v1, the paper's "Multistage Reacher" (docs/fidelity.md#jaco).

A 6-joint Kinova Jaco (v1) arm (environments/jaco_model.py) reaches three sub-goals in sequence;
the five tasks differ in their sub-goal sequences and reward terms. The raw observation is
``[qpos 6, qvel 6, stage one-hot 3, task one-hot 5, hand xyz 3]`` (23 dims); the networks see it with
the task one-hot and the hand position zeroed (docs/fidelity.md#task-identity-and-masking).
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium.wrappers import TimeLimit

from environments.arithmetic import mean, norm, total
from environments.base import LazyRenderer, ObservationLayout, TaskSet, one_hot
from environments.jaco_model import DEFAULT_QPOS, FRAME_SKIP, HAND_BODY, TARGET_BODY, build_jaco_model

ENV_ID = "JacoReachMT5-v1"
MAX_EPISODE_STEPS = 200
NUM_STAGES = 3
NUM_JOINTS = 6
SUCCESS_DISTANCE = 0.05
STAGE_PENALTY = 0.4
MIN_REWARD = -5.0
"""Reward given to shared transitions by UDS (docs/fidelity.md#uds-and-cds)."""
FAILURE_CONTROL_REWARD = -100.0
STAY_SUCCESS_STEPS_PER_STAGE = 30
_INSTABILITY_WARNINGS = (mujoco.mjtWarning.mjWARN_BADQPOS, mujoco.mjtWarning.mjWARN_BADQVEL,
                         mujoco.mjtWarning.mjWARN_BADQACC)
_INSTABILITY_COUNTS = slice(int(mujoco.mjtWarning.mjWARN_BADQPOS), int(mujoco.mjtWarning.mjWARN_BADQACC) + 1)
"""The counters of _INSTABILITY_WARNINGS in ``MjData.warning.number`` (consecutive in ``mjtWarning``)."""
QPOS_NOISE = 0.01
QVEL_NOISE = 0.001

SUB_GOALS: dict[str, np.ndarray] = {
    "A": np.array([0.2, 0.3, 0.5]),
    "B": np.array([0.3, 0.0, 0.3]),
    "C": np.array([0.4, -0.3, 0.4]),
    "D": np.array([0.4, 0.3, 0.2]),
}
STAY = "stay"
"""Sub-goal name of the stay task: the hand position after one zero-action step from the reset pose."""

# Raw observation layout (docs/fidelity.md#task-identity-and-masking).
QPOS_SLICE = slice(0, 6)
QVEL_SLICE = slice(6, 12)
STAGE_SLICE = slice(12, 15)
TASK_SLICE = slice(15, 20)
HAND_SLICE = slice(20, 23)
OBSERVATION_DIM = 23


@dataclass(frozen=True)
class JacoTask:
    """One task of the original's table (docs/fidelity.md#jaco)."""

    name: str
    sub_goals: tuple[str, str, str]
    distance_term: bool
    """Reward −d (False for task 3, the "sparse" task)."""
    stage_penalty: bool
    """Reward −0.4·(3 − stage) after this step's stage update."""
    shift: float
    """Constant added to every reward; a non-zero shift also replaces the stage penalty by a success bonus."""

    @property
    def is_stay(self) -> bool:
        return self.sub_goals[0] == STAY

    @property
    def success_bonus(self) -> float:
        """Reward on every step with d < 0.05: (|shift| + 1)·200/3 for a shifted task, else 0."""
        return (abs(self.shift) + 1.0) * MAX_EPISODE_STEPS / NUM_STAGES if self.shift != 0 else 0.0


TASKS: tuple[JacoTask, ...] = (
    JacoTask("reach_A_B_C", ("A", "B", "C"), distance_term=True, stage_penalty=True, shift=0.0),
    JacoTask("reach_A_B_D_shifted", ("A", "B", "D"), distance_term=True, stage_penalty=False, shift=-2.0),
    JacoTask("reach_B_D_C", ("B", "D", "C"), distance_term=True, stage_penalty=True, shift=0.0),
    JacoTask("reach_B_C_A_sparse", ("B", "C", "A"), distance_term=False, stage_penalty=True, shift=0.0),
    JacoTask("stay", (STAY, STAY, STAY), distance_term=True, stage_penalty=False, shift=0.0),
)


def stay_point() -> np.ndarray:
    """The stay task's goal: the hand after one zero-action control step from qpos0, read as mujoco-py did.

    The original recorded the hand after one *random*-action step taken when the env object was
    built (docs/fidelity.md#jaco-start-pose-and-stay-goal); the zero-action step makes the goal identical for every
    instance.
    """
    model = build_jaco_model()
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    for _ in range(FRAME_SKIP):
        mujoco.mj_step(model, data)
    return data.xpos[model.body(HAND_BODY).id].copy()


_STAY_POINT = stay_point()


def sub_goal_position(name: str) -> np.ndarray:
    """World position of a named sub-goal (A, B, C, D or the stay point)."""
    return _STAY_POINT.copy() if name == STAY else SUB_GOALS[name].copy()


def task_reward_terms(task: JacoTask, distance, stage):
    """(distance term, stage term) of the original's table (docs/fidelity.md#jaco) for hand-goal distances and stage
    values: floats for one env step, float64 arrays for a batch.

    ``stage`` is the stage count the stage term is charged on; the success bonus is paid where
    ``distance < 0.05``.
    """
    distance_term = -distance if task.distance_term else np.zeros_like(distance)
    if task.stage_penalty:
        stage_term = -STAGE_PENALTY * (NUM_STAGES - stage)
    else:
        stage_term = task.success_bonus * (distance < SUCCESS_DISTANCE)
    return distance_term, stage_term


class JacoReachMultistageEnv(gym.Env):
    """One task of the Multistage Reacher (no time limit of its own; see make_jaco_task_set)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 25}
    independent_resets = True  # reset: mj_resetData, stage counters, noise from np_random; steps draw nothing
    constant_model = True  # checkpoints keep the MjData arrays, not the model (environments.base.get_env_state)

    def __init__(self, task_index: int, render_mode: str | None = None) -> None:
        if not 0 <= task_index < len(TASKS):
            raise ValueError(f"task_index must be in 0..{len(TASKS) - 1}, got {task_index}")
        self.task_index = task_index
        self.task = TASKS[task_index]
        self.goals = np.stack([sub_goal_position(name) for name in self.task.sub_goals])
        self.render_mode = render_mode
        self.model = build_jaco_model()
        self.data = mujoco.MjData(self.model)
        self.hand_id = self.model.body(HAND_BODY).id
        self.target_mocap_id = int(self.model.body(TARGET_BODY).mocapid[0])
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(NUM_JOINTS,), dtype=np.float32)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(OBSERVATION_DIM,), dtype=np.float32)
        self.stage = 0
        self.success_count = 0
        self.last_observation = np.zeros(OBSERVATION_DIM, dtype=np.float32)
        # The observation's stage and task one-hots (STAGE_SLICE, TASK_SLICE), by stage.
        self._one_hots = np.stack([np.concatenate([one_hot(stage, NUM_STAGES), one_hot(task_index, len(TASKS))])
                                   for stage in range(NUM_STAGES)])
        self.renderer = LazyRenderer(640, 480)

    # --- state -------------------------------------------------------------------------------

    def hand_position(self) -> np.ndarray:
        """World position of the hand body origin from the current kinematics."""
        return self.data.xpos[self.hand_id].copy()

    def current_goal(self) -> np.ndarray:
        return self.goals[min(self.stage, NUM_STAGES - 1)]

    def _observation(self) -> np.ndarray:
        """The raw observation: QPOS_SLICE, QVEL_SLICE, STAGE_SLICE, TASK_SLICE, HAND_SLICE in order."""
        observation = np.empty(OBSERVATION_DIM, dtype=np.float32)
        observation[QPOS_SLICE] = self.data.qpos
        observation[QVEL_SLICE] = self.data.qvel
        observation[STAGE_SLICE.start:TASK_SLICE.stop] = self._one_hots[self.stage]
        observation[HAND_SLICE] = self.data.xpos[self.hand_id]
        return observation

    def _place_target(self) -> None:
        self.data.mocap_pos[self.target_mocap_id] = self.current_goal()

    # --- gymnasium API -----------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        mujoco.mj_resetData(self.model, self.data)
        self.data.qpos[:] = DEFAULT_QPOS + self.np_random.uniform(-QPOS_NOISE, QPOS_NOISE, NUM_JOINTS)
        self.data.qvel[:] = self.np_random.uniform(-QVEL_NOISE, QVEL_NOISE, NUM_JOINTS)
        self.stage = 0
        self.success_count = 0
        self._place_target()
        mujoco.mj_forward(self.model, self.data)
        self.last_observation = self._observation()
        return self.last_observation.copy(), {"success": False, "stages_completed": 0, "completed": False,
                                              "task_id": self.task_index}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        action = np.asarray(action, dtype=np.float64).reshape(NUM_JOINTS)
        data = self.data
        state_before = (data.time, data.qpos.copy(), data.qvel.copy())
        warning_counts = data.warning.number
        warning_counts[_INSTABILITY_COUNTS] = 0
        data.ctrl[:] = action
        mujoco.mj_step(self.model, data, nstep=FRAME_SKIP)
        if any(warning_counts[_INSTABILITY_COUNTS].tolist()):  # MuJoCo flagged a bad qpos, qvel or qacc
            return self._fail(*state_before)

        # The observation is read before the stage update and without an extra forward pass: the
        # kinematics are those of the last substep's start, as mujoco-py returned them (docs/fidelity.md#jaco).
        observation = self._observation()
        distance = norm(data.xpos[self.hand_id] - self.current_goal())
        success = distance < SUCCESS_DISTANCE
        terminated = self._update_stage(success)
        distance_term, stage_term = task_reward_terms(self.task, distance, self.stage)
        control_term = (-0.01 * total(action ** 2) - 0.001 * mean(np.abs(data.qvel))
                        - 0.00001 * mean(np.abs(data.qacc)))
        reward = float(distance_term) + float(stage_term) + control_term + self.task.shift
        self.last_observation = observation
        info = {"success": success, "stages_completed": self.stage, "completed": terminated, "task_id": self.task_index,
                "stage_reward": float(stage_term), "ctrl_reward": control_term, "dist_reward": float(distance_term)}
        return observation.copy(), reward, terminated, False, info

    def _update_stage(self, success: bool) -> bool:
        """Advance the stage on success; True when the last stage is completed."""
        if not success:
            return False
        if self.task.is_stay:
            self.success_count += 1
            self.stage = self.success_count // STAY_SUCCESS_STEPS_PER_STAGE
        else:
            self.stage += 1
        if self.stage >= NUM_STAGES:
            return True
        self._place_target()
        return False

    def _fail(self, time_before: float, qpos_before: np.ndarray,
              qvel_before: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        """Unstable physics: control term −100, the previous observation, terminated (docs/fidelity.md#jaco).

        MuJoCo resets the data after a bad state, so the pre-step state is put back; the distance
        and stage terms are those of the previous observation's hand with no stage update.
        """
        self.data.time = time_before
        self.data.qpos[:] = qpos_before
        self.data.qvel[:] = qvel_before
        self._place_target()
        mujoco.mj_forward(self.model, self.data)
        hand = self.last_observation[HAND_SLICE].astype(np.float64)
        distance = np.float64(np.linalg.norm(hand - self.current_goal()))
        distance_term, stage_term = task_reward_terms(self.task, distance, np.float64(self.stage))
        reward = float(distance_term) + float(stage_term) + FAILURE_CONTROL_REWARD + self.task.shift
        info = {"success": False, "stages_completed": self.stage, "completed": False, "task_id": self.task_index,
                "stage_reward": float(stage_term), "ctrl_reward": FAILURE_CONTROL_REWARD,
                "dist_reward": float(distance_term)}
        return self.last_observation.copy(), reward, True, False, info

    def render(self) -> np.ndarray | None:
        """An RGB frame of the scene (render_mode "rgb_array"; needs an OpenGL backend, see MUJOCO_GL)."""
        if self.render_mode != "rgb_array":
            return None
        return self.renderer.render(self.model, self.data)

    def close(self) -> None:
        self.renderer.close()


def compute_rewards(raw_observations: np.ndarray, actions: np.ndarray, raw_next_observations: np.ndarray,
                    task_index: int) -> np.ndarray:
    """Task ``task_index``'s reward for a batch of stored (observation, action) pairs (CDS,
    docs/fidelity.md#uds-and-cds).

    As the original's relabelling function: the hand position and the stage come from the stored
    observation s (its stage one-hot, no stage update; ``raw_next_observations`` is not read), the
    control term keeps only the action part −0.01·Σa², and the stay task's stage term is 0. So it
    approximates, and does not equal, the reward the env returns (docs/envs/jaco.md).
    """
    task = TASKS[task_index]
    observations = np.asarray(raw_observations, dtype=np.float64).reshape(-1, OBSERVATION_DIM)
    actions = np.asarray(actions, dtype=np.float64).reshape(len(observations), NUM_JOINTS)
    goals = np.stack([sub_goal_position(name) for name in task.sub_goals])
    stage = np.argmax(observations[:, STAGE_SLICE], axis=-1)
    distance = np.linalg.norm(observations[:, HAND_SLICE] - goals[stage], axis=-1)
    distance_term, stage_term = task_reward_terms(task, distance, stage.astype(np.float64))
    return distance_term + stage_term - 0.01 * np.sum(actions ** 2, axis=-1) + task.shift


def domain_mixture_probabilities() -> np.ndarray:
    """QMP-Domain's fixed mixture (docs/fidelity.md#mixture-ablations): row i = task i receiving, column j = policy j.

    p(j→i) = Σ over the 3 sub-goal segments s of task i of (1/3)·1[s ∈ T_j] / Σ_k 1[s ∈ T_k]. The
    segment of stage s is the sub-goal sequence up to and including the s-th sub-goal, so two tasks
    share a segment when they pursue the same goal after the same history; this reading reproduces
    the paper's listed mixtures.
    """
    segments = [{task.sub_goals[: stage + 1] for stage in range(NUM_STAGES)} for task in TASKS]
    probabilities = np.zeros((len(TASKS), len(TASKS)))
    for receiving, task in enumerate(TASKS):
        for stage in range(NUM_STAGES):
            segment = task.sub_goals[: stage + 1]
            owners = [j for j, task_segments in enumerate(segments) if segment in task_segments]
            for j in owners:
                probabilities[receiving, j] += 1.0 / NUM_STAGES / len(owners)
    return probabilities


def make_jaco_env(task_index: int, render_mode: str | None = None) -> gym.Env:
    """One task env with the 200-step time limit (truncation, bootstrapped)."""
    return TimeLimit(JacoReachMultistageEnv(task_index, render_mode=render_mode), max_episode_steps=MAX_EPISODE_STEPS)


def _make_task_env(task_index: int, evaluation: bool) -> gym.Env:
    """TaskSet.make_env: training and evaluation instances are built alike (docs/fidelity.md#evaluation-variants)."""
    return make_jaco_env(task_index)


def make_jaco_task_set() -> TaskSet:
    """The five-task Multistage Reacher (docs/fidelity.md#jaco)."""
    return TaskSet(
        env_id=ENV_ID,
        task_names=tuple(task.name for task in TASKS),
        make_env=_make_task_env,
        max_episode_steps=MAX_EPISODE_STEPS,
        observation_layout=ObservationLayout(
            raw_dim=OBSERVATION_DIM, task_id_slice=TASK_SLICE, remove_task_id=False, hidden_slices=(HAND_SLICE,),
        ),
        min_reward=MIN_REWARD,
        # CompletionRate: episodes that finished the task (all sub-goals, or the stay task's success
        # steps); TerminationRate also counts a physics failure, which terminates as well (``_fail``)
        episode_metrics={"stages_completed": "last", "completed": "max"},
        reward_function=compute_rewards,
        completed_stages=NUM_STAGES,
    )
