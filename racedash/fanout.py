"""Fast room fan-out: build a frame once per room emit, write it straight to each viewer.

Why: python-socketio encodes a room emit once but then pays, per recipient, an
asyncio task, an engine.io queue put, a writer-task wake-up and Tornado's
``write_message`` (which schedules one more task). On the benchmark machine
that stack costs far more than the loopback ``send()`` itself. Here the
Socket.IO packet (``42[...]``) and its websocket frame are built once per
room emit and written to each upgraded viewer's socket (:func:`send_now`).
Browsers negotiate permessage-deflate without context takeover
(racedash.transport), so their compressed frame is also built once per emit
and shared.

Ordering rule: a direct write is only made when it cannot overtake a frame
engine.io still holds for that connection. Otherwise the packet goes the
normal engine.io way (the socket's queue, drained by its writer task):

* the connection is not (yet) an upgraded websocket, or is upgrading;
* engine.io's queue for it has unfinished items (queued, or taken by the
  writer but not yet passed to Tornado: ``Queue._unfinished_tasks`` counts
  both, because the writer calls ``task_done`` before it writes, with no
  suspension point between ``task_done`` and the writes);
* the connection is closing.

A websocket run by racedash.transport's driver (the default) never holds
anything: engine.io's sends to it are written at once, so only the first and
last rules can apply to it.

Every recipient of one emit is handled synchronously, in one pass, so two
emits can never interleave on any connection.

Slow consumers (documented in docs/performance.md): a viewer whose unsent
bytes in the server (Tornado's write buffer) exceed ``max_pending_bytes``
stops receiving frames; while it lags, only the latest frame of each event is
kept for it (conflation). Once its buffer has drained below a quarter of the
bound, the next room emit first sends it those latest frames, then continues
live. A viewer still lagging after ``lag_disconnect_seconds`` is disconnected.

This module relies on internals of the pinned versions in
:data:`VERIFIED_VERSIONS`; tests/test_fanout.py fails loudly if an upgrade
changes them, and at run time a version mismatch switches the direct path off
(everything then goes through engine.io, still encoded once).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import engineio.packet
import socketio
import tornado.iostream

from racedash.transport import WebSocketHook
from racedash.transport.frames import (
    RSV1,
    TEXT_FIN,
    compressor_key,
    deflate_message,
    send_now,
    websocket_frame,
)
from racedash.transport.versions import VERIFIED_VERSIONS, installed_versions, versions_verified
from racedash.wire import event_message as encode_event  # noqa: F401 - also this module's public name

log = logging.getLogger(__name__)


class _Frame:
    """One encoded emit, with its wire forms built lazily and at most once."""

    __slots__ = ("event", "payload", "_ws_frame", "_deflated", "_eio_packet")

    def __init__(self, event: str, payload: bytes) -> None:
        self.event = event
        self.payload = payload
        self._ws_frame: bytes | None = None
        self._deflated: dict[tuple[int, int, int], bytes] | None = None
        self._eio_packet: engineio.packet.Packet | None = None

    @property
    def ws_frame(self) -> bytes:
        if self._ws_frame is None:
            self._ws_frame = websocket_frame(self.payload)
        return self._ws_frame

    def deflated_ws_frame(self, compressor: Any) -> bytes:
        """The compressed frame for connections whose compressor has these parameters."""
        key = compressor_key(compressor)
        if self._deflated is None:
            self._deflated = {}
        frame = self._deflated.get(key)
        if frame is None:
            frame = self._deflated[key] = websocket_frame(deflate_message(self.payload, *key), TEXT_FIN | RSV1)
        return frame

    @property
    def eio_packet(self) -> engineio.packet.Packet:
        # The engine.io packet encodes itself to "4" + data, i.e. our payload.
        if self._eio_packet is None:
            self._eio_packet = engineio.packet.Packet(engineio.packet.MESSAGE, self.payload[1:].decode())
        return self._eio_packet


@dataclass
class _Lag:
    since: float
    missed: dict[str, _Frame] = field(default_factory=dict)  # latest frame per event, oldest first


@dataclass
class FanoutStats:
    """Counters, for tests and the status page: how frames left the server."""

    direct: int = 0
    fallback: int = 0
    conflated: int = 0  # frames not sent to a lagging viewer (a newer one replaced them)
    caught_up: int = 0  # lagging viewers brought back to the latest state
    disconnected: int = 0  # lagging viewers disconnected after lag_disconnect_seconds
    bytes_out: int = 0  # bytes of room frames handed to viewers (websocket frames, or engine.io messages)


class FanoutBroadcaster:
    """A :class:`racedash.broadcast.Broadcaster` with a direct write path (see module doc)."""

    def __init__(
        self,
        sio: socketio.AsyncServer,
        hook: WebSocketHook,
        *,
        fast_path: bool = True,
        max_pending_bytes: int = 512 * 1024,
        lag_disconnect_seconds: float = 120.0,
        clock: Callable[[], float] = time.monotonic,
        namespace: str = "/",
    ) -> None:
        self._sio = sio
        self._eio = sio.eio
        self._hook = hook
        self._namespace = namespace
        self.fast_path = fast_path
        if fast_path and not versions_verified():
            log.warning(
                "fast fan-out disabled: installed %s, verified %s", installed_versions(), VERIFIED_VERSIONS
            )
            self.fast_path = False
        self.max_pending_bytes = max_pending_bytes
        self._resume_bytes = max_pending_bytes // 4
        self.lag_disconnect_seconds = lag_disconnect_seconds
        self._clock = clock
        self._lagging: dict[str, _Lag] = {}
        self.stats = FanoutStats()
        hook.on_close.append(self._forget)

    def _forget(self, eio_sid: str) -> None:
        self._lagging.pop(eio_sid, None)

    # -- Broadcaster ------------------------------------------------------------------
    async def to_room(self, room: str, event: str, data: Any) -> None:
        self.send(room, event, data)

    async def to_client(self, sid: str, event: str, data: Any) -> None:
        self.send(sid, event, data)  # every client is in a room named after its sid

    async def room_message(self, room: str, event: str, message: bytes) -> None:
        self.send_message(room, event, message)

    async def client_message(self, sid: str, event: str, message: bytes) -> None:
        self.send_message(sid, event, message)

    def send(self, room: str, event: str, data: Any) -> None:
        """Deliver one event to every member of ``room``, synchronously (see module doc)."""
        self.send_message(room, event, encode_event(event, data))

    def has_members(self, room: str) -> bool:
        """Whether ``room`` has a client connected to this process."""
        ns_rooms = self._sio.manager.rooms.get(self._namespace)
        return bool(ns_rooms and ns_rooms.get(room))

    def send_message(self, room: str, event: str, message: bytes) -> None:
        """Deliver an encoded event (``42[...]``) to every member of ``room``, synchronously."""
        frame = _Frame(event, message)
        ns_rooms = self._sio.manager.rooms.get(self._namespace)
        members = ns_rooms.get(room) if ns_rooms else None
        if not members:
            return
        now = self._clock()
        for eio_sid in list(members.values()):
            self._deliver(eio_sid, frame, now)

    # -- one recipient ----------------------------------------------------------------
    def _deliver(self, eio_sid: str, frame: _Frame, now: float) -> None:
        sock = self._eio.sockets.get(eio_sid)
        if sock is None or sock.closing or sock.closed:
            return
        handler = self._hook.handlers.get(eio_sid)
        conn = handler.ws_connection if handler is not None else None
        if conn is not None:
            if conn.is_closing():
                return  # its stream is gone or going: engine.io is about to report the disconnect
            pending = len(conn.stream._write_buffer)
            lag = self._lagging.get(eio_sid)
            if lag is not None:
                if pending > self._resume_bytes:
                    self._keep_latest(lag, frame)
                    if now - lag.since >= self.lag_disconnect_seconds:
                        self._disconnect(eio_sid, conn)
                    return
                # Drained: first the latest of what it missed, then live again.
                del self._lagging[eio_sid]
                self.stats.caught_up += 1
                for missed in lag.missed.values():
                    if missed.event != frame.event:
                        self._write(sock, conn, missed)
            elif pending > self.max_pending_bytes:
                lag = self._lagging[eio_sid] = _Lag(since=now)
                log.info("viewer %s is not reading (%d bytes unsent): conflating", eio_sid[:8], pending)
                self._keep_latest(lag, frame)
                return
        self._write(sock, conn, frame)

    def _write(self, sock: Any, conn: Any, frame: _Frame) -> None:
        if (
            self.fast_path
            and conn is not None
            and sock.upgraded
            and not sock.upgrading
            and sock.queue._unfinished_tasks == 0
            # A compressor keeping context between messages (never negotiated by
            # racedash.transport) could not share bytes: engine.io's path serves it.
            and (conn._compressor is None or conn._compressor._compressor is None)
        ):
            try:
                if conn._compressor is None:
                    data = frame.ws_frame
                else:
                    # permessage-deflate without context takeover (browsers): the same
                    # bytes for every such viewer.
                    data = frame.deflated_ws_frame(conn._compressor)
                send_now(conn.stream, data)
                self.stats.direct += 1
                self.stats.bytes_out += len(data)
            except tornado.iostream.StreamClosedError:
                pass  # the connection just went away; engine.io reports the disconnect
            return
        # The normal engine.io path: the socket's own queue, drained by its writer task.
        # put_nowait instead of `await socket.send()` keeps the pass synchronous; the
        # ping-timeout check send() would add is done by engine.io's service task too.
        sock.queue.put_nowait(frame.eio_packet)
        self.stats.fallback += 1
        self.stats.bytes_out += len(frame.payload)

    def _keep_latest(self, lag: _Lag, frame: _Frame) -> None:
        if lag.missed.pop(frame.event, None) is not None:
            self.stats.conflated += 1
        lag.missed[frame.event] = frame

    def _disconnect(self, eio_sid: str, conn: Any) -> None:
        log.warning("viewer %s lagged for %.0f s: disconnected", eio_sid[:8], self.lag_disconnect_seconds)
        self._lagging.pop(eio_sid, None)
        self.stats.disconnected += 1
        # Closing the stream frees its buffer at once; engine.io then sees the
        # connection end and runs the normal disconnect handling.
        conn.stream.close()


def make_broadcaster(sio: socketio.AsyncServer, hook: WebSocketHook, settings: Any) -> Any:
    """The local broadcaster ``settings`` ask for (racedash.cluster wraps it when Redis is set)."""
    from racedash.broadcast import SocketIOBroadcaster

    if not settings.fast_fanout and not settings.redis_url:
        return SocketIOBroadcaster(sio)
    return FanoutBroadcaster(
        sio,
        hook,
        fast_path=settings.fast_fanout,
        max_pending_bytes=settings.slow_consumer_max_bytes,
        lag_disconnect_seconds=settings.slow_consumer_disconnect_seconds,
    )
