"""The animatic engine: anchors, crossfades, camera moves, title cards, captions, and image fitting."""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from engine.animatic import (
    AnimaticEngine,
    Caption,
    card_colour,
    parse_camera,
    strip_suffix,
)
from engine.fit import cover_box, fit_cover
from engine.qc import flicker
from engine.registry import create
from storyboard.plan import CharacterRef, Condition, ImageRef, Segment
from storyboard.presets import load_preset

PRESET = load_preset("animatic")
RED, GREEN, BLUE = (200, 30, 30), (30, 200, 30), (30, 30, 200)


def segment(frames: int = 17, width: int = 160, height: int = 96, *, conditions=(), characters=(),
            camera: str | None = None, caption: bool = False, prompt: str = "Hana waits on the roof",
            seed: int = 7, shot: str = "roof-010", first_frame: int = 0) -> Segment:
    return Segment(
        id=f"{shot}.0", shot=shot, index=0, first_frame=first_frame, frames=frames, width=width, height=height,
        fps=16, model="animatic", engine="animatic", prompt=prompt, negative="", steps=8, guidance=1.0,
        shift=5.0, seed=seed, camera=camera, conditions=tuple(conditions), characters=tuple(characters),
        deps=(), options=(("caption", "true" if caption else "false"),), runtime_s=((1, 1.0),))


def ref(name: str) -> ImageRef:
    return ImageRef("asset", name, name * 8)


def solid(colour, size=(60, 80)) -> np.ndarray:
    return np.full((*size, 3), colour, np.uint8)


def noise(seed: int, size=(90, 120)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)


def render(seg: Segment, images=None, **kw):
    return AnimaticEngine(PRESET).render(seg, images or {}, **kw)


START, KEY = ref("start.png"), ref("key.png")


# ---------------------------------------------------------------- shape, determinism, metrics


@pytest.mark.parametrize("frames, width, height", [(1, 64, 48), (5, 256, 144), (17, 160, 96), (9, 832, 480)])
@pytest.mark.parametrize("camera", [None, "fast push in, pan left", "pull out, tilt down"])
def test_frames_have_the_segment_count_size_and_dtype(frames, width, height, camera):
    seg = segment(frames, width, height, conditions=[Condition(0, START)], camera=camera, caption=True)
    out = render(seg, {START: noise(1)}).frames
    assert out.shape == (frames, height, width, 3)
    assert out.dtype == np.uint8


def test_same_segment_and_pictures_give_byte_identical_frames():
    seg = segment(25, conditions=[Condition(0, START), Condition(16, KEY)], camera="push in and pan right",
                  caption=True)
    images = {START: noise(1), KEY: noise(2)}
    a, b = render(seg, images), render(seg, dict(images))
    assert np.array_equal(a.frames, b.frames)
    assert a.metrics == b.metrics
    title = segment(9, characters=[CharacterRef("hana", "Hana", "", (START,))], camera="tilt up")
    assert np.array_equal(render(title, images).frames, render(title, images).frames)


def test_flicker_is_the_mean_absolute_difference_of_consecutive_frames():
    seg = segment(13, conditions=[Condition(0, START), Condition(12, KEY)], caption=True)
    rendered = render(seg, {START: noise(1), KEY: noise(2)})
    expected = np.abs(np.diff(rendered.frames.astype(np.int64), axis=0)).mean() / 255
    assert rendered.metrics["flicker"] == pytest.approx(expected)
    assert rendered.metrics["flicker"] == pytest.approx(flicker(rendered.frames))   # the workers' figure
    assert rendered.metrics["flicker"] > 1 / 255
    held = render(segment(9, conditions=[Condition(0, START)]), {START: noise(1)})
    assert held.metrics["flicker"] == 0.0


def test_progress_is_reported_after_every_frame():
    calls = []
    render(segment(7, conditions=[Condition(0, START)]), {START: noise(1)}, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(i, 7) for i in range(1, 8)]


def test_the_default_engine_preset_builds_the_animatic():
    assert isinstance(create(PRESET), AnimaticEngine)


# ---------------------------------------------------------------- anchors and crossfades


@pytest.mark.parametrize("camera", [None, "push in", "pull out", "pan left", "tilt down and zoom in"])
def test_frame_0_is_the_fitted_start_picture_whatever_the_camera(camera):
    picture = noise(3, (300, 200))   # portrait: gets cropped top and bottom
    out = render(segment(9, conditions=[Condition(0, START)], camera=camera), {START: picture}).frames
    assert np.array_equal(out[0], fit_cover(picture, 160, 96))
    if camera:
        assert not np.array_equal(out[-1], out[0])


def test_a_keyframe_shows_exactly_at_its_frame_and_holds_after_it():
    start, key = noise(1), noise(2)
    out = render(segment(21, conditions=[Condition(0, START), Condition(12, KEY)]), {START: start, KEY: key}).frames
    fitted_key = fit_cover(key, 160, 96)
    assert np.array_equal(out[12], fitted_key)
    assert not np.array_equal(out[11], fitted_key)
    assert all(np.array_equal(f, fitted_key) for f in out[12:])


def test_the_crossfade_midpoint_is_the_blend_of_its_anchors():
    out = render(segment(11, conditions=[Condition(0, START), Condition(10, KEY)]),
                 {START: solid(RED), KEY: solid(BLUE)}).frames
    mid = out[5].astype(int)
    expected = (np.array(RED) + np.array(BLUE)) / 2
    assert np.abs(mid - expected).max() <= 1
    blues = [int(f[..., 2].mean()) for f in out]
    assert blues == sorted(blues) and blues[0] == BLUE[0] and blues[-1] == BLUE[2]


def test_several_keyframes_are_each_reached_in_turn():
    third = ref("third.png")
    images = {START: solid(RED), KEY: solid(GREEN), third: solid(BLUE)}
    out = render(segment(17, conditions=[Condition(0, START), Condition(8, KEY), Condition(16, third)]), images).frames
    assert tuple(out[0, 0, 0]) == RED and tuple(out[8, 0, 0]) == GREEN and tuple(out[16, 0, 0]) == BLUE
    assert out[4, 0, 0, 2] == RED[2] and out[12, 0, 0, 0] == GREEN[0]   # each fade only mixes its two ends


def test_a_condition_without_its_picture_is_an_error_naming_it():
    with pytest.raises(KeyError, match="key.png"):
        render(segment(9, conditions=[Condition(0, START), Condition(8, KEY)]), {START: noise(1)})


# ---------------------------------------------------------------- camera


def white_square() -> np.ndarray:
    """Black 160x96 frame with a white 40x24 square in the middle."""
    picture = np.zeros((96, 160, 3), np.uint8)
    picture[36:60, 60:100] = 255
    return picture


def bar(vertical: bool) -> np.ndarray:
    """Black 160x96 frame with a white bar 10 px thick through the middle."""
    picture = np.zeros((96, 160, 3), np.uint8)
    if vertical:
        picture[:, 75:85] = 255
    else:
        picture[43:53] = 255
    return picture


def brightness_centroid(frame: np.ndarray, axis: int) -> float:
    """Mean x (axis=1) or y (axis=0) of the brightness in a frame."""
    weights = frame.astype(float).sum(axis=2).sum(axis=1 - axis)
    return float((weights * np.arange(len(weights))).sum() / weights.sum())


@pytest.mark.parametrize("camera, grows", [("push in", True), ("zoom in", True), ("dolly in", True),
                                           ("pull out", False), ("zoom out", False), ("dolly out", False)])
def test_push_in_grows_the_centre_and_pull_out_shrinks_it(camera, grows):
    out = render(segment(49, conditions=[Condition(0, START)], camera=camera), {START: white_square()}).frames
    area = [(f[..., 0] > 127).sum() for f in out]
    expected = 1.05 ** (2 * 48 / 16)   # the area scales with the square of 5 % a second for 3 s
    ratio = area[-1] / area[0]
    assert ratio == pytest.approx(expected if grows else 1 / expected, rel=0.06)
    assert (np.diff(area) >= 0).all() if grows else (np.diff(area) <= 0).all()
    assert out[-1][48, 80, 0] == 255   # the centre stays in the centre


@pytest.mark.parametrize("camera, axis, direction", [("pan left", 1, +1), ("pan right", 1, -1),
                                                    ("tilt up", 0, +1), ("tilt down", 0, -1)])
def test_pan_and_tilt_slide_the_picture_against_the_camera(camera, axis, direction):
    out = render(segment(49, conditions=[Condition(0, START)], camera=camera), {START: bar(vertical=axis == 1)}).frames
    positions = [brightness_centroid(f, axis) for f in out]
    size = 160 if axis == 1 else 96
    assert (positions[-1] - positions[0]) * direction == pytest.approx(0.05 * size * 3, rel=0.1)
    assert all((b - a) * direction > 0 for a, b in zip(positions, positions[1:]))


def test_a_camera_move_runs_at_the_same_rate_however_the_shot_is_split():
    whole = render(segment(33, conditions=[Condition(0, START)], camera="pan right"), {START: bar(True)})
    first = render(segment(17, conditions=[Condition(0, START)], camera="pan right"), {START: bar(True)})
    link = ImageRef("segment", "roof-010.0", "h")
    second = render(segment(17, conditions=[Condition(0, link)], camera="pan right", first_frame=16),
                    {link: first.last_frame})
    assert np.array_equal(second.frames[0], first.frames[-1])
    x = brightness_centroid
    assert x(second.frames[-1], 1) == pytest.approx(x(whole.frames[-1], 1), abs=0.5)


@pytest.mark.parametrize("text, zoom, x, y", [
    (None, 0, 0, 0), ("static", 0, 0, 0), ("handheld, shaky", 0, 0, 0), ("Slow PUSH IN", 1, 0, 0),
    ("push-in", 1, 0, 0), ("pulls back", -1, 0, 0), ("pan left", 0, -1, 0), ("panning right", 0, 1, 0),
    ("tilt up", 0, 0, -1), ("tilts down", 0, 0, 1), ("zoom out while panning left and tilting up", -1, -1, -1),
])
def test_camera_text_is_read_by_keywords(text, zoom, x, y):
    move = parse_camera(text)
    assert (np.sign(move.log_zoom_per_s), np.sign(move.x_per_s), np.sign(move.y_per_s)) == (zoom, x, y)


def test_slow_halves_and_fast_doubles_a_move():
    normal = parse_camera("pan left").x_per_s
    assert parse_camera("slow pan left").x_per_s == pytest.approx(normal / 2)
    assert parse_camera("fast pan left").x_per_s == pytest.approx(normal * 2)
    assert parse_camera("push in").log_zoom_per_s == pytest.approx(math.log(1.05))


# ---------------------------------------------------------------- title card


def test_without_pictures_the_segment_is_a_title_card_that_shows_its_prompt():
    a = render(segment(5, prompt="Hana turns to the camera")).frames
    b = render(segment(5, prompt="The city skyline at night")).frames
    assert len(np.unique(a[0].reshape(-1, 3), axis=0)) > 10   # text, not a flat colour
    assert tuple(a[0, -1, -1]) == card_colour(7)              # background from the seed
    assert not np.array_equal(a[0], b[0])
    c = render(segment(5, prompt="Hana turns to the camera", seed=8)).frames
    assert tuple(c[0, -1, -1]) == card_colour(8) != card_colour(7)


def test_the_title_card_omits_the_presets_prompt_suffix():
    suffix = PRESET.prompt_suffix.format(aesthetic=5.5, motion=1.3)
    assert strip_suffix(f"Hana waits. Setting: roof. {suffix}", PRESET.prompt_suffix) == "Hana waits. Setting: roof."
    with_suffix = render(segment(1, prompt=f"Hana waits. {suffix}")).frames
    assert np.array_equal(with_suffix, render(segment(1, prompt="Hana waits.")).frames)


def test_character_refs_appear_on_the_title_card_with_their_names():
    hana, ren = ref("hana.png"), ref("ren.png")
    cast = [CharacterRef("hana", "Hana", "", (hana,)), CharacterRef("ren", "Ren", "", (ren,))]
    images = {hana: solid(RED, (50, 40)), ren: solid(BLUE, (40, 50))}

    def pixels(frame, colour):
        return int((frame == colour).all(axis=2).sum())

    card = render(segment(5, 256, 144, characters=cast), images).frames[0]
    assert pixels(card, RED) > 500 and pixels(card, BLUE) > 500
    unnamed = render(segment(5, 256, 144, characters=[replace(c, name="") for c in cast]), images).frames[0]
    assert not np.array_equal(card, unnamed)                   # the names are drawn
    bare = render(segment(5, 256, 144, characters=cast), {}).frames[0]   # refs not supplied: no thumbnails
    assert pixels(bare, RED) == 0 and pixels(bare, BLUE) == 0


def test_keyframes_without_a_start_picture_fade_in_from_the_title_card():
    out = render(segment(13, conditions=[Condition(8, KEY)], characters=[CharacterRef("hana", "Hana", "", (START,))]),
                 {KEY: noise(2), START: solid(RED)}).frames
    assert int((out[0] == RED).all(axis=2).sum()) > 100        # the title card, with Hana's thumbnail
    assert np.array_equal(out[8], fit_cover(noise(2), 160, 96))


# ---------------------------------------------------------------- caption


def test_the_caption_is_an_opaque_box_in_the_top_left_corner_only():
    images = {START: solid(GREEN)}
    plain = render(segment(9, 256, 144, conditions=[Condition(0, START)], first_frame=40), images).frames
    shown = render(segment(9, 256, 144, conditions=[Condition(0, START)], caption=True, first_frame=40), images).frames
    changed = (plain != shown).any(axis=(0, 3))
    rows, cols = np.nonzero(changed)
    assert rows.max() < 144 // 4 and cols.max() < 256 // 2     # a corner, the rest untouched
    assert rows.max() + 1 >= 10                                 # tall enough to read at 144p
    box = shown[0, : rows.max() + 1, : cols.max() + 1]
    assert (box.max(axis=2) < 40).mean() > 0.5                 # mostly dark box, no green showing through
    assert (box.min(axis=2) > 200).any()                        # light text on it
    assert not np.array_equal(shown[0], shown[1])               # f40 and f41 differ


def test_caption_grows_with_the_frame_height():
    assert Caption.box_height(480) > Caption.box_height(144) >= 12


def test_a_chained_segment_continues_from_the_clean_frame_and_shows_one_caption():
    images = {START: noise(1)}
    first = render(segment(17, conditions=[Condition(0, START)], camera="push in", caption=True), images)
    clean = render(segment(17, conditions=[Condition(0, START)], camera="push in"), images)
    assert np.array_equal(first.last_frame, clean.frames[-1])      # the chain gets no caption baked in
    link = ImageRef("segment", "roof-010.0", "h")
    second = render(segment(17, conditions=[Condition(0, link)], camera="push in", caption=True, first_frame=16),
                    {link: first.last_frame})
    # the frame both segments share is identical, caption included ("roof-010 f16" once)
    assert np.array_equal(second.frames[0], first.frames[-1])
    # and a captioned parent frame is simply overwritten by the same opaque caption
    again = render(segment(17, conditions=[Condition(0, link)], camera="push in", caption=True, first_frame=16),
                   {link: first.frames[-1]})
    assert np.array_equal(again.frames[0], first.frames[-1])


def test_the_animatic_has_no_latents_to_return():
    rendered = render(segment(9, conditions=[Condition(0, START)], caption=True), {START: noise(1)})
    assert rendered.latents is None and rendered.clean_last is not None


# ---------------------------------------------------------------- fitting


def thirds(width: int, height: int, vertical: bool) -> np.ndarray:
    """Red | green | blue thirds, side by side (vertical=True) or stacked."""
    picture = np.zeros((height, width, 3), np.uint8)
    n = width if vertical else height
    for i, colour in enumerate((RED, GREEN, BLUE)):
        part = slice(i * n // 3, (i + 1) * n // 3)
        if vertical:
            picture[:, part] = colour
        else:
            picture[part] = colour
    return picture


def test_fit_cover_crops_the_sides_of_a_wide_picture_evenly():
    out = fit_cover(thirds(300, 100, vertical=True), 90, 90)   # only the green middle third fits
    assert out.shape == (90, 90, 3) and out.dtype == np.uint8
    assert np.abs(out[:, 3:-3].astype(int) - GREEN).max() <= 2


def test_fit_cover_crops_the_top_and_bottom_of_a_tall_picture_evenly():
    out = fit_cover(thirds(100, 300, vertical=False), 160, 48)
    assert np.abs(out[3:-3].astype(int) - GREEN).max() <= 2


def test_fit_cover_scales_up_to_cover_and_keeps_the_aspect_ratio():
    picture = np.zeros((40, 40, 3), np.uint8)
    picture[10:30, 10:30] = 255
    out = fit_cover(picture, 160, 80)            # 4x: the 40x40 picture becomes 160x160, 40 rows cut off each side
    white = out[..., 0] > 127
    rows, cols = np.nonzero(white)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == pytest.approx((0, 79, 40, 119), abs=1)


def test_fit_cover_returns_a_picture_of_the_right_size_unchanged():
    picture = noise(4, (96, 160))
    assert np.array_equal(fit_cover(picture, 160, 96), picture)


def test_fit_cover_accepts_greyscale_and_alpha_pictures():
    assert fit_cover(np.full((30, 40), 77, np.uint8), 16, 16).shape == (16, 16, 3)
    assert (fit_cover(np.full((30, 40, 4), 77, np.uint8), 16, 16) == 77).all()


def test_cover_box_is_the_centred_region_with_the_frame_aspect():
    assert cover_box(300, 100, 90, 90) == pytest.approx((100, 0, 200, 100))
    assert cover_box(100, 300, 160, 48) == pytest.approx((0, 135, 100, 165))


def test_fit_cover_of_an_almost_matching_aspect_stays_inside_the_picture():
    # 832x480 into 480x272: the sides' crop is 0 up to float rounding (it came out as -5.7e-14)
    box = cover_box(832, 480, 480, 272)
    assert box[0] >= 0 and box[2] <= 832 and box[1] > 0 and box[3] < 480
    assert fit_cover(np.zeros((480, 832, 3), np.uint8), 480, 272).shape == (272, 480, 3)
