"""One pattern subscription to Redis, read with hiredis: room frames dropped by channel name.

Every process of a deployment receives every room's frames (one ``PSUBSCRIBE
<prefix>room:*`` each). Most are for rooms it has no viewer of, so the cost
that matters is dropping one: here a frame is a reply hiredis parsed from the
socket's bytes (C code), one slice of the channel name and one dict lookup —
no Python-level RESP parsing, no retry wrapper, no message dict, no decoding of
the frame. redis-py's asyncio PubSub does all of those per message (the
benchmark in benchmarks/cluster_drop.py compares the two).

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

# (room, message) for a frame of a room this process has viewers of.
Deliver = Callable[[str, bytes], None]
HasRoom = Callable[[str], bool]


@dataclass
class SubscriberStats:
    received: int = 0  # frames read from Redis
    dropped: int = 0  # of which for rooms with no viewer here (never decoded)
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
    """Keeps one subscription to ``<prefix>room:*`` alive and hands on the frames of rooms viewed here."""

    def __init__(self, url: str, prefix: str, has_room: HasRoom, deliver: Deliver,
                 on_state: Callable[[bool], None] = lambda up: None, retry_seconds: float = 1.0) -> None:
        self._url = url
        self._channel_prefix = f"{prefix}room:".encode()
        self._cut = len(self._channel_prefix)
        self._has_room = has_room
        self._deliver = deliver
        self._on_state = on_state
        self.retry_seconds = retry_seconds
        self.stats = SubscriberStats()
        self.subscribed = asyncio.Event()
        self._transport: asyncio.Transport | None = None

    def handle(self, reply: object) -> None:
        """One reply off the subscription; a frame is ``[b"pmessage", pattern, channel, data]``."""
        if type(reply) is list and len(reply) == 4 and reply[0] == b"pmessage":
            self.stats.received += 1
            room = reply[2][self._cut:].decode()
            if not self._has_room(room):
                self.stats.dropped += 1
                return
            self._deliver(room, reply[3])
        elif type(reply) is list and reply and reply[0] == b"psubscribe":
            self.subscribed.set()
            self._on_state(True)
        elif isinstance(reply, hiredis.ReplyError):
            log.error("redis refused the room subscription: %s", reply)

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
                self._on_state(False)
                if self._transport is not None:
                    self._transport.close()
                    self._transport = None
            await asyncio.sleep(self.retry_seconds)

    async def _connect(self) -> _Protocol:
        # Pub/sub ignores the database number: the prefix alone keeps deployments apart.
        transport, protocol, _skip = await open_connection(self._url, lambda: _Protocol(self), select_db=False)
        self._transport = transport
        transport.write(pack("PSUBSCRIBE", self._channel_prefix + b"*"))
        return protocol

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
