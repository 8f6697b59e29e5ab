"""The teams as a running server looks them up, and the commands that change them.

:class:`TeamDirectory` answers "which team is this login token / publish key /
id" from an in-memory snapshot, reloaded only when the backend's ``version``
changed (another process ran ``racedash team …``). :class:`TeamAdmin` is what
the ``racedash team`` commands do: make credentials, keep their digests.
"""

from __future__ import annotations

import logging
import time
from typing import Callable

from racedash.teams.model import (
    MAX_SECRET,
    Credentials,
    TeamBackend,
    TeamError,
    TeamRecord,
    TeamStoreError,
    clean_name,
    login_digest,
    new_secret,
    new_team_id,
    publish_digest,
)

log = logging.getLogger(__name__)

RETRY_SECONDS = 1.0  # a store that failed is asked again at most this often


class _Snapshot:
    __slots__ = ("by_id", "by_login", "by_publish")

    def __init__(self, records: list[TeamRecord]) -> None:
        self.by_id = {r.id: r for r in records}
        self.by_login = {r.login_hash: r for r in records}
        self.by_publish = {r.publish_hash: r for r in records}


_EMPTY = _Snapshot([])
_UNREAD = object()


class TeamDirectory:
    """Lookups for requests and connections; every one is a dict lookup once the snapshot is fresh.

    A store that cannot be read fails closed: no team is known (team logins and
    team keys are refused; the admin token still works), logged once per failure.
    """

    def __init__(self, backend: TeamBackend, clock: Callable[[], float] = time.monotonic) -> None:
        self.backend = backend
        self._clock = clock
        self._version: object = _UNREAD
        self._snapshot = _EMPTY
        self._retry_at = 0.0
        self._failing = False

    def _fresh(self) -> _Snapshot:
        if self._failing and self._clock() < self._retry_at:
            return self._snapshot
        try:
            version = self.backend.version()
            if version != self._version:
                self._snapshot = _Snapshot(self.backend.load()) if version is not None else _EMPTY
                self._version = version
            if self._failing:
                log.info("the team store can be read again")
                self._failing = False
        except TeamStoreError as exc:
            if not self._failing:
                log.error("%s; no team can log in or publish until it can be read", exc.message)
            self._failing = True
            self._retry_at = self._clock() + RETRY_SECONDS
            self._snapshot, self._version = _EMPTY, _UNREAD
        return self._snapshot

    def configured(self) -> bool:
        """Whether any team exists (else the server runs as one team, as before teams existed)."""
        return bool(self._fresh().by_id)

    def get(self, team_id: str | None) -> TeamRecord | None:
        return self._fresh().by_id.get(team_id) if team_id is not None else None

    def by_login_token(self, token: str) -> TeamRecord | None:
        if not token or len(token) > MAX_SECRET:
            return None
        return self._fresh().by_login.get(login_digest(token))

    def by_publish_key(self, key: str) -> TeamRecord | None:
        if not key or len(key) > MAX_SECRET:
            return None
        return self._fresh().by_publish.get(publish_digest(key))

    def teams(self) -> list[TeamRecord]:
        return list(self._fresh().by_id.values())


class TeamAdmin:
    """``racedash team add / list / rotate / remove``: the credentials are returned once, only digests kept."""

    def __init__(self, backend: TeamBackend, clock: Callable[[], float] = time.time) -> None:
        self.backend = backend
        self._clock = clock

    def list(self) -> list[TeamRecord]:
        return self.backend.load()

    def find(self, name: str) -> TeamRecord:
        wanted = clean_name(name).casefold()
        for record in self.backend.load():
            if record.name.casefold() == wanted:
                return record
        raise TeamError(f"no team named {clean_name(name)!r} (racedash team list shows them)")

    def add(self, name: str) -> tuple[TeamRecord, Credentials]:
        credentials = Credentials(login_token=new_secret(), publish_key=new_secret())
        assert credentials.login_token is not None and credentials.publish_key is not None
        record = TeamRecord(
            id=new_team_id(),
            name=clean_name(name),
            created=self._clock(),
            login_hash=login_digest(credentials.login_token),
            publish_hash=publish_digest(credentials.publish_key),
        )
        self.backend.add(record)
        return record, credentials

    def rotate(self, name: str, *, login: bool = True, publish: bool = True) -> tuple[TeamRecord, Credentials]:
        """New login token and/or publish key; the old ones stop working at once (sessions keep their team)."""
        if not (login or publish):
            raise TeamError("nothing to rotate: choose the login token, the publish key or both")
        record = self.find(name)
        credentials = Credentials(login_token=new_secret() if login else None, publish_key=new_secret() if publish else None)
        self.backend.update(
            record.id,
            login_hash=login_digest(credentials.login_token) if credentials.login_token else None,
            publish_hash=publish_digest(credentials.publish_key) if credentials.publish_key else None,
            rotated=self._clock(),
        )
        return record, credentials

    def remove(self, name: str) -> TeamRecord:
        """The team can no longer log in or publish; its recordings stay, visible to the admin only."""
        record = self.find(name)
        self.backend.remove(record.id)
        return record
