"""farm.video: H.264 MP4 in and out, the soundtrack reader, PNG stills."""
import io
import wave

import av
import numpy as np
import pytest

from farm.media.decode import probe, read_frames, read_png
from farm.media.encode import Encoder, encode_mp4, encode_mp4_bytes, png_bytes
from farm.media.sound import Soundtrack

W, H = 64, 48


def coded(i: int) -> np.ndarray:
    """A flat frame whose colour spells its index (R and G in steps of 32), robust to compression."""
    return np.full((H, W, 3), (16 + 32 * (i % 8), 16 + 32 * (i // 8), 128), np.uint8)


def index_of(frame: np.ndarray) -> int:
    r, g, _ = frame.reshape(-1, 3).mean(axis=0)
    return round((r - 16) / 32) + 8 * round((g - 16) / 32)


@pytest.mark.parametrize("fps", [16, 24])
def test_decoders_count_exactly_the_frames_written_at_exactly_fps(tmp_path, fps):
    path = tmp_path / "clip.mp4"
    assert encode_mp4((coded(i) for i in range(17)), path, fps, W, H) == 17

    info = probe(path)
    assert (info["frames"], info["width"], info["height"], info["fps"]) == (17, W, H, fps)
    assert (info["pix_fmt"], info["codec"]) == ("yuv420p", "h264")
    assert info["duration_s"] == pytest.approx(17 / fps)
    assert info["audio"] is None
    with av.open(str(path)) as c:
        assert c.streams.video[0].average_rate == fps
        assert sum(1 for _ in c.decode(video=0)) == 17


def test_frames_come_back_in_order_and_nearly_unchanged(tmp_path):
    path = tmp_path / "clip.mp4"
    frames = [coded(i) for i in range(20)]
    encode_mp4(frames, path, 16, W, H)
    decoded = list(read_frames(path))
    assert [index_of(f) for f in decoded] == list(range(20))
    assert all(f.shape == (H, W, 3) and f.dtype == np.uint8 for f in decoded)
    assert max(np.abs(a.astype(int) - b).mean() for a, b in zip(frames, decoded)) < 2.0


def test_saturated_colours_survive_the_yuv_round_trip(tmp_path):
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255), (0, 0, 0), (200, 40, 160)]
    path = tmp_path / "clip.mp4"
    encode_mp4([np.full((H, W, 3), c, np.uint8) for c in colours], path, 16, W, H)
    for colour, frame in zip(colours, read_frames(path), strict=True):
        assert np.abs(frame[H // 2, W // 2].astype(int) - colour).max() <= 4


def test_bytes_encoding_is_faststart_and_readable_from_bytes():
    data = encode_mp4_bytes(np.stack([coded(i) for i in range(9)]), 16, W, H)
    assert data.index(b"moov") < data.index(b"mdat")      # playable before fully downloaded
    assert probe(data)["frames"] == 9
    assert [index_of(f) for f in read_frames(data)] == list(range(9))
    assert [index_of(f) for f in read_frames(io.BytesIO(data))] == list(range(9))


def test_file_path_output_is_faststart_even_without_an_mp4_suffix(tmp_path):
    path = tmp_path / ".tmp-1234-clip"
    encode_mp4([coded(0), coded(1)], path, 16, W, H)
    data = path.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")
    assert probe(path)["frames"] == 2


def test_an_error_while_encoding_leaves_a_file_target_empty():
    buf = io.BytesIO()
    with pytest.raises(RuntimeError, match="render failed"):
        with Encoder(buf, 16, W, H) as enc:
            enc.write(coded(0))
            raise RuntimeError("render failed")
    assert buf.getvalue() == b""


def test_odd_sizes_and_wrong_frames_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="even"):
        Encoder(tmp_path / "odd.mp4", 16, 65, 48)
    with Encoder(io.BytesIO(), 16, W, H) as enc:
        with pytest.raises(ValueError, match="uint8 frame of shape"):
            enc.write(np.zeros((H, W, 3), np.float32))
        with pytest.raises(ValueError, match="uint8 frame of shape"):
            enc.write(np.zeros((W, H, 3), np.uint8))
        enc.write(coded(0))
    assert enc.frames == 1


def test_an_empty_video_is_an_error_not_a_broken_file(tmp_path):
    with pytest.raises(ValueError, match="no frames"):
        encode_mp4([], tmp_path / "empty.mp4", 16, W, H)


def test_png_round_trip_is_lossless():
    frame = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)
    data = png_bytes(frame)
    assert data.startswith(b"\x89PNG")
    assert np.array_equal(read_png(data), frame)


def write_sine(path, seconds: float, rate: int = 44_100, hz: float = 440.0) -> None:
    t = np.arange(round(seconds * rate)) / rate
    pcm = (0.5 * np.sin(2 * np.pi * hz * t) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())


def test_soundtrack_resamples_and_pads_with_silence(tmp_path):
    write_sine(tmp_path / "a.wav", 0.5)
    with Soundtrack(tmp_path / "a.wav", rate=48_000) as track:
        head = track.read(1000)
        rest = track.read(48_000)
    assert head.shape == (2, 1000) and head.dtype == np.float32
    # mono spread to both channels at -3 dB (swresample's default upmix)
    assert np.array_equal(head[0], head[1])
    assert np.abs(head[:, 200:]).max() == pytest.approx(0.5 / np.sqrt(2), abs=0.03)
    assert rest.shape == (2, 48_000)
    assert np.abs(rest[:, 24_000 - 1000 - 400:24_000 - 1000 - 200]).max() > 0.3  # the half second runs on
    assert np.abs(rest[:, 24_000 - 1000 + 200:]).max() == 0.0       # then silence
