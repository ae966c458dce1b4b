"""What every studio page shares: the templates (Jinja2, autoescaped), the signed-in viewer — sent to the
sign-in page when nobody is — and the render that hands the page its session's CSRF token."""
from __future__ import annotations

from pathlib import Path

from fastapi import HTTPException, Request
from fastapi.templating import Jinja2Templates

from farm.access.guard import UserFarm

from .api import signed_in

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
templates.env.autoescape = True          # every template, whatever its name ends with
MAX_FORM_BYTES = 1 << 20                 # a storyboard is text: a MiB is a very long episode


class SignIn(Exception):
    """Nobody is signed in: the page answers with the sign-in page."""


def session_of(request: Request) -> dict:
    """The request's session, or a fresh one (sent with the page) that names nobody yet."""
    if getattr(request.state, "session", None) is None:
        sessions = request.app.state.identities
        session = sessions.session(request)
        request.state.fresh = session is None
        request.state.session = session or sessions.sessions.new()
    return request.state.session


def viewer(request: Request) -> UserFarm:
    """The farm as the signed-in user may use it, for a page."""
    session_of(request)
    try:
        return signed_in(request)
    except HTTPException as e:
        if e.status_code == 401:
            raise SignIn() from None
        raise


def render(request: Request, name: str, status: int = 200, **context):
    session = session_of(request)
    user = context.pop("user", None)
    response = templates.TemplateResponse(request, name, {"csrf": session["csrf"], "user": user, **context},
                                          status_code=status)
    if getattr(request.state, "fresh", False):
        request.app.state.identities.sessions.set(response, session)
    return response


def duration(seconds: float | None) -> str:
    if seconds is None or seconds <= 0:
        return "—"
    minutes, s = divmod(int(round(seconds)), 60)
    hours, m = divmod(minutes, 60)
    return f"{hours} h {m:02d} min" if hours else f"{m} min {s:02d} s" if m else f"{s} s"


templates.env.filters["duration"] = duration
