"""Upscaling through spandrel: the tiny net builds the same bytes and is detected as a compact net,
tiles join exactly, frames come out at the exact target size, and bad presets or checkpoints are
input errors at the preset's line."""
from __future__ import annotations

import textwrap

import numpy as np
import pytest
import torch

from engine.upscale import tiny
from engine.upscale.framing import fit
from engine.upscale.loader import load_model
from engine.upscale.presets import UPSCALERS, load_upscaler
from engine.upscale.tiles import run_tiled, spans
from engine.upscale.upscaler import Upscaler
from storyboard.errors import InputError


def gradient(frames: int, height: int, width: int) -> np.ndarray:
    """Smooth moving colour ramps: a picture an upscaler should keep (noise would tell us nothing)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    out = [np.stack([x / width * 200 + 4 * i, y / height * 180, (x + y) / (width + height) * 220], -1)
           for i in range(frames)]
    return np.clip(np.stack(out), 0, 255).astype(np.uint8)


def write_preset(folder, name: str, body: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.yaml").write_text(textwrap.dedent(body))


@pytest.fixture
def presets(tmp_path, monkeypatch):
    """A private upscaler folder searched before the built-in one."""
    folder = tmp_path / "upscalers"
    folder.mkdir()
    monkeypatch.setenv("SAKUGA_UPSCALERS", str(folder))
    return folder


def test_the_tiny_net_builds_byte_identically_and_spandrel_detects_a_compact_x4(tmp_path):
    a = tiny.build(tmp_path / "a.safetensors", 4, 8, 2, seed=0)
    b = tiny.build(tmp_path / "b.safetensors", 4, 8, 2, seed=0)
    assert a.read_bytes() == b.read_bytes() and a.stat().st_size < 32_000
    model = load_model(load_upscaler("sr-tiny"))
    assert model.architecture.id == "Compact" and model.scale == 4 and model.purpose == "SR"
    assert model.model.num_feat == 4 and model.model.num_conv == 1


def test_tiles_cover_every_pixel_once():
    for length in (1, 31, 32, 33, 100, 257):
        for tile, overlap in ((32, 8), (48, 16), (0, 0)):
            parts = spans(length, tile, overlap)
            kept = [i for _, _, a, b in parts for i in range(a, b)]
            assert kept == list(range(length)), (length, tile, overlap)
            for start, end, a, b in parts:
                assert 0 <= start <= a < b <= end <= length and (end - start == tile or len(parts) == 1)


def test_tiled_output_equals_the_whole_frame_when_the_overlap_covers_the_nets_reach():
    model = load_model(load_upscaler("sr-tiny"))     # 3 convolutions: reaches 3 pixels
    x = torch.from_numpy(gradient(2, 80, 112)).permute(0, 3, 1, 2).float() / 255
    x = x + 0.05 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))   # texture to get wrong
    with torch.inference_mode():
        whole = model(x)
        tiled = run_tiled(model, x, 4, tile=40, overlap=16)      # keeps >= 8 pixels of context per seam
        short = run_tiled(model, x, 4, tile=40, overlap=2)       # keeps 1 (< 3): the seams show
    # float32 convolutions over different extents may sum in another order: 1e-5 of a 0..1 picture
    # is far below one 8-bit level (0.004) and far above the summation noise (~1e-7)
    assert tiled.shape == whole.shape == (2, 3, 320, 448)
    assert (tiled - whole).abs().max().item() < 1e-5
    assert (short - whole).abs().max().item() > 1e-3


def test_frames_come_out_at_the_exact_size_through_the_net_and_close_to_a_plain_resize():
    from PIL import Image

    up = Upscaler(load_upscaler("sr-tiny"), device="cpu")
    frames = gradient(5, 48, 64)
    out = up.upscale(frames, 200, 150)           # 4:3 to 4:3: x4 = 256x192, then down to 200x150
    assert out.shape == (5, 150, 200, 3) and out.dtype == np.uint8
    plain = np.stack([np.asarray(Image.fromarray(f).resize((200, 150), Image.Resampling.BICUBIC)) for f in frames])
    # a random-weight net adds a small residual to the nearest-neighbour picture: a few levels off a
    # plain bicubic resize on average, never the noise a broken layout or channel order would give
    assert np.abs(out.astype(int) - plain).mean() < 8
    wide = up.upscale(frames, 192, 108)          # 16:9 from 4:3: rows cropped, then the net
    assert wide.shape == (5, 108, 192, 3)


def test_streaming_in_batches_gives_the_frames_the_whole_array_gives():
    up = Upscaler(load_upscaler("sr-tiny"), device="cpu")
    frames = gradient(7, 32, 48)
    streamed = list(up.stream(iter(frames), 96, 64))     # batch 4: a batch of 4, then one of 3
    assert len(streamed) == 7
    # the same bytes through the same computation, batched differently: a batch of 4 vs of 3 runs
    # the same convolutions per frame, so the results agree to float rounding, here below 1 level
    assert np.abs(np.stack(streamed).astype(int) - up.upscale(frames, 96, 64)).max() <= 1


def test_a_frame_already_at_the_size_passes_through_and_a_smaller_one_needs_no_net():
    up = Upscaler(load_upscaler("sr-tiny"), device="cpu")
    frames = gradient(2, 48, 64)
    assert np.array_equal(up.upscale(frames, 64, 48), frames)
    assert fit(64, 48, 32, 24, scale=4).net is False
    assert up.upscale(frames, 32, 24).shape == (2, 24, 32, 3)


def test_a_size_the_net_cannot_reach_is_refused_with_the_reason():
    assert fit(480, 270, 1920, 1080, scale=4).net
    with pytest.raises(ValueError, match="x2 net cannot bring 480x270"):
        fit(480, 270, 1920, 1080, scale=2)
    vertical = fit(1280, 720, 1080, 1920, scale=4)     # a centre crop: 405 of 1280 columns, 437.5 each side
    assert vertical.crop == (437, 0, 842, 720) and vertical.cropped_share == pytest.approx(0.684, abs=1e-3)


def test_a_missing_checkpoint_names_the_preset_line_and_the_path(tmp_path, monkeypatch):
    monkeypatch.setenv("SAKUGA_REALESR_ANIMEVIDEOV3", str(tmp_path / "nowhere.pth"))
    preset = load_upscaler("realesr-animevideov3")
    with pytest.raises(InputError) as e:
        load_model(preset)
    text = str(e.value)
    line = next(i for i, t in enumerate(UPSCALERS.file(preset.name).read_text().splitlines(), 1)
                if t.startswith("weights:"))
    assert f"realesr-animevideov3.yaml:{line}:" in text and "nowhere.pth" in text and "not found" in text
    assert "point $SAKUGA_REALESR_ANIMEVIDEOV3 at it" in text


def test_a_checkpoint_of_another_scale_or_no_known_net_is_refused_at_its_field(tmp_path, presets):
    from safetensors.torch import save_file

    net = tiny.build(tmp_path / "x4.safetensors", 4, 8, 1)
    write_preset(presets, "says-x2", f"""\
        name: says-x2
        weights: {net}
        scale: 2
        cost: {{hardware: cpu, source: test, overhead_s: 0, s_per_mpixel_frame: 1}}
        """)
    with pytest.raises(InputError, match=r"says-x2.yaml:3:\d+: error: .*scale: 2, but x4.safetensors is a x4"):
        load_model(load_upscaler("says-x2"))
    junk = tmp_path / "junk.safetensors"
    save_file({"encoder.weight": torch.zeros(3, 3)}, str(junk))
    write_preset(presets, "junk", f"""\
        name: junk
        weights: {junk}
        scale: 4
        cost: {{hardware: cpu, source: test, overhead_s: 0, s_per_mpixel_frame: 1}}
        """)
    with pytest.raises(InputError, match=r"junk.yaml:2:\d+: error: .*not a super-resolution checkpoint"):
        load_model(load_upscaler("junk"))


def test_unknown_upscaler_names_list_the_known_ones_and_bad_fields_their_line(presets):
    with pytest.raises(InputError, match=r"unknown upscaler preset 'nope' \(known: .*sr-tiny"):
        load_upscaler("nope")
    write_preset(presets, "odd", """\
        name: odd
        weights: x.pth
        scale: 4
        tile: 64
        overlap: 40
        cost: {hardware: cpu, source: test, overhead_s: 0, s_per_mpixel_frame: 1}
        """)
    with pytest.raises(InputError, match=r"odd.yaml:5:\d+: error: `overlap` \(40\) must be less than half"):
        load_upscaler("odd")


def test_presets_framing_and_delivery_profiles_load_without_torch():
    """The command line checks profiles, upscalers and weights before anything heavy loads."""
    import subprocess
    import sys
    from pathlib import Path

    code = ("import sys\nimport engine.upscale.presets, engine.upscale.framing, engine.upscale.loader\n"
            "import farm.delivery.profiles, farm.media.retime, farm.media.loudness\n"
            "print(sorted(m for m in ('torch', 'diffusers', 'ray', 'spandrel') if m in sys.modules))\n")
    root = Path(__file__).resolve().parents[3]
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
