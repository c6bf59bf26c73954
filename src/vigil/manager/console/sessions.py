"""Console sessions: an admin API key exchanged once for a session cookie.

The browser never keeps the API key: ``POST /ui/login`` checks it and sets an HttpOnly,
SameSite=Strict cookie holding a random session token. Only the token's SHA-256 is kept server
side. Every state-changing request made with the cookie must also carry the session's CSRF token in
``X-CSRF-Token`` (double submit, compared in constant time), and websocket upgrades made with the
cookie must come from the console's own origin, so another site cannot drive the admin API through
a logged-in browser. Sessions expire after ``ttl`` seconds of inactivity.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

__all__ = ["COOKIE_NAME", "CSRF_HEADER", "Session", "SessionStore"]

COOKIE_NAME = "vigil_console"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass
class Session:
    user: dict[str, Any]
    csrf: str
    expires: float


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class SessionStore:
    """In-memory sessions (a manager restart logs the console out, which is the safe default)."""

    def __init__(self, ttl: float = 8 * 3600, max_sessions: int = 1000) -> None:
        self.ttl = ttl
        self.max_sessions = max_sessions
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def create(self, user: dict[str, Any]) -> tuple[str, Session]:
        token = secrets.token_urlsafe(32)
        public_user = {k: v for k, v in user.items() if "key" not in k}
        session = Session(public_user, secrets.token_urlsafe(32), time.monotonic() + self.ttl)
        with self._lock:
            self._expire_locked()
            if len(self._sessions) >= self.max_sessions:
                oldest = min(self._sessions, key=lambda k: self._sessions[k].expires)
                del self._sessions[oldest]
            self._sessions[_digest(token)] = session
        return token, session

    def get(self, token: str | None) -> Session | None:
        if not token:
            return None
        with self._lock:
            session = self._sessions.get(_digest(token))
            if session is None or session.expires < time.monotonic():
                return None
            session.expires = time.monotonic() + self.ttl
            return session

    def drop(self, token: str | None) -> None:
        if token:
            with self._lock:
                self._sessions.pop(_digest(token), None)

    def _expire_locked(self) -> None:
        now = time.monotonic()
        for key in [k for k, s in self._sessions.items() if s.expires < now]:
            del self._sessions[key]

    @staticmethod
    def csrf_ok(session: Session, presented: str | None) -> bool:
        return bool(presented) and hmac.compare_digest(session.csrf, presented or "")
