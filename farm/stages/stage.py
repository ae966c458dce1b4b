"""Planning the delivery stages of a job: for each `--deliver` profile and each shot, what turns the
shot's rendered segments into that profile's picture.

Per shot and profile, at most two stages, in this order:
- `upscale`: the shot's segments joined (the frame each chained segment shares with the one before is
  dropped) → the profile's exact size, at the render's rate. On a GPU worker when a super-resolution
  net runs; a crop or resize alone runs on a CPU lane.
- `retime`: the (upscaled) shot → the profile's rate (`hold`, `blend` or `motion`), on a CPU lane.
Upscaling first means the net sees each drawing once (16 fps, not the 1.5x frames of 23.976).

A stage is farm work like a segment: an id (`<shot>@<profile>.<kind>`), the ids it waits for, a
content hash over its inputs' hashes and everything that changes its pixels, a cost estimate, ledger
rows and attempts, a place in the segment cache. Editing one shot changes that shot's segment hashes,
so exactly its stages get new hashes; every other shot's stages come back from the cache or the folder.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Literal

from engine.upscale.presets import UpscalerPreset
from farm.delivery.profiles import DeliveryPlan, load_profile, plan_delivery
from storyboard.errors import InputError
from storyboard.plan import Plan, ShotPlan

from . import cost

STAGE_VERSION = 1
STAGE_CRF = 12            # stage outputs are editors' sources and the delivery's input: near lossless
STAGE_PRESET = "veryfast"

Kind = Literal["upscale", "retime"]


@dataclass(frozen=True)
class Stage:
    id: str                              # "<shot>@<profile>.<kind>"
    shot: str
    kind: Kind
    profile: str
    deps: tuple[str, ...]                # the shot's segments, or the upscale stage before a retime
    inputs: tuple[str, ...]              # their content hashes, in order
    resource: Literal["gpu", "cpu"]
    model: str                           # what a worker keeps loaded for it ("sr-tiny"), else the kind
    frames_in: int
    frames: int                          # frames out
    width: int                           # out
    height: int
    fps_in: Fraction
    fps: Fraction                        # out
    crop: tuple[int, int, int, int] | None = None   # upscale: the region of the render kept
    upscaler: UpscalerPreset | None = None           # upscale: the net, when one runs
    method: str | None = None                        # retime: hold, blend, motion
    runtime_s: tuple[tuple[int, float], ...] = ()
    hash: str = ""

    def runtime(self, degree: int = 1) -> float:
        return dict(self.runtime_s)[degree]

    @property
    def timeout_s(self) -> float:
        return cost.timeout_s(self.runtime())

    def params(self) -> dict:
        """Everything besides the inputs that decides the output's pixels (what the hash covers)."""
        common = {"kind": self.kind, "width": self.width, "height": self.height, "fps_in": str(self.fps_in),
                  "fps": str(self.fps), "crf": STAGE_CRF, "version": STAGE_VERSION}
        if self.kind == "upscale":
            net = self.upscaler.model_dump(mode="json", exclude={"cost", "description", "memory_gb"}) \
                if self.upscaler else None
            return {**common, "crop": list(self.crop), "upscaler": net}
        return {**common, "method": self.method}

    def to_json(self) -> dict:
        return {"id": self.id, "shot": self.shot, "kind": self.kind, "profile": self.profile,
                "deps": list(self.deps), "resource": self.resource, "model": self.model,
                "frames_in": self.frames_in, "frames": self.frames, "width": self.width, "height": self.height,
                "fps": str(self.fps), "hash": self.hash, "runtime_s": {"1": round(self.runtime(), 3)},
                **({"upscaler": self.upscaler.name} if self.upscaler else {}),
                **({"method": self.method} if self.method else {})}


def _hash(stage: Stage) -> str:
    text = json.dumps({"inputs": list(stage.inputs), **stage.params()}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def delivery_plans(plan: Plan, profiles: list[str], upscaler: str | None = None) -> list[DeliveryPlan]:
    """The `--deliver` profiles checked against this render (InputError naming the profile's line, or
    the option, for an unknown name, a size the upscaler cannot reach, a rate the EDL cannot carry)."""
    plans, problems = [], []
    for name in dict.fromkeys(profiles):
        try:
            plans.append(plan_delivery(load_profile(name), plan.width, plan.height, plan.fps, upscaler))
        except InputError as e:
            problems += e.problems
    if problems:
        raise InputError(problems)
    return plans


def plan_stages(plan: Plan, deliveries: list[DeliveryPlan]) -> tuple[Stage, ...]:
    """Every stage of every shot for every delivery, in dependency order."""
    by_id = {s.id: s for s in plan.segments}
    stages: list[Stage] = []
    for d in deliveries:
        for shot in plan.shots:
            stages += _shot_stages(plan, shot, d, [by_id[g].hash for g in shot.segments])
    return tuple(stages)


def _shot_stages(plan: Plan, shot: ShotPlan, d: DeliveryPlan, hashes: list[str]) -> list[Stage]:
    size = (d.profile.size.width, d.profile.size.height)
    src = Fraction(plan.fps)
    deps, inputs, out = tuple(shot.segments), tuple(hashes), []
    if (plan.width, plan.height) != size:
        crop = d.fit.crop
        crop_size = (crop[2] - crop[0], crop[3] - crop[1])
        net = d.upscaler
        stage = Stage(f"{shot.id}@{d.profile.name}.upscale", shot.id, "upscale", d.profile.name, deps, inputs,
                      "gpu" if net else "cpu", net.name if net else "resize", shot.frames, shot.frames, *size,
                      src, src, crop, net,
                      runtime_s=((1, cost.upscale_s(net, shot.frames, crop_size, size)),))
        stage = replace(stage, hash=_hash(stage))
        out.append(stage)
        deps, inputs = (stage.id,), (stage.hash,)
    if d.retime is not None:
        frames = d.frames(shot.frames)
        stage = Stage(f"{shot.id}@{d.profile.name}.retime", shot.id, "retime", d.profile.name, deps, inputs,
                      "cpu", "retime", shot.frames, frames, *size, src, d.profile.fps, method=d.retime,
                      runtime_s=((1, cost.retime_s(d.retime, frames, size)),))
        out.append(replace(stage, hash=_hash(stage)))
    return out


def last_stage(stages: tuple[Stage, ...], shot: str, profile: str) -> Stage | None:
    """The stage whose output is the shot's picture in `profile` (None: the segments already are)."""
    return next((s for s in reversed(stages) if s.shot == shot and s.profile == profile), None)
