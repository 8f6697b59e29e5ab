"""Session ids and tokens.

A session id is a UUID written in canonical lowercase form. It is the only
thing that ever becomes part of a recording's file name, so every id that
comes from a client goes through :func:`parse_session_id` first.
"""

from __future__ import annotations

import re
import secrets
import uuid

from racedash.errors import InvalidSessionId

_CANONICAL = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def new_session_id() -> str:
    return str(uuid.uuid4())


def new_token() -> str:
    return secrets.token_urlsafe(24)


def parse_session_id(raw: object) -> str:
    """Return ``raw`` as a canonical lowercase UUID string or raise InvalidSessionId.

    Upper case is accepted (a monitor may be configured with a fixed id typed
    by hand); braces, ``urn:uuid:`` prefixes and hyphen-less forms are not, so
    that one session has exactly one spelling.
    """
    if not isinstance(raw, str):
        raise InvalidSessionId("session_id must be a UUID string")
    lowered = raw.lower()
    if not _CANONICAL.match(lowered):
        raise InvalidSessionId("session_id is not a well-formed UUID")
    return lowered


def is_session_id(raw: object) -> bool:
    return isinstance(raw, str) and bool(_CANONICAL.match(raw))
