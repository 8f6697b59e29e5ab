"""Team access: who may list, download, replay and delete recordings.

The team token comes from config/env; when none is set one is generated at
start and printed with a ready-to-open login URL. Logging in sets a signed
cookie; scripts may send ``Authorization: Bearer <token>`` instead. Viewing a
live session needs no login: its secret id is the right to view.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections import OrderedDict, deque
from urllib.parse import urlsplit
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
        # The cookie names the token it was issued for (a digest, not the token): a new
        # team token logs every browser out instead of leaving old cookies valid for 30 days.
        self.cookie_value = hmac.new(cookie_secret, b"team-token:" + self.token.encode(), hashlib.sha256).hexdigest()[:32]

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
        return decoded is not None and hmac.compare_digest(decoded, self.cookie_value.encode())

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


def same_origin_path(target: str | None, default: str) -> str:
    """``target`` if it is a path on this server, else ``default``: never an open redirect.

    Browsers drop tabs and newlines from URLs and read ``\\`` as ``/``, so
    ``/%09/evil`` and ``/\\evil`` become ``//evil`` (another host): those are refused.
    """
    if not target:
        return default
    cleaned = re.sub(r"[\t\n\r]", "", target)
    if not cleaned.startswith("/") or cleaned.startswith("//") or "\\" in cleaned:
        return default
    parts = urlsplit(cleaned)
    if parts.scheme or parts.netloc:
        return default
    return cleaned


class LoginThrottle:
    """Failed logins per client address: at most ``limit`` a minute, so the token cannot be guessed.

    Bounded in memory: the ``max_addresses`` most recently failing addresses are kept.
    """

    def __init__(self, limit: int = 10, window: float = 60.0, max_addresses: int = 10_000, clock=time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self.max_addresses = max_addresses
        self._clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def blocked(self, address: str) -> bool:
        failures = self._failures.get(address)
        if failures is None:
            return False
        now = self._clock()
        while failures and now - failures[0] > self.window:
            failures.popleft()
        return len(failures) >= self.limit

    def failed(self, address: str) -> None:
        failures = self._failures.pop(address, None) or deque(maxlen=self.limit)
        failures.append(self._clock())
        self._failures[address] = failures
        while len(self._failures) > self.max_addresses:
            self._failures.popitem(last=False)
