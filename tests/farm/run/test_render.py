"""End to end: a storyboard rendered through Ray worker actors with the animatic engine."""
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from farm.api.embedded import render
from farm.media.decode import probe, read_frames
from storyboard.load import load
from storyboard.plan import build_plan

RED, BLUE, GREEN = (220, 30, 30), (30, 30, 220), (30, 200, 30)

STORYBOARD = """\
sakuga: 1
title: E2E
output: {width: 128, height: 96, fps: 16}
scenes:
  - id: one
    shots:
      - {id: a, frames: 17, prompt: red, start: red.png, transition: {crossfade: 0.25}}
      - {id: b, frames: 97, prompt: blue to green, start: blue.png, keyframes: [{image: green.png, at: 1.0}]}
  - id: two
    shots:
      - {id: c, frames: 17, prompt: continues, start: previous}
"""


@pytest.fixture
def storyboard(tmp_path: Path) -> Path:
    for name, colour in (("red", RED), ("blue", BLUE), ("green", GREEN)):
        Image.new("RGB", (160, 120), colour).save(tmp_path / f"{name}.png")
    path = tmp_path / "sb.yaml"
    path.write_text(STORYBOARD)
    return path


def centre(frame: np.ndarray) -> np.ndarray:
    h, w, _ = frame.shape
    return frame[h // 3: 2 * h // 3, w // 3: 2 * w // 3].reshape(-1, 3).mean(axis=0)


def close(frame: np.ndarray, colour, tol: float = 25.0) -> bool:
    return float(np.abs(centre(frame) - np.array(colour)).max()) < tol


def test_storyboard_renders_through_ray_into_the_planned_cut(ray_cluster, storyboard, tmp_path):
    plan = build_plan(load(storyboard))
    assert [len(s.segments) for s in plan.shots] == [1, 2, 1]
    out = tmp_path / "out"
    outcome = render(plan, out, gpus=2, show_progress=False)
    assert outcome.ok

    info = probe(out / "episode.mp4")
    assert (info["frames"], info["width"], info["height"], info["fps"]) == (17 + 97 + 17 - 4, 128, 96, 16)
    frames = list(read_frames(out / "episode.mp4"))
    assert len(frames) == plan.episode_frames == 127

    assert close(frames[0], RED)
    # the 4-frame dissolve from a into b: each frame between red and blue, drifting towards blue
    blues = [centre(f)[2] for f in frames[13:17]]
    assert all(40 < b < 200 for b in blues) and blues == sorted(blues)
    assert close(frames[17], BLUE, tol=40)
    assert close(frames[13 + 96], GREEN)          # b ends on its keyframe
    assert all(close(f, GREEN) for f in frames[-17:])   # c continues from b's last frame

    for seg in plan.segments:
        assert (out / "segments" / f"{seg.id}.mp4").is_file()
        assert (out / "segments" / f"{seg.id}.png").is_file()
    for shot in plan.shots:
        assert probe(out / "shots" / f"{shot.id}.mp4")["frames"] == shot.frames

    manifest = pq.read_table(out / "manifest.parquet").to_pylist()
    assert [r["segment"] for r in manifest] == [s.id for s in plan.segments]
    assert all(r["status"] == "done" and r["attempts"] == 1 for r in manifest)
    assert {r["worker"] for r in manifest} <= {"n0-gpu0", "n0-gpu1"}
    assert all(r["hash"] == s.hash for r, s in zip(manifest, plan.segments))
    assert all("flicker" in dict(r["metrics"]) for r in manifest)


def test_chained_segment_starts_from_the_lossless_last_frame_of_its_parent(ray_cluster, storyboard, tmp_path):
    plan = build_plan(load(storyboard))
    out = tmp_path / "out"
    render(plan, out, gpus=1, show_progress=False)
    last = np.asarray(Image.open(out / "segments" / "b.0.png").convert("RGB"))
    first_of_next = next(iter(read_frames(out / "segments" / "b.1.mp4")))
    # frame 0 of b.1 is b.0's last frame, through one H.264 encode only
    assert np.abs(centre(first_of_next) - centre(last)).max() < 8


def test_pilot_example_renders_to_exactly_the_planned_cut(ray_cluster, tmp_path, sakuga):
    """What `make demo` does, through the CLI: the cut has the plan's frame count, size and fps."""
    pilot = Path(__file__).resolve().parents[3] / "examples" / "pilot" / "storyboard.yaml"
    plan = build_plan(load(pilot))
    result = sakuga("render", pilot, "--out", tmp_path / "demo", "--gpus", "2", "--quiet")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == str((tmp_path / "demo" / "episode.mp4").resolve())
    info = probe(tmp_path / "demo" / "episode.mp4")
    assert (info["frames"], info["width"], info["height"], info["fps"], info["pix_fmt"]) == \
        (plan.episode_frames, 832, 480, 16, "yuv420p")
    assert len(pq.read_table(tmp_path / "demo" / "manifest.parquet")) == len(plan.segments)


def test_a_shot_that_cannot_render_is_reported_and_the_rest_is_delivered(ray_cluster, tmp_path):
    for name, colour in (("red", RED), ("blue", BLUE)):
        Image.new("RGB", (64, 48), colour).save(tmp_path / f"{name}.png")
    (tmp_path / "sb.yaml").write_text(
        "sakuga: 1\noutput: {width: 64, height: 64}\nscenes:\n  - id: s\n    shots:\n"
        "      - {id: a, frames: 9, prompt: a, start: red.png}\n"
        "      - {id: b, frames: 9, prompt: b, start: blue.png}\n"
        "      - {id: c, frames: 9, prompt: c, start: previous}\n")
    plan = build_plan(load(tmp_path / "sb.yaml"))
    (tmp_path / "blue.png").unlink()          # gone between planning and rendering
    outcome = render(plan, tmp_path / "out", gpus=2, show_progress=False)
    assert outcome.failed_shots == ["b", "c"]
    status = {r["segment"]: (r["status"], r["error"] or "")
              for r in pq.read_table(tmp_path / "out" / "manifest.parquet").to_pylist()}
    assert status["a.0"][0] == "done"
    assert status["b.0"][0] == "failed" and "blue.png" in status["b.0"][1]
    assert status["c.0"] == ("skipped", "upstream failed")
    frames = list(read_frames(tmp_path / "out" / "episode.mp4"))
    assert len(frames) == 9 and close(frames[0], RED)
