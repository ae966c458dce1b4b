"""Who is asking: a per-user token (`Authorization: Bearer`, issued by `sakuga users add`), or — only on a
studio bound to the loopback with nobody signed up — the local user who started it."""
from __future__ import annotations

from fastapi import HTTPException, Request

from farm.access.users import User, UserStore


class Identities:
    def __init__(self, users: UserStore | None, local: User | None):
        self.users, self.local = users, local

    def __call__(self, request: Request) -> User:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer" and token:
            user = self.users.authenticate(token.strip()) if self.users else None
            if user is None:
                raise HTTPException(401, "this token is not a user's of this farm", {"WWW-Authenticate": "Bearer"})
            return user
        if self.local is not None:
            return self.local
        raise HTTPException(401, "sign in: send your token (sakuga users add NAME) as 'Authorization: Bearer TOKEN'",
                            {"WWW-Authenticate": "Bearer"})
