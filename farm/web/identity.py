"""Who is asking: a per-user token (`Authorization: Bearer`, issued by `sakuga users add`), the studio's
signed session cookie (after signing in with that token on the sign-in page), or — only on a studio bound
to the loopback with nobody signed up — the local user who started it.

Every POST that is not made with a Bearer token must carry the session's CSRF token (`session.py`), the
local user's too: a page on another site could otherwise post to the loopback studio through the browser.
"""
from __future__ import annotations

from fastapi import HTTPException, Request

from farm.access.users import User, UserStore

from .session import COOKIE, CSRF_HEADER, SAFE_METHODS, Sessions, csrf_ok


class Identities:
    def __init__(self, users: UserStore | None, local: User | None, sessions: Sessions | None = None):
        self.users, self.local = users, local
        self.sessions = sessions or Sessions()

    def session(self, request: Request) -> dict | None:
        return self.sessions.read(request.cookies.get(COOKIE))

    def named(self, name: str | None) -> User | None:
        """The user a session names, while they are still one of the farm's users."""
        if not name or self.users is None:
            return None
        return next((u for u in self.users.list() if u.name == name), None)

    def __call__(self, request: Request) -> User:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer" and token:
            user = self.users.authenticate(token.strip()) if self.users else None
            if user is None:
                raise HTTPException(401, "this token is not a user's of this farm", {"WWW-Authenticate": "Bearer"})
            return user
        session = self.session(request)
        user = self.named(session and session.get("user")) or self.local
        if user is None:
            raise HTTPException(401, "sign in: send your token (sakuga users add NAME) as 'Authorization: Bearer "
                                     "TOKEN', or sign in on the studio's page", {"WWW-Authenticate": "Bearer"})
        if request.method not in SAFE_METHODS and not csrf_ok(session, request.headers.get(CSRF_HEADER)):
            raise HTTPException(403, "CSRF token missing or wrong: send the page's X-CSRF-Token header")
        return user
