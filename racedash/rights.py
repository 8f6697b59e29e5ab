"""Who may publish into a session (docs/security.md has the rule in prose).

A session's ``publish_token`` is an HMAC of its id under the server secret, so
it survives restarts without being stored anywhere a viewer could read it: a
monitor that reconnects after a restart can still prove it is the publisher.
On a server hosting several teams, the team key in the monitor's URL decides
the team a session belongs to (:class:`racedash.teams.MonitorTeams`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Callable

from racedash.config import SettingsError
from racedash.errors import NotPublisher
from racedash.sessions import Session
from racedash.teams.monitors import MonitorTeams

COMPAT = "compat"
TOKEN = "token"
MODES = (COMPAT, TOKEN)


class PublishRights:
    def __init__(self, secret: bytes, mode: str = COMPAT, takeover_seconds: float = 120.0,
                 clock: Callable[[], float] = time.monotonic, teams: MonitorTeams | None = None) -> None:
        if mode not in MODES:
            raise SettingsError(f"publish_auth must be one of {', '.join(MODES)}, not {mode!r}")
        self._secret = secret
        self.mode = mode
        # Compat mode: how long a session's publisher address is held for its returning monitor.
        self.takeover_seconds = takeover_seconds
        self._clock = clock
        self._viewers: set[str] = set()
        self._addresses: dict[str, str] = {}  # sid -> client address
        self.teams = teams or MonitorTeams(None)

    def bind(self, sid: str, address: str | None, query_string: str | None = None) -> None:
        """A new connection: its client address, and the team key its URL carries (``?team=KEY``)."""
        if address:
            self._addresses[sid] = address
        self.teams.bind(sid, query_string)

    def check_team_key(self, sid: str) -> None:
        """Refuse at once a connection whose team key is bad, or missing where one is required."""
        self.teams.check_connection(sid)

    def team_for_new_session(self, sid: str) -> str | None:
        """The team a session this connection creates belongs to (its key checked again: it may be rotated)."""
        return self.teams.team_of(sid)

    def token_for(self, session_id: str) -> str:
        digest = hmac.new(self._secret, session_id.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest[:24]).decode()

    def is_valid_token(self, session_id: str, token: object) -> bool:
        return isinstance(token, str) and hmac.compare_digest(token, self.token_for(session_id))

    def mark_viewer(self, sid: str) -> None:
        """This connection joined a session as a viewer: it never publishes without a token."""
        self._viewers.add(sid)

    def forget(self, sid: str) -> None:
        self._viewers.discard(sid)
        self._addresses.pop(sid, None)
        self.teams.forget(sid)

    def check(self, session: Session, sid: str, token: object | None) -> None:
        """Raise NotPublisher unless ``sid`` may publish into ``session`` now.

        The caller makes ``sid`` the session's publisher when this returns. A
        connection taking a session up also gives it its team, or is refused
        when the session is another team's (a session's team never changes).
        """
        self.teams.check_connection(sid)
        if token is not None:
            if not self.is_valid_token(session.id, token):
                raise NotPublisher("publish_token does not match this session")
        elif session.publisher_sid != sid:
            self._check_tokenless(session, sid)
        if session.publisher_sid != sid:
            self.teams.claim(session, sid)

    def _check_tokenless(self, session: Session, sid: str) -> None:
        if self.mode == TOKEN:
            raise NotPublisher("this server requires the session's publish_token to publish")
        if sid in self._viewers:
            raise NotPublisher("a connection that joined as a viewer cannot publish")
        if session.publisher_sid is not None:
            raise NotPublisher("another connection is publishing this session; send its publish_token to take over")
        # The returning monitor wins: without a token, a session is taken up again only from
        # the address its last publisher used, unless it has been silent for takeover_seconds
        # (a monitor whose address changed comes back then). A viewer elsewhere with the
        # dashboard URL cannot take over a session whose monitor dropped for a moment.
        origin = session.publisher_address
        silent = self._clock() - session.last_publish_monotonic
        if origin is not None and self._addresses.get(sid) != origin and silent < self.takeover_seconds:
            raise NotPublisher(
                f"this session's monitor publishes from another address; without its publish_token it can "
                f"be taken over only after {self.takeover_seconds:g} s without data"
            )

    def claimed(self, session: Session, sid: str) -> None:
        """``sid`` now publishes ``session``: its address is the one a tokenless return must come from."""
        address = self._addresses.get(sid)
        if address is not None:
            session.publisher_address = address
