"""The editorial timeline: timeline.otio plays exactly the cut (clips, dissolves as transitions,
ranges inside the shot files), and a CMX3600 EDL is written at SMPTE rates only."""
from __future__ import annotations

from dataclasses import replace

import opentimelineio as otio

from farm.delivery.timeline import Cut, write_timeline
from farm.job.folder import JobFolder
from farm.media.decode import probe
from storyboard.load import load
from storyboard.plan import build_plan

STORYBOARD = """\
sakuga: 1
title: Timeline
output: {width: 64, height: 64, fps: 16}
scenes:
  - id: one
    shots:
      - {id: a, frames: 17, prompt: a red door, transition: {crossfade: 0.25}}
      - {id: b, frames: 33, prompt: a blue sky}
      - {id: c, frames: 17, prompt: a green field, transition: {crossfade: 0.5}}
      - {id: d, frames: 21, prompt: a yellow moon}
"""


def test_the_timeline_plays_exactly_the_cut(ray_cluster, tmp_path, sakuga):
    (tmp_path / "sb.yaml").write_text(STORYBOARD)
    out = tmp_path / "out"
    result = sakuga("render", tmp_path / "sb.yaml", "--out", out, "--quiet")
    assert result.exit_code == 0, result.stderr
    assert "timeline.edl not written: a CMX3600 EDL needs a SMPTE timecode rate" in result.stderr
    assert not (out / "timeline.edl").exists()

    timeline = otio.adapters.read_from_file(str(out / "timeline.otio"))
    [track] = timeline.tracks
    clips = list(track.find_clips())
    transitions = [t for t in track if isinstance(t, otio.schema.Transition)]
    assert [c.name for c in clips] == ["a", "b", "c", "d"]
    assert [c.metadata["sakuga"]["prompt"] for c in clips][0].startswith("a red door")
    assert [(t.in_offset.value + t.out_offset.value) for t in transitions] == [4, 8]
    # 4- and 8-frame dissolves split around the cut: a hides 2 frames, b starts 2 in; c hides 4, d starts 4 in
    assert [(c.source_range.start_time.to_frames(), c.source_range.duration.to_frames()) for c in clips] == \
        [(0, 17 - 2), (2, 33 - 2), (0, 17 - 4), (4, 21 - 4)]
    assert track.duration().to_frames() == probe(out / "episode.mp4")["frames"]
    for clip in clips:
        media = out / clip.media_reference.target_url
        assert media.is_file()
        frames = probe(media)["frames"]
        assert clip.media_reference.available_range.duration.to_frames() == frames
        visible = clip.visible_range()       # source range plus the handles its dissolves reveal
        assert visible.start_time.to_frames() >= 0 and visible.end_time_exclusive().to_frames() <= frames
        assert clip.markers[0].name == clip.name


def test_an_edl_is_written_at_a_smpte_rate(tmp_path):
    (tmp_path / "sb.yaml").write_text(STORYBOARD)
    plan = replace(build_plan(load(tmp_path / "sb.yaml")), fps=24)
    (tmp_path / "shots").mkdir()
    cuts = [Cut(shot, tmp_path / "shots" / f"{shot.id}.mp4", shot.frames, shot.crossfade_frames)
            for shot in plan.shots]
    assert write_timeline(JobFolder(tmp_path), plan, cuts) == []
    edl = otio.adapters.read_from_file(str(tmp_path / "timeline.edl"), rate=24)
    assert len(list(edl.find_clips())) == 4
    otio_track = otio.adapters.read_from_file(str(tmp_path / "timeline.otio")).tracks[0]
    assert otio_track.duration().to_frames() == sum(c.frames for c in cuts) - sum(c.dissolve for c in cuts[:-1])
