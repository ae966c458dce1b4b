"""`fit: stretch`, AniSora's picture resize, next to the default cover-crop: in the planner and the animatic."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from engine.animatic import AnimaticEngine
from engine.fit import fit_cover, fit_picture, fit_stretch
from storyboard.load import load
from storyboard.plan import build_plan
from storyboard.presets import load_preset

GREEN, RED, BLUE, YELLOW = (30, 200, 30), (220, 30, 30), (30, 30, 220), (230, 200, 40)


def quarters(width: int, height: int) -> np.ndarray:
    """Four vertical bands: green, red, blue, yellow."""
    picture = np.zeros((height, width, 3), np.uint8)
    for i, colour in enumerate((GREEN, RED, BLUE, YELLOW)):
        picture[:, i * width // 4:(i + 1) * width // 4] = colour
    return picture


def colours(picture: np.ndarray) -> set[tuple[int, ...]]:
    return {tuple(int(v) for v in p) for p in picture.reshape(-1, 3)}


def test_stretch_keeps_the_whole_picture_where_cover_crops_it():
    wide = quarters(128, 32)                     # 4:1 into a square
    stretched, covered = fit_stretch(wide, 32, 32), fit_cover(wide, 32, 32)
    assert stretched.shape == covered.shape == (32, 32, 3)
    # stretch: each band squeezed to 8 columns (their inner columns untouched by the bicubic kernel)
    for i, colour in enumerate((GREEN, RED, BLUE, YELLOW)):
        assert colours(stretched[:, i * 8 + 2:i * 8 + 6]) == {colour}
    # cover: only the middle quarter of the width, so the outer bands are gone
    assert {GREEN, YELLOW}.isdisjoint(colours(covered)) and {RED, BLUE} <= colours(covered)


def test_stretch_is_anisoras_bicubic_resize_up_to_rounding():
    """anisoraV3/wan/image2video_any.py: TF.to_tensor(img).sub_(0.5).div_(0.5), then
    F.interpolate(size=(h, w), mode='bicubic') on the [-1, 1] picture, no crop."""
    rng = np.random.default_rng(0)
    picture = rng.integers(0, 256, (45, 70, 3), dtype=np.uint8)
    for width, height in ((32, 24), (128, 96)):          # down and up
        anisora = torch.nn.functional.interpolate(
            torch.from_numpy(picture).permute(2, 0, 1)[None].float().div(255).sub(0.5).div(0.5),
            size=(height, width), mode="bicubic")[0].permute(1, 2, 0).numpy()
        ours = fit_stretch(picture, width, height).astype(np.float64) / 127.5 - 1.0
        inside = np.abs(anisora) <= 1.0                  # bicubic overshoot past black or white is clipped here
        # rounding to uint8 moves a pixel at most half a level: 0.5 / 127.5 on the [-1, 1] scale, plus
        # float32 noise in torch's sums (~1e-6)
        assert np.abs(ours - anisora)[inside].max() <= 0.5 / 127.5 + 1e-5
        assert np.array_equal(ours[~inside], np.clip(np.round((anisora[~inside] + 1) * 127.5), 0, 255) / 127.5 - 1)


def test_stretch_returns_a_picture_of_the_frame_size_unchanged():
    picture = np.random.default_rng(1).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    assert np.array_equal(fit_stretch(picture, 32, 24), picture)
    with pytest.raises(ValueError, match="unknown picture fit"):
        fit_picture(picture, 32, 24, "letterbox")


FIT_BOARD = """\
sakuga: 1
output: {{width: 64, height: 64}}
{defaults}scenes:
  - id: s
    shots:
      - {{id: a, frames: 5, prompt: x, start: wide.png}}
      - {{id: b, frames: 5, prompt: y, start: wide.png, fit: cover}}
"""


def plan_with(make_storyboard, defaults: str, name: str):
    path = make_storyboard(FIT_BOARD.format(defaults=defaults), name=name)
    Image.fromarray(quarters(128, 32)).save(path.parent / "wide.png")
    return build_plan(load(path))


def test_fit_is_chosen_per_storyboard_and_per_shot_and_enters_the_content_hash(make_storyboard):
    plain = plan_with(make_storyboard, "", "plain.yaml")
    stretched = plan_with(make_storyboard, "defaults: {fit: stretch}\n", "stretched.yaml")
    assert [s.fit for s in plain.segments] == ["cover", "cover"]
    assert [s.fit for s in stretched.segments] == ["stretch", "cover"]       # the shot's own `fit` wins
    assert stretched.segment("a.0").hash != plain.segment("a.0").hash
    assert stretched.segment("b.0").hash == plain.segment("b.0").hash


def test_the_animatic_starts_from_the_picture_fitted_by_the_segments_policy(make_storyboard):
    plan = plan_with(make_storyboard, "defaults: {fit: stretch}\n", "stretched.yaml")
    engine = AnimaticEngine(load_preset("animatic"))
    wide = quarters(128, 32)
    for sid, fit in (("a.0", fit_stretch), ("b.0", fit_cover)):
        seg = plan.segment(sid)
        frames = engine.render(seg, {seg.conditions[0].image: wide}).frames
        # frame 0 is the fitted start picture, below the caption box the animatic draws at the top
        assert np.array_equal(frames[0][24:], fit(wide, 64, 64)[24:]), sid
        assert not np.array_equal(frames[0][24:], (fit_cover if fit is fit_stretch else fit_stretch)(wide, 64, 64)[24:])
