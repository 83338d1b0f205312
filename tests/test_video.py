"""learning/training/video.py: overlay, video files, offscreen MuJoCo frames, and run_policy's videos."""

from __future__ import annotations

from learning.training.video import configure_headless_rendering

configure_headless_rendering()  # before anything imports mujoco

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

import garage_experiments  # noqa: E402
import run_policy  # noqa: E402
from environments import make_task_set  # noqa: E402
from environments.point_reach import EPISODE_STEPS  # noqa: E402
from learning.training import video  # noqa: E402
from learning.training.config import parse_command_line  # noqa: E402

needs_gl = pytest.mark.skipif(video.rendering_problem() is not None,
                              reason=f"no OpenGL backend for MuJoCo: {video.rendering_problem()}")


def test_overlay_darkens_only_its_top_left_box():
    frame = np.full((120, 200, 3), 255, dtype=np.uint8)
    out = video.draw_overlay(frame, ["task 0: reach", "step 3"])
    assert out.shape == frame.shape
    assert out[2, 2].max() < 200  # the translucent dark box
    assert (out[-20:, :] == 255).all() and (out[:, -40:] == 255).all()  # the rest is untouched
    lines = video.overlay_lines("reach", 0, 1, 3, -0.5, -2.0, True, "guide up", {"distance": 4.25, "other": 1.0},
                                ["distance"])
    assert lines == ["task 0: reach", "episode 1  step 3", "reward -0.500  return -2.00", "success yes",
                     "acting: guide up", "distance 4.25"]


def test_even_frame_sizes_for_the_codec():
    assert video.even_size(500, 375) == (500, 376)
    assert video.even_size(1, 2) == (2, 2)


def solid_frames(count: int) -> list[np.ndarray]:
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 0, 0)]
    return [np.full((32, 48, 3), colours[index % len(colours)], dtype=np.uint8) for index in range(count)]


def test_gif_holds_every_frame(tmp_path):
    writer = video.VideoWriter(tmp_path / "clip", fps=20, video_format="gif")
    for frame in solid_frames(5):
        writer.append(frame)
    path = writer.close()
    assert path.suffix == ".gif"
    with Image.open(path) as image:
        assert image.n_frames == 5 and image.size == (48, 32)
        image.seek(2)
        assert image.convert("RGB").getpixel((10, 10)) == (0, 0, 255)
        assert image.info["duration"] == 50  # 1000 ms / 20 fps


@pytest.mark.skipif(not video.mp4_available(), reason="mp4 needs ffmpeg: pip install imageio-ffmpeg")
def test_mp4_holds_every_frame(tmp_path):
    import imageio.v2 as imageio

    writer = video.VideoWriter(tmp_path / "clip", fps=20, video_format="mp4")
    for frame in solid_frames(6):
        writer.append(frame)
    path = writer.close()
    reader = imageio.get_reader(path)
    assert reader.count_frames() == 6
    assert reader.get_meta_data()["fps"] == 20
    assert abs(int(reader.get_data(1)[16, 24, 1]) - 255) < 12  # green, up to compression
    reader.close()


def test_format_choice_without_ffmpeg(monkeypatch):
    monkeypatch.setattr(video, "mp4_available", lambda: False)
    assert video.resolve_format("auto") == "gif"
    with pytest.raises(video.VideoError, match="imageio-ffmpeg"):
        video.resolve_format("mp4")
    with pytest.raises(video.VideoError, match="unknown video format"):
        video.resolve_format("avi")


def test_video_support_check(monkeypatch):
    point_reach = make_task_set("PointReach-v0")
    assert video.check_video_support(point_reach, "gif") == "gif"  # drawn without OpenGL
    monkeypatch.setattr(video, "rendering_problem", lambda: "no GL here")
    with pytest.raises(video.VideoError, match="no GL here"):
        video.check_video_support(make_task_set("MazeLarge-10-v0", task_name="0"), "gif")
    assert video.check_video_support(point_reach, "gif") == "gif"


def test_point_reach_trail_takes_the_colour_of_the_acting_policy():
    task_set = make_task_set("PointReach-v0")  # candidates: policy 0, guides up, right, up_right
    env = task_set.make_env(0, True)
    env.reset(seed=0)
    source = video.frame_source_for(env, 100, 100, 4, task_set.arena)
    colours = video.candidate_colours(4)
    source.start_episode()
    source.frame(env, 0)
    for _ in range(4):
        env.step(np.array([1.0, 1.0]))
        frame = source.frame(env, 3)
    pixels = {tuple(pixel) for pixel in frame.reshape(-1, 3)}
    assert colours[3] in pixels
    assert colours[1] not in pixels and colours[2] not in pixels


def test_envs_without_a_render_mode_are_filmed_through_their_mujoco_model():
    env = make_task_set("JacoReachMT5-v1").make_env(0, True)  # built without render_mode
    env.reset(seed=0)
    assert env.render() is None
    model, data = video.mujoco_state(env)
    assert model.nq == data.qpos.shape[0]


@needs_gl
def test_maze_frames_follow_the_agent():
    env = make_task_set("MazeLarge-10-v0").make_env(0, True)
    env.reset(seed=0)
    source = video.frame_source_for(env, 64, 48, 10)
    first = source.frame(env, 0)
    assert first.shape == (48, 64, 3) and first.dtype == np.uint8
    assert first.std() > 10  # walls, floor and agent, not a blank image
    start = env.unwrapped.data.qpos.copy()
    env.unwrapped.set_state(start + np.array([3.0, 4.0]), np.zeros(2))
    moved = source.frame(env, 0)
    env.unwrapped.set_state(start, np.zeros(2))
    back = source.frame(env, 0)
    source.close()
    env.close()
    assert not np.array_equal(first, moved)
    assert np.array_equal(first, back)


@pytest.fixture(scope="module")
def point_reach_trainer(tmp_path_factory):
    """A one-epoch QMP run of point reaching (one task, the policy plus three guide policies)."""
    root = tmp_path_factory.mktemp("runs")
    config = parse_command_line(["qmp_dnc", "--env=PointReach-v0", "--n_epochs", "1", "--batch_size", "20",
                                 "--min_buffer_size", "10", "--gradient_steps_per_itr", "4", "--hidden_sizes", "8",
                                 "--num_evaluation_episodes", "1", "--wandb", "False", "--log_dir", str(root)])
    trainer, _ = garage_experiments.launch(config, announce=lambda _: None)
    return trainer


def test_run_policy_writes_one_video_per_task(point_reach_trainer, tmp_path, capsys):
    run_dir = point_reach_trainer.run_dir
    videos = tmp_path / "videos"
    assert run_policy.main(["--snapshot_dir", str(run_dir), "--save_video", "True", "--video_root",
                            str(videos), "--video_format", "gif", "--num_episodes_per_task", "2", "--stochastic",
                            "--video_width", "64", "--video_height", "64"]) == 0
    files = list((videos / run_dir.name).iterdir())
    assert [path.name for path in files] == ["task00_reach-0-0-10-10.gif"]
    with Image.open(files[0]) as image:  # Pillow merges identical neighbouring frames, so count the writes
        assert image.size == (64, 64) and image.n_frames > 1
    assert f"({2 * EPISODE_STEPS} frames)" in capsys.readouterr().out


def test_training_time_videos_leave_random_and_behaviour_state_alone(point_reach_trainer, tmp_path):
    parts = point_reach_trainer.parts
    behaviour = parts.evaluation_behaviours["Evaluation/"]  # the Q-switch, which holds its choices
    behaviour.steps_since_selection[:] = 7
    rng_before, held_before = torch.get_rng_state(), behaviour.held_choice.clone()
    paths = video.record_videos(parts.replay_context, behaviour, tmp_path / "epoch0", video.VideoSettings(48, 48, 10, "gif"),
                                episodes_per_task=1, seed=5)
    assert torch.equal(torch.get_rng_state(), rng_before)
    assert behaviour.steps_since_selection.tolist() == [7] and torch.equal(behaviour.held_choice, held_before)
    assert list(paths) == [0] and paths[0].parent == tmp_path / "epoch0" and paths[0].is_file()
