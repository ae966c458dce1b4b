"""Retiming: exact frame counts, the hold cadence, blends between neighbours, FFmpeg's motion
interpolation through PyAV, streaming, and a retimed clip encoded at 24000/1001."""
from __future__ import annotations

import io
from fractions import Fraction

import numpy as np
import pytest

from farm.media.decode import probe, read_frames
from farm.media.encode import Encoder
from farm.media.retime import retime, retime_array, retimed_frames, retimed_samples

NTSC_FILM, NTSC_VIDEO = Fraction(24000, 1001), Fraction(30000, 1001)


def numbered(n: int, h: int = 8, w: int = 8) -> np.ndarray:
    """Frame k is flat grey level 2k + 1: which source frame an output shows is readable from it."""
    return np.stack([np.full((h, w, 3), 2 * k + 1, np.uint8) for k in range(n)])


def moving_bar(n: int, speed: int = 8, width: int = 4) -> np.ndarray:
    """A white bar `width` wide moving `speed` pixels a frame across black."""
    out = np.zeros((n, 48, 128, 3), np.uint8)
    for i in range(n):
        out[i, :, 8 + speed * i:8 + speed * i + width] = 255
    return out


def test_frame_counts_follow_the_documented_rule():
    # round-half-up(n × dst / src): 81 frames at 16 fps last 5.0625 s
    assert retimed_frames(81, 16, NTSC_FILM) == 121        # 121.38
    assert retimed_frames(81, 16, 24) == 122               # 121.5, rounded up
    assert retimed_frames(81, 16, 25) == 127               # 126.56
    assert retimed_frames(81, 16, NTSC_VIDEO) == 152       # 151.72
    assert retimed_frames(1, 16, 24) == 2 and retimed_frames(0, 16, 24) == 0
    assert retimed_frames(1, 60, 16) == 1                  # never a clip of no frames
    assert retimed_frames(81, 16, 16) == 81
    # sound the length of the picture: 2002 samples a frame at 48 kHz and 23.976 fps
    assert retimed_samples(121, NTSC_FILM, 48_000) == 121 * 2002
    assert retimed_samples(152, NTSC_VIDEO, 48_000) == 243_443      # 1601.6 a frame: 243,443.2


@pytest.mark.parametrize("dst", [NTSC_FILM, 24, 25, NTSC_VIDEO])
@pytest.mark.parametrize("method", ["hold", "blend", "motion"])
def test_every_method_gives_the_documented_count_at_the_source_size(method, dst):
    for n in (1, 2, 17, 33):
        out = retime_array(numbered(n, 32, 32), 16, dst, method)
        assert out.shape == (retimed_frames(n, 16, dst), 32, 32, 3) and out.dtype == np.uint8, (n, method)


def test_hold_shows_source_frame_floor_of_i_times_src_over_dst():
    src = numbered(49)
    out = retime_array(src, 16, NTSC_FILM, "hold")
    for i, frame in enumerate(out):
        k = (i * 16 * 1001) // 24000
        assert np.array_equal(frame, src[k]), i
    # at 16 -> 24 each drawing is held 2, 1, 2, 1, ... frames
    shown = [int(f[0, 0, 0]) // 2 for f in retime_array(src[:8], 16, 24, "hold")]
    assert shown == [0, 0, 1, 2, 2, 3, 4, 4, 5, 6, 6, 7]


def test_blend_mixes_the_two_neighbours_by_phase():
    src = numbered(17)
    out = retime_array(src, 16, NTSC_FILM, "blend")
    for i, frame in enumerate(out):
        p = Fraction(i * 16 * 1001, 24000)
        k, t = int(p), p - int(p)
        nxt = min(k + 1, 16)
        expected = (1 - t) * src[k, 0, 0, 0] + t * src[nxt, 0, 0, 0]
        if t == 0:
            assert np.array_equal(frame, src[k])
        # float32 mixing, rounded half up: within half a level of the exact mix
        assert abs(float(frame[0, 0, 0]) - float(expected)) <= 0.5 + 1e-6, i


def test_motion_interpolation_moves_the_picture_where_blend_cross_fades():
    src = moving_bar(9)
    blend, motion = retime_array(src, 16, 32, "blend"), retime_array(src, 16, 32, "motion")
    assert len(motion) == 18
    for i in (5, 7):                 # half-way frames, once FFmpeg's motion search has its history
        expected = 8 + 8 * i / 2 + 1.5          # the bar's centre half-way between its two positions
        for frames, peak in ((blend, (127, 129)), (motion, (230, 256))):
            column = frames[i, :, :, 0].astype(float).mean(0)
            centre = (column * np.arange(column.size)).sum() / column.sum()
            assert abs(centre - expected) < 1.0
            assert peak[0] <= column.max() < peak[1]     # blend: two half-bright bars; motion: one bar


def test_retiming_streams_reading_only_what_the_next_frame_needs():
    taken = []

    def source():
        for k, frame in enumerate(numbered(33)):
            taken.append(k)
            yield frame

    for i, _ in enumerate(retime(source(), 16, NTSC_FILM, "blend")):
        needed = int(Fraction(i * 16 * 1001, 24000)) + 1         # the two neighbours of output i
        assert len(taken) <= min(needed + 1, 33), (i, len(taken))
    assert len(taken) == 33


def test_a_retimed_clip_encodes_at_24000_over_1001_and_decodes_to_its_count():
    out = retime_array(moving_bar(17), 16, NTSC_FILM, "blend")
    buf = io.BytesIO()
    with Encoder(buf, NTSC_FILM, 128, 48, preset="ultrafast") as enc:
        for frame in out:
            enc.write(frame)
    info = probe(buf.getvalue())
    assert info["frames"] == len(out) == 25 and info["fps"] == pytest.approx(24000 / 1001, abs=1e-9)
    assert sum(1 for _ in read_frames(buf.getvalue())) == 25


def test_the_same_rate_is_the_frames_themselves_and_unknown_methods_are_refused():
    src = list(numbered(5))
    out = list(retime(iter(src), 16, 16, "motion"))
    assert len(out) == 5 and all(a is b for a, b in zip(out, src))
    with pytest.raises(ValueError, match="unknown retime method 'warp'"):
        list(retime(src, 16, 24, "warp"))
