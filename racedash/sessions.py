"""The session registry: ids, publisher rights, latest setup and telemetry.

Everything here is plain, synchronous Python so that a handler can stamp a
frame (assign its ``seq``, keep it as the latest, hand it to the recorder)
before its first ``await``: python-socketio runs every event as its own task,
and stamping synchronously is what keeps frames in the order they arrived.

The registry is the seam for running several processes later: the live
handlers only use :class:`SessionRegistry`'s public methods.

Session id rule (see docs/protocol.md): a well-formed UUID that the server
does not know is *taken up* as a session when a monitor publishes under it or
a dashboard joins it. If a recording exists for that id, the session resumes
it (seq, latest setup and telemetry are restored by the ``restore`` hook).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Iterable, Iterator, Protocol

import orjson

from racedash.errors import LimitExceeded
from racedash.ids import new_session_id, new_token

log = logging.getLogger(__name__)

SETUP = "setup"
SETUP_HISTORY = 50
TELEMETRY = "telemetry"


class Frame:
    """One accepted event of a session, as recorded and broadcast.

    ``data_json`` is the payload as JSON when the live path already encoded it
    (recorded as is, and cut into messages by racedash.wire). Once a telemetry frame has been broadcast, the ring keeps
    only that JSON (:meth:`compact`): a decoded ~1 KB telemetry payload is
    about 11 KB of Python objects, most of them tracked by the garbage
    collector, and a ring holds 1,200 frames per session. ``payload`` decodes
    it again when a late joiner's catch-up or history asks (the JSON came from
    that payload, so it decodes to an equal one).
    """

    __slots__ = ("seq", "kind", "received", "_payload", "data_json", "tail_at", "_size")

    def __init__(
        self, seq: int, kind: str, received: float, payload: dict | None = None, data_json: bytes | None = None,
        tail_at: int = 0,
    ) -> None:
        if payload is None and data_json is None:
            raise ValueError("a frame needs its payload or its JSON")
        self.seq = seq
        self.kind = kind
        self.received = received  # server receive time, epoch seconds
        self._payload = payload
        self.data_json = data_json
        # Where the part viewers are sent starts in data_json (0: unknown; see racedash.wire).
        self.tail_at = tail_at
        self._size = len(data_json) if data_json is not None else None

    @property
    def size(self) -> int:
        """Its encoded size in bytes: what memory bounds count (a restored frame is encoded once to know)."""
        if self._size is None:
            self._size = len(self.data_json) if self.data_json is not None else len(orjson.dumps(self._payload))
        return self._size

    @property
    def payload(self) -> dict:
        if self._payload is not None:
            return self._payload
        assert self.data_json is not None
        return orjson.loads(self.data_json)

    def compact(self) -> None:
        """Keep only the JSON, when there is one."""
        if self.data_json is not None:
            self._payload = None
            # orjson's output keeps its whole write buffer (8 KB for a 1 KB
            # payload); a copy is allocated at its size.
            self.data_json = bytes(memoryview(self.data_json))

    def __repr__(self) -> str:
        return f"Frame(seq={self.seq}, kind={self.kind!r}, received={self.received})"


def _encode_like_live(frame: Frame) -> None:
    """Give a frame read from a recording the JSON a live frame has (laid out by racedash.wire)."""
    from racedash.wire import payload_json  # racedash.wire builds on this module's Frame

    try:
        frame.data_json, frame.tail_at = payload_json(frame.kind, frame.payload)
    except (KeyError, TypeError, orjson.JSONEncodeError):  # a recording from before the schema required them
        frame.data_json, frame.tail_at = orjson.dumps(frame.payload), 0


class FrameSink(Protocol):
    """Where accepted frames go besides memory (the recorder). Must not block."""

    def append(self, session_id: str, frame: Frame) -> None: ...


class NullSink:
    def append(self, session_id: str, frame: Frame) -> None:
        pass


@dataclass
class RestoredState:
    """What a recording knows of a session that is being taken up again."""

    next_seq: int
    setups: list[Frame]  # the last SETUP_HISTORY setups, oldest first
    telemetry: Frame | None
    recent: list[Frame]
    created: float
    team: str | None = None  # the team its recording's header names (racedash.teams)

    @property
    def setup(self) -> Frame | None:
        return self.setups[-1] if self.setups else None


Restorer = Callable[[str], Awaitable["RestoredState | None"]]


async def _restore_nothing(session_id: str) -> RestoredState | None:
    return None


@dataclass
class Session:
    id: str
    publish_token: str
    created: float
    next_seq: int = 1
    setup: Frame | None = None
    telemetry: Frame | None = None
    publisher_sid: str | None = None
    publisher_address: str | None = None  # where its publisher connected from (racedash.rights)
    team: str | None = None  # the team it belongs to (racedash.teams.monitors); None: no team, admin only
    viewer_sids: set[str] = field(default_factory=set)
    recent: deque[Frame] = field(default_factory=lambda: deque(maxlen=1200))
    last_publish_monotonic: float = field(default_factory=time.monotonic)
    # Every setup of this session (bounded), oldest first: a joining dashboard
    # is sent them all so it can list each setup change of the session.
    setups: deque[Frame] = field(default_factory=lambda: deque(maxlen=SETUP_HISTORY))
    # Set while a joining viewer is brought level with the live stream
    # (racedash.history): publishers wait in take_up() until it is resolved.
    hold: asyncio.Future[None] | None = None
    # Encoded bytes held by ``recent`` and ``setups``: each bounded (SessionRegistry's budgets).
    recent_bytes: int = 0
    setups_bytes: int = 0

    def frames_after(self, last_seq: int) -> list[Frame] | None:
        """Frames with seq > last_seq from the in-memory ring, or None if the ring no longer reaches back."""
        if last_seq >= self.next_seq - 1:
            return []
        if not self.recent or self.recent[0].seq > last_seq + 1:
            return None
        return [f for f in self.recent if f.seq > last_seq]


class SessionRegistry:
    """Holds every live session of this process."""

    def __init__(
        self,
        *,
        sink: FrameSink | None = None,
        restore: Restorer = _restore_nothing,
        clock: Callable[[], float] = time.time,
        ring_size: int = 1200,
        ring_max_bytes: int = 4 << 20,
        setup_history_bytes: int = 4 << 20,
        max_sessions: int = 0,
        token_for: Callable[[str], str] = lambda session_id: new_token(),
    ) -> None:
        self._sessions: dict[str, Session] = {}
        self._pending: dict[str, asyncio.Future[Session]] = {}
        self._sink = sink or NullSink()
        self._restore = restore
        self._clock = clock
        self._ring_size = ring_size
        self._ring_max_bytes = ring_max_bytes
        self._setup_history_bytes = setup_history_bytes
        self.max_sessions = max_sessions  # 0: no limit
        self._token_for = token_for
        # Told of a session taken up (created from its restored state), and of one ended.
        self.on_taken_up: Callable[[Session], None] = lambda session: None
        self.on_end: Callable[[str], None] = lambda session_id: None

    # -- lookup ---------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._sessions)

    def __iter__(self) -> Iterator[Session]:
        return iter(list(self._sessions.values()))

    def get(self, session_id: str) -> Session | None:
        return self._sessions.get(session_id)

    def viewer_count(self) -> int:
        return sum(len(s.viewer_sids) for s in self._sessions.values())

    # -- creation -------------------------------------------------------------
    def create(self, publisher_sid: str | None = None, session_id: str | None = None) -> Session:
        session = self._new_session(session_id or new_session_id(), publisher_sid)
        log.info("session %s created", _short(session.id))
        return session

    async def take_up(self, session_id: str) -> Session:
        """The session with this (validated) id, creating or resuming it if needed.

        Returns without suspending when the session is known, so callers keep
        their frame order. Concurrent callers for an unknown id share one
        restore and resume in the order they asked.
        """
        session = self._sessions.get(session_id)
        if session is not None:
            while session.hold is not None:  # waiters resume in arrival order: frame order is kept
                await asyncio.shield(session.hold)
            return session
        pending = self._pending.get(session_id)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Session] = asyncio.get_running_loop().create_future()
        self._pending[session_id] = future
        try:
            restored = await self._restore(session_id)
            session = self._sessions.get(session_id) or self._new_session(session_id, None, restored)
            self.on_taken_up(session)  # in the same step: nothing can arrive for it in between
            future.set_result(session)
            log.info(
                "session %s taken up (%s)", _short(session_id), "resumed" if restored else "new"
            )
            return session
        except BaseException as exc:
            future.set_exception(exc)
            # The exception is re-raised to this caller; mark it retrieved so
            # a future nobody else awaited does not log "never retrieved".
            future.exception()
            raise
        finally:
            del self._pending[session_id]

    def _new_session(
        self, session_id: str, publisher_sid: str | None, restored: RestoredState | None = None
    ) -> Session:
        if self.max_sessions and len(self._sessions) >= self.max_sessions:
            raise LimitExceeded(f"this server holds its maximum of {self.max_sessions} live sessions")
        session = Session(
            id=session_id,
            publish_token=self._token_for(session_id),
            created=restored.created if restored else self._clock(),
            publisher_sid=publisher_sid,
            recent=deque(maxlen=self._ring_size),
        )
        if restored is not None:
            session.next_seq = restored.next_seq
            session.team = restored.team
            session.setup = restored.setup
            session.telemetry = restored.telemetry
            for frame in restored.setups:
                if frame is not restored.setup and frame.data_json is None:
                    _encode_like_live(frame)  # held as JSON, like live history
                    frame.compact()
                self._keep_setup(session, frame)
            for frame in restored.recent:
                self._keep_recent(session, frame)
        self._sessions[session_id] = session
        return session

    def end(self, session_id: str) -> Session | None:
        session = self._sessions.pop(session_id, None)
        if session is not None:
            log.info("session %s ended", _short(session_id))
            self.on_end(session_id)
        return session

    def idle_sessions(self, idle_seconds: float, now_monotonic: float) -> list[Session]:
        return [
            s
            for s in self._sessions.values()
            if s.publisher_sid is None and now_monotonic - s.last_publish_monotonic >= idle_seconds
        ]

    # -- publishing -----------------------------------------------------------
    def publish(
        self, session: Session, kind: str, payload: dict, sid: str | None, data_json: bytes | None = None,
        tail_at: int = 0,
    ) -> Frame:
        """Stamp, keep and hand on one frame. Synchronous on purpose (see module doc)."""
        frame = Frame(seq=session.next_seq, kind=kind, received=self._clock(), payload=payload, data_json=data_json,
                      tail_at=tail_at)
        self._keep(session, frame)
        session.last_publish_monotonic = time.monotonic()
        if sid is not None:
            session.publisher_sid = sid
        self._sink.append(session.id, frame)
        return frame

    def follow(self, session: Session, frame: Frame) -> None:
        """Keep a frame another process stamped and records (racedash.cluster): the state, never the file."""
        self._keep(session, frame)
        session.last_publish_monotonic = time.monotonic()

    def _keep(self, session: Session, frame: Frame) -> None:
        session.next_seq = frame.seq + 1
        kind = frame.kind
        if kind == SETUP:
            if session.setup is not None:
                session.setup.compact()  # broadcast already: history keeps its JSON only (~60 KB, not ~1 MB of objects)
            session.setup = frame
            self._keep_setup(session, frame)
        else:
            if session.telemetry is not None:
                session.telemetry.compact()  # broadcast already: the ring keeps its JSON only
            session.telemetry = frame
        self._keep_recent(session, frame)

    # -- memory bounds: frames held per session, by count and by encoded bytes ------------
    def _keep_recent(self, session: Session, frame: Frame) -> None:
        ring = session.recent
        if ring.maxlen is not None and len(ring) == ring.maxlen:
            session.recent_bytes -= ring[0].size  # append() below drops it
        ring.append(frame)
        session.recent_bytes += frame.size
        while session.recent_bytes > self._ring_max_bytes and len(ring) > 1:
            session.recent_bytes -= ring.popleft().size  # older frames come from the recording

    def _keep_setup(self, session: Session, frame: Frame) -> None:
        setups = session.setups
        if setups.maxlen is not None and len(setups) == setups.maxlen:
            session.setups_bytes -= setups[0].size
        setups.append(frame)
        session.setups_bytes += frame.size
        while session.setups_bytes > self._setup_history_bytes and len(setups) > 1:
            session.setups_bytes -= setups.popleft().size

    # -- connections ----------------------------------------------------------
    def add_viewer(self, session: Session, sid: str) -> None:
        session.viewer_sids.add(sid)

    def forget_connection(self, sid: str) -> Iterable[Session]:
        """Drop a disconnected client everywhere; returns the sessions it published."""
        published = []
        for session in self._sessions.values():
            session.viewer_sids.discard(sid)
            if session.publisher_sid == sid:
                session.publisher_sid = None
                session.last_publish_monotonic = time.monotonic()
                published.append(session)
        return published


def _short(session_id: str) -> str:
    """Log only a prefix of an id: the full id is a viewer's secret."""
    return session_id[:8]


def frame_event(session_id: str, frame: Frame) -> tuple[str, dict[str, Any]]:
    """The Socket.IO event and payload a frame is broadcast as (``seq`` is additive)."""
    if frame.kind == SETUP:
        payload = frame.payload
        return "setup_update", {
            "session_id": session_id,
            "timestamp": payload.get("timestamp"),
            "setup": payload.get("setup"),
            "seq": frame.seq,
        }
    return "telemetry_update", {
        "session_id": session_id,
        "telemetry": frame.payload.get("telemetry"),
        "seq": frame.seq,
    }
