"""Replay test helpers: a manual clock, a broadcaster that keeps what it sends, recordings on disk."""

from __future__ import annotations

import asyncio
import functools
import heapq
import itertools
import uuid
from pathlib import Path
from typing import Any, Callable, Iterable

import orjson

from racedash.recording.format import Header, encode_event, encode_header

from tests.helpers import Client, sample_setup, sample_telemetry_payloads


def team_headers(server) -> dict[str, str]:
    """The signed team cookie a logged-in browser sends (for Socket.IO handshakes)."""
    import tornado.web

    from racedash.auth import COOKIE_NAME

    value = tornado.web.create_signed_value(server.app.access.cookie_secret, COOKIE_NAME, server.app.access.cookie_value).decode()
    return {"Cookie": f"{COOKIE_NAME}={value}"}


def bearer(server) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.app.access.token}"}


def assert_state_first(log: list[tuple[str, Any]]) -> int:
    """After a seek: (periodic replay_states may come first) the seek's replay_state, then
    setup_update, telemetry_history, telemetry_update, before any other frame. Returns the
    index of that telemetry_update in ``log``."""
    names = [name for name, _data in log]
    first = names.index("setup_update")
    assert set(names[:first]) == {"replay_state"}, names
    assert names[first : first + 3] == ["setup_update", "telemetry_history", "telemetry_update"], names
    return first + 2


class ManualTimer:
    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class ManualClock:
    """A clock that only moves when the test says so; timers fire in time order."""

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._timers: list[tuple[float, int, ManualTimer, Callable[[], None]]] = []
        self._order = itertools.count()

    def now(self) -> float:
        return self._now

    def call_at(self, when: float, callback: Callable[[], None]) -> ManualTimer:
        timer = ManualTimer()
        heapq.heappush(self._timers, (when, next(self._order), timer, callback))
        return timer

    async def settle(self) -> None:
        # Let woken tasks run to their next wait; nothing here does real I/O waits.
        for _ in range(50):
            await asyncio.sleep(0)

    async def advance_to(self, when: float) -> None:
        """Move time to ``when``, firing every timer due on the way at its own time."""
        await self.settle()
        while True:
            while self._timers and self._timers[0][2].cancelled:
                heapq.heappop(self._timers)
            if not self._timers or self._timers[0][0] > when:
                break
            due, _n, timer, callback = heapq.heappop(self._timers)
            self._now = max(self._now, due)
            callback()
            await self.settle()
        self._now = max(self._now, when)
        await self.settle()

    async def advance(self, seconds: float) -> None:
        await self.advance_to(self._now + seconds)


class KeepingBroadcaster:
    """The Broadcaster protocol, keeping (time, target, event, data) instead of sending."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.sent: list[tuple[float, str, str, Any]] = []

    async def to_room(self, room: str, event: str, data: Any) -> None:
        self.sent.append((self.clock.now(), room, event, data))

    async def to_client(self, sid: str, event: str, data: Any) -> None:
        self.sent.append((self.clock.now(), sid, event, data))

    async def room_message(self, room: str, event: str, message: bytes) -> None:
        await self.to_room(room, *self.decoded(event, message))

    async def client_message(self, sid: str, event: str, message: bytes) -> None:
        await self.to_client(sid, *self.decoded(event, message))

    @staticmethod
    def decoded(event: str, message: bytes) -> tuple[str, Any]:
        """An encoded message (``42["event",data]``) back as what to_room would have been given."""
        assert message[:2] == b"42", message[:20]
        name, data = orjson.loads(message[2:])
        assert name == event
        return name, data

    def events(self, name: str) -> list[tuple[float, Any]]:
        return [(t, data) for t, _to, event, data in self.sent if event == name]


@functools.cache
def _sample_telemetry() -> dict:
    return sample_telemetry_payloads()[0]["telemetry"]


def telemetry_frame(lap: int, **fields: Any) -> dict:
    frame = dict(_sample_telemetry())
    frame.update(lap=lap, **fields)
    return frame


def write_recording(
    path: Path,
    frames: Iterable[tuple[float, str, dict]],
    *,
    session_id: str | None = None,
    created: float = 1_700_000_000.0,
    tail: bytes = b"",
) -> Path:
    """A recording file from (t, kind, data) tuples, written with the format module."""
    session_id = session_id or path.name.removesuffix(".jsonl")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(encode_header(Header(session_id=session_id, created=created, racedash_version="0.1.0")))
        for seq, (t, kind, data) in enumerate(frames, start=1):
            f.write(encode_event(t, seq, kind, data))
        f.write(tail)
    return path


def stint(
    session_id: str,
    *,
    t0: float = 1_700_000_000.0,
    laps: int = 3,
    frames_per_lap: int = 10,
    interval: float = 0.5,
    setup_every_lap: bool = False,
) -> list[tuple[float, str, dict]]:
    """A setup, then telemetry at ``interval`` s, ``frames_per_lap`` frames per lap, laps from 1."""
    setup = {"session_id": session_id, "timestamp": "2025-11-22T17:16:45.160430Z", "setup": {"carSetup": {"garageValues": {}}}}
    frames: list[tuple[float, str, dict]] = [(t0, "setup", setup)]
    t = t0
    for lap in range(1, laps + 1):
        for i in range(frames_per_lap):
            t += interval
            if setup_every_lap and i == 0 and lap > 1:
                frames.append((t, "setup", {**setup, "timestamp": f"lap-{lap}"}))
            frames.append((t, "telemetry", {"session_id": session_id, "telemetry": telemetry_frame(lap, lap_time=i * interval)}))
    return frames


def new_recording(directory: Path, **stint_options: Any) -> tuple[str, Path]:
    session_id = str(uuid.uuid4())
    path = write_recording(directory / f"{session_id}.jsonl", stint(session_id, **stint_options))
    return session_id, path


__all__ = [
    "KeepingBroadcaster",
    "ManualClock",
    "new_recording",
    "sample_setup",
    "stint",
    "telemetry_frame",
    "write_recording",
]


async def connect(server, clients, team: bool = True) -> Client:
    """A Socket.IO client; ``team``: logged in (only the team may start replays of recordings)."""
    client = Client(server.url)
    clients.append(client)
    return await client.connect(headers=team_headers(server) if team else {})
