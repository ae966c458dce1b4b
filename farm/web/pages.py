"""The studio's pages: Queue, Job, Shot and Workers, each with the fragments htmx swaps in when the
farm's events say something changed, and the actions they post (cancel, priority, move, retake,
approve) — calls to the same farm API the JSON routes use, as the signed-in user."""
from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Form, HTTPException, Request

from farm.access.guard import UserFarm
from farm.report.charts import gantt

from .api import _priority
from .page import render, viewer

logger = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)
Viewer = Annotated[UserFarm, Depends(viewer)]
ENDED = {"done", "failed", "interrupted", "cancelled"}


def _queue(farm: UserFarm) -> list:
    """The user's jobs in the order the farm takes them (priority, then first come); ended ones last."""
    jobs = list(enumerate(farm.jobs()))
    jobs.sort(key=lambda ij: (ij[1].state in ENDED, -ij[1].priority, ij[0]))
    return [j for _, j in jobs]


@router.get("/")
def queue(request: Request, farm: Viewer):
    return render(request, "queue.html.j2", user=farm.user, jobs=_queue(farm))


@router.get("/fragments/queue")
def queue_rows(request: Request, farm: Viewer):
    return render(request, "_queue.html.j2", user=farm.user, jobs=_queue(farm))


@router.post("/jobs/{job_id}/priority")
def priority(job_id: str, request: Request, farm: Viewer, value: Annotated[str, Form(alias="priority")]):
    _detail(farm, job_id)
    farm.set_priority(job_id, _priority(value))
    return queue_rows(request, farm)


@router.post("/jobs/{job_id}/move")
def move(job_id: str, request: Request, farm: Viewer, direction: Annotated[str, Form()]):
    """Up/down the queue: a priority just above the job ahead of it (or just below the one behind)."""
    active = [j for j in _queue(farm) if j.state not in ENDED]
    at = next((i for i, j in enumerate(active) if j.id == job_id), None)
    if at is None or direction not in ("up", "down"):
        raise HTTPException(404 if at is None else 422, f"no queued job {job_id!r} of yours to move {direction}")
    other = at - 1 if direction == "up" else at + 1
    if 0 <= other < len(active):
        step = 1 if direction == "up" else -1
        farm.set_priority(job_id, max(-1000, min(1000, active[other].priority + step)))
    return queue_rows(request, farm)


@router.post("/jobs/{job_id}/{action}")
def act(job_id: str, action: Literal["cancel", "pause", "resume"], request: Request, farm: Viewer):
    """Cancel, pause or resume a job of the user's (the farm API's methods of those names)."""
    _detail(farm, job_id)
    getattr(farm, action)(job_id)
    return queue_rows(request, farm)


def _detail(farm: UserFarm, job_id: str):
    detail = farm.job(job_id)
    if detail is None:
        raise HTTPException(404, f"no job {job_id!r} of yours")
    return detail


def _shot_state(statuses: list[str]) -> str:
    if statuses and all(s == "published" for s in statuses):
        return "done"
    for state in ("failed", "running"):
        if state in statuses:
            return state
    return "skipped" if statuses and all(s == "skipped" for s in statuses) else "pending"


def _job_view(detail) -> dict:
    """The shots in storyboard order with their state and latest finished frame, and the Gantt."""
    out = Path(detail.summary.out)
    status = {s.id: s.status for s in detail.segments}
    shots = []
    for shot in detail.shots:
        done = [sid for sid in shot.segments if status.get(sid) == "published"]
        preview = next((f"segments/{sid}.png" for sid in reversed(done) if (out / "segments" / f"{sid}.png").is_file()),
                       None)
        shots.append({"id": shot.id, "scene": shot.scene, "frames": shot.frames, "segments": len(shot.segments),
                      "done": len(done), "state": _shot_state([status.get(s, "pending") for s in shot.segments]),
                      "preview": preview})
    shot_of = {s.id: s.shot for s in detail.segments}
    chart = gantt([asdict(a) for a in detail.attempts], [s.id for s in detail.shots], shot_of)
    links = [(name, label) for name, label in (("report.html", "QC report"), ("episode.mp4", "episode"),
                                               ("timeline.otio", "timeline (OTIO)"), ("timeline.edl", "EDL"))
             if (out / name).is_file()]
    return {"job": detail.summary, "shots": shots, "gantt": chart, "links": links}


@router.get("/jobs/{job_id}")
def job(job_id: str, request: Request, farm: Viewer):
    return render(request, "job.html.j2", user=farm.user, **_job_view(_detail(farm, job_id)))


@router.get("/jobs/{job_id}/fragments/shots")
def job_shots(job_id: str, request: Request, farm: Viewer):
    return render(request, "_shots.html.j2", user=farm.user, **_job_view(_detail(farm, job_id)))


def _planned_shot(detail, shot_id: str) -> dict:
    """What the storyboard asked of the shot (from the job's plan.json): prompt, characters, camera, conditions."""
    try:
        plan = json.loads((Path(detail.summary.out) / "plan.json").read_text())
    except (OSError, ValueError):
        return {}
    shot = next((s for s in plan.get("shots", []) if s["id"] == shot_id), {})
    segments = [g for g in plan.get("segments", []) if g["shot"] == shot_id]
    return {**shot, "conditions": [c | {"segment": g["id"]} for g in segments for c in g["conditions"]],
            "seeds": [g["seed"] for g in segments]}


def _takes(farm: UserFarm, job_id: str, shot: str) -> list | None:
    """The shot's takes, or None from a farm without takes (the takes backend is its own part)."""
    takes = getattr(farm, "takes", None)
    return None if takes is None else takes(job_id, shot)


def _shot_context(farm: UserFarm, job_id: str, shot_id: str) -> dict:
    detail = _detail(farm, job_id)
    shot = next((s for s in detail.shots if s.id == shot_id), None)
    if shot is None:
        raise HTTPException(404, f"job {job_id} has no shot {shot_id!r}")
    items = [s for s in detail.segments if s.shot == shot_id]   # every take's segments, and its stages
    ids = {s.id for s in items}
    attempts = [a for a in detail.attempts if a.segment in ids]
    return {"job": detail.summary, "shot": shot, "planned": _planned_shot(detail, shot_id), "attempts": attempts,
            "segments": items, "takes": _takes(farm, job_id, shot_id)}


@router.get("/jobs/{job_id}/shots/{shot_id}")
def shot(job_id: str, shot_id: str, request: Request, farm: Viewer):
    return render(request, "shot.html.j2", user=farm.user, **_shot_context(farm, job_id, shot_id))


@router.get("/jobs/{job_id}/shots/{shot_id}/fragments/takes")
def shot_takes(job_id: str, shot_id: str, request: Request, farm: Viewer):
    return render(request, "_takes.html.j2", user=farm.user, **_shot_context(farm, job_id, shot_id))


@router.post("/jobs/{job_id}/shots/{shot_id}/retake")
def retake(job_id: str, shot_id: str, request: Request, farm: Viewer, prompt: Annotated[str, Form()] = "",
           seed: Annotated[str, Form()] = "", motion: Annotated[str, Form()] = "",
           aesthetic: Annotated[str, Form()] = ""):
    _shot_context(farm, job_id, shot_id)
    if not hasattr(farm, "retake"):
        raise HTTPException(501, "this farm does not make takes yet")
    overrides = {"prompt": prompt.strip() or None, "seed": _number(seed, "seed", int),
                 "motion": _number(motion, "motion", float), "aesthetic": _number(aesthetic, "aesthetic", float)}
    farm.retake(job_id, shot_id, {k: v for k, v in overrides.items() if v is not None})
    return shot_takes(job_id, shot_id, request, farm)


@router.post("/jobs/{job_id}/shots/{shot_id}/takes/{take}/approve")
def approve(job_id: str, shot_id: str, take: int, request: Request, farm: Viewer):
    _shot_context(farm, job_id, shot_id)
    if not hasattr(farm, "approve"):
        raise HTTPException(501, "this farm does not make takes yet")
    farm.approve(job_id, shot_id, take)
    return shot_takes(job_id, shot_id, request, farm)


def _number(text: str, field: str, kind):
    from storyboard.errors import InputError

    if not text.strip():
        return None
    try:
        return kind(text)
    except ValueError:
        raise InputError.single(field, f"{text!r} is not a number") from None


@router.get("/workers")
def workers(request: Request, farm: Viewer):
    try:
        slots = farm.workers()
    except (AttributeError, NotImplementedError):
        raise HTTPException(501, "this farm does not list its workers") from None
    work: dict[str, list[str]] = {}
    for summary in farm.jobs():
        if summary.state in ENDED:
            continue
        for seg in _detail(farm, summary.id).segments:
            if seg.status == "running" and seg.worker:
                for name in seg.worker.split("+"):
                    work.setdefault(name, []).append(f"{summary.id} {seg.id}")
    nodes = sorted({(w.node, w.node_id) for w in slots})
    return render(request, "workers.html.j2", user=farm.user, slots=slots, nodes=nodes, work=work)

