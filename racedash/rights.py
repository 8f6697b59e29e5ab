"""Who may publish into a session (docs/security.md has the rule in prose).

A session's ``publish_token`` is an HMAC of its id under the server secret, so
it survives restarts without being stored anywhere a viewer could read it: a
monitor that reconnects after a restart can still prove it is the publisher.
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

COMPAT = "compat"
TOKEN = "token"
MODES = (COMPAT, TOKEN)


class PublishRights:
    def __init__(self, secret: bytes, mode: str = COMPAT, takeover_seconds: float = 120.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if mode not in MODES:
            raise SettingsError(f"publish_auth must be one of {', '.join(MODES)}, not {mode!r}")
        self._secret = secret
        self.mode = mode
        # Compat mode: how long a session's publisher address is held for its returning monitor.
        self.takeover_seconds = takeover_seconds
        self._clock = clock
        self._viewers: set[str] = set()
        self._addresses: dict[str, str] = {}  # sid -> client address

    def bind(self, sid: str, address: str | None) -> None:
        if address:
            self._addresses[sid] = address

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

    def check(self, session: Session, sid: str, token: object | None) -> None:
        """Raise NotPublisher unless ``sid`` may publish into ``session`` now.

        The caller makes ``sid`` the session's publisher when this returns.
        """
        if token is not None:
            if self.is_valid_token(session.id, token):
                return
            raise NotPublisher("publish_token does not match this session")
        if session.publisher_sid == sid:
            return
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
