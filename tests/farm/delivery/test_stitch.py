"""farm.stitch: segments into shots and the cut in one pass, masters for editors, the soundtrack."""
import wave

import av
import numpy as np
import pytest

from farm.delivery.stitch import ShotFiles, master_paths, stitch
from farm.media.decode import probe, read_frames
from farm.media.encode import encode_mp4

W, H, FPS = 64, 48, 16
RED, BLUE, GREEN = (220, 20, 20), (20, 20, 220), (20, 220, 20)
MARKER = (255, 255, 255)   # a colour no real frame has


def coded(i: int) -> np.ndarray:
    """A flat frame whose colour spells its index (R and G in steps of 32)."""
    return np.full((H, W, 3), (16 + 32 * (i % 8), 16 + 32 * (i // 8), 128), np.uint8)


def index_of(frame: np.ndarray) -> int:
    r, g, b = frame.reshape(-1, 3).mean(axis=0)
    assert b < 200, "the overlap marker leaked into the shot"
    return round((r - 16) / 32) + 8 * round((g - 16) / 32)


def flat(colour) -> np.ndarray:
    return np.full((H, W, 3), colour, np.uint8)


def clip(path, frames):
    encode_mp4(frames, path, FPS, W, H)
    return path


def episode(files, dissolves, out, **kw):
    """Stitch one-segment shots (their files given) into `out`; shots go beside it."""
    shots = [ShotFiles([f], out.parent / "shots" / f"{i}.mp4", k) for i, (f, k) in enumerate(zip(files, dissolves))]
    return sum(stitch(shots, out, FPS, **kw)) - sum(dissolves)


def mean_colour(frame: np.ndarray) -> np.ndarray:
    return frame.reshape(-1, 3).mean(axis=0)


def test_shot_drops_the_first_frame_of_every_later_segment(tmp_path):
    # the shared frame is painted as a marker in the later segment, so keeping it would show
    segs = [clip(tmp_path / "s0.mp4", [coded(i) for i in range(0, 5)]),
            clip(tmp_path / "s1.mp4", [flat(MARKER)] + [coded(i) for i in range(5, 9)]),
            clip(tmp_path / "s2.mp4", [flat(MARKER)] + [coded(i) for i in range(9, 13)])]
    out = tmp_path / "shots" / "a.mp4"
    assert stitch([ShotFiles(segs, out)], None, FPS) == [13]
    assert [index_of(f) for f in read_frames(out)] == list(range(13))
    info = probe(out)
    assert (info["frames"], info["fps"], info["codec"], info["pix_fmt"]) == (13, FPS, "h264", "yuv420p")


def test_single_segment_shot_is_copied_whole(tmp_path):
    seg = clip(tmp_path / "s0.mp4", [coded(i) for i in range(6)])
    assert stitch([ShotFiles([seg], tmp_path / "a.mp4")], None, FPS) == [6]
    assert [index_of(f) for f in read_frames(tmp_path / "a.mp4")] == list(range(6))


def expected_cut(shots, crossfades):
    """Reference: the whole cut in memory, dissolve frame j at w = (j + 1) / (k + 1)."""
    cut = list(shots[0])
    for k, shot in zip(crossfades, shots[1:]):
        tail, cut = cut[len(cut) - k:], cut[:len(cut) - k]
        cut += [(1 - (j + 1) / (k + 1)) * np.asarray(a) + (j + 1) / (k + 1) * np.asarray(b)
                for j, (a, b) in enumerate(zip(tail, shot))]
        cut += list(shot[k:])
    return [np.asarray(c, float) for c in cut]


def test_episode_dissolves_blend_the_tail_into_the_head_in_order(tmp_path):
    shots = [[RED] * 6, [BLUE] * 8, [GREEN] * 5]
    files = [clip(tmp_path / f"{n}.mp4", [flat(c) for c in s]) for n, s in zip("abc", shots)]
    out = tmp_path / "episode.mp4"

    written = episode(files, [3, 2, 0], out)

    assert written == 6 + 8 + 5 - 3 - 2 == probe(out)["frames"]
    got = [mean_colour(f) for f in read_frames(out)]
    want = expected_cut(shots, [3, 2])
    assert len(got) == len(want) == written
    assert max(np.abs(g - w).max() for g, w in zip(got, want)) < 4
    purple = [g for g in got[3:6]]             # red into blue: blue rises, red falls
    assert [p[2] for p in purple] == sorted(p[2] for p in purple)
    assert [p[0] for p in purple] == sorted((p[0] for p in purple), reverse=True)
    assert all(60 < p[2] < 180 for p in purple)
    assert np.abs(got[6] - BLUE).max() < 4 and np.abs(got[2] - RED).max() < 4


def test_episode_cuts_keep_every_frame(tmp_path):
    files = [clip(tmp_path / f"{n}.mp4", [coded(i) for i in r]) for n, r in (("a", range(0, 4)), ("b", range(4, 9)))]
    assert episode(files, [0, 0], tmp_path / "e.mp4") == 9
    assert [index_of(f) for f in read_frames(tmp_path / "e.mp4")] == list(range(9))


def test_bad_dissolves_are_rejected_and_publish_nothing(tmp_path):
    a = clip(tmp_path / "a.mp4", [flat(RED)] * 4)
    b = clip(tmp_path / "b.mp4", [flat(BLUE)] * 4)
    out = tmp_path / "out" / "episode.mp4"
    with pytest.raises(ValueError, match="last shot cannot dissolve"):
        episode([a, b], [1, 2], out, masters=["prores", "png"])
    with pytest.raises(ValueError, match="too short"):       # b: 3 frames in and 2 out of 4
        episode([a, b, a], [3, 2, 0], out, masters=["prores", "png"])
    with pytest.raises(ValueError, match="unknown master dpx"):
        episode([a, b], [0, 0], out, masters=["dpx"])
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").rglob("*")) == []


def test_pictures_of_different_sizes_are_not_stitched(tmp_path):
    a = clip(tmp_path / "a.mp4", [flat(RED)] * 2)
    b = tmp_path / "b.mp4"
    encode_mp4([np.zeros((96, 128, 3), np.uint8)] * 2, b, FPS, 128, 96)
    with pytest.raises(ValueError, match="different sizes"):
        stitch([ShotFiles([a, b], tmp_path / "s.mp4")], None, FPS)


def write_sine(path, seconds: float, rate: int = 44_100) -> None:
    t = np.arange(round(seconds * rate)) / rate
    pcm = (0.5 * np.sin(2 * np.pi * 440 * t) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())


@pytest.mark.parametrize("audio_s", [3.0, 0.5], ids=["longer", "shorter"])
def test_soundtrack_is_cut_or_padded_to_the_picture(tmp_path, audio_s):
    write_sine(tmp_path / "music.wav", audio_s)
    files = [clip(tmp_path / "a.mp4", [flat(RED)] * 10), clip(tmp_path / "b.mp4", [flat(BLUE)] * 12)]
    out = tmp_path / "episode.mp4"

    frames = episode(files, [2, 0], out, audio=tmp_path / "music.wav")

    picture_s = frames / FPS     # 20 frames: 1.25 s
    info = probe(out)
    assert (info["frames"], info["audio"]["codec"], info["audio"]["rate"]) == (20, "aac", 48_000)
    assert info["duration_s"] == pytest.approx(picture_s)
    # sample-exact: the MP4 edit list hides the AAC encoder's priming samples
    assert info["audio"]["duration_s"] == pytest.approx(picture_s, abs=1e-3)
    with av.open(str(out)) as c:
        pcm = np.concatenate([f.to_ndarray() for f in c.decode(audio=0)], axis=1)
    loud = np.abs(pcm[:, : 48_000 * 4 // 10]).max()
    late = np.abs(pcm[:, 48_000 * 7 // 10: 48_000]).max()
    assert loud > 0.2
    assert (late > 0.2) if audio_s > picture_s else (late < 0.01)   # music or the padding silence


def test_shots_and_cut_come_from_the_segments_in_one_pass(tmp_path):
    # two chained segments make shot a; it dissolves for 2 frames into the one-segment shot b
    a = [clip(tmp_path / "a0.mp4", [coded(i) for i in range(0, 5)]),
         clip(tmp_path / "a1.mp4", [flat(MARKER)] + [coded(i) for i in range(5, 9)])]
    b = [clip(tmp_path / "b0.mp4", [coded(i) for i in range(9, 15)])]
    shots = [ShotFiles(a, tmp_path / "shots" / "a.mp4", 2), ShotFiles(b, tmp_path / "shots" / "b.mp4")]
    out = tmp_path / "episode.mp4"

    assert stitch(shots, out, FPS) == [9, 6]

    assert [index_of(f) for f in read_frames(shots[0].out)] == list(range(9))
    assert [index_of(f) for f in read_frames(shots[1].out)] == list(range(9, 15))
    cut = [mean_colour(f) for f in read_frames(out)]
    assert len(cut) == 9 + 6 - 2
    assert [index_of(f) for f in list(read_frames(out))[:7]] == list(range(7))
    assert [index_of(f) for f in list(read_frames(out))[9:]] == list(range(11, 15))
    want = expected_cut([[mean_colour(coded(i)) for i in range(9)], [mean_colour(coded(i)) for i in range(9, 15)]], [2])
    assert max(np.abs(g - w).max() for g, w in zip(cut, want)) <= 6   # one H.264 pass from the segments


def test_masters_for_editors_match_the_cut(tmp_path):
    write_sine(tmp_path / "music.wav", 2.0)
    files = [clip(tmp_path / "a.mp4", [coded(i) for i in range(6)]),
             clip(tmp_path / "b.mp4", [coded(i) for i in range(6, 14)])]
    out = tmp_path / "deliver" / "episode.mp4"

    frames = episode(files, [0, 0], out, masters=["prores", "png"], audio=tmp_path / "music.wav")

    paths = master_paths(out)
    mov = probe(paths["prores"])
    assert (mov["codec"], mov["pix_fmt"], mov["frames"], mov["fps"]) == ("prores", "yuv422p10le", frames, FPS)
    assert (mov["audio"]["codec"], mov["audio"]["rate"]) == ("pcm_s16le", 48_000)
    assert mov["audio"]["duration_s"] == pytest.approx(frames / FPS, abs=1e-3)
    assert [index_of(f) for f in read_frames(paths["prores"])] == list(range(14))
    pngs = sorted(paths["png"].iterdir())
    assert [p.name for p in pngs] == [f"episode.{i:06d}.png" for i in range(14)]
    from PIL import Image
    assert [index_of(np.asarray(Image.open(p))) for p in pngs] == list(range(14))
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".tmp-")]
