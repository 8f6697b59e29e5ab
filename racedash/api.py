"""The REST API over recordings (docs/protocol.md, "Recordings API").

Every handler derives from :class:`ApiHandler`, whose ``prepare`` applies the
access policy it was given, in one place: :func:`racedash.app.make_app`
passes :func:`team_only` (docs/security.md). The policy names who is asking
(a :class:`~racedash.auth.Principal`); on a server hosting several teams a
team sees only its own recordings, and another team's answers exactly as a
missing one does (404, same body): its existence is never confirmed.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable

import aiofiles
import tornado.iostream
import tornado.web

from racedash.auth import ADMIN, Principal, TeamAccess
from racedash.errors import InvalidSessionId, UnknownRecording
from racedash.ids import parse_session_id
from racedash.race import RaceOptions
from racedash.race.export import COLUMN_NAMES, csv_chunks
from racedash.recording.files import NotARegularFile, open_regular
from racedash.recording.format import RecordingFormatError
from racedash.recording.race import cached_tables as fresh_race_tables
from racedash.recording.race import load_tables
from racedash.recording.store import NO_RECORDING, RecordingStore
from racedash.teamview import best_lap_time
from racedash.web import BaseHandler

log = logging.getLogger(__name__)

DOWNLOAD_CHUNK = 256 * 1024

AccessPolicy = Callable[[tornado.web.RequestHandler], Principal]


def open_access(handler: tornado.web.RequestHandler) -> Principal:
    """Whoever reaches the server may read recordings (for embedding the API behind other access control).

    A policy returns who is asking, or refuses the request by raising (e.g. ``tornado.web.HTTPError(403)``).
    """
    return ADMIN


def team_only(access: TeamAccess) -> AccessPolicy:
    """Recordings belong to the team (docs/security.md): a team cookie or bearer token is required."""

    def policy(handler: tornado.web.RequestHandler) -> Principal:
        principal = access.principal(handler)
        if principal is None:
            raise tornado.web.HTTPError(401, reason="Team login required")
        return principal

    return policy


class ApiHandler(BaseHandler):
    principal: Principal

    def initialize(self, store: RecordingStore, access: AccessPolicy = open_access) -> None:
        self.store = store
        self.access = access

    def prepare(self) -> None:
        self.set_header("Cache-Control", "no-store")
        self.principal = self.access(self)

    async def visible_recording(self, raw: str) -> str:
        """The recording's id if the caller may see it; else UnknownRecording, as for a missing one."""
        session_id = self.recording_id(raw)
        if not self.principal.admin and not self.principal.sees(await self.store.team_of(session_id)):
            raise UnknownRecording(NO_RECORDING)
        return session_id

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        # send_error cleared the headers; a 404 is cacheable by default, and the recording may appear later.
        self.set_header("Cache-Control", "no-store")
        super().write_error(status_code, **kwargs)

    @staticmethod
    def recording_id(raw: str) -> str:
        try:
            return parse_session_id(raw)
        except InvalidSessionId:
            raise UnknownRecording("no recording for this id") from None


class RecordingsHandler(ApiHandler):
    """The list, with what tells sessions apart: best lap (when cheap to know) and a live publisher."""

    def initialize(self, store: RecordingStore, access: AccessPolicy = open_access,
                   race_options: RaceOptions | None = None,
                   publisher_connected: Callable[[str], bool] | None = None) -> None:
        super().initialize(store, access)
        self.race_options = race_options or RaceOptions()
        self.publisher_connected = publisher_connected

    async def get(self) -> None:
        recordings = [r for r in await self.store.list() if self.principal.sees(r["team"])]
        await asyncio.to_thread(self._add_best_laps, recordings)
        if self.publisher_connected is not None:
            # "live" is a monitor publishing now, not merely a recording still open (docs/protocol.md, "Team view").
            for item in recordings:
                item["live"] = bool(item["live"]) and self.publisher_connected(item["session_id"])
        self.write_json({"ok": True, "recordings": recordings})

    def _add_best_laps(self, recordings: list[dict[str, Any]]) -> None:
        """Best lap from a fresh race-tables sidecar only: listing never scans a recording (blank otherwise)."""
        for item in recordings:
            item["best_lap"] = None
            if item.get("state") == "live":
                continue  # still growing: its sidecar cannot be fresh
            tables = fresh_race_tables(self.store.path_for(item["session_id"]), self.race_options)
            if tables is not None:
                item["best_lap"] = best_lap_time(tables["stints"])


class RecordingHandler(ApiHandler):
    async def get(self, raw_id: str) -> None:
        metadata = await self.store.metadata(await self.visible_recording(raw_id))
        self.write_json({"ok": True, "recording": metadata})


class RecordingDownloadHandler(ApiHandler):
    """The recording as JSON lines, streamed, up to its last complete line (a torn tail is left out)."""

    async def get(self, raw_id: str) -> None:
        session_id = await self.visible_recording(raw_id)
        path, end = await self.store.download_extent(session_id)
        # The descriptor checked to be a regular file (not a link, not a pipe) is the one read.
        try:
            handle = await asyncio.to_thread(open_regular, path)
        except (FileNotFoundError, NotARegularFile):
            raise UnknownRecording("no recording for this id") from None
        try:
            self.set_header("Content-Type", "application/x-ndjson")
            self.set_header("Content-Disposition", f'attachment; filename="{session_id}.jsonl"')
            self.set_header("Content-Length", str(end))
            remaining = end
            async with aiofiles.open(handle.fileno(), "rb", closefd=False) as f:
                while remaining > 0:
                    chunk = await f.read(min(DOWNLOAD_CHUNK, remaining))
                    if not chunk:
                        break
                    remaining -= len(chunk)
                    self.write(chunk)
                    await self.flush()
        finally:
            handle.close()
        self.finish()


class LapsExportHandler(ApiHandler):
    """Base of the per-lap exports: the race tables of a whole recording (docs/protocol.md, "Per-lap exports")."""

    def initialize(self, store: RecordingStore, access: AccessPolicy = open_access,
                   race_options: RaceOptions | None = None) -> None:
        super().initialize(store, access)
        self.race_options = race_options or RaceOptions()

    async def race_tables(self, raw_id: str) -> tuple[str, dict[str, Any]]:
        """(session id, tables); the path comes from the validated id only."""
        session_id = await self.visible_recording(raw_id)
        path = self.store.existing_path(session_id)
        try:
            # A scan of the whole file when the sidecar is stale: never on the event loop.
            return session_id, await asyncio.to_thread(load_tables, path, self.race_options)
        except (RecordingFormatError, OSError) as exc:
            # Deleted by retention meanwhile, or a damaged header: as the metadata endpoint answers.
            log.warning("race tables of recording %s cannot be read: %s", session_id[:8], exc)
            raise UnknownRecording("this recording cannot be read") from None


class LapsCsvHandler(LapsExportHandler):
    """One row per lap, streamed a few hundred rows at a time (a 24-hour race runs to hundreds of laps)."""

    async def get(self, raw_id: str) -> None:
        session_id, tables = await self.race_tables(raw_id)
        self.set_header("Content-Type", "text/csv; charset=utf-8")
        self.set_header("Content-Disposition", f'attachment; filename="{session_id}-laps.csv"')
        try:
            for chunk in csv_chunks(tables["laps"]):
                self.write(chunk.encode("utf-8"))
                await self.flush()
        except tornado.iostream.StreamClosedError:
            return  # the client went away: nothing left to send
        self.finish()


class LapsJsonHandler(LapsExportHandler):
    async def get(self, raw_id: str) -> None:
        session_id, tables = await self.race_tables(raw_id)
        self.write_json({
            "ok": True,
            "recording_id": session_id,
            "columns": COLUMN_NAMES,
            "laps": tables["laps"],
            "stints": tables["stints"],
            "pit_stops": tables["pit_stops"],
        })


def api_routes(store: RecordingStore, access: AccessPolicy = open_access, race_options: RaceOptions | None = None,
               publisher_connected: Callable[[str], bool] | None = None) -> list[tuple]:
    deps = {"store": store, "access": access}
    race_options = race_options or RaceOptions()  # for the per-lap exports (racedash.recording.race)
    exports = {**deps, "race_options": race_options}
    listing = {**exports, "publisher_connected": publisher_connected}
    # Specific routes before the catch-all id route: the first match wins.
    return [
        (r"/api/recordings", RecordingsHandler, listing),
        (r"/api/recordings/([^/]+)/laps\.csv", LapsCsvHandler, exports),
        (r"/api/recordings/([^/]+)/laps\.json", LapsJsonHandler, exports),
        (r"/api/recordings/([^/]+)\.jsonl", RecordingDownloadHandler, deps),
        (r"/api/recordings/([^/]+)", RecordingHandler, deps),
    ]
