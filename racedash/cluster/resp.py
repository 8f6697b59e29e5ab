"""Raw Redis connections for the two hot paths: the room subscription and the frame writer.

A room frame costs a process a few microseconds on these connections: commands
are packed and replies parsed by hiredis (C), one socket write carries every
command queued in a turn of the event loop, and nothing else runs per frame.
redis-py's asyncio client, used for everything else (leases, streams read back,
listings), pays a connection checkout, a retry wrapper and several awaits per
call — about 0.4 ms of CPU per pipelined frame at racedash's rates, measured
with py-spy (benchmarks/cluster.py).

Both connect from the deployment's Redis URL (host, port, user and password,
database, ``rediss://`` for TLS).
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from typing import Any, Callable
from urllib.parse import unquote, urlsplit

import hiredis


def pack(*parts: Any) -> bytes:
    return hiredis.pack_command(parts)


async def open_connection(url: str, protocol_factory: Callable[[], asyncio.Protocol], *, select_db: bool,
                          timeout: float = 5.0) -> tuple[asyncio.Transport, Any, int]:
    """(transport, protocol, commands sent) connected to the URL's Redis, AUTH (and SELECT) written.

    The replies to those commands arrive first on the connection: the caller skips ``commands sent`` replies.
    """
    parts = urlsplit(url)
    context = ssl.create_default_context() if parts.scheme == "rediss" else None
    loop = asyncio.get_running_loop()
    transport, protocol = await asyncio.wait_for(
        loop.create_connection(protocol_factory, parts.hostname or "127.0.0.1", parts.port or 6379, ssl=context),
        timeout=timeout,
    )
    commands = []
    if parts.password is not None:
        credentials = [unquote(parts.password)]
        if parts.username:
            credentials.insert(0, unquote(parts.username))
        commands.append(pack("AUTH", *credentials))
    database = parts.path.strip("/")
    if select_db and database and database != "0":
        commands.append(pack("SELECT", database))
    if commands:
        transport.write(b"".join(commands))
    return transport, protocol, len(commands)


class _Replies(asyncio.Protocol):
    def __init__(self, pipe: "CommandPipe") -> None:
        self._pipe = pipe
        self._reader = hiredis.Reader()
        self.lost: asyncio.Future = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        while (reply := self._reader.gets()) is not False:
            self._pipe.reply(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self._pipe.lost(exc, self)


# What is called with a command's reply: the reply (a ``hiredis.ReplyError`` when Redis refused the
# command), or a ConnectionError when the connection was lost before it came.
OnReply = Callable[[Any], None]


class CommandPipe:
    """One connection, commands answered in order.

    :meth:`write` hands Redis already packed commands with one callback per command
    (None: a reply nobody waits for); :meth:`send` is the same for one command, with
    a future. A lost connection calls every pending callback with a ConnectionError
    (a future gets it as its exception), and the next :meth:`ensure` reconnects.
    """

    def __init__(self, url: str) -> None:
        self._url = url
        self._transport: asyncio.Transport | None = None
        self._protocol: _Replies | None = None
        self._pending: deque[OnReply | None] = deque()
        self.replies = 0  # replies read so far (a watchdog's measure of progress)

    @property
    def connected(self) -> bool:
        return self._transport is not None and not self._transport.is_closing()

    @property
    def waiting(self) -> int:
        """Replies still owed."""
        return len(self._pending)

    async def ensure(self) -> bool:
        """Connected; True when this call opened a new connection."""
        if self.connected:
            return False
        self.lost(None)  # what the last connection still owed (closing, not yet reported lost)
        transport, protocol, skip = await open_connection(self._url, lambda: _Replies(self), select_db=True)
        self._transport, self._protocol = transport, protocol
        self._pending.extend([None] * skip)
        return True

    def write(self, data: bytes, callbacks: list[OnReply | None]) -> None:
        """Packed commands (one or several), answered in order by ``callbacks``; connected (see ensure)."""
        assert self._transport is not None
        self._transport.write(data)
        self._pending.extend(callbacks)

    def send(self, *parts: Any) -> asyncio.Future:
        future = asyncio.get_running_loop().create_future()
        if not self.connected:
            future.set_exception(ConnectionError("not connected to redis"))
            return future

        def settle(reply: Any) -> None:
            if future.done():
                return
            if isinstance(reply, ConnectionError):
                future.set_exception(reply)
                future.exception()
            else:
                future.set_result(reply)

        self.write(pack(*parts), [settle])
        return future

    def reply(self, reply: Any) -> None:
        self.replies += 1
        waiting = self._pending.popleft() if self._pending else None
        if waiting is not None:
            waiting(reply)

    def lost(self, exc: Exception | None, protocol: "_Replies | None" = None) -> None:
        if protocol is not None and protocol is not self._protocol:
            return  # a connection replaced already
        self._transport = self._protocol = None
        error = ConnectionError(f"redis connection lost: {exc or 'closed'}")
        while self._pending:
            waiting = self._pending.popleft()
            if waiting is not None:
                waiting(error)

    def abort(self) -> None:
        """Drop the connection now (Redis stopped answering): every pending callback gets a ConnectionError."""
        if self._transport is not None:
            self._transport.abort()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
