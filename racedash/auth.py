"""Team access: who may list, download, replay and delete recordings.

The team token comes from config/env; when none is set one is generated at
start and printed with a ready-to-open login URL. Logging in sets a signed
cookie; scripts may send ``Authorization: Bearer <token>`` instead. Viewing a
live session needs no login: its secret id is the right to view.

On a server hosting several teams (racedash.teams) each team logs in with its
own token and sees only its own sessions and recordings; the team token above
is then the admin's, who sees every team's. Either way a login is a
:class:`Principal`, which says what it may see.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections import OrderedDict, deque
from urllib.parse import urlsplit
import secrets
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie

import tornado.web

from racedash.teams.directory import TeamDirectory
from racedash.teams.model import TeamRecord, is_team_id

COOKIE_NAME = "racedash_team"
COOKIE_DAYS = 30
_TEAM_COOKIE = "team:"  # a team login's cookie: "team:<team id>:<digest>"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a login is: the admin (``team_id`` None: every team's sessions and recordings) or one team."""

    team_id: str | None
    name: str

    @property
    def admin(self) -> bool:
        return self.team_id is None

    def sees(self, owner: str | None) -> bool:
        """May see what belongs to ``owner`` (a team id; None: no team, the admin's alone)."""
        return self.team_id is None or owner == self.team_id


ADMIN = Principal(None, "admin")


class TeamAccess:
    def __init__(self, token: str, cookie_secret: bytes, teams: TeamDirectory | None = None) -> None:
        self.generated = not token
        self.token = token or secrets.token_urlsafe(24)
        self.cookie_secret = cookie_secret
        self.teams = teams
        # The cookie names the token it was issued for (a digest, not the token): a new
        # team token logs every browser out instead of leaving old cookies valid for 30 days.
        self.cookie_value = hmac.new(cookie_secret, b"team-token:" + self.token.encode(), hashlib.sha256).hexdigest()[:32]

    def login(self, candidate: object) -> Principal | None:
        """The principal a token logs in as: the admin token, or a team's login token."""
        if not isinstance(candidate, str) or not candidate:
            return None
        if hmac.compare_digest(candidate.encode("utf-8", "surrogatepass"), self.token.encode()):
            return ADMIN
        record = self.teams.by_login_token(candidate) if self.teams is not None else None
        return _team_principal(record) if record is not None else None

    def is_token(self, candidate: object) -> bool:
        return self.login(candidate) is not None

    def login_url(self, base_url: str) -> str:
        return f"{base_url.rstrip('/')}/login?token={self.token}"

    def cookie_for(self, principal: Principal) -> str:
        """The signed cookie's value for a login; bound to its current token (rotation logs it out)."""
        if principal.team_id is None:
            return self.cookie_value
        record = self.teams.get(principal.team_id) if self.teams is not None else None
        if record is None:
            raise ValueError("no such team")
        return f"{_TEAM_COOKIE}{record.id}:{self._team_digest(record)}"

    def _team_digest(self, record: TeamRecord) -> str:
        message = f"team-login:{record.id}:{record.login_hash}".encode()
        return hmac.new(self.cookie_secret, message, hashlib.sha256).hexdigest()[:32]

    def principal_of_cookie(self, value: str | None) -> Principal | None:
        if not value:
            return None
        decoded = tornado.web.decode_signed_value(
            self.cookie_secret, COOKIE_NAME, value, max_age_days=COOKIE_DAYS
        )
        if decoded is None:
            return None
        if hmac.compare_digest(decoded, self.cookie_value.encode()):
            return ADMIN
        text = decoded.decode("ascii", "replace")
        if not text.startswith(_TEAM_COOKIE) or self.teams is None:
            return None
        team_id, _, digest = text[len(_TEAM_COOKIE):].partition(":")
        if not is_team_id(team_id):
            return None
        record = self.teams.get(team_id)  # removed: logged out
        if record is None or not hmac.compare_digest(digest.encode(), self._team_digest(record).encode()):
            return None
        return _team_principal(record)

    def is_team_cookie(self, value: str | None) -> bool:
        return self.principal_of_cookie(value) is not None

    def principal_of_environ(self, environ: dict) -> Principal | None:
        """For Socket.IO connections: the same cookie, read from the handshake headers."""
        raw = environ.get("HTTP_COOKIE")
        if not raw:
            return None
        try:
            cookie = SimpleCookie(raw)
        except CookieError:
            return None
        morsel = cookie.get(COOKIE_NAME)
        return self.principal_of_cookie(morsel.value if morsel else None)

    def is_team_environ(self, environ: dict) -> bool:
        return self.principal_of_environ(environ) is not None

    def principal(self, handler: tornado.web.RequestHandler) -> Principal | None:
        """Who sent this request: a bearer token (scripts) or the login cookie (browsers); None: nobody."""
        header = handler.request.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            principal = self.login(header[len("Bearer "):])
            if principal is not None:
                return principal
        return self.principal_of_cookie(handler.get_cookie(COOKIE_NAME))

    def is_team_request(self, handler: tornado.web.RequestHandler) -> bool:
        return self.principal(handler) is not None

    def scope_label(self, principal: Principal) -> str | None:
        """What the team pages say they show: None on a single-team server (nothing to tell apart)."""
        if principal.team_id is not None:
            return f"Team {principal.name}"
        if self.teams is not None and self.teams.configured():
            return "Admin: every team"
        return None

    def admin_only(self) -> "AdminAccess":
        """For what spans every team (server metrics): the admin only, once teams exist."""
        return AdminAccess(self)


class AdminAccess:
    """:class:`TeamAccess`'s ``is_team_request`` narrowed to the admin (on a single-team server: the team)."""

    def __init__(self, access: TeamAccess) -> None:
        self.access = access

    def is_team_request(self, handler: tornado.web.RequestHandler) -> bool:
        principal = self.access.principal(handler)
        return principal is not None and principal.admin


def _team_principal(record: TeamRecord) -> Principal:
    return Principal(record.id, record.name)


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
