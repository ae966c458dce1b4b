"""Delivery stages as farm work: planned per shot and profile with their own hashes, run by the farm
loop on GPU slots and CPU lanes (a fake pool, real stage code), published, cached, delivered into
`deliver/<profile>/`. The same checks with Ray and the real CLI are in tests/farm/delivery/test_deliver_cli.py."""
from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import opentimelineio as otio
import pytest

from farm.delivery.deliver import deliver
from farm.job.cache import SegmentCache
from farm.job.job import Job
from farm.job.ledger import Ledger
from farm.media.decode import probe, read_frames
from farm.media.encode import encode_mp4_bytes
from farm.media.retime import retimed_frames
from farm.run.loop import FarmLoop
from farm.stages.stage import Stage, delivery_plans, plan_stages
from farm.stages.work import Upscalers, run_stage
from storyboard.errors import InputError
from storyboard.load import load
from storyboard.plan import build_plan

NTSC = Fraction(24000, 1001)
PROFILE = """name: tiny-2398
size: {width: 448, height: 252}
rate: 24000/1001
upscaler: sr-tiny
retime: hold
loudness: {integrated: -23.0, true_peak: -1.0, tolerance: 0.5}
video: {crf: 18, preset: ultrafast}
masters: [mp4, prores]
timeline: {otio: true, edl: true}
"""


def write_sound(path: Path, seconds: float, level: float = 0.3) -> None:
    """A chord with a slow swell, stereo, as a WAV."""
    rate = 48_000
    t = np.arange(int(seconds * rate)) / rate
    x = level * (np.sin(2 * np.pi * 220 * t) + 0.5 * np.sin(2 * np.pi * 330 * t)) * (0.75 + 0.25 * np.sin(t))
    pcm = (np.stack([x, 0.8 * x]).T.reshape(1, -1) * 32767).astype("<i2")
    with av.open(str(path), "w") as c:
        stream = c.add_stream("pcm_s16le", rate=rate, layout="stereo")
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="stereo")
        frame.sample_rate = rate
        for packet in list(stream.encode(frame)) + list(stream.encode(None)):
            c.mux(packet)


@pytest.fixture
def storyboard(tmp_path, monkeypatch):
    """Three one-segment shots (noop engine, 112x64 at 16 fps), a dissolve from a into b, a soundtrack;
    the test profile: 448x252 at 24000/1001 through sr-tiny (x4 of the 112x63 centre), -23 LUFS,
    a ProRes master, an EDL."""
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "tiny-2398.yaml").write_text(PROFILE)
    monkeypatch.setenv("SAKUGA_DELIVERY", str(profiles))
    write_sound(tmp_path / "music.wav", 4.0)

    def write(prompt_b: str = "b") -> Path:
        path = tmp_path / "sb.yaml"
        path.write_text(
            "sakuga: 1\ntitle: Stages\nmodel: noop\noutput: {width: 112, height: 64, fps: 16}\naudio: music.wav\n"
            "scenes:\n  - id: one\n    shots:\n"
            "      - {id: a, frames: 17, prompt: a, transition: {crossfade: 0.25}}\n"
            f"      - {{id: b, frames: 13, prompt: {prompt_b}}}\n      - {{id: c, frames: 9, prompt: c}}\n")
        return path
    return write


def plan_and_stages(path: Path):
    plan = build_plan(load(path))
    return plan, plan_stages(plan, delivery_plans(plan, ["tiny-2398"], None))


def test_each_shot_gets_an_upscale_on_a_gpu_then_a_retime_on_a_cpu_with_exact_frame_counts(storyboard):
    plan, stages = plan_and_stages(storyboard())
    by_shot = {s.id: [st for st in stages if st.shot == s.id] for s in plan.shots}
    for shot in plan.shots:
        up, re = by_shot[shot.id]
        assert (up.kind, up.resource, up.model, up.deps) == ("upscale", "gpu", "sr-tiny", shot.segments)
        assert (re.kind, re.resource, re.deps, re.inputs) == ("retime", "cpu", (up.id,), (up.hash,))
        assert (up.frames, up.width, up.height, up.fps, up.crop) == (shot.frames, 448, 252, 16, (0, 0, 112, 63))
        # round-half-up(n x 24000/1001 / 16): 17 → 25 (25.47), 13 → 19 (19.48), 9 → 13 (13.49)
        assert re.frames == math.floor(Fraction(shot.frames) * NTSC / 16 + Fraction(1, 2)) and re.fps == NTSC
    assert [by_shot[s][1].frames for s in "abc"] == [25, 19, 13]


def test_editing_one_shot_changes_only_that_shots_stage_hashes(storyboard):
    _, before = plan_and_stages(storyboard("b"))
    _, after = plan_and_stages(storyboard("b at night"))
    changed = {s.id for s, t in zip(before, after) if s.hash != t.hash}
    assert changed == {"b@tiny-2398.upscale", "b@tiny-2398.retime"}


def test_a_size_the_upscaler_cannot_reach_and_an_unknown_profile_are_input_errors(storyboard, tmp_path):
    plan = build_plan(load(storyboard()))
    (tmp_path / "profiles" / "huge.yaml").write_text(PROFILE.replace("tiny-2398", "huge").replace(
        "{width: 448, height: 252}", "{width: 1920, height: 1080}"))
    with pytest.raises(InputError, match=r"112x64 render cannot become 1920x1080.*x4: at most 448x252"):
        delivery_plans(plan, ["huge"], None)
    with pytest.raises(InputError, match="unknown delivery profile 'nope'"):
        delivery_plans(plan, ["nope"], None)


def test_a_retime_stage_streams_its_input_to_the_planned_frames_and_measures_flicker(tmp_path):
    ramp = [np.full((18, 32, 3), 10 * i, np.uint8) for i in range(9)]      # 9 frames, brighter by 10 each
    clip = encode_mp4_bytes(ramp, 16, 32, 18, crf=0)
    stage = Stage("s@p.retime", "s", "retime", "p", ("s.0",), ("h",), "cpu", "retime", 9, 13, 32, 18,
                  Fraction(16), NTSC, method="hold", runtime_s=((1, 1.0),))
    result = run_stage(stage, [clip], Upscalers())
    frames = list(read_frames(result.mp4))
    assert len(frames) == 13 == retimed_frames(9, 16, NTSC)
    assert probe(result.mp4)["fps"] == pytest.approx(float(NTSC), abs=1e-3)
    # hold shows source frame floor(i x 16 / 23.976): 0, 0, 1, 2, 2, 3, 4, 4, 5, 6, 6, 7, 8 (x264 at CRF 12
    # moves a flat grey by a level or two at most, the steps here are 10)
    shown = [round(float(f.mean()) / 10) for f in frames]
    assert shown == [math.floor(i * 16 / NTSC) for i in range(13)]
    # a step of 10/255 between every pair going in; a held frame has no change, so less coming out
    assert result.metrics["flicker_in"] == pytest.approx(10 / 255, abs=0.004)
    assert result.metrics["flicker"] < result.metrics["flicker_in"]


def attempts(job: Job) -> dict[str, list[str]]:
    with Ledger(job.folder.ledger) as ledger:
        rows = ledger.attempts(job.id)
    out: dict[str, list[str]] = {}
    for a in rows:
        out.setdefault(a["segment"], []).append(a["worker"])
    return out


def render(path: Path, out: Path, cache: SegmentCache, FakePool) -> Job:
    plan = build_plan(load(path))
    job = Job(Job.new_id("stages"), plan, out, config={"profiles": ["tiny-2398"]})
    loop = FarmLoop(FakePool([1]), cache=cache, deliver=deliver, observers=(), cpu_lanes=1)
    loop.add(job)
    loop.run()
    return job


def test_the_farm_runs_the_stages_and_delivers_the_profile(storyboard, tmp_path, FakePool):
    job = render(storyboard(), tmp_path / "out", SegmentCache(tmp_path / "cache"), FakePool)
    assert job.status == "done", job.error
    ran = attempts(job)
    # upscales on the GPU worker, retimes on the CPU lane, each once
    assert {k: v for k, v in ran.items() if "@" in k} == {
        **{f"{s}@tiny-2398.upscale": ["n0-gpu0"] for s in "abc"}, **{f"{s}@tiny-2398.retime": ["cpu0"] for s in "abc"}}
    root = job.folder.delivery("tiny-2398")
    episode = probe(root / "episode.mp4")
    frames = 25 + 19 + 13 - retimed_frames(4, 16, NTSC)            # the 4-frame dissolve is 6 frames at 23.976
    assert (episode["width"], episode["height"], episode["frames"]) == (448, 252, frames)
    assert episode["fps"] == pytest.approx(float(NTSC), abs=1e-4)
    # the master's PCM sound is exactly the picture's length: 2002 samples a frame at 48 kHz
    with av.open(str(root / "episode.mov")) as c:     # PCM s16, interleaved: (1, 2n) per frame
        pcm = np.concatenate([f.to_ndarray().reshape(-1, 2) for f in c.decode(audio=0)]).T
    assert pcm.shape == (2, frames * 2002)
    # loudness by an independent meter (pyloudnorm, BS.1770): on the -23 LUFS target
    pyln = pytest.importorskip("pyloudnorm")
    lufs = pyln.Meter(48_000).integrated_loudness(pcm.T.astype(np.float64) / 32768)
    assert abs(lufs - (-23.0)) <= 0.5
    # the EDL at 23.976 reads back with one event per shot
    edl = otio.adapters.read_from_file(str(root / "timeline.edl"), rate=float(NTSC))
    assert [c.name for c in edl.find_clips()] == ["a", "b", "c"]
    summary = job.folder.delivery("tiny-2398") / "delivery.json"
    assert summary.is_file() and '"on_target": true' in summary.read_text()


def test_editing_one_shot_re_runs_exactly_its_segments_and_stages(storyboard, tmp_path, FakePool):
    cache = SegmentCache(tmp_path / "cache")
    render(storyboard("b"), tmp_path / "first", cache, FakePool)
    job = render(storyboard("b at night"), tmp_path / "second", cache, FakePool)
    assert job.status == "done", job.error
    assert set(attempts(job)) == {"b.0", "b@tiny-2398.upscale", "b@tiny-2398.retime"}
    origins = {sid: s.origin for sid, s in job.state.items()}
    assert {sid for sid, o in origins.items() if o == "cache"} == {
        "a.0", "c.0", "a@tiny-2398.upscale", "a@tiny-2398.retime", "c@tiny-2398.upscale", "c@tiny-2398.retime"}
    assert probe(job.folder.delivery("tiny-2398") / "episode.mp4")["frames"] == 25 + 19 + 13 - 6


def test_a_failed_stage_fails_its_shot_and_what_follows_it(storyboard, tmp_path, FakePool):
    plan = build_plan(load(storyboard()))
    pool = FakePool([2], {"b@tiny-2398.upscale": ["error"] * 3})   # two GPUs: one failing twice is avoided, not all
    job = Job("j", plan, tmp_path / "out", config={"profiles": ["tiny-2398"]})
    loop = FarmLoop(pool, deliver=deliver, observers=(), cpu_lanes=1)
    loop.add(job)
    loop.run()
    assert job.status == "failed" and job.failed_shots == ["b"]
    assert job.state["b@tiny-2398.retime"].status == "skipped"
    assert probe(job.folder.delivery("tiny-2398") / "episode.mp4")["frames"] == 25 + 13   # a and c, no dissolve


def test_a_smaller_profile_is_a_crop_and_resize_on_a_cpu_lane_and_a_matching_one_needs_no_stage(
        storyboard, tmp_path, FakePool):
    folder = tmp_path / "profiles"
    (folder / "small.yaml").write_text("name: small\nsize: {width: 96, height: 54}\nrate: 16\n")
    (folder / "same.yaml").write_text("name: same\nsize: {width: 112, height: 64}\nrate: 16\n")
    plan = build_plan(load(storyboard()))
    stages = plan_stages(plan, delivery_plans(plan, ["small", "same"], None))
    assert {(s.profile, s.kind, s.resource, s.model) for s in stages} == {("small", "upscale", "cpu", "resize")}
    job = Job("j", plan, tmp_path / "out", config={"profiles": ["small", "same"]})
    loop = FarmLoop(FakePool([1]), deliver=deliver, observers=(), cpu_lanes=1)
    loop.add(job)
    loop.run()
    assert job.status == "done", job.error
    assert set(attempts(job)) == {"a.0", "b.0", "c.0", *(f"{s}@small.upscale" for s in "abc")}
    assert attempts(job)["a@small.upscale"] == ["cpu0"]
    for name, size in (("small", (96, 54)), ("same", (112, 64))):
        info = probe(job.folder.delivery(name) / "episode.mp4")
        assert (info["width"], info["height"], info["frames"]) == (*size, plan.episode_frames)
