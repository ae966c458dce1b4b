"""The job compiler: a validated storyboard in, a DAG of render segments out.

Each segment is a frozen value carrying everything that affects its pixels and a content hash over
them. Long shots become chains of segments that overlap by one frame (the last frame of one is the
first of the next, dropped at stitch); `start: previous` depends on the previous shot's last segment.
Nothing downstream re-reads the storyboard.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property
from typing import Literal

from .keyframes import place
from .loaded import LoadedStoryboard
from .model import MENTION, PREVIOUS, Scene, Shot, Storyboard
from .presets import Preset, load_preset, pixel_options
from .takes import ShotTakes, apply, segment_id

HASH_VERSION = 1


@dataclass(frozen=True)
class ImageRef:
    """An input picture: a checked storyboard asset, or the last frame of an earlier segment."""

    kind: Literal["asset", "segment"]
    ref: str        # asset path as written in the storyboard, or a segment id
    sha256: str     # the asset's bytes, or the upstream segment's content hash


@dataclass(frozen=True)
class Condition:
    frame: int      # frame index inside the segment
    image: ImageRef


@dataclass(frozen=True)
class CharacterRef:
    id: str
    name: str
    description: str
    refs: tuple[ImageRef, ...]


@dataclass(frozen=True)
class Segment:
    id: str                 # "<shot>.<index>"
    shot: str
    index: int
    first_frame: int        # where it starts inside its shot (chained segments overlap by one)
    frames: int
    width: int
    height: int
    fps: int
    model: str
    engine: str
    prompt: str
    negative: str
    steps: int
    guidance: float
    shift: float
    seed: int
    camera: str | None
    conditions: tuple[Condition, ...]
    characters: tuple[CharacterRef, ...]
    deps: tuple[str, ...]
    options: tuple[tuple[str, str], ...]   # the preset's engine options, as canonical JSON text
    runtime_s: tuple[tuple[int, float], ...]  # estimated seconds per sequence-parallel degree
    fit: str = "cover"      # how pictures fill the frame: "cover" (scale, centre-crop) or "stretch" (engine/fit.py)
    hash: str = ""

    def runtime(self, degree: int = 1) -> float:
        return dict(self.runtime_s)[degree]

    @property
    def start(self) -> ImageRef | None:
        return next((c.image for c in self.conditions if c.frame == 0), None)


@dataclass(frozen=True)
class ShotPlan:
    id: str
    scene: str
    frames: int                 # what the shot contributes to the cut before transitions
    segments: tuple[str, ...]
    characters: tuple[str, ...]
    prompt: str
    camera: str | None
    crossfade_frames: int       # dissolve into the next shot (0 = cut)


@dataclass(frozen=True)
class Plan:
    title: str
    model: str
    engine: str
    width: int
    height: int
    fps: int
    shots: tuple[ShotPlan, ...]
    segments: tuple[Segment, ...]
    assets: dict[str, str] = field(hash=False)   # asset as written → resolved absolute path
    audio: str | None = None                     # resolved path of the soundtrack
    presets: dict[str, Preset] = field(default_factory=dict, hash=False)   # the presets segments render with
    takes: dict[str, dict[int, tuple[str, ...]]] = field(default_factory=dict, hash=False)  # shot → take → segments

    @property
    def episode_frames(self) -> int:
        return sum(s.frames for s in self.shots) - sum(s.crossfade_frames for s in self.shots)

    def segment(self, sid: str) -> Segment:
        return self._by_id[sid]

    @cached_property
    def _by_id(self) -> dict[str, Segment]:
        return {s.id: s for s in self.segments}

    def critical_path_s(self, degree: int | None = None) -> float:
        """Longest dependency chain, each segment at `degree` (None: its fastest listed degree)."""
        finish: dict[str, float] = {}
        for seg in self.segments:  # segments are in topological order
            run = seg.runtime(degree) if degree else min(t for _, t in seg.runtime_s)
            finish[seg.id] = run + max((finish[d] for d in seg.deps), default=0.0)
        return max(finish.values(), default=0.0)

    @property
    def estimated_gpu_s(self) -> float:
        return sum(s.runtime(1) for s in self.segments)

    def to_json(self) -> dict:
        return {
            "title": self.title,
            "model": self.model,
            "engine": self.engine,
            "output": {"width": self.width, "height": self.height, "fps": self.fps},
            "episode_frames": self.episode_frames,
            "shots": [
                {"id": s.id, "scene": s.scene, "frames": s.frames, "characters": list(s.characters),
                 "segments": list(s.segments), "crossfade_frames": s.crossfade_frames, "prompt": s.prompt,
                 "camera": s.camera}
                for s in self.shots
            ],
            "segments": [
                {"id": g.id, "shot": g.shot, "frames": g.frames, "first_frame": g.first_frame,
                 "deps": list(g.deps), "degree": 1, "seed": g.seed, "hash": g.hash, "prompt": g.prompt, "fit": g.fit,
                 "conditions": [{"frame": c.frame, "kind": c.image.kind, "ref": c.image.ref} for c in g.conditions],
                 "runtime_s": {str(k): round(v, 3) for k, v in g.runtime_s}}
                for g in self.segments
            ],
            "critical_path_s": round(self.critical_path_s(1), 3),
            "critical_path_best_s": round(self.critical_path_s(), 3),
            "estimated_gpu_s": round(self.estimated_gpu_s, 3),
        }


def split_frames(frames: int, preset: Preset) -> list[int]:
    """Split a shot into segment lengths on the frame grid, each at most `max_frames`, overlapping by one."""
    if frames <= preset.max_frames:
        return [frames]
    grid = preset.frame_grid
    for k in range(2, frames + 1):
        total = frames + k - 1   # k-1 frames are shared between neighbours
        units, rest = divmod(total - k * grid.offset, grid.step)
        if rest or units < 0:
            continue
        per, extra = divmod(units, k)
        sizes = [grid.step * (per + (i < extra)) + grid.offset for i in range(k)]
        if sizes[0] <= preset.max_frames and sizes[-1] >= preset.min_frames:
            return sizes
    raise ValueError(f"cannot split {frames} frames on the grid of {preset.name}")


def _seed(base: int, shot: Shot, index: int, unseeded_hash: str) -> int:
    """An explicit shot seed counts up along its segments; otherwise the seed derives from the
    segment's content (not its id), so renaming a shot does not re-render it."""
    if shot.seed is not None:
        return (shot.seed + index) % 2**32
    digest = hashlib.sha256(f"{base}/{unseeded_hash}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def compose_prompt(sb: Storyboard, preset: Preset, scene_description: str, shot: Shot, cast: list[str],
                   sampling: dict) -> str:
    """Shot prompt (with @id mentions named), character descriptions, setting, camera, preset suffix."""
    names = {cid: ch.name for cid, ch in sb.characters.items()}
    parts = [MENTION.sub(lambda m: names.get(m.group(1), m.group(0)), shot.prompt)]
    for cid in cast:
        ch = sb.characters[cid]
        if ch.description:
            parts.append(f"{ch.name}: {ch.description}")
    if scene_description:
        parts.append(f"Setting: {scene_description}")
    if shot.camera:
        parts.append(f"Camera: {shot.camera}")
    if preset.prompt_suffix:
        parts.append(preset.prompt_suffix.format(aesthetic=sampling["aesthetic"], motion=sampling["motion"]))
    return " ".join(p.strip().rstrip(".") + "." for p in parts if p.strip())


def _content_hash(seg: Segment, preset: Preset) -> str:
    payload = asdict(seg)
    # identity and scheduling are not pixels, except where the engine burns a caption into them
    burned = ("shot", "first_frame") if dict(seg.options).get("caption") == "true" else ()
    for key in ("id", "shot", "index", "first_frame", "deps", "runtime_s", "hash"):
        if key not in burned:
            payload.pop(key)
    # pictures count by their bytes (or the upstream segment's hash), not by path or segment id
    for image in [c["image"] for c in payload["conditions"]] + [r for ch in payload["characters"] for r in ch["refs"]]:
        image.pop("ref")
    payload["hash_version"] = HASH_VERSION
    payload["preset"] = preset.model_dump(mode="json", exclude={"cost", "description"})
    # speed settings that keep the pixels (an exact attention kernel, compilation) do not re-render
    payload["preset"]["options"] = pixel_options(payload["preset"]["options"])
    payload["options"] = _option_pairs(pixel_options({k: json.loads(v) for k, v in seg.options}))
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


SAMPLING = ("steps", "guidance", "shift", "negative", "aesthetic", "motion", "fit", "identity")


def _sampling(shot: Shot, sb: Storyboard, preset: Preset) -> dict:
    """Sampling settings: the shot's, else the storyboard's defaults, else the model's."""
    return {k: next(v for v in (getattr(shot, k), getattr(sb.defaults, k), getattr(preset.defaults, k))
                    if v is not None) for k in SAMPLING}


def build_plan(loaded: LoadedStoryboard, takes: Mapping[str, ShotTakes] | None = None) -> Plan:
    """The render plan of a validated storyboard: its shots, in cut order, compiled into segments.
    With `takes` (`storyboard/takes.py`), every take of a shot is compiled; the shot's plan (what the
    cut uses) is its approved take's, and the plan's segments are every take's."""
    sb, preset = loaded.storyboard, loaded.preset
    compiler = _ShotCompiler(loaded)
    segments: list[Segment] = []
    shots: list[ShotPlan] = []
    last: Segment | None = None   # the cut's last segment so far
    by_take: dict[str, dict[int, tuple[str, ...]]] = {}
    for _, _, scene, shot in sb.shots():
        shot_takes = (takes or {}).get(shot.id, ShotTakes())
        numbers = shot_takes.numbers()
        chosen = shot_takes.approved if shot_takes.approved in numbers else 1
        for n in numbers:
            # `start: previous` continues from the cut so far (never on the first shot: validated)
            shot_plan, shot_segments = compiler.compile(scene, apply(shot, shot_takes.overrides.get(n, {})), last, n)
            segments += shot_segments
            by_take.setdefault(shot.id, {})[n] = shot_plan.segments
            if n == chosen:
                shots.append(shot_plan)
                approved = shot_segments[-1]
        last = approved
    text_preset = compiler.text_preset
    return Plan(
        title=sb.title, model=preset.name, engine=preset.engine, width=compiler.width, height=compiler.height,
        fps=loaded.fps, shots=tuple(shots), segments=tuple(segments),
        assets={w: str(a.path) for w, a in loaded.assets.items()},
        audio=str(loaded.asset(sb.audio).path) if sb.audio else None,
        presets={p.name: p for p in (preset, text_preset) if any(s.model == p.name for s in segments)},
        takes=by_take,
    )


def _engine_options(p: Preset) -> tuple[tuple[str, str], ...]:
    return _option_pairs(p.options)


def _option_pairs(options: dict) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, json.dumps(v, sort_keys=True)) for k, v in options.items()))


class _ShotCompiler:
    """Compiles one shot at a time into its segments; holds what every shot of the storyboard shares."""

    def __init__(self, loaded: LoadedStoryboard):
        self.loaded = loaded
        self.sb, self.preset, self.fps = loaded.storyboard, loaded.preset, loaded.fps
        self.width, self.height = loaded.width, loaded.height
        # segments with no picture at all render with the preset's text-to-video companion, if it has one
        self.text_preset = (load_preset(self.preset.text_to_video).with_speed(loaded.speed)
                            if self.preset.text_to_video else self.preset)
        defaults = self.sb.defaults
        self.base_seed = defaults.seed if defaults.seed is not None else self.preset.defaults.seed

    def asset(self, written: str) -> ImageRef:
        return ImageRef("asset", written, self.loaded.asset(written).sha256)

    def compile(self, scene: Scene, shot: Shot, previous: Segment | None,
                take: int = 1) -> tuple[ShotPlan, list[Segment]]:
        sb, preset, fps = self.sb, self.preset, self.fps
        sampling = _sampling(shot, sb, preset)
        # a character is in a shot when listed in `characters:` or mentioned as @id in its prompt
        cast = list(dict.fromkeys(shot.characters + [m for m in MENTION.findall(shot.prompt) if m in sb.characters]))
        prompt = compose_prompt(sb, preset, scene.description, shot, cast, sampling)
        characters = tuple(
            CharacterRef(cid, sb.characters[cid].name, sb.characters[cid].description,
                         tuple(self.asset(r) for r in sb.characters[cid].refs))
            for cid in cast)
        total = preset.shot_frames(shot, fps)
        # keyframe positions in shot frames; a frame shared by two segments belongs to the earlier one
        keyed = [(place(kf, total, preset.keyframe_rule), self.asset(kf.image)) for kf in shot.keyframes]
        if sampling["identity"] == "keyframe" and preset.pictures:
            keyed += self._identity_keyframe(shot, total, keyed, characters)
        segments: list[Segment] = []
        first = 0
        for index, size in enumerate(split_frames(total, preset)):
            conditions, deps = self._conditions(shot, index, first, size, keyed, segments[-1] if index else previous)
            model = preset if conditions else self.text_preset
            sampled = sampling if model is preset else _sampling(shot, sb, model)
            seg = Segment(
                id=segment_id(shot.id, take, index), shot=shot.id, index=index, first_frame=first, frames=size,
                width=self.width, height=self.height, fps=fps, model=model.name, engine=model.engine,
                prompt=prompt, negative=sampled["negative"], steps=sampled["steps"],
                guidance=sampled["guidance"], shift=sampled["shift"], seed=0,
                camera=shot.camera, conditions=tuple(sorted(conditions, key=lambda c: c.frame)),
                characters=characters, deps=tuple(deps), options=_engine_options(model),
                runtime_s=tuple((d, model.runtime(size, self.width, self.height, sampled["steps"],
                                                  sampled["guidance"], d))
                                for d in model.degrees),
                fit=sampled["fit"],
            )
            seg = replace(seg, seed=_seed(self.base_seed, shot, index, _content_hash(seg, model)))
            segments.append(replace(seg, hash=_content_hash(seg, model)))
            first += size - 1
        shot_plan = ShotPlan(shot.id, scene.id, total, tuple(s.id for s in segments), tuple(cast),
                             prompt, shot.camera, shot.crossfade_frames(fps))
        return shot_plan, segments

    @staticmethod
    def _identity_keyframe(shot: Shot, total: int, keyed: list[tuple[int, ImageRef]],
                           characters: tuple[CharacterRef, ...]) -> list[tuple[int, ImageRef]]:
        """`identity: keyframe`: the first reference picture of the shot's first character with one, as a
        condition on the shot's first frame when nothing else sets it, else on its last frame when nothing
        else does; nothing when both carry a picture or no character has a reference."""
        ref = next((ch.refs[0] for ch in characters if ch.refs), None)
        taken = {f for f, _ in keyed} | ({0} if shot.start else set())
        free = next((f for f in (0, total - 1) if f not in taken), None)
        return [] if ref is None or free is None else [(free, ref)]

    def _conditions(self, shot: Shot, index: int, first: int, size: int, keyed: list[tuple[int, ImageRef]],
                    upstream: Segment | None) -> tuple[list[Condition], list[str]]:
        """Pictures segment `index` (frames `first`..`first + size - 1` of its shot) is conditioned on,
        and the segments it waits for: the start picture or upstream segment at frame 0, then keyframes."""
        conditions: list[Condition] = []
        deps: list[str] = []
        if index == 0:
            if shot.start == PREVIOUS:
                conditions.append(Condition(0, ImageRef("segment", upstream.id, upstream.hash)))
                deps.append(upstream.id)
            elif shot.start:
                conditions.append(Condition(0, self.asset(shot.start)))
        else:
            conditions.append(Condition(0, ImageRef("segment", upstream.id, upstream.hash)))
            deps.append(upstream.id)
        lo = first if index == 0 else first + 1
        conditions += [Condition(f - first, img) for f, img in keyed if lo <= f < first + size]
        return conditions, deps
