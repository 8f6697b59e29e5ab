"""The REST API over recordings (docs/protocol.md, "Recordings API").

Every handler derives from :class:`ApiHandler`, whose ``prepare`` applies the
access policy it was given, in one place: :func:`racedash.app.make_app`
passes :func:`team_only` (docs/security.md).
"""

from __future__ import annotations

from typing import Callable

import aiofiles
import tornado.web

from racedash.auth import TeamAccess
from racedash.errors import InvalidSessionId, UnknownRecording
from racedash.ids import parse_session_id
from racedash.race import RaceOptions
from racedash.recording.store import RecordingStore
from racedash.web import BaseHandler

DOWNLOAD_CHUNK = 256 * 1024

AccessPolicy = Callable[[tornado.web.RequestHandler], None]


def open_access(handler: tornado.web.RequestHandler) -> None:
    """Whoever reaches the server may read recordings (for embedding the API behind other access control).

    A policy refuses a request by raising (e.g. ``tornado.web.HTTPError(403)``).
    """


def team_only(access: TeamAccess) -> AccessPolicy:
    """Recordings belong to the team (docs/security.md): a team cookie or bearer token is required."""

    def policy(handler: tornado.web.RequestHandler) -> None:
        if not access.is_team_request(handler):
            raise tornado.web.HTTPError(401, reason="Team login required")

    return policy


class ApiHandler(BaseHandler):
    def initialize(self, store: RecordingStore, access: AccessPolicy = open_access) -> None:
        self.store = store
        self.access = access

    def prepare(self) -> None:
        self.set_header("Cache-Control", "no-store")
        self.access(self)

    @staticmethod
    def recording_id(raw: str) -> str:
        try:
            return parse_session_id(raw)
        except InvalidSessionId:
            raise UnknownRecording("no recording for this id") from None


class RecordingsHandler(ApiHandler):
    async def get(self) -> None:
        self.write_json({"ok": True, "recordings": await self.store.list()})


class RecordingHandler(ApiHandler):
    async def get(self, raw_id: str) -> None:
        metadata = await self.store.metadata(self.recording_id(raw_id))
        self.write_json({"ok": True, "recording": metadata})


class RecordingDownloadHandler(ApiHandler):
    """The recording as JSON lines, streamed, up to its last complete line (a torn tail is left out)."""

    async def get(self, raw_id: str) -> None:
        session_id = self.recording_id(raw_id)
        path, end = await self.store.download_extent(session_id)
        self.set_header("Content-Type", "application/x-ndjson")
        self.set_header("Content-Disposition", f'attachment; filename="{session_id}.jsonl"')
        self.set_header("Content-Length", str(end))
        remaining = end
        async with aiofiles.open(path, "rb") as f:
            while remaining > 0:
                chunk = await f.read(min(DOWNLOAD_CHUNK, remaining))
                if not chunk:
                    break
                remaining -= len(chunk)
                self.write(chunk)
                await self.flush()
        self.finish()


def api_routes(store: RecordingStore, access: AccessPolicy = open_access, race_options: RaceOptions | None = None) -> list[tuple]:
    deps = {"store": store, "access": access}
    race_options = race_options or RaceOptions()  # for the per-lap exports (racedash.recording.race)
    return [
        (r"/api/recordings", RecordingsHandler, deps),
        (r"/api/recordings/([^/]+)\.jsonl", RecordingDownloadHandler, deps),
        (r"/api/recordings/([^/]+)", RecordingHandler, deps),
    ]
