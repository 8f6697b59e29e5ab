"""The room subscriptions, on one Redis connection read with hiredis.

Every process of a deployment receives every room's events (one ``PSUBSCRIBE
<prefix>room:*`` each). Most are for rooms it has no viewer of, so the cost
that matters is dropping one: here a message is a reply hiredis parsed from the
socket's bytes (C code), one slice of the channel name and one dict lookup —
no Python-level RESP parsing, no retry wrapper, no message dict, no decoding of
it. redis-py's asyncio PubSub does all of those per message (the benchmark in
benchmarks/cluster_drop.py compares the two).

A session's frames, the bulk of the traffic, have channels of their own
(``<prefix>f:<session>``), outside the pattern: the same connection holds one
plain ``SUBSCRIBE`` per session this process follows (racedash.cluster.follow),
so a frame reaches only the processes that show it and not its writer.

Connection settings (host, port, password, TLS) come from the same URL as the
rest of racedash's Redis use, parsed by redis-py.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Callable

import hiredis

from racedash.cluster.resp import open_connection, pack

log = logging.getLogger(__name__)

# (room, message) for a message of a room this process has viewers of.
Deliver = Callable[[str, bytes], None]
# (session id, message) for a frame of a session followed here.
DeliverFrame = Callable[[str, bytes], None]
HasRoom = Callable[[str], bool]


@dataclass
class SubscriberStats:
    received: int = 0  # room messages read from Redis (the pattern subscription)
    dropped: int = 0  # of which for rooms with no viewer here (never decoded)
    frames: int = 0  # session frames read from Redis (the per-session subscriptions)
    connects: int = 0


class _Protocol(asyncio.Protocol):
    def __init__(self, subscriber: "RoomSubscriber") -> None:
        self._subscriber = subscriber
        self._reader = hiredis.Reader()
        self.lost: asyncio.Future = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        reader = self._reader
        reader.feed(data)
        handle = self._subscriber.handle
        while True:
            reply = reader.gets()
            if reply is False:
                return
            handle(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(exc)


class RoomSubscriber:
    """Keeps the subscription to ``<prefix>room:*`` alive and hands on the messages of rooms viewed here;
    and one subscription per followed session's frame channel (:meth:`follow`)."""

    def __init__(self, url: str, prefix: str, has_room: HasRoom, deliver: Deliver,
                 on_state: Callable[[bool], None] = lambda up: None, retry_seconds: float = 1.0,
                 deliver_frame: DeliverFrame = lambda session_id, data: None) -> None:
        self._url = url
        self._channel_prefix = f"{prefix}room:".encode()
        self._cut = len(self._channel_prefix)
        self._frame_prefix = f"{prefix}f:".encode()
        self._frame_cut = len(self._frame_prefix)
        self._has_room = has_room
        self._deliver = deliver
        self._deliver_frame = deliver_frame
        self._frame_channels: set[bytes] = set()  # subscribed (or to subscribe once connected)
        self._confirmed: set[bytes] = set()  # of which Redis confirmed on this connection
        self._confirmations: dict[bytes, list[asyncio.Future]] = {}
        self._on_state = on_state
        self.retry_seconds = retry_seconds
        self.stats = SubscriberStats()
        self.subscribed = asyncio.Event()
        self._transport: asyncio.Transport | None = None

    def handle(self, reply: object) -> None:
        """One reply off the connection: a room message is ``[b"pmessage", pattern, channel, data]``, a
        session's frame ``[b"message", channel, data]``."""
        if type(reply) is list:
            size = len(reply)
            if size == 3 and reply[0] == b"message":
                self.stats.frames += 1
                self._deliver_frame(reply[1][self._frame_cut:].decode(), reply[2])
                return
            if size == 4 and reply[0] == b"pmessage":
                self.stats.received += 1
                room = reply[2][self._cut:].decode()
                if not self._has_room(room):
                    self.stats.dropped += 1
                    return
                self._deliver(room, reply[3])
                return
            if size and reply[0] == b"subscribe":
                if reply[1] in self._frame_channels:
                    self._confirmed.add(reply[1])
                for waiting in self._confirmations.pop(reply[1], ()):
                    if not waiting.done():
                        waiting.set_result(True)
                return
            if size and reply[0] == b"psubscribe":
                self.subscribed.set()
                self._on_state(True)
                return
        elif isinstance(reply, hiredis.ReplyError):
            log.error("redis refused the room subscription: %s", reply)

    # -- a session's frame channel --------------------------------------------------------
    def follow(self, session_id: str) -> asyncio.Future:
        """Subscribe to the session's frames (written at once when connected; else at the next connect).

        The future is done once Redis confirmed the subscription: a frame published after that
        reaches this process. It may never be done (Redis away): wait on it with a timeout.
        """
        channel = self._frame_prefix + session_id.encode()
        future = asyncio.get_running_loop().create_future()
        if channel in self._confirmed:
            future.set_result(True)
            return future
        self._confirmations.setdefault(channel, []).append(future)
        if channel not in self._frame_channels:
            self._frame_channels.add(channel)
            if self._transport is not None and not self._transport.is_closing():
                self._transport.write(pack("SUBSCRIBE", channel))
        return future

    def unfollow(self, session_id: str) -> None:
        channel = self._frame_prefix + session_id.encode()
        if channel in self._frame_channels:
            self._frame_channels.discard(channel)
            self._confirmed.discard(channel)
            self._confirmations.pop(channel, None)
            if self._transport is not None and not self._transport.is_closing():
                self._transport.write(pack("UNSUBSCRIBE", channel))

    async def run(self) -> None:
        """Subscribe, and subscribe again whenever the connection is lost (Redis restarted, network)."""
        while True:
            try:
                protocol = await self._connect()
                self.stats.connects += 1
                exc = await protocol.lost
                log.warning("redis room subscription lost (%s): reconnecting", exc or "closed")
            except (OSError, asyncio.TimeoutError) as exc:
                log.warning("redis room subscription failed (%s): retrying in %.1f s", exc, self.retry_seconds)
            finally:
                self.subscribed.clear()
                self._confirmed.clear()
                self._release_waiting()
                self._on_state(False)
                if self._transport is not None:
                    self._transport.close()
                    self._transport = None
            await asyncio.sleep(self.retry_seconds)

    async def _connect(self) -> _Protocol:
        # Pub/sub ignores the database number: the prefix alone keeps deployments apart.
        transport, protocol, _skip = await open_connection(self._url, lambda: _Protocol(self), select_db=False)
        self._transport = transport
        commands = [pack("PSUBSCRIBE", self._channel_prefix + b"*")]
        if self._frame_channels:
            commands.append(pack("SUBSCRIBE", *self._frame_channels))
        transport.write(b"".join(commands))
        return protocol

    def _release_waiting(self) -> None:
        # No confirmation comes on a lost or closed connection: whoever waits for one goes on now (a
        # frame missed until the next connection's subscription is fetched from the stream).
        waiting, self._confirmations = self._confirmations, {}
        for futures in waiting.values():
            for future in futures:
                if not future.done():
                    future.set_result(False)

    def close(self) -> None:
        self._release_waiting()
        if self._transport is not None:
            self._transport.close()
