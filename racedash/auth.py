"""Team access: who may list, download, replay and delete recordings.

The team token comes from config/env; when none is set one is generated at
start and printed with a ready-to-open login URL. Logging in sets a signed
cookie; scripts may send ``Authorization: Bearer <token>`` instead. Viewing a
live session needs no login: its secret id is the right to view.
"""

from __future__ import annotations

import hmac
import secrets
from http.cookies import CookieError, SimpleCookie

import tornado.web

COOKIE_NAME = "racedash_team"
COOKIE_DAYS = 30


class TeamAccess:
    def __init__(self, token: str, cookie_secret: bytes) -> None:
        self.generated = not token
        self.token = token or secrets.token_urlsafe(24)
        self.cookie_secret = cookie_secret

    def is_token(self, candidate: object) -> bool:
        return isinstance(candidate, str) and hmac.compare_digest(candidate.encode(), self.token.encode())

    def login_url(self, base_url: str) -> str:
        return f"{base_url.rstrip('/')}/login?token={self.token}"

    def is_team_cookie(self, value: str | None) -> bool:
        if not value:
            return False
        decoded = tornado.web.decode_signed_value(
            self.cookie_secret, COOKIE_NAME, value, max_age_days=COOKIE_DAYS
        )
        return decoded == b"team"

    def is_team_environ(self, environ: dict) -> bool:
        """For Socket.IO connections: the same cookie, read from the handshake headers."""
        raw = environ.get("HTTP_COOKIE")
        if not raw:
            return False
        try:
            cookie = SimpleCookie(raw)
        except CookieError:
            return False
        morsel = cookie.get(COOKIE_NAME)
        return self.is_team_cookie(morsel.value if morsel else None)

    def is_team_request(self, handler: tornado.web.RequestHandler) -> bool:
        header = handler.request.headers.get("Authorization", "")
        if header.startswith("Bearer ") and self.is_token(header[len("Bearer "):]):
            return True
        return self.is_team_cookie(handler.get_cookie(COOKIE_NAME))
