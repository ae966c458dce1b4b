"""The studio's browser session: a signed, HttpOnly, SameSite=Strict cookie naming the signed-in user
(or nobody yet) and the session's CSRF token.

A page's every POST carries that token back (the `X-CSRF-Token` header htmx sends, or a form field on
the sign-in form), which a page on another site cannot read, so it cannot forge the POST. A request with
`Authorization: Bearer` needs none: a browser never attaches that header cross-site on its own. The
signing key is random per studio process: restarting the studio signs everyone out.
"""
from __future__ import annotations

import hmac
import secrets

from itsdangerous import BadSignature, URLSafeTimedSerializer

COOKIE = "sakuga_session"
CSRF_HEADER = "x-csrf-token"
MAX_AGE_S = 12 * 3600          # a working day; then sign in again
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class Sessions:
    def __init__(self, secret: bytes | None = None, *, secure: bool = False):
        self.signer = URLSafeTimedSerializer(secret or secrets.token_bytes(32), salt="sakuga-studio-session")
        self.secure = secure     # a studio behind TLS sets the cookie's Secure flag

    def new(self, user: str | None = None) -> dict:
        return {"user": user, "csrf": secrets.token_urlsafe(24)}

    def read(self, cookie: str | None) -> dict | None:
        """The session a cookie carries, or None when it is absent, forged or too old."""
        if not cookie or len(cookie) > 4096:
            return None
        try:
            data = self.signer.loads(cookie, max_age=MAX_AGE_S)
        except BadSignature:        # SignatureExpired is one too
            return None
        return data if isinstance(data, dict) and isinstance(data.get("csrf"), str) else None

    def set(self, response, session: dict) -> None:
        response.set_cookie(COOKIE, self.signer.dumps(session), max_age=MAX_AGE_S, httponly=True,
                            samesite="strict", secure=self.secure, path="/")

    def clear(self, response) -> None:
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")


def csrf_ok(session: dict | None, sent: str | None) -> bool:
    return bool(session and sent) and hmac.compare_digest(session["csrf"].encode(), sent.encode())
