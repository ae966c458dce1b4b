"""`sakuga render … --deliver broadcast-1080p2398 --upscaler sr-tiny`, as a user runs it: Ray, the
animatic engine, the real profile. What comes out is checked by readers that share no code with the
writer: PyAV's probe, pyloudnorm (an independent BS.1770 meter), OpenTimelineIO's EDL reader."""
from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import opentimelineio as otio
import pytest

from farm.media.decode import probe
from farm.media.retime import retimed_frames
from tests.farm.stages.test_stages import write_sound

NTSC = Fraction(24000, 1001)
PICTURE = "examples/pilot/boards/rooftop-dusk.png"


@pytest.fixture
def storyboard(tmp_path):
    """Two shots of 9 frames at 480x272 (its 480x270 centre is exactly 1920x1080 after x4), a 0.25 s
    dissolve, a soundtrack at about -12 LUFS to bring down to -23."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    (tmp_path / "board.png").write_bytes((root / PICTURE).read_bytes())
    write_sound(tmp_path / "music.wav", 3.0, level=0.5)
    path = tmp_path / "sb.yaml"
    path.write_text("sakuga: 1\ntitle: Broadcast\nmodel: animatic\noutput: {width: 480, height: 272, fps: 16}\n"
                    "audio: music.wav\nscenes:\n  - id: one\n    shots:\n"
                    "      - {id: a, frames: 9, prompt: dusk, start: board.png, transition: {crossfade: 0.25}}\n"
                    "      - {id: b, frames: 9, prompt: night, start: board.png, camera: slow push in}\n")
    return path


def test_broadcast_delivery_is_1080p_at_23976_with_normalised_sound_and_an_edl(ray_cluster, storyboard, tmp_path, sakuga):
    out = tmp_path / "out"
    result = sakuga("render", storyboard, "--out", out, "--deliver", "broadcast-1080p2398", "--upscaler", "sr-tiny",
                    "--quiet")
    assert result.exit_code == 0, result.output
    root = out / "deliver" / "broadcast-1080p2398"
    info = probe(root / "episode.mp4")
    # 9 frames at 16 fps are 13 at 23.976 (13.49); the 4-frame dissolve is 6 (5.99)
    frames = 2 * retimed_frames(9, 16, NTSC) - retimed_frames(4, 16, NTSC)
    assert (info["width"], info["height"], info["frames"], info["codec"]) == (1920, 1080, frames, "h264")
    assert info["fps"] == pytest.approx(float(NTSC), abs=1e-4) and frames == 20
    with av.open(str(root / "episode.mp4")) as c:
        assert c.streams.video[0].average_rate == NTSC and c.streams.video[0].codec_context.profile == "High"
    # the ProRes master's PCM: exactly the picture's length (2002 samples a frame at 48 kHz)
    with av.open(str(root / "episode.mov")) as c:
        assert c.streams.video[0].codec_context.name == "prores"
        pcm = np.concatenate([f.to_ndarray().reshape(-1, 2) for f in c.decode(audio=0)]).T
    assert pcm.shape == (2, frames * 2002)
    lufs = pytest.importorskip("pyloudnorm").Meter(48_000).integrated_loudness(pcm.T / 32768.0)
    assert abs(lufs + 23.0) <= 0.5
    # the AAC track of the mp4 lasts as long too (to an AAC frame's priming, under 1 ms here)
    assert info["audio"]["duration_s"] == pytest.approx(frames / float(NTSC), abs=1e-3)
    edl = otio.adapters.read_from_file(str(root / "timeline.edl"), rate=float(NTSC))
    assert [c.name for c in edl.find_clips()] == ["a", "b"]
    assert {p.name for p in (root / "shots").iterdir()} == {"a.mp4", "b.mp4"}
    # the stages are in the report's schedule and the deliveries' table
    report = (out / "report.html").read_text()
    assert "a@broadcast-1080p2398.upscale" in report and "Deliveries" in report


def test_bad_delivery_options_are_refused_before_anything_runs(storyboard, tmp_path, sakuga):
    out = tmp_path / "out"
    result = sakuga("render", storyboard, "--out", out, "--deliver", "broadcast-4k")
    assert result.exit_code == 2 and "unknown delivery profile 'broadcast-4k'" in result.output
    assert "prores" in result.output       # the masters are named as the other thing --deliver takes
    small = storyboard.read_text().replace("width: 480, height: 272", "width: 256, height: 144")
    storyboard.write_text(small)
    result = sakuga("render", storyboard, "--out", out, "--deliver", "broadcast-1080p2398", "--upscaler", "sr-tiny")
    assert result.exit_code == 2 and "256x144 render cannot become 1920x1080" in result.output
    result = sakuga("render", storyboard, "--out", out, "--upscaler", "sr-tiny")
    assert result.exit_code == 2 and "--upscaler is for --deliver profiles" in result.output
    assert not out.exists()
