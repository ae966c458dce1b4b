"""The farm's users: named accounts with a per-user token, issued by `sakuga users` on the head.

Kept in SQLite in the farm's home (`$SAKUGA_FARM_HOME`, beside the queue's registry). A token is shown
once, when it is issued, and stored only as its SHA-256: it is 32 random bytes, so a plain hash is as
strong as a slow one, and the file leaks nothing that signs anyone in. Admins may cancel and reprioritise
anyone's job; every user may act on their own.
"""
from __future__ import annotations

import hashlib
import re
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from farm.cluster.registry import farm_home
from storyboard.errors import InputError

NAME = re.compile(r"[a-z_][a-z0-9_.-]{0,31}")   # what POSIX user names allow: it names a folder


@dataclass(frozen=True)
class User:
    name: str
    admin: bool = False


def check_name(name: str, field: str = "user") -> str:
    if not NAME.fullmatch(name or ""):
        raise InputError.single(field, f"{name!r} is not a user name: lowercase letters, digits, '_', '.', '-', "
                                       "starting with a letter or '_', at most 32 characters")
    return name


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class UserStore:
    def __init__(self, path: Path | None = None):
        self.path = path or farm_home() / "users.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.lock = threading.Lock()
        self.db = sqlite3.connect(self.path, timeout=10.0, check_same_thread=False, isolation_level=None)
        self.path.chmod(0o600)   # the digests sign nobody in, but who the users are is the farm's business
        self.db.execute("PRAGMA journal_mode=DELETE")
        self.db.execute("CREATE TABLE IF NOT EXISTS users(name TEXT PRIMARY KEY, digest TEXT UNIQUE, "
                        "admin INTEGER NOT NULL, created REAL NOT NULL)")

    def add(self, name: str, admin: bool = False) -> str:
        """A new user; returns their token (the only time it is seen)."""
        check_name(name)
        token = f"sk-{name}-{secrets.token_urlsafe(32)}"
        with self.lock:
            try:
                self.db.execute("INSERT INTO users(name, digest, admin, created) VALUES(?,?,?,?)",
                                (name, _digest(token), int(admin), time.time()))
            except sqlite3.IntegrityError:
                raise InputError.single("user", f"{name!r} already exists (remove it first to issue a new token)") \
                    from None
        return token

    def remove(self, name: str) -> bool:
        with self.lock:
            return self.db.execute("DELETE FROM users WHERE name=?", (name,)).rowcount > 0

    def list(self) -> list[User]:
        with self.lock:
            rows = self.db.execute("SELECT name, admin FROM users ORDER BY name").fetchall()
        return [User(name, bool(admin)) for name, admin in rows]

    def authenticate(self, token: str | None) -> User | None:
        """The user whose token this is, or None."""
        if not token or len(token) > 256:
            return None
        with self.lock:
            row = self.db.execute("SELECT name, admin FROM users WHERE digest=?", (_digest(token),)).fetchone()
        return User(row[0], bool(row[1])) if row else None

    def close(self) -> None:
        self.db.close()
