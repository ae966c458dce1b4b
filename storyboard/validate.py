"""Validation of a `Document` against the storyboard model: schema first, then meaning.

Schema problems come from pydantic, reworded and mapped back to lines (`schema_errors.py`); the meaning
checks here (the model preset and output size, duplicate ids, unknown characters and @mentions, files,
timing) run on every part of the storyboard that passed the schema (`salvage.py`), so one run reports
every problem it can find.
"""
from __future__ import annotations

import difflib
from pathlib import Path

from pydantic import ValidationError

from .assets import AssetFiles
from .document import Document, PathKey
from .errors import MAX_PROBLEMS, InputError, Problem
from .keyframes import describe, place
from .loaded import LoadedStoryboard
from .model import (
    MAX_EPISODE_FRAMES,
    MAX_SEGMENTS,
    MENTION,
    PREVIOUS,
    Character,
    Output,
    Shot,
    Storyboard,
)
from .presets import Preset, available, load_preset
from .salvage import Parts
from .schema_errors import problems_from_validation
from .size import OutputSize, choose, size_problems

__all__ = ["LoadedStoryboard", "validate"]


def validate(doc: Document, *, model: str | None = None, asset_roots: list[Path] = (),
             size: tuple[int, int] | None = None) -> LoadedStoryboard:
    """Validate a document; `model` overrides the storyboard's preset, `size` (width, height) its output
    size (`--size`). Raises InputError with every problem found."""
    problems: list[Problem] = []
    try:
        sb: Storyboard | None = Storyboard.model_validate(doc.data)
    except ValidationError as e:
        sb = None
        problems += problems_from_validation(doc, e, Storyboard)
    parts = Parts.of(sb) if sb else Parts.salvage(doc.data)
    checker = _Checker(doc, list(asset_roots))
    preset = checker.preset(parts.model, model)
    fps = checker.output(parts.output, preset) if preset is not None else None
    checker.run(parts, preset, fps)
    chosen = checker.size(parts, preset, size) if preset is not None else None
    problems += checker.problems
    if problems or checker.omitted or sb is None or preset is None:
        raise InputError(problems or [Problem(str(doc.file), 1, 1, "invalid storyboard")], checker.omitted)
    return LoadedStoryboard(doc, sb, preset, fps, chosen.width, chosen.height, checker.files.assets)


def _segment_count(frames: int, preset: Preset) -> int:
    """How many segments the planner makes of a shot of `frames` frames."""
    from .plan import split_frames  # the planner's own split, so the count is the plan's

    try:
        return len(split_frames(frames, preset))
    except ValueError:   # no split on this preset's grid: at least this many calls of `max_frames`
        return max(1, -(-(frames - 1) // max(1, preset.max_frames - 1)))


def _unknown_preset(name: str, message: str) -> str:
    close = difflib.get_close_matches(name, list(available()), n=1)
    return message + (f"; did you mean `{close[0]}`?" if close else "")


class _Checker:
    def __init__(self, doc: Document, asset_roots: list[Path]):
        self.doc = doc
        self.files = AssetFiles(doc.base_dir, asset_roots)
        self.problems: list[Problem] = []
        self.omitted = 0   # problems past MAX_PROBLEMS: counted, not kept (nor worded)

    @property
    def full(self) -> bool:
        return len(self.problems) >= MAX_PROBLEMS

    def fail(self, path: PathKey, message: str, *, key: bool = False) -> None:
        if self.full:
            self.omitted += 1
        else:
            self.problems.append(self.doc.problem(path, message, key=key))

    def close_match(self, name: str, known) -> str | None:
        """The known name closest to `name` for a "did you mean", unless no more problems are kept:
        thousands of unknown names must not each cost a search through every known one."""
        if self.full:
            return None
        close = difflib.get_close_matches(name, list(known), n=1)
        return close[0] if close else None

    def file(self, path: PathKey, written: str, kind: str) -> None:
        if err := self.files.check(written, kind):
            self.fail(path, err)

    def preset(self, named: str | None, override: str | None) -> Preset | None:
        """The preset the storyboard names, or `override` (--model): an unknown override is fatal."""
        if not (override or named):
            return None
        try:
            return load_preset(override or named)
        except KeyError as e:
            if override:
                raise InputError.single(self.doc.file, str(e.args[0])) from None
            self.fail(("model",), _unknown_preset(named, str(e.args[0])))
            return None

    def output(self, output: Output | None, preset: Preset) -> int:
        """The fps the storyboard renders at; its `output` checked against what the preset renders."""
        if output is None:
            return preset.fps
        fps = output.fps or preset.fps
        if fps != preset.fps:
            self.fail(("output", "fps"), f"model `{preset.name}` renders at {preset.fps} fps, not {fps}")
        return fps

    def size(self, parts: Parts, preset: Preset, override: tuple[int, int] | None) -> OutputSize:
        """The size the storyboard renders at (`storyboard/size.py`), checked against what the preset takes:
        a problem at `output` when the storyboard set it, at `--size` when the command line did."""
        chosen = choose(parts.output, preset, self._first_picture(parts), override)
        for axis, problem in size_problems(chosen, preset):
            if chosen.source == "command line":
                self.problems.append(Problem("--size", 1, 1, problem))
            else:
                self.fail(("output", axis) if axis else ("output",), problem)
        return chosen

    def _first_picture(self, parts: Parts) -> tuple[int, int] | None:
        """Width and height of the storyboard's first picture: the first shot's with one, its start or
        else its first keyframe (AniSora takes the output's orientation from a clip's first picture)."""
        for _, _, shot in parts.shots:
            if shot is None:
                continue
            written = [shot.start] if shot.start and shot.start != PREVIOUS else []
            for image in written + [kf.image for kf in shot.keyframes]:
                asset = self.files.assets.get(image)
                if asset is not None and asset.size is not None:
                    return asset.size
        return None

    def run(self, parts: Parts, preset: Preset | None, fps: int | None) -> None:
        if parts.audio:
            self.file(("audio",), parts.audio, "audio")
        for cid, ch in (parts.characters or {}).items():
            for i, ref in enumerate(ch.refs if ch else []):
                self.file(("characters", cid, "refs", i), ref, "image")
        self.ids(parts.scenes)
        self.ids([(p, ident) for p, ident, _ in parts.shots if ident is not None])
        lengths = [preset.shot_frames(shot, fps) if shot and preset else None for _, _, shot in parts.shots]
        if preset is not None:
            self.job_size(parts.shots, lengths, preset)
        for n, (at, _, shot) in enumerate(parts.shots):
            if shot is None:
                continue
            self.characters(at, shot, parts.characters)
            if shot.identity == "keyframe":
                self.identity(at, shot, parts.characters)
            if shot.start == PREVIOUS and n == 0:
                self.fail(at + ("start",), "`start: previous` on the first shot: there is no previous shot")
            elif shot.start and shot.start != PREVIOUS:
                self.file(at + ("start",), shot.start, "image")
            for ki, kf in enumerate(shot.keyframes):
                self.file(at + ("keyframes", ki, "image"), kf.image, "image")
            if preset is None:
                continue
            frames = lengths[n]
            if frames is None:
                self.fail(at + ("duration" if shot.duration is not None else "frames",),
                          f"shot is too short: {self._length(shot, preset, fps)}; model `{preset.name}` needs "
                          f"at least {preset.min_frames} frames")
                continue
            self.keyframes(at, shot, frames, preset)
            if not preset.pictures:
                self.text_only(at, shot, frames, preset)
            if not isinstance(shot.transition, str):
                self.crossfade(parts.shots, lengths, n, fps)

    def job_size(self, shots, lengths: list[int | None], preset: Preset) -> None:
        """The job within `MAX_EPISODE_FRAMES` and `MAX_SEGMENTS`, each reported once, at the shot whose
        length takes the running total past it."""
        frames = segments = 0
        per_length: dict[int, int] = {}
        over = set()
        for (at, _, shot), length in zip(shots, lengths):
            if shot is None or length is None:
                continue
            if length not in per_length:
                per_length[length] = _segment_count(length, preset)
            frames, segments = frames + length, segments + per_length[length]
            where = at + ("duration" if shot.duration is not None else "frames",)
            if frames > MAX_EPISODE_FRAMES and "frames" not in over:
                over.add("frames")
                self.fail(where, f"the episode reaches {frames:,} frames with this shot; a job renders at most "
                                 f"{MAX_EPISODE_FRAMES:,} frames (2 hours at 24 fps): split the storyboard")
            if segments > MAX_SEGMENTS and "segments" not in over:
                over.add("segments")
                self.fail(where, f"the episode reaches {segments:,} render segments with this shot; a job renders "
                                 f"at most {MAX_SEGMENTS:,} segments: split the storyboard")

    def crossfade(self, shots, lengths: list[int | None], n: int, fps: int) -> None:
        """Shot `n` dissolves into the next one: there must be one, and both must be long enough."""
        at, _, shot = shots[n]
        frames = lengths[n]
        if n == len(shots) - 1:
            self.fail(at + ("transition",), "the last shot cannot crossfade: there is no next shot")
            return
        nxt = lengths[n + 1]
        xf = shot.crossfade_frames(fps)
        limit = min(frames, nxt) if nxt else frames
        if xf < 1:
            self.fail(at + ("transition", "crossfade"),
                      f"crossfade of {shot.transition.crossfade} s is less than one frame at {fps} fps")
        elif xf >= limit:
            self.fail(at + ("transition", "crossfade"),
                      f"crossfade of {xf} frames must be shorter than both shots it joins "
                      f"(this one has {frames} frames" + (f", the next {nxt})" if nxt else ")"))
        elif (fade_in := self._fade_in(shots, n, fps)) + xf > frames:
            self.fail(at + ("transition", "crossfade"),
                      f"shot has {frames} frames: too short to dissolve in over {fade_in} frames "
                      f"and out over {xf}")

    def text_only(self, at, shot: Shot, frames: int, preset: Preset) -> None:
        """A text-to-video model cannot start from a picture, so it cannot continue a shot either."""
        why = f"model `{preset.name}` renders from text only"
        if shot.start:
            self.fail(at + ("start",), f"{why}: it cannot start from a picture (drop `start` or use an image-to-video model)")
        if shot.keyframes:
            self.fail(at + ("keyframes",), f"{why}: it cannot take keyframes")
        if frames > preset.max_frames:
            self.fail(at + ("duration" if shot.duration is not None else "frames",),
                      f"{why}: a shot of {frames} frames would need continuing from a picture; "
                      f"at most {preset.max_frames} frames")

    @staticmethod
    def _fade_in(shots, n: int, fps: int) -> int:
        """Frames of the dissolve from the shot before shot `n` (0 for a cut or no valid previous shot)."""
        before = shots[n - 1][2] if n else None
        return before.crossfade_frames(fps) if before is not None else 0

    @staticmethod
    def _length(shot: Shot, preset: Preset, fps: int) -> str:
        snapped = preset.frame_grid.snap(shot.frames if shot.frames is not None else shot.duration * fps)
        if shot.frames is None:
            return f"{shot.duration} s is {snapped} frames at {fps} fps"
        plural = "frame" if shot.frames == 1 else "frames"
        return f"{shot.frames} {plural}" + (f" ({snapped} on the model's frame grid)" if snapped != shot.frames else "")

    def characters(self, at: PathKey, shot: Shot, known: dict[str, Character | None] | None) -> None:
        if known is None:  # `characters` itself is broken (reported already)
            return
        for ci, cid in enumerate(shot.characters):
            if cid not in known:
                close = self.close_match(cid, known)
                hint = f" (did you mean `{close}`?)" if close else ""
                self.fail(at + ("characters", ci), f"unknown character `{cid}`{hint}")
        if not known:  # a storyboard without characters: "@" in a prompt is just text
            return
        for name in dict.fromkeys(m.group(1) for m in MENTION.finditer(shot.prompt)):
            if name not in known and name not in shot.characters:  # else reported just above
                close = self.close_match(name, known)
                hint = f" (did you mean `@{close}`?)" if close else ""
                self.fail(at + ("prompt",), f"prompt mentions `@{name}`, which is not a defined character{hint}")

    def identity(self, at: PathKey, shot: Shot, known: dict[str, Character | None] | None) -> None:
        """A shot asking for `identity: keyframe` needs a character with a reference picture."""
        if not known:
            cast = []
        else:
            mentioned = [m for m in MENTION.findall(shot.prompt) if m in known]
            cast = [known[c] for c in dict.fromkeys(shot.characters + mentioned) if c in known]
        if not any(ch is not None and ch.refs for ch in cast):
            self.fail(at + ("identity",), "`identity: keyframe` puts a character's reference picture into the shot, "
                                          "but none of its characters has `refs`")

    def keyframes(self, at: PathKey, shot: Shot, frames: int, preset: Preset) -> None:
        """Each keyframe on a frame of the shot that the preset's rule allows, none on `start`'s frame, no
        two on one frame."""
        rule = preset.keyframe_rule
        taken: dict[int, tuple[int, str]] = {}   # frame → (keyframe index, how it was placed)
        for ki, kf in enumerate(shot.keyframes):
            where = at + ("keyframes", ki, "frame" if kf.frame is not None else "at")
            f = place(kf, frames, rule)
            how = describe(kf)
            if kf.frame is not None and not rule.allows(f, frames):
                self.fail(where, self._frame_problem(kf.frame, frames, preset))
            elif f == 0 and shot.start:
                self.fail(where, f"keyframe {how} conflicts with `start`: both set the first frame; use one of them")
            elif f in taken:
                other_ki, other_how = taken[f]
                line, _ = self.doc.where(at + ("keyframes", other_ki))
                second = how.removeprefix("at ") if other_how.startswith("at ") else how   # "at 0.5 and 0.51"
                same = f"two keyframes {how}" if other_how == how else f"keyframes {other_how} and {second}"
                self.fail(where, f"{same} land on the same frame ({f} of {frames}); the other is on line {line}")
            else:
                taken[f] = (ki, how)

    @staticmethod
    def _frame_problem(frame: int, frames: int, preset: Preset) -> str:
        if frame >= frames:
            return f"keyframe frame {frame} is past the shot's last frame ({frames - 1}: it has {frames} frames)"
        rule = preset.keyframe_rule
        near = " or ".join(str(f) for f in rule.nearest_allowed(frame, frames))
        return (f"model `{preset.name}` takes keyframes on multiples of {rule.grid} (or the last frame, "
                f"{frames - 1}): frame {frame} is not one; use {near}")

    def ids(self, entries) -> None:
        seen: dict[str, PathKey] = {}
        for p, ident in entries:
            if ident in seen:
                line, _ = self.doc.where(seen[ident] + ("id",))
                self.fail(p + ("id",), f"duplicate id `{ident}` (first used on line {line})")
            else:
                seen[ident] = p
