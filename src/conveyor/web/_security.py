"""Who may read and who may act: the token, the UI's session cookie and its CSRF check.

- Actions always need the token: ``Authorization: Bearer <token>`` on the API; on the UI a
  session cookie (``HttpOnly``, ``SameSite=Strict``) set by ``/login``, and on every form
  a CSRF value derived from that session (a page of another site cannot read it).
- Reads need no token when ``reads_need_token`` is off (the UI bound to loopback only);
  otherwise the same bearer header or session cookie.
- The ``Host`` header is checked by Starlette's ``TrustedHostMiddleware`` (see ``_app``),
  so a DNS-rebinding page cannot talk to a UI bound to 127.0.0.1.

The session and CSRF values are HMACs of the token: the token itself never leaves the
login form, and a restart with a new token ends every session.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from dataclasses import dataclass

from starlette.requests import Request

__all__ = ["COOKIE", "Guard", "is_loopback", "new_token"]

COOKIE = "conveyor_session"


def new_token() -> str:
    """A fresh random token (printed once by ``conveyor ui``)."""
    return secrets.token_urlsafe(24)


def is_loopback(host: str) -> bool:
    """Whether binding to ``host`` serves only this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class Guard:
    """Checks requests against one token."""

    token: str
    reads_need_token: bool = False

    def _mac(self, label: str, value: str = "") -> str:
        data = f"{label}:{value}".encode()
        return hmac.new(self.token.encode(), data, hashlib.sha256).hexdigest()

    @property
    def session(self) -> str:
        """The session cookie's value after a login with the token."""
        return self._mac("session")

    def csrf(self) -> str:
        """The value every UI form must carry with the session cookie."""
        return self._mac("csrf", self.session)

    def token_ok(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), self.token.encode())

    def bearer_ok(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        return scheme.lower() == "bearer" and self.token_ok(value.strip())

    def session_ok(self, request: Request) -> bool:
        value = request.cookies.get(COOKIE)
        return value is not None and hmac.compare_digest(value, self.session)

    def csrf_ok(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given, self.csrf())

    def may_read(self, request: Request) -> bool:
        return not self.reads_need_token or self.bearer_ok(request) or self.session_ok(request)
