"""Teams as tenants of one server, pure: records, credentials, digests, the backend interface.

A team has an opaque id (never its name: nothing a person types reaches a
path or a recording's owner field), a login token (its engineers' browsers
and scripts) and a publish key (its monitors, as ``?team=KEY`` in their server
URL). Only SHA-256 digests of the two are kept: both are 192-bit random
strings, so a digest cannot be searched back to its token, and the server
secret is not needed to check them (rotating it logs browsers out, it does not
invalidate every team's monitors).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import Protocol

from racedash.errors import RacedashError

TEAM_ID = re.compile(r"[0-9a-f]{12}")
MAX_NAME = 64
MAX_SECRET = 200  # longer than any token we make; bounds what a hostile URL makes us hash

_LOGIN = b"racedash-team-login:"
_PUBLISH = b"racedash-team-publish:"


def is_team_id(value: object) -> bool:
    return isinstance(value, str) and TEAM_ID.fullmatch(value) is not None


def new_team_id() -> str:
    return secrets.token_hex(6)


def new_secret() -> str:
    return secrets.token_urlsafe(24)


def login_digest(token: str) -> str:
    return hashlib.sha256(_LOGIN + token.encode("utf-8", "surrogatepass")).hexdigest()


def publish_digest(key: str) -> str:
    # Another prefix than logins: a login token is never a publish key, nor the reverse.
    return hashlib.sha256(_PUBLISH + key.encode("utf-8", "surrogatepass")).hexdigest()


def clean_name(raw: str) -> str:
    """A team name as stored: trimmed, printable, 1 to 64 characters."""
    name = " ".join(raw.split())
    if not name or len(name) > MAX_NAME or not name.isprintable():
        raise TeamError(f"a team name is 1 to {MAX_NAME} printable characters, not {raw!r}")
    return name


class TeamError(RacedashError):
    """A team command cannot be done (a name taken or unknown, a bad name)."""

    code = "team_error"


class TeamStoreError(RacedashError):
    """The team store cannot be read or written (a damaged database, a disk problem)."""

    code = "team_store_error"


@dataclass(frozen=True, slots=True)
class TeamRecord:
    """One team as stored: the digests of its credentials, never the credentials."""

    id: str
    name: str
    created: float
    login_hash: str
    publish_hash: str
    rotated: float | None = None


@dataclass(frozen=True, slots=True)
class Credentials:
    """What ``team add`` / ``team rotate`` show once; ``None`` for the one not rotated."""

    login_token: str | None
    publish_key: str | None


class TeamBackend(Protocol):
    """Where teams are kept (sqlite in the state directory; another backend may share them in Redis).

    ``version`` changes whenever any process changed the teams: readers reload
    only then. It is None while there is nothing to read yet.
    """

    def version(self) -> object | None: ...

    def load(self) -> list[TeamRecord]: ...

    def add(self, record: TeamRecord) -> None: ...

    def update(self, team_id: str, *, login_hash: str | None, publish_hash: str | None, rotated: float) -> None: ...

    def remove(self, team_id: str) -> None: ...
