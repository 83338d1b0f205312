"""The training loop in garage's shape: collect, train, evaluate, log, checkpoint (docs/fidelity.md#iteration,
#networks-and-sac, #evaluation-and-metrics).

Data flows one way: sampler (behaviour policy) -> replay buffers -> SAC update -> evaluation ->
logger and checkpoint. The SAC update never learns which behaviour policy collected its data.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
import torch
from tqdm import tqdm

from environments.base import TaskSet
from learning.behaviour.protocol import BehaviourPolicy
from learning.core.replay_buffer import TaskReplayBuffer
from learning.core.sac import MultiTaskSAC
from learning.training.budget import Budget, Schedule
from learning.training.checkpoint import CHECKPOINT_FILE, save_checkpoint
from learning.training.evaluation import Evaluator, metric_name, summarize_episodes
from learning.training.logger import RunLogger, is_terminal, row_shares
from learning.training.metric_names import (
    ACTING_COUNTS_METRIC,
    EPOCH_SECONDS_METRIC,
    EVALUATION_PREFIX,
    OWN_EVALUATION_PREFIX,
    STEP_METRIC,
)
from learning.training.replay_files import FORMAT as REPLAY_FILES_FORMAT
from learning.training.replay_files import ReplayFiles
from learning.training.run_guard import TrainingDiverged, first_non_finite
from learning.training.sampler import EpisodeRecord, LockstepSampler

if TYPE_CHECKING:
    from learning.training.video import ReplayContext

CHECKPOINT_FORMAT = 1


@dataclass
class RunParts:
    """Everything a run is made of, built by :func:`learning.experiments.build_parts`. The trainer reads
    the budget and the schedule, never the command line's ``Config`` (which checkpoints keep as
    ``saved_config``)."""

    saved_config: dict
    """The run's configuration (``Config.to_dict()``), stored in every checkpoint for the record."""
    budget: Budget
    schedule: Schedule
    task_set: TaskSet
    device: torch.device
    sac: MultiTaskSAC
    sampler: LockstepSampler
    evaluator: Evaluator
    buffer: TaskReplayBuffer
    evaluation_behaviours: dict[str, BehaviourPolicy]
    """Prefix -> behaviour policy evaluated under it: EVALUATION_PREFIX always; QMP adds OWN_EVALUATION_PREFIX."""
    behaviour_learner: BehaviourLearner | None = None
    """What trains the behaviour policy itself (CTPG's guides); None when nothing does."""

    @property
    def replay_context(self) -> ReplayContext:
        """What the episode replays of training-time videos and run_policy.py need of this run."""
        from learning.training.video import ReplayContext

        return ReplayContext(self.task_set, self.evaluator.network_input, self.device, self.sac.settings.discount)


def training_metrics(episodes: list[EpisodeRecord], acting_counts: np.ndarray, update_stats: dict[str, torch.Tensor],
                     num_tasks: int, metric_keys, buffer_size: int, env_steps_per_task: np.ndarray,
                     is_qmp: bool) -> dict[str, float]:
    """The epoch's "Train/" metrics: global means and per task under "Train/LocalPolicy{i}/".

    The global AverageReturn, SuccessRate and env-info metrics (StagesCompleted, Velocity) are means over
    the tasks that finished episodes this epoch (docs/fidelity.md#metrics), not over episodes: a task whose episodes
    end early does not count more.
    """
    out: dict[str, float] = {}
    summary = summarize_episodes(episodes, num_tasks, "Train/", metric_keys)
    for key, value in summary.items():
        if "/Task" in key:
            task_text, name = key.split("/Task", 1)[1].split("/", 1)
            out[f"Train/LocalPolicy{task_text}/{name}"] = value
        else:
            out[key] = value
    for name in ("AverageReturn", "SuccessRate", *(metric_name(key) for key in metric_keys)):
        per_task = [out[f"Train/LocalPolicy{task}/{name}"] for task in range(num_tasks)
                    if f"Train/LocalPolicy{task}/{name}" in out]
        if per_task:
            out[f"Train/{name}"] = float(np.mean(per_task))
    for name, tensor in update_stats.items():
        values = tensor.detach().cpu().numpy()
        out[f"Train/{name}"] = float(values.mean())
        for task in range(num_tasks):
            out[f"Train/LocalPolicy{task}/{name}"] = float(values[task])
    out["Train/ReplayBufferSize"] = float(buffer_size * num_tasks)
    out[STEP_METRIC] = float(env_steps_per_task.sum())
    for task in range(num_tasks):
        out[f"Train/LocalPolicy{task}/ReplayBufferSize"] = float(buffer_size)
        out[f"Train/LocalPolicy{task}/EnvSteps"] = float(env_steps_per_task[task])
    if is_qmp:
        shares = row_shares(acting_counts)
        for task in range(num_tasks):  # the whole matrix is logged as ACTING_COUNTS_METRIC
            out[f"Train/LocalPolicy{task}/MixtureProbs"] = float(shares[task, task])
        out["Train/MixtureProbs"] = float(np.mean([shares[task, task] for task in range(num_tasks)]))
    return out


def format_duration(seconds: float) -> str:
    """``3725`` -> ``1:02:05``; ``65`` -> ``1:05``."""
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"



class BehaviourLearner(Protocol):
    """The trainer's calls into a learned behaviour policy (learning/behaviour/ctpg_learner.py)."""

    def store_collected(self) -> None: ...
    def train(self, steps_per_task: int, batch_per_task: int | None) -> dict[str, torch.Tensor]: ...
    def state_dict(self) -> dict: ...
    def load_state_dict(self, state: dict) -> None: ...


class Trainer:
    """Runs epochs of (collect, train) x steps_per_epoch, then evaluation, logging and a checkpoint."""

    def __init__(self, parts: RunParts, run_dir: Path, logger: RunLogger | None) -> None:
        """``logger`` may be set later (a resume restores the checkpoint before it writes anything)."""
        self.parts, self.run_dir, self.logger = parts, run_dir, logger
        self.budget, self.schedule = parts.budget, parts.schedule
        self.num_tasks = parts.task_set.num_tasks
        self.next_epoch = 0
        self.iteration = 0
        self.acting_counts_total = np.zeros((self.num_tasks, parts.sampler.behaviour.num_candidates), dtype=np.int64)
        self.last_evaluation: dict[str, float] = {}
        self.last_metrics: dict[str, float] = {}
        self.replay_files = ReplayFiles(run_dir, keep_all=self.schedule.snapshot_gap > 1)
        self.gradient_steps = self.budget.gradient_steps
        self.batch_per_task = self.budget.minibatch_per_task

    # ------------------------------------------------------------------------------------ one iteration
    def _warming_up(self) -> bool:
        return self.budget.warming_up(self.parts.buffer.size)

    def _steps_to_collect(self) -> int:
        """Per task: the warm-up request while buffers are below min_buffer_size, else batch_size / T."""
        if self._warming_up():
            return max(self.budget.warm_up_per_task, 1)
        return max(self.budget.steps_per_task, 1)

    def run_iteration(self, with_stats: bool = True) -> tuple[list[EpisodeRecord], np.ndarray, dict[str, torch.Tensor]]:
        """Collect, store, and take this iteration's gradient steps; update statistics (of the last
        step) only ``with_stats``."""
        parts = self.parts
        parts.sampler.behaviour.begin_iteration(self.iteration)
        warm_up_collection = self._warming_up()
        batch = parts.sampler.collect(self._steps_to_collect())
        parts.buffer.add(batch.transitions)
        if parts.behaviour_learner is not None:
            parts.behaviour_learner.store_collected()
        stats: dict[str, torch.Tensor] = {}
        trainable = not self._warming_up()
        for step in range(self.gradient_steps):
            if trainable:
                last = with_stats and step == self.gradient_steps - 1
                stats = parts.sac.update(parts.buffer.sample(self.batch_per_task), with_stats=last)
            else:  # the original applies the Polyak update even when it skips optimisation
                parts.sac.update_targets()
        if parts.behaviour_learner is not None:
            new_steps = 0 if warm_up_collection else batch.transitions.steps_per_task
            stats = {**stats, **parts.behaviour_learner.train(new_steps, self.batch_per_task if trainable else None)}
        self.iteration += 1
        return batch.episodes, batch.acting_counts, stats

    # ------------------------------------------------------------------------------------ evaluation
    def evaluate(self, epoch: int) -> dict[str, float]:
        parts = self.parts
        episodes_per_task = self.schedule.evaluation_episodes_per_task
        metrics: dict[str, float] = {}
        for prefix, behaviour in parts.evaluation_behaviours.items():
            episodes, _ = parts.evaluator.run(behaviour, episodes_per_task)
            metrics.update(summarize_episodes(episodes, self.num_tasks, prefix, parts.task_set.episode_metrics))
            metrics[f"{prefix}Iteration"] = float(epoch)
        return metrics

    # ------------------------------------------------------------------------------------ the loop
    def train(self) -> dict[str, float]:
        """Train from ``next_epoch`` to ``n_epochs``; returns the last evaluation's metrics."""
        assert self.logger is not None, "training logs every epoch"
        budget, schedule, parts = self.budget, self.schedule, self.parts
        epochs = range(self.next_epoch, budget.n_epochs)
        if self._warming_up() and self.next_epoch < budget.n_epochs:
            print(f"warm-up collection: {self._steps_to_collect()} steps per task (--min_buffer_size "
                  f"{budget.min_buffer_size}) before the first gradient step", flush=True)
        self._session = (time.perf_counter(), self.next_epoch)  # for the estimated time left
        self._reported_steps = int(parts.sampler.env_steps_per_task.sum())
        progress = tqdm(epochs, desc=schedule.run_name, unit="epoch", disable=not is_terminal(), dynamic_ncols=True,
                        initial=self.next_epoch, total=budget.n_epochs)
        for epoch in progress:
            started = time.perf_counter()
            episodes: list[EpisodeRecord] = []
            acting_counts = np.zeros_like(self.acting_counts_total)
            stats: dict[str, torch.Tensor] = {}
            for iteration in range(budget.steps_per_epoch):
                new_episodes, counts, new_stats = self.run_iteration(with_stats=iteration == budget.steps_per_epoch - 1)
                self.check_finite(epoch, new_stats)
                episodes.extend(new_episodes)
                acting_counts += counts
                stats = new_stats or stats
            self.acting_counts_total += acting_counts
            metrics = training_metrics(episodes, acting_counts, stats, self.num_tasks, parts.task_set.episode_metrics,
                                       parts.buffer.size, parts.sampler.env_steps_per_task, schedule.logs_acting_matrix)
            if schedule.evaluates(epoch):
                self.last_evaluation = self.evaluate(epoch)
                metrics.update(self.last_evaluation)
            metrics.update(parts.sac.end_of_epoch(epoch))  # e.g. DnC's periodic distillation
            self.check_finite(epoch, {key: value for key, value in metrics.items() if key.endswith("Loss")})
            videos = self.record_videos(epoch) if schedule.records_videos(epoch) else {}
            metrics[EPOCH_SECONDS_METRIC] = time.perf_counter() - started
            matrices = {ACTING_COUNTS_METRIC: acting_counts} if schedule.logs_acting_matrix else {}
            self.logger.log(epoch, metrics, matrices, videos)
            self.last_metrics = metrics
            self.next_epoch = epoch + 1
            self.save(epoch)
            self._report(progress, epoch, metrics)
        progress.close()
        return self.last_evaluation

    def check_finite(self, epoch: int, stats: dict) -> None:
        """Stop with TrainingDiverged when a loss or a parameter is NaN or infinite (once per
        iteration; the checkpoint of the last finished epoch stays as it is)."""
        problem = first_non_finite(stats, self.parts.sac.named_parameters())
        if problem is not None:
            kept = f"the checkpoint of epoch {epoch - 1} is kept" if epoch > 0 else "no checkpoint was written"
            raise TrainingDiverged(f"training diverged in epoch {epoch}: {problem}; stopped, {kept} "
                                   f"(a smaller --lr or --reward_scale may help)")

    def record_videos(self, epoch: int) -> dict[str, Path]:
        """Evaluation videos of every task (docs/fidelity.md#videos) with the "Evaluation/" behaviour (the
        Q-switch for QMP runs). Random state and behaviour state are left untouched."""
        from learning.training.video import VideoSettings, record_videos

        schedule, parts = self.schedule, self.parts
        settings = VideoSettings(schedule.video_width, schedule.video_height, schedule.video_fps, schedule.video_format)
        paths = record_videos(parts.replay_context, parts.evaluation_behaviours[EVALUATION_PREFIX],
                              self.run_dir / "videos" / f"epoch{epoch:05d}", settings,
                              schedule.videos_per_task, parts.evaluator.seed)
        return {f"{EVALUATION_PREFIX}Task{task}/Video": path for task, path in paths.items()}

    def _report(self, progress, epoch: int, metrics: dict[str, float]) -> None:
        """The bar's postfix on a terminal; otherwise one line per epoch with env steps per second and
        the estimated time left (from this run's mean epoch time since it started or resumed)."""
        steps = int(metrics[STEP_METRIC])
        success = metrics.get(f"{EVALUATION_PREFIX}SuccessRate")
        own = metrics.get(f"{OWN_EVALUATION_PREFIX}SuccessRate")
        parts = [f"steps {steps}"]
        if success is not None:
            parts.append(f"success {success:.2f}")
        if own is not None:
            parts.append(f"own-policy success {own:.2f}")
        if f"{EVALUATION_PREFIX}AverageReturn" in metrics:
            parts.append(f"return {metrics[f'{EVALUATION_PREFIX}AverageReturn']:.1f}")
        if progress.disable:
            seconds = metrics[EPOCH_SECONDS_METRIC]
            epoch_steps, self._reported_steps = steps - self._reported_steps, steps
            started, first_epoch = self._session
            left = (time.perf_counter() - started) / (epoch + 1 - first_epoch) * (self.budget.n_epochs - epoch - 1)
            print(f"epoch {epoch + 1}/{self.budget.n_epochs} | " + " | ".join(parts)
                  + f" | {epoch_steps / max(seconds, 1e-9):.0f} steps/s | {seconds:.1f} s"
                  + f" | ETA {format_duration(left)}", flush=True)
        else:
            progress.set_postfix_str(" | ".join(parts))

    # ------------------------------------------------------------------------------------ checkpoints
    def state_dict(self, buffer_state: dict | None = None) -> dict:
        """Everything a resume needs; the replay buffer whole unless ``buffer_state`` (its chunk files) is given."""
        parts = self.parts
        state = {
            "format": CHECKPOINT_FORMAT,
            "config": dict(parts.saved_config),
            "next_epoch": self.next_epoch,
            "iteration": self.iteration,
            "acting_counts_total": self.acting_counts_total.copy(),
            "last_evaluation": dict(self.last_evaluation),
            "last_metrics": dict(self.last_metrics),
            "networks": parts.sac.state_dict(),
            "optimizers": parts.sac.optimizer_state(),
            "buffer": parts.buffer.state_dict() if buffer_state is None else buffer_state,
            "sampler": parts.sampler.state_dict(),
            "evaluator": parts.evaluator.state_dict(),
            "evaluation_behaviours": {k: b.state_dict() for k, b in parts.evaluation_behaviours.items()},
            "behaviour_learner": None if parts.behaviour_learner is None else parts.behaviour_learner.state_dict(),
            "random": {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
                       "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None},
        }
        return state

    def load_state_dict(self, state: dict) -> None:
        parts = self.parts
        self.next_epoch, self.iteration = int(state["next_epoch"]), int(state["iteration"])
        self.acting_counts_total = np.array(state["acting_counts_total"])
        self.last_evaluation = dict(state["last_evaluation"])
        self.last_metrics = dict(state["last_metrics"])
        parts.sac.load_state_dict(state["networks"])
        parts.sac.load_optimizer_state(state["optimizers"])
        if state["buffer"].get("format") == REPLAY_FILES_FORMAT:
            self.replay_files.restore(parts.buffer, state["buffer"])
        else:
            parts.buffer.load_state_dict(state["buffer"])
        parts.sampler.load_state_dict(state["sampler"])
        parts.evaluator.load_state_dict(state["evaluator"])
        for key, behaviour in parts.evaluation_behaviours.items():
            behaviour.load_state_dict(state["evaluation_behaviours"][key])
        if parts.behaviour_learner is not None:
            parts.behaviour_learner.load_state_dict(state["behaviour_learner"])
        self.restore_random(state["random"])

    @staticmethod
    def restore_random(rng: dict) -> None:
        """Set Python's, numpy's and torch's random states to a checkpoint's."""
        random.setstate(rng["python"])
        np.random.set_state(rng["numpy"])
        torch.set_rng_state(rng["torch"])
        if rng["cuda"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])

    def save(self, epoch: int) -> None:
        """Write the checkpoint atomically (the replay buffer's new transitions first, as a chunk file);
        with snapshot_gap > 1 also keep every gap-th epoch's."""
        state = self.state_dict(self.replay_files.commit_new(self.parts.buffer))
        save_checkpoint(self.run_dir / CHECKPOINT_FILE, state)
        self.replay_files.prune()
        if self.schedule.keeps_numbered_checkpoint(epoch):
            save_checkpoint(self.run_dir / f"checkpoint_epoch{epoch}.pt", state)
