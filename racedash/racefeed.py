"""The race model of every live session: fed on the publish path, told to the room.

One :class:`~racedash.race.RaceModel` per live session. The publish handler
feeds each accepted frame synchronously (right after it is stamped, so the
model sees frames in ``seq`` order) and the events it returns go to the
session's room after the frame itself. A session resumed from its recording
(after a restart or an idle end) gets its model rebuilt from that recording
first, in a worker thread, while the registry's take-up waits: the laps go on
where they were. A joining viewer is sent the tables up to the last frame it
was sent (``race_tables``); a rejoining one only the events it missed.

So that rebuild stays short in a long race, the process writing a session's
recording saves its model's state beside it every ``state_frames`` frames
(in a task of its own, once the recording holds them); a rebuild starts from
that state and reads only the frames recorded after it (racedash.recording.race).
At the same moments it brings the recording's seek index sidecar up to date
(``keep_current``: racedash.replay.index), for the same reason: the first time-shift or replay of
a long live session then scans minutes of it, not hours.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterable

from racedash.broadcast import Broadcaster
from racedash.config import Settings
from racedash.race import RaceModel, RaceOptions, events_after, tables_until
from racedash.race.alerts import AlertOptions
from racedash.race.checkpoint import model_state
from racedash.recording.format import RecordingFormatError
from racedash.recording.race import build_model, save_model_state
from racedash.sessions import Frame, Session
from racedash.wire import dumps

log = logging.getLogger(__name__)


def race_options(settings: Settings) -> RaceOptions:
    def top(window: str) -> float:
        return float(window.split(":")[1])

    return RaceOptions(
        gap_seconds=settings.race_gap_seconds,
        pit_lane_kmh=settings.race_pit_lane_kmh,
        recent_laps=settings.race_recent_laps,
        reserve_laps=settings.race_reserve_laps,
        alerts=AlertOptions(
            tyre_temp_max_c=top(settings.ui_tyre_temp_window),
            brake_temp_max_c=top(settings.ui_brake_temp_window),
            over_seconds=settings.alert_over_seconds,
            pressure_drop_kpa=settings.alert_pressure_drop_kpa,
            box_call_laps=settings.alert_box_call_laps,
        ),
    )


class RaceFeed:
    def __init__(self, options: RaceOptions, broadcaster: Broadcaster, recordings_dir: Path | None,
                 stale_seconds: float = 30.0, state_frames: int = 600,
                 flush: Callable[[str], Awaitable[bool]] | None = None,
                 keep_current: Callable[[Path], None] | None = None) -> None:
        self.options = options
        self.stale_seconds = stale_seconds
        self._stale: set[str] = set()
        self.broadcaster = broadcaster
        self.recordings_dir = recordings_dir  # None: not recording, nothing to resume from
        # Saving states: every state_frames frames (0: never), once flush(session_id) says the
        # recording holds every frame queued so far, so that a state never counts a frame its file lacks.
        self.state_frames = state_frames if recordings_dir is not None and flush is not None else 0
        self._flush = flush
        # Another sidecar of the recording brought up to date at the same moments, in a worker
        # thread (the app passes the replay index's; racedash.replay imports this module).
        self._keep_current = keep_current
        self._models: dict[str, RaceModel] = {}
        self._saved_seq: dict[str, int] = {}  # the seq of each model's last saved (or saving) state
        self._saving: dict[str, asyncio.Task] = {}

    def model(self, session_id: str) -> RaceModel:
        model = self._models.get(session_id)
        if model is None:
            model = self._models[session_id] = RaceModel(self.options)
        return model

    async def restore(self, session_id: str) -> None:
        """Rebuild a resumed session's model from its recording (call once it is flushed)."""
        if self.recordings_dir is None:
            return
        path = self.recordings_dir / f"{session_id}.jsonl"
        try:
            model, _, _ = await asyncio.to_thread(build_model, path, self.options)
        except FileNotFoundError:
            return
        except (OSError, RecordingFormatError) as exc:
            log.warning("race model of session %s… could not be rebuilt (%s); it starts afresh",
                        session_id[:8], getattr(exc, "strerror", None) or exc)
            return
        self._models[session_id] = model

    def _save_state_soon(self, session_id: str, model: RaceModel) -> None:
        if session_id in self._saving or model.seq - self._saved_seq.get(session_id, 0) < self.state_frames:
            return
        self._saved_seq[session_id] = model.seq
        task = asyncio.get_running_loop().create_task(self._save_state(session_id, model), name="racedash-race-state")
        self._saving[session_id] = task
        task.add_done_callback(lambda _: self._saving.pop(session_id, None))

    async def _save_state(self, session_id: str, model: RaceModel) -> None:
        assert self._flush is not None and self.recordings_dir is not None
        state_json = dumps(model_state(model))  # in one step: the next frame changes the model
        if not await self._flush(session_id):
            return  # the disk is not keeping up: the next state, later
        path = self.recordings_dir / f"{session_id}.jsonl"
        await asyncio.to_thread(save_model_state, path, self.options, state_json)
        if self._keep_current is not None:
            await asyncio.to_thread(self._keep_current, path)

    async def close(self) -> None:
        """Let the states being saved land (a shutdown is when the next resume needs them)."""
        if self._saving:
            await asyncio.gather(*self._saving.values(), return_exceptions=True)

    def feed_quietly(self, session_id: str, frame: Frame) -> None:
        """Take in a frame another process stamped (racedash.cluster): its events reach the room from there."""
        model = self.model(session_id)
        if frame.seq > model.seq:  # a model rebuilt from the recording may know it already
            model.feed(frame.seq, frame.kind, frame.payload, frame.received)

    def feed(self, session: Session, frame: Frame, payload: dict[str, Any]) -> list[dict[str, Any]]:
        """The events one accepted frame causes. Synchronous: call right after stamping it."""
        model = self.model(session.id)
        events = model.feed(frame.seq, frame.kind, payload, frame.received)
        if self.state_frames:
            self._save_state_soon(session.id, model)
        return events

    def frame_summary(self, session_id: str) -> dict[str, Any]:
        return self.model(session_id).frame_summary()

    async def announce(self, session_id: str, events: list[dict[str, Any]]) -> None:
        for event in events:
            name, body = wire_event(session_id, event)
            await self.broadcaster.to_room(session_id, name, body)

    async def send_on_join(self, session_id: str, sid: str, last_seq: int | None, upto: int) -> None:
        """What a joining viewer is sent of the race: the tables, or on a rejoin the events it missed.

        ``upto`` is the last frame the join sent it; later frames' events reach it through the room.
        """
        model = self.model(session_id)
        tables = model.tables()
        if last_seq is None:
            snapshot = tables if upto >= model.seq else tables_until(tables, upto, options=self.options)
            await self.broadcaster.to_client(sid, "race_tables", {"session_id": session_id, **snapshot})
            return
        for event in events_after(tables, last_seq, upto):
            name, body = wire_event(session_id, event)
            await self.broadcaster.to_client(sid, name, body)

    async def publisher_gone(self, session_id: str) -> None:
        model = self._models.get(session_id)
        if model is None or model.seq == 0:
            return
        await self.announce(session_id, [model.note(
            "publisher_gone", "critical", "The monitor disconnected: no live data until it reconnects", time.time())])
        self._stale.discard(session_id)

    async def check_stale(self, sessions: Iterable[Session], now_monotonic: float) -> None:
        """One stale-data alert per silence of a session whose publisher is still connected."""
        for session in sessions:
            silent = now_monotonic - session.last_publish_monotonic
            if session.publisher_sid is None or silent < self.stale_seconds:
                self._stale.discard(session.id)
                continue
            model = self._models.get(session.id)
            if session.id in self._stale or model is None or model.seq == 0:
                continue
            self._stale.add(session.id)
            await self.announce(session.id, [model.note(
                "stale_data", "warning", f"No data from the monitor for {silent:.0f} s (still connected)", time.time())])

    def tables(self, session_id: str) -> dict[str, Any] | None:
        model = self._models.get(session_id)
        return model.tables() if model is not None else None

    def forget(self, session_id: str) -> None:
        self._models.pop(session_id, None)
        self._saved_seq.pop(session_id, None)
        self._stale.discard(session_id)


def wire_event(session_id: str, event: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    body = dict(event)
    name = body.pop("event")
    return name, {"session_id": session_id, **body}
