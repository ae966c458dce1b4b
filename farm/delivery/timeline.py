"""The editorial timeline: `DIR/timeline.otio` (OpenTimelineIO), and a CMX3600 EDL where the rate allows.

`OUT/` gets one at the render's rate; each `OUT/deliver/<profile>/` one at the profile's rate
(24000/1001 for broadcast: the EDL is written in 23.976 non-drop timecode and reads back).

One video track, one clip per delivered shot referencing `shots/<id>.mp4` (relative, so the folder
can move), with the shot's id, scene, prompt, characters and segments as metadata and a marker at its
first frame. A dissolve of k frames between two shots is an OTIO transition: the outgoing clip shows
all but its last `a` frames, the incoming one starts `b` frames in (a + b = k), and the transition
overlaps `b` frames before the cut and `a` after, so the track plays exactly the frames of the cut
(sum of shots minus dissolves) and every clip's visible range stays inside its media.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import opentimelineio as otio

from farm.job.folder import JobFolder
from farm.job.publish import atomic_path
from storyboard.plan import Plan, ShotPlan

# rates CMX3600 timecode can express (the adapter refuses others, e.g. Wan's 16 fps)
EDL_RATES = (23.976, 24, 25, 29.97, 30, 48, 50, 59.94, 60)


@dataclass(frozen=True)
class Cut:
    shot: ShotPlan
    file: Path          # the shot's mp4
    frames: int         # frames in that file
    dissolve: int       # frames dissolving into the next cut (0: a straight cut)


def build_timeline(plan: Plan, cuts: list[Cut], root: Path, fps: Fraction | int | None = None) -> otio.schema.Timeline:
    """The cut at `fps` (default: the render's) with media paths relative to `root`."""
    fps = Fraction(fps if fps is not None else plan.fps)
    rate = float(fps)
    frames = lambda n: otio.opentime.RationalTime(n, rate)   # noqa: E731
    span = lambda start, n: otio.opentime.TimeRange(frames(start), frames(n))   # noqa: E731
    timeline = otio.schema.Timeline(name=plan.title, global_start_time=frames(0))
    width, height = _size(cuts, plan)
    timeline.metadata["sakuga"] = {"model": plan.model, "engine": plan.engine,
                                   "fps": int(fps) if fps.denominator == 1 else str(fps),
                                   "width": width, "height": height}
    track = otio.schema.Track(name="picture", kind=otio.schema.TrackKind.Video)
    timeline.tracks.append(track)
    incoming = 0      # frames the previous dissolve takes from the start of this cut
    for i, cut in enumerate(cuts):
        outgoing = cut.dissolve // 2 if i + 1 < len(cuts) else 0
        media = otio.schema.ExternalReference(target_url=cut.file.relative_to(root).as_posix(),
                                              available_range=span(0, cut.frames))
        clip = otio.schema.Clip(name=cut.shot.id, media_reference=media,
                                source_range=span(incoming, cut.frames - incoming - outgoing))
        clip.metadata["sakuga"] = {"shot": cut.shot.id, "scene": cut.shot.scene, "prompt": cut.shot.prompt,
                                   "characters": list(cut.shot.characters), "segments": list(cut.shot.segments),
                                   "camera": cut.shot.camera}
        clip.markers.append(otio.schema.Marker(name=cut.shot.id, marked_range=span(incoming, 0),
                                               color=otio.schema.MarkerColor.GREEN,
                                               metadata={"sakuga": {"prompt": cut.shot.prompt}}))
        track.append(clip)
        if cut.dissolve and i + 1 < len(cuts):
            incoming = cut.dissolve - outgoing
            track.append(otio.schema.Transition(name=f"{cut.shot.id} dissolve",
                                                transition_type=otio.schema.TransitionTypes.SMPTE_Dissolve,
                                                in_offset=frames(incoming), out_offset=frames(outgoing)))
        else:
            incoming = 0
    return timeline


def edl_rate(fps: Fraction | int) -> bool:
    """Whether CMX3600 timecode can carry `fps`."""
    return any(abs(float(fps) - r) < 1e-3 for r in EDL_RATES)


def write_timeline(folder: JobFolder, plan: Plan, cuts: list[Cut], fps: Fraction | int | None = None,
                   root: Path | None = None, edl: bool = True) -> list[str]:
    """Write `timeline.otio` (and `timeline.edl` at a SMPTE rate) into `root` (default: the job's
    folder), at `fps` (default: the render's); returns notes for the user."""
    root = Path(root or folder.root)
    fps = Fraction(fps if fps is not None else plan.fps)
    otio_path, edl_path = root / folder.timeline.name, root / folder.edl.name
    timeline = build_timeline(plan, cuts, root, fps)
    with atomic_path(otio_path) as tmp:
        otio.adapters.write_to_file(timeline, str(tmp), adapter_name="otio_json")
    if not edl:
        return []
    if not edl_rate(fps):
        return [f"{edl_path} not written: a CMX3600 EDL needs a SMPTE timecode rate "
                f"({', '.join(f'{r:g}' for r in EDL_RATES)} fps) and this cut is {float(fps):g} fps; "
                "editors can open timeline.otio"]
    with atomic_path(edl_path) as tmp:
        otio.adapters.write_to_file(timeline, str(tmp), adapter_name="cmx_3600")
    return []


def _size(cuts: list[Cut], plan: Plan) -> tuple[int, int]:
    """The picture size of the cut's files (a delivery's differs from the render's)."""
    from farm.media.decode import probe

    if cuts and cuts[0].file.is_file():
        info = probe(cuts[0].file)
        return info["width"], info["height"]
    return plan.width, plan.height
