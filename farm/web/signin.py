"""Signing in and out of a studio that has users: the user's token (from `sakuga users add`) once, on a
form, for a signed session cookie. The form carries the pre-session's CSRF token like every POST."""
from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import RedirectResponse, Response

from .page import render
from .session import csrf_ok

logger = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)


@router.get("/login")
def login_page(request: Request):
    return render(request, "login.html.j2", error=None)


@router.post("/login")
def login(request: Request, token: Annotated[str, Form()], csrf: Annotated[str, Form()]):
    identities = request.app.state.identities
    if not csrf_ok(identities.session(request), csrf):
        raise HTTPException(403, "CSRF token missing or wrong: reload the sign-in page")
    user = identities.users.authenticate(token.strip()) if identities.users else None
    if user is None:
        logger.info("a sign-in with a wrong token")
        return render(request, "login.html.j2", 401, error="That token is not one of this farm's users'.")
    response = RedirectResponse("/", status_code=303)
    identities.sessions.set(response, identities.sessions.new(user.name))   # a new CSRF token with the new user
    logger.info("%s signed in", user.name)
    return response


@router.post("/logout")
def logout(request: Request):
    identities = request.app.state.identities
    if not csrf_ok(identities.session(request), request.headers.get("x-csrf-token")):
        raise HTTPException(403, "CSRF token missing or wrong")
    response = Response(status_code=204, headers={"HX-Redirect": "/login"})   # htmx goes there
    identities.sessions.clear(response)
    return response
