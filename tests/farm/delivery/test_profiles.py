"""Delivery profiles: the built-in ones say what the issue asks, and every bad profile or impossible
render is an input error at the profile's line, with the reason."""
from __future__ import annotations

import textwrap
from fractions import Fraction

import pytest

from farm.delivery.profiles import PROFILES, load_profile, parse_rate, plan_delivery
from storyboard.errors import InputError


@pytest.fixture
def profiles(tmp_path, monkeypatch):
    """`write(name, yaml)`: a profile in a private folder searched before the built-in one."""
    folder = tmp_path / "delivery"
    folder.mkdir()
    monkeypatch.setenv("SAKUGA_DELIVERY", str(folder))

    def write(name: str, body: str):
        path = folder / f"{name}.yaml"
        path.write_text(textwrap.dedent(body))
        return path

    return write


def error_lines(e: pytest.ExceptionInfo) -> list[str]:
    return [str(p) for p in e.value.problems]


def test_the_built_in_profiles_are_the_deliverables_studios_ask_for():
    assert {"web-720p16", "broadcast-1080p2398", "streaming-1080p24", "sns-vertical-1080x1920"} \
        <= set(PROFILES.available())
    tv = load_profile("broadcast-1080p2398")
    assert (tv.size.width, tv.size.height, tv.fps) == (1920, 1080, Fraction(24000, 1001))
    assert tv.masters == ["mp4", "prores"] and tv.timeline.edl and tv.video.profile == "high"
    assert (tv.loudness.integrated, tv.loudness.true_peak) == (-23.0, -1.0)
    assert load_profile("streaming-1080p24").loudness.integrated == -14.0
    sns = load_profile("sns-vertical-1080x1920")
    assert (sns.size.width, sns.size.height, sns.loudness.integrated) == (1080, 1920, -14.0)
    web = load_profile("web-720p16")
    assert web.fps == 16 and web.loudness is None and not web.timeline.edl


def test_a_plan_says_what_each_stage_does_for_a_render():
    tv = load_profile("broadcast-1080p2398")
    pilot = plan_delivery(tv, 832, 480, 16, upscaler="sr-tiny")
    assert pilot.fit.crop == (0, 6, 832, 474) and pilot.fit.net and pilot.upscaler.name == "sr-tiny"
    assert pilot.retime == "hold" and pilot.frames(81) == 121 and pilot.frames(8) == 12
    assert plan_delivery(tv, 832, 480, 16).upscaler.name == "realesr-animevideov3"    # the profile's
    same = plan_delivery(load_profile("web-720p16"), 1280, 720, 16)
    assert same.upscaler is None and not same.fit.net and same.retime is None and same.frames(81) == 81
    vertical = plan_delivery(load_profile("sns-vertical-1080x1920"), 1280, 720, 16)
    assert vertical.fit.crop == (437, 0, 842, 720) and vertical.frames(81) == 152


def test_unknown_names_list_the_known_ones_where_they_were_written():
    with pytest.raises(InputError) as e:
        load_profile("broadcast-1080i50")
    [line] = error_lines(e)
    assert line.startswith("--deliver:1:1: error: unknown delivery profile 'broadcast-1080i50' (known: ")
    assert "broadcast-1080p2398" in line and "web-720p16" in line
    with pytest.raises(InputError, match=r"--upscaler:1:1: error: unknown upscaler preset 'esrgan'"):
        plan_delivery(load_profile("broadcast-1080p2398"), 832, 480, 16, upscaler="esrgan")


def test_bad_fields_are_reported_at_their_lines_all_at_once(profiles):
    path = profiles("bad", """\
        name: bad
        size: {width: 1919, height: 1080}
        rate: 23.976
        masters: [prores]
        resize: lanczos
        """)
    with pytest.raises(InputError) as e:
        load_profile("bad")
    lines = error_lines(e)
    assert any(line.startswith(f"{path}:2:") and "must be even" in line for line in lines), lines
    assert any(line.startswith(f"{path}:3:") and "24000/1001" in line for line in lines), lines
    assert any(line.startswith(f"{path}:4:") and "must include mp4" in line for line in lines), lines
    assert any(line.startswith(f"{path}:5:") and "unknown field `resize`" in line for line in lines), lines


def test_a_file_that_is_not_a_mapping_says_what_a_profile_is(profiles):
    path = profiles("prose", "broadcast, but louder\n")
    with pytest.raises(InputError) as e:
        load_profile("prose")
    assert error_lines(e) == [f"{path}:1:1: error: a delivery profile is a mapping of fields (`name: prose`, ...)"]


def test_an_edl_at_a_rate_cmx3600_cannot_carry_and_an_unknown_upscaler_are_refused(profiles):
    path = profiles("edl16", """\
        name: edl16
        size: {width: 1280, height: 720}
        rate: 16
        upscaler: waifu2x
        timeline: {otio: true, edl: true}
        """)
    with pytest.raises(InputError) as e:
        load_profile("edl16")
    lines = error_lines(e)
    assert any(line.startswith(f"{path}:4:") and "unknown upscaler preset 'waifu2x'" in line for line in lines)
    assert any(line.startswith(f"{path}:5:") and "needs a SMPTE timecode rate" in line and "not 16" in line
               for line in lines), lines


def test_a_render_the_upscaler_cannot_reach_or_the_crop_would_ruin_is_refused(profiles):
    tv = load_profile("broadcast-1080p2398")
    file = PROFILES.file(tv.name)
    with pytest.raises(InputError) as e:
        plan_delivery(tv, 320, 180, 16, upscaler="sr-tiny")
    [line] = error_lines(e)
    assert line.startswith(f"{file}:") and "320x180 render cannot become 1920x1080" in line
    assert "'sr-tiny' is x4: at most 1280x720" in line
    with pytest.raises(InputError, match=r"loses 67\.5% of the picture; this profile allows 5%"):
        plan_delivery(tv, 480, 832, 16)                     # a vertical render into a 16:9 profile
    profiles("no-net", "name: no-net\nsize: {width: 1920, height: 1080}\nrate: 24\n")
    with pytest.raises(InputError, match="names no `upscaler`"):
        plan_delivery(load_profile("no-net"), 1280, 720, 16)
    assert plan_delivery(load_profile("no-net"), 3840, 2160, 24).fit.net is False    # downscaling needs none


def test_rates_are_whole_numbers_or_fractions():
    assert parse_rate(24) == 24 and parse_rate("30000/1001") == Fraction(30000, 1001)
    for bad in (23.976, "23.976", "24/0", 0, "fast", True):
        with pytest.raises(ValueError):
            parse_rate(bad)


def test_at_the_broadcast_rate_an_edl_of_the_retimed_shots_writes_and_reads_back():
    import opentimelineio as otio

    plan = plan_delivery(load_profile("broadcast-1080p2398"), 1280, 720, 16)
    rate = float(plan.profile.fps)
    lengths = [plan.frames(n) for n in (81, 41, 49)]          # shots of the render, retimed
    assert lengths == [121, 61, 73]
    timeline = otio.schema.Timeline(name="ep", global_start_time=otio.opentime.RationalTime(0, rate))
    track = otio.schema.Track(kind=otio.schema.TrackKind.Video)
    timeline.tracks.append(track)
    for i, n in enumerate(lengths):
        span = otio.opentime.TimeRange(otio.opentime.RationalTime(0, rate), otio.opentime.RationalTime(n, rate))
        track.append(otio.schema.Clip(name=f"s{i}", source_range=span, media_reference=otio.schema.ExternalReference(
            target_url=f"shots/s{i}.mp4", available_range=span)))
    text = otio.adapters.write_to_string(timeline, adapter_name="cmx_3600")
    back = otio.adapters.read_from_string(text, adapter_name="cmx_3600", rate=rate)
    events = list(back.tracks[0])
    assert [e.source_range.duration.value for e in events] == lengths and len(events) == 3
