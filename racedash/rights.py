"""Who may publish into a session (docs/security.md has the rule in prose).

A session's ``publish_token`` is an HMAC of its id under the server secret, so
it survives restarts without being stored anywhere a viewer could read it: a
monitor that reconnects after a restart can still prove it is the publisher.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from racedash.config import SettingsError
from racedash.errors import NotPublisher
from racedash.sessions import Session

COMPAT = "compat"
TOKEN = "token"
MODES = (COMPAT, TOKEN)


class PublishRights:
    def __init__(self, secret: bytes, mode: str = COMPAT) -> None:
        if mode not in MODES:
            raise SettingsError(f"publish_auth must be one of {', '.join(MODES)}, not {mode!r}")
        self._secret = secret
        self.mode = mode
        self._viewers: set[str] = set()

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
