"""The inspector's session: a signed cookie, and a CSRF token bound to it.

Nothing is kept on the server. The cookie holds an expiry and a random nonce, signed
with HMAC-SHA256 under a key derived from the read-API key, so every receiver behind
a load balancer accepts it, and changing the API key signs everyone out. The CSRF
token is a second MAC of the same nonce: a page can only be made to post by someone
who could read the session's pages.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

COOKIE = "receiver_ui"
LIFETIME_SECONDS = 12 * 3600


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


@dataclass(frozen=True)
class Session:
    nonce: str
    expires: int
    csrf: str


class Sessions:
    def __init__(self, api_key: str, lifetime: int = LIFETIME_SECONDS) -> None:
        self._key = hmac.new(
            api_key.encode("utf-8"), b"receiver inspector session v1", hashlib.sha256
        ).digest()
        self.lifetime = lifetime

    def _mac(self, purpose: str, message: str) -> str:
        return _b64(hmac.new(self._key, f"{purpose}:{message}".encode(), hashlib.sha256).digest())

    def issue(self) -> tuple[str, Session]:
        """A new cookie value and the session it stands for."""
        expires = int(time.time()) + self.lifetime
        nonce = secrets.token_urlsafe(16)
        body = f"{expires}.{nonce}"
        return f"{body}.{self._mac('session', body)}", self._session(nonce, expires)

    def _session(self, nonce: str, expires: int) -> Session:
        return Session(nonce, expires, self._mac("csrf", nonce))

    def read(self, cookie: str | None) -> Session | None:
        """The session a cookie stands for, or None if it is missing, forged or expired."""
        if not cookie or cookie.count(".") != 2:
            return None
        expires, nonce, mac = cookie.split(".")
        if not hmac.compare_digest(mac.encode(), self._mac("session", f"{expires}.{nonce}").encode()):
            return None
        if not expires.isdigit() or int(expires) < time.time():
            return None
        return self._session(nonce, int(expires))

    @staticmethod
    def csrf_ok(session: Session, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), session.csrf.encode())
