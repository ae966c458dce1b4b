"""The whole studio app: the JSON API, its live events, the pages and their static files."""
from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from farm.api.protocol import FarmAPI

from . import editor, live, pages, signin, uploads
from .api import create_app
from .identity import Identities
from .page import SignIn


async def _sign_in(request: Request, e: SignIn) -> RedirectResponse:
    return RedirectResponse("/login", status_code=303)


def create_studio(farm: FarmAPI, *, root: Path, identities: Identities, outputs: Path | None = None) -> FastAPI:
    app = create_app(farm, root=root, identities=identities, outputs=outputs)
    app.include_router(live.router)
    app.include_router(uploads.router)
    for module in (pages, editor, signin):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static")
    app.add_exception_handler(SignIn, _sign_in)
    return app
