"""A delivery profile's cut: `OUT/deliver/<profile>/` from the shots' last stages.

For each profile the job was given (`--deliver NAME`), once every stage has run:
- `shots/<shot>.mp4`: each shot at the profile's size and rate (the last stage's clip, linked; the
  segments stitched when the render needs no stage for this profile);
- `episode.mp4`: the shots joined with their dissolves rescaled to the new rate (`DeliveryPlan.frames`),
  H.264 at the profile's CRF, preset and profile, and the soundtrack cut or padded to the picture's
  exact length and, when the profile sets `loudness`, normalised to it (two-pass `loudnorm`,
  `farm/media/loudness.py`), then measured again on the file as delivered;
- the masters the profile lists (`prores`: episode.mov, `png`: episode_png/);
- `timeline.otio` and, with `timeline.edl`, `timeline.edl` at the profile's rate;
- `delivery.json`: size, rate, frames, per-shot frames and flicker before/after, loudness before/after.
The episode has Σ shots − Σ dissolves frames, each counted at the new rate.
"""
from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path

from farm.delivery.profiles import DeliveryPlan
from farm.job.publish import link_or_copy, publish_json
from farm.media.loudness import NormalizedSoundtrack, Target, file_blocks, measure
from farm.media.retime import retimed_samples
from farm.media.sound import AUDIO_RATE
from farm.stages.stage import last_stage
from storyboard.plan import ShotPlan

from .stitch import ShotFiles, master_paths, stitch
from .timeline import Cut, write_timeline

logger = logging.getLogger(__name__)


def deliver_profile(job, d: DeliveryPlan, kept: list[ShotPlan]) -> dict:
    """Write one profile's delivery from the shots that rendered; returns what `delivery.json` says."""
    plan, profile, fps = job.plan, d.profile, d.profile.fps
    root = job.folder.delivery(profile.name)
    files, rows = _shot_files(job, d, kept, root)
    episode = root / "episode.mp4"
    frames = sum(_frames(job, shot, d) for shot in kept) - sum(f.dissolve for f in files)
    samples = retimed_samples(frames, fps, AUDIO_RATE)
    sound, loudness = _sound(plan.audio, samples, profile.loudness)
    try:
        written = stitch(files, episode, fps, audio=sound, masters=[m for m in profile.masters if m != "mp4"],
                         crf=profile.video.crf, preset=profile.video.preset, profile=profile.video.profile)
    finally:
        if sound is not None and not isinstance(sound, Path):
            sound.close()
    for row, n in zip(rows, written):
        row["frames"] = n
    notes = []
    if profile.timeline.otio:
        cuts = [Cut(shot, root / "shots" / f"{shot.id}.mp4", n, f.dissolve) for shot, f, n in zip(kept, files, written)]
        notes = write_timeline(job.folder, plan, cuts, fps=fps, root=root, edl=profile.timeline.edl)
    if loudness is not None:
        notes += _measured(loudness, episode, samples, profile)
    elif profile.loudness is not None and not plan.audio:
        notes.append(f"{profile.name}: the storyboard has no `audio`, so the delivery is silent "
                     "and its loudness target does not apply")
    summary = {
        "profile": profile.name, "width": profile.size.width, "height": profile.size.height,
        "fps": _rate(fps), "frames": frames, "duration_s": round(float(frames / fps), 6),
        "audio_samples": samples if plan.audio else 0, "audio_rate": AUDIO_RATE if plan.audio else None,
        "retime": d.retime, "upscaler": d.upscaler.name if d.upscaler else None,
        "crop": list(d.fit.crop), "shots": rows, "loudness": loudness,
        "files": sorted(str(p.relative_to(root)) for p in [episode, *_masters(episode, profile.masters)]),
        "notes": notes,
    }
    publish_json(root / "delivery.json", summary)
    for note in notes:
        job.note(note, kind="delivery")
    logger.info("%s: %d frames at %s fps into %s", profile.name, frames, _rate(fps), root)
    return summary


def _shot_files(job, d: DeliveryPlan, kept: list[ShotPlan], root: Path) -> tuple[list[ShotFiles], list[dict]]:
    """Each kept shot's clip in this delivery (the last stage's, linked into shots/; or its segments,
    stitched there) with its dissolve at the delivery's rate, and its row of `delivery.json`."""
    plan = job.plan
    (root / "shots").mkdir(parents=True, exist_ok=True)
    files, rows = [], []
    for i, shot in enumerate(kept):
        # a dissolve only joins two shots that both rendered and follow each other
        adjacent = i + 1 < len(kept) and plan.shots.index(kept[i + 1]) == plan.shots.index(shot) + 1
        dissolve = d.frames(shot.crossfade_frames) if adjacent else 0
        out = root / "shots" / f"{shot.id}.mp4"
        stage = last_stage(job.stages, shot.id, d.profile.name)
        if stage is None:      # the render is this profile's picture already
            files.append(ShotFiles([job.folder.segment(g, ".mp4") for g in shot.segments], out, dissolve))
        else:
            link_or_copy(job.folder.stage(stage.id, ".mp4"), out)
            files.append(ShotFiles([out], None, dissolve))
        rows.append({"shot": shot.id, "dissolve": dissolve, **_flicker(job, shot, d.profile.name)})
    return files, rows


def _measured(loudness: dict, episode: Path, samples: int, profile) -> list[str]:
    """The delivered file's loudness into `loudness`; a note when it is off the profile's target."""
    after = loudness["after"] = _measure_file(episode, samples).as_dict()
    t = profile.loudness
    # 0.1 dB over the ceiling: what two measurements of one true peak (4x oversampling) may differ by
    loudness["on_target"] = (after["integrated"] is not None and abs(after["integrated"] - t.integrated) <= t.tolerance
                             and (after["true_peak"] is None or after["true_peak"] <= t.true_peak + 0.1))
    if loudness["on_target"]:
        return []
    return [f"{profile.name}: the sound is at {after['integrated']} LUFS, {after['true_peak']} dBTP; "
            f"the profile asks {t.integrated} ± {t.tolerance} LUFS under {t.true_peak} dBTP"]


def _frames(job, shot: ShotPlan, d: DeliveryPlan) -> int:
    stage = last_stage(job.stages, shot.id, d.profile.name)
    return stage.frames if stage else shot.frames


def _flicker(job, shot: ShotPlan, profile: str) -> dict:
    """Flicker of the shot as rendered (the first stage's input) and as delivered (the last's output)."""
    stages = [s for s in job.stages if s.shot == shot.id and s.profile == profile]
    metrics = [(job.state[s.id].published.metrics if job.state[s.id].published else {}) for s in stages]
    if not metrics:
        return {"flicker_before": None, "flicker_after": None}
    return {"flicker_before": metrics[0].get("flicker_in"), "flicker_after": metrics[-1].get("flicker")}


def _sound(audio: str | None, samples: int, target) -> tuple[object | None, dict | None]:
    """The soundtrack for the cut (normalised when the profile has a target) and its figures so far."""
    if audio is None:
        return None, None
    if target is None:
        return Path(audio), None
    sound = NormalizedSoundtrack(audio, samples, Target(target.integrated, target.true_peak, target.tolerance))
    n = sound.normalization
    return sound, {"target": {"integrated": target.integrated, "true_peak": target.true_peak,
                              "tolerance": target.tolerance},
                   "before": n.before.as_dict(), "gain_db": round(n.gain_db, 2), "limiter_passes": n.limiter_passes}


def _measure_file(path: Path, samples: int):
    """The loudness of the delivered file's sound (decoded again: what the viewer hears)."""
    return measure(file_blocks(path, samples, AUDIO_RATE), AUDIO_RATE)


def _masters(episode: Path, masters: list[str]) -> list[Path]:
    paths = master_paths(episode)
    return [paths[m] for m in masters if m in paths]


def _rate(fps: Fraction) -> str:
    return str(fps.numerator) if fps.denominator == 1 else f"{fps.numerator}/{fps.denominator}"
