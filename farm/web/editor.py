"""The Storyboard page: a storyboard from under the studio's root in an editor area; "check" runs the
CLI's own validator on the edited text (problems inline as `FILE:LINE:COL`) and shows the plan preview;
"render" checks, saves the text over the file and submits it as a job. A storyboard folder can also
be uploaded as a zip (`uploads.py`: confined, capped and validated) and is then opened here.

The edited text is checked from a hidden file beside the original (so its pictures resolve the same
way), removed afterwards; nothing is saved or submitted unless it validates.
"""
from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, HTTPException, Request, UploadFile
from fastapi.responses import Response

from farm.access.guard import UserFarm
from storyboard.errors import InputError, Problem

from . import api, uploads
from .page import MAX_FORM_BYTES, render, viewer

logger = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)
Viewer = Annotated[UserFarm, Depends(viewer)]
SUFFIXES = (".yaml", ".yml", ".pv", ".md", ".txt")
LISTED = 200


def _boards(root: Path) -> list[str]:
    found = []
    for dirpath, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [str((Path(dirpath) / f).relative_to(root)) for f in sorted(files)
                  if f.endswith(SUFFIXES) and not f.startswith(".")]
        if len(found) >= LISTED:
            break
    return found[:LISTED]


def _file(request: Request, path: str) -> Path:
    file = api.under(request.app.state.root, path, "path")
    if file.suffix.lower() not in SUFFIXES:
        raise InputError.single("path", f"{path!r} is not a storyboard ({', '.join(SUFFIXES)})")
    return file


def _checked(file: Path, text: str, shown: str):
    """The plan of `text` as if it were `file` (problems name `shown`), via a hidden file beside it."""
    from storyboard.load import load
    from storyboard.plan import build_plan

    if len(text.encode()) > MAX_FORM_BYTES:
        raise HTTPException(413, f"a storyboard is at most {MAX_FORM_BYTES >> 10} KiB here")
    with tempfile.NamedTemporaryFile("w", dir=file.parent, prefix=".studio-check-", suffix=file.suffix,
                                     encoding="utf-8", delete=True) as draft:
        draft.write(text)
        draft.flush()
        try:
            return build_plan(load(draft.name))
        except InputError as e:
            raise InputError([Problem(shown if p.file == draft.name else p.file, p.line, p.col, p.message)
                              for p in e.problems]) from None


@router.get("/storyboard")
def storyboard(request: Request, farm: Viewer, path: str = ""):
    root = request.app.state.root
    text = _file(request, path).read_text(encoding="utf-8", errors="replace") if path else ""
    return render(request, "storyboard.html.j2", user=farm.user, boards=_boards(root), path=path, text=text)


def _check_page(request: Request, farm: UserFarm, path: str, text: str):
    try:
        plan = _checked(_file(request, path), text, path)
    except InputError as e:
        return None, render(request, "_check.html.j2", 422, user=farm.user, problems=e.problems, plan=None)
    return plan, render(request, "_check.html.j2", user=farm.user, problems=[], plan=plan)


@router.post("/storyboard/check")
def check(request: Request, farm: Viewer, path: Annotated[str, Form()], text: Annotated[str, Form()]):
    return _check_page(request, farm, path, text)[1]


@router.post("/storyboard/render")
def render_board(request: Request, farm: Viewer, path: Annotated[str, Form()], text: Annotated[str, Form()],
                 priority: Annotated[str, Form()] = "normal"):
    plan, page = _check_page(request, farm, path, text)
    if plan is None:
        return page
    file = _file(request, path)
    if file.read_text(encoding="utf-8", errors="replace") != text:
        draft = file.with_name(f".{file.name}.studio-save")
        draft.write_text(text, encoding="utf-8")
        draft.replace(file)          # whole or not at all
    submitted = api.submit(api.SubmitBody(storyboard=path, priority=priority), farm, request)
    return Response(status_code=204, headers={"HX-Redirect": f"/jobs/{submitted['id']}"})


@router.post("/storyboard/upload")
async def upload(request: Request, farm: Viewer, archive: UploadFile):
    """The upload (`uploads.py`), then its first storyboard opened; problems inline, as for "check"."""
    try:
        result = await uploads.upload(archive, farm, request)
    except InputError as e:
        return render(request, "_check.html.j2", 422, user=farm.user, problems=e.problems, plan=None)
    first = result["storyboards"][0]["path"]
    return Response(status_code=204, headers={"HX-Redirect": f"/storyboard?path={quote(first)}"})
