"""engine.io's heartbeat pings for every connection of a server, from one task."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import Any

import engineio.packet

log = logging.getLogger(__name__)


class PingWheel:
    """Sends engine.io's heartbeat pings for every connection of one server, from one task.

    engine.io starts a task per connection for each ping (it sleeps the ping
    interval, sends a ping, and the pong schedules the next). With thousands of
    viewers that is a task, a coroutine, a timer and their futures per
    connection, all re-created every 25 s in one burst (viewers connect
    together, so their pings come due together): the young-generation
    collections that followed each burst were the 2 Hz stream's latency tail
    (30-200 ms every 25 s at 5,000 viewers). Here a ping is an entry in a FIFO
    (the interval is the same for every connection, so due times are in
    order) and one task sends those that are due, exactly as engine.io's
    ``_send_ping`` does.
    """

    BATCH = 64  # pings sent between two turns of the event loop

    def __init__(self, eio: Any) -> None:
        self._eio = eio
        # Due times and sockets side by side, not as a tuple per ping: each ping
        # outlives many young collections, and a tuple would be one more object per
        # connection and round for the collector to scan.
        self._due_at: deque[float] = deque()
        self._sockets: deque[Any] = deque()
        self._task: asyncio.Task[None] | None = None

    def schedule(self, socket: Any) -> None:
        """Ping ``socket`` one ping interval from now (engine.io's ``schedule_ping`` calls this)."""
        loop = asyncio.get_running_loop()
        self._due_at.append(loop.time() + self._eio.ping_interval)
        self._sockets.append(socket)
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._run(), name="engineio-pings")

    def __len__(self) -> int:
        return len(self._sockets)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        sent = 0
        while self._sockets:
            due = self._due_at[0]
            if due > loop.time():
                await asyncio.sleep(due - loop.time())
                continue
            self._due_at.popleft()
            socket = self._sockets.popleft()
            sent += 1
            if sent % self.BATCH == 0:
                # Viewers that connected together come due together, and a ping is
                # written as it is sent: let the live stream through between batches.
                await asyncio.sleep(0)
            if not socket.closing and not socket.closed:
                socket.last_ping = time.time()
                try:
                    await socket.send(engineio.packet.Packet(engineio.packet.PING))
                except Exception:  # noqa: BLE001 - one connection must not stop everyone's heartbeat
                    log.exception("ping to %s failed", socket.sid)

    async def close(self) -> None:
        self._due_at.clear()
        self._sockets.clear()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
