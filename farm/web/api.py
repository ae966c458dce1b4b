"""The farm API over HTTP, as the signed-in user may use it (`farm.access.guard.UserFarm`): the contract
the studio's pages and people's scripts call. FastAPI serves its OpenAPI at `/openapi.json`.

Every path from a request is resolved and confined: storyboards under the studio's root, outputs under
the user's folder of the farm's root, files only from that job's output folder. Bad input is a 422 with
the same `FILE:LINE:COL` problems the CLI prints; someone else's job is a 404 to see and a 403 to change.
"""
# no `from __future__ import annotations`: FastAPI reads the routes' annotations, a local alias among them

import logging
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, ConfigDict

from farm.access.guard import Forbidden, UserFarm
from farm.api.protocol import FarmAPI, JobRequest, UnknownJob
from farm.job.job import Job
from farm.scheduling.priority import parse_priority
from storyboard.errors import InputError

from .identity import Identities

logger = logging.getLogger(__name__)


class SubmitBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    storyboard: str             # a path under the studio's root
    model: str | None = None
    priority: int | str = "normal"
    out: str | None = None      # inside the user's folder of the farm's root (default: the job's id)
    deliver: list[str] = []     # delivery profiles and masters, as `--deliver`
    upscaler: str | None = None


class TakeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prompt: str | None = None    # checked by the storyboard's own rules (storyboard/takes.py): 422 otherwise
    seed: int | None = None
    motion: float | None = None
    aesthetic: float | None = None


class PriorityBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    priority: int | str


def problems(e: InputError) -> dict:
    return {"problems": [{"file": p.file, "line": p.line, "col": p.col, "message": p.message, "text": str(p)}
                         for p in e.problems]}


def under(root: Path, relative: str, field: str) -> Path:
    """`relative` inside `root`, symlinks followed; InputError naming the field otherwise."""
    path = Path(relative)
    if not relative or path.is_absolute() or ".." in path.parts:
        raise InputError.single(field, f"{relative!r} is not a path inside the studio's root")
    resolved = (root / path).resolve()
    if not resolved.is_relative_to(root.resolve()):
        raise InputError.single(field, f"{relative!r} leads outside the studio's root")
    return resolved


def _priority(value: int | str) -> int:
    try:
        return parse_priority(str(value))
    except ValueError as e:
        raise InputError.single("priority", str(e)) from None


router = APIRouter(prefix="/api")


def signed_in(request: Request) -> UserFarm:
    """The farm as the request's user may use it (401 when nobody is signed in)."""
    state = request.app.state
    return UserFarm(state.farm, state.identities(request), state.outputs)


Mine = Annotated[UserFarm, Depends(signed_in)]


def _exists(request: Request, job_id: str) -> None:
    if request.app.state.farm.job(job_id) is None:
        raise HTTPException(404, f"no job {job_id!r}")


def _detail(farm: UserFarm, job_id: str):
    detail = farm.job(job_id)
    if detail is None:
        raise HTTPException(404, f"no job {job_id!r} of yours")
    return detail


@router.get("/jobs")
def jobs(farm: Mine) -> list[dict]:
    return [s.to_json() for s in farm.jobs()]


@router.post("/jobs")
def submit(body: SubmitBody, farm: Mine, request: Request) -> dict:
    from storyboard.load import load
    from storyboard.plan import build_plan

    file = under(request.app.state.root, body.storyboard, "storyboard")
    plan = build_plan(load(file, model=body.model))
    priority = _priority(body.priority)
    assets = {ref: Path(p).read_bytes() for ref, p in plan.assets.items()}   # a service cannot read them
    from farm.delivery.options import check_delivery, delivery

    config = {"source": str(file), "engine": body.model, "priority": priority, "submitted": True,
              **delivery(body.deliver, body.upscaler)}
    check_delivery(plan, config, weights=False)   # the workers load the nets, wherever they are
    summary = farm.submit(JobRequest(plan, body.out, priority, config, assets, Job.new_id(file.stem)))
    logger.info("%s: submitted by %s from %s", summary.id, farm.user.name, body.storyboard)
    return {"id": summary.id, "out": summary.out}


@router.get("/jobs/{job_id}")
def job(job_id: str, farm: Mine) -> dict:
    return _detail(farm, job_id).to_json()


@router.post("/jobs/{job_id}/cancel")
def cancel(job_id: str, farm: Mine, request: Request) -> dict:
    _exists(request, job_id)
    return {"cancelling": farm.cancel(job_id)}


@router.post("/jobs/{job_id}/pause")
def pause(job_id: str, farm: Mine, request: Request) -> dict:
    _exists(request, job_id)
    return {"paused": farm.pause(job_id)}


@router.post("/jobs/{job_id}/resume")
def resume(job_id: str, farm: Mine, request: Request) -> dict:
    _exists(request, job_id)
    return {"resumed": farm.resume(job_id)}


@router.post("/jobs/{job_id}/priority")
def set_priority(job_id: str, body: PriorityBody, farm: Mine, request: Request) -> dict:
    _exists(request, job_id)
    priority = _priority(body.priority)
    return {"changed": farm.set_priority(job_id, priority), "priority": priority}


@router.get("/jobs/{job_id}/files/{path:path}")
def file(job_id: str, path: str, farm: Mine) -> FileResponse:
    target = under(Path(_detail(farm, job_id).summary.out), path, "path")
    if not target.is_file() or target.name.startswith("."):
        raise HTTPException(404, f"{path!r} is not a file of job {job_id}")
    return FileResponse(target)


@router.get("/jobs/{job_id}/shots/{shot}/takes")
def takes(job_id: str, shot: str, farm: Mine) -> list[dict]:
    return [t.to_json() for t in farm.takes(job_id, shot)]


@router.post("/jobs/{job_id}/shots/{shot}/takes")
def retake(job_id: str, shot: str, body: TakeBody, farm: Mine) -> dict:
    take = farm.retake(job_id, shot, body.model_dump(exclude_none=True))
    logger.info("%s: take %d of %s by %s", job_id, take, shot, farm.user.name)
    return {"take": take}


@router.post("/jobs/{job_id}/shots/{shot}/takes/{take}/approve")
def approve(job_id: str, shot: str, take: int, farm: Mine) -> dict:
    farm.approve(job_id, shot, take)
    return {"approved": take}


async def _unknown_job(request: Request, e: UnknownJob) -> JSONResponse:
    return JSONResponse({"detail": str(e)}, status_code=404)


async def _input_error(request: Request, e: InputError) -> JSONResponse:
    return JSONResponse(problems(e), status_code=422)


async def _forbidden(request: Request, e: Forbidden) -> JSONResponse:
    return JSONResponse({"detail": str(e)}, status_code=403)


def create_app(farm: FarmAPI, *, root: Path, identities: Identities, outputs: Path | None = None) -> FastAPI:
    """The API over `farm`; storyboards come from under `root`; outputs under `outputs`/USER (default:
    the farm's root)."""
    app = FastAPI(title="sakuga studio", description=__doc__)
    app.state.farm, app.state.root, app.state.identities, app.state.outputs = farm, root, identities, outputs
    app.include_router(router)
    app.add_exception_handler(InputError, _input_error)
    app.add_exception_handler(Forbidden, _forbidden)
    app.add_exception_handler(UnknownJob, _unknown_job)
    return app
