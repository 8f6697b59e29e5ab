"""How racedash plugs into engine.io's Tornado transport: what one connection costs.

A public broadcast brings thousands of viewers to one process, each holding a
connection that is idle between frames. engine.io's Tornado driver gives every
connection objects sized for a busy one; racedash replaces the heavy ones with
smaller equivalents, per server (engine.io's driver table is copied, nothing
module-wide is patched):

* :class:`LeanQueue` stands in for ``asyncio.Queue`` as engine.io's send queue
  and the Tornado handler's receive queue. ``asyncio.Queue`` allocates four
  deques (about 2.5 KB) up front; an idle connection's queues are empty. Its
  ``get`` is a plain future, so engine.io's ``wait_for(queue.get(), ...)``
  parks no extra task per idle connection.
* :func:`translate_request` builds the WSGI-style environ engine.io and
  python-socketio read, without defining a new class per request (2.5 KB
  each, kept alive by the environ python-socketio stores for every
  connection), without constant entries nobody reads, with interned keys.
* :class:`WebSocketHook` keeps each websocket's Tornado handler by engine.io
  sid (the fan-out writes to it), drops what only the handshake needed, and
  sets ``TCP_NODELAY``: neither Tornado nor engine.io does, and Nagle's
  algorithm with delayed ACKs holds small frames back by tens of milliseconds.
* :class:`PingWheel` sends every connection's heartbeat pings from one task
  instead of a task per connection re-created every ping interval.
* :func:`socketio_handler` negotiates permessage-deflate *without context
  takeover*: every message is compressed on its own, so the fan-out compresses
  a frame once per room instead of once per viewer, and a browser connection
  keeps no zlib state (a persistent compressor is ~256 KB per connection).

tests/test_fanout.py pins the engine.io and Tornado internals this relies on.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections import deque
from typing import Any, Callable
from urllib.parse import urlsplit

import engineio.async_socket
import engineio.packet
import socketio
import tornado.httputil
import tornado.web
import tornado.websocket

log = logging.getLogger(__name__)

_NO_CONTEXT_TAKEOVER = ("server_no_context_takeover", "client_no_context_takeover")


class LeanQueue:
    """The part of ``asyncio.Queue`` engine.io uses, allocating nothing while empty.

    Unbounded, FIFO. ``get()`` returns a future (awaitable like the coroutine
    it replaces); a getter cancelled by a timeout is skipped by the next put,
    so no item is ever handed to a future nobody awaits.
    """

    __slots__ = ("_items", "_getters", "_joiners", "_unfinished_tasks")

    def __init__(self, maxsize: int = 0) -> None:
        if maxsize:
            raise ValueError("LeanQueue is unbounded")
        self._items: deque[Any] | None = None
        self._getters: list[asyncio.Future[Any]] | None = None
        self._joiners: list[asyncio.Future[None]] | None = None
        # Same name and meaning as asyncio.Queue's: items put and not yet task_done().
        self._unfinished_tasks = 0

    def qsize(self) -> int:
        return len(self._items) if self._items else 0

    def empty(self) -> bool:
        return not self._items

    def put_nowait(self, item: Any) -> None:
        self._unfinished_tasks += 1
        getters = self._getters
        while getters:
            getter = getters.pop(0)
            if not getters:
                self._getters = None
            if not getter.done():
                getter.set_result(item)
                return
        if self._items is None:
            self._items = deque()
        self._items.append(item)

    async def put(self, item: Any) -> None:
        self.put_nowait(item)

    def get_nowait(self) -> Any:
        items = self._items
        if not items:
            raise asyncio.QueueEmpty
        item = items.popleft()
        if not items:
            self._items = None
        return item

    def get(self) -> asyncio.Future[Any]:
        future = asyncio.get_running_loop().create_future()
        if self._items:
            future.set_result(self.get_nowait())
        else:
            if self._getters is None:
                self._getters = [future]
            else:
                self._getters = [g for g in self._getters if not g.done()] + [future]
        return future

    def task_done(self) -> None:
        if self._unfinished_tasks <= 0:
            raise ValueError("task_done() called too many times")
        self._unfinished_tasks -= 1
        if self._unfinished_tasks == 0 and self._joiners:
            joiners, self._joiners = self._joiners, None
            for joiner in joiners:
                if not joiner.done():
                    joiner.set_result(None)

    async def join(self) -> None:
        if self._unfinished_tasks == 0:
            return
        joiner = asyncio.get_running_loop().create_future()
        if self._joiners is None:
            self._joiners = []
        self._joiners.append(joiner)
        await joiner


class RequestBody:
    """``environ['wsgi.input']``: the request body, read once by engine.io's polling POST."""

    __slots__ = ("payload",)

    def __init__(self, payload: bytes | None) -> None:
        self.payload = payload or b""

    async def read(self, length: int | None = None) -> bytes:
        if length is None:
            data, self.payload = self.payload, b""
        else:
            data, self.payload = self.payload[:length], self.payload[length:]
        return data


def translate_request(handler: tornado.web.RequestHandler) -> dict[str, Any]:
    """engine.io's Tornado ``translate_request``, lighter.

    Only the keys engine.io, python-socketio and racedash read (engine.io's
    adds a dozen constant WSGI entries, which push every stored environ into
    the next dict size), and ``REMOTE_ADDR`` is the peer's address instead of
    engine.io's fixed ``127.0.0.1``.
    """
    request = handler.request
    environ: dict[str, Any] = {
        "wsgi.input": RequestBody(request.body),
        "REQUEST_METHOD": request.method,
        "QUERY_STRING": request.query or "",
        "REMOTE_ADDR": request.remote_ip,
        "tornado.handler": handler,
    }
    for name, value in request.headers.items():
        name = name.upper()
        if name == "CONTENT-TYPE":
            environ["CONTENT_TYPE"] = value
        elif name == "CONTENT-LENGTH":
            environ["CONTENT_LENGTH"] = value
        else:
            # Interned: every connection's environ shares one copy of each key.
            environ[sys.intern("HTTP_" + name.replace("-", "_"))] = value
    environ["wsgi.url_scheme"] = environ.get("HTTP_X_FORWARDED_PROTO", "http")
    environ["PATH_INFO"] = urlsplit(request.path).path
    environ["SCRIPT_NAME"] = ""
    return environ


def forget_handshake(handler: tornado.websocket.WebSocketHandler) -> None:
    """Drop what only the HTTP handshake needed, for the rest of a websocket's life.

    The request headers (engine.io's environ keeps their values), the 101
    response's headers and Tornado's template helpers (``ui``, which Tornado
    itself drops when a normal request finishes) are about 2.5 KB per
    connection and never read after the upgrade.
    """
    handler.request.headers = tornado.httputil.HTTPHeaders()
    handler._headers = tornado.httputil.HTTPHeaders()
    # RequestHandler's, not WebSocketHandler's (which waits for the close, in
    # case on_message renders templates: racedash's never do).
    tornado.web.RequestHandler._break_cycles(handler)


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

    def __init__(self, eio: Any) -> None:
        self._eio = eio
        self._due: deque[tuple[float, Any]] = deque()
        self._task: asyncio.Task[None] | None = None

    def schedule(self, socket: Any) -> None:
        """Ping ``socket`` one ping interval from now (engine.io's ``schedule_ping`` calls this)."""
        loop = asyncio.get_running_loop()
        self._due.append((loop.time() + self._eio.ping_interval, socket))
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._run(), name="engineio-pings")

    def __len__(self) -> int:
        return len(self._due)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while self._due:
            due, socket = self._due[0]
            if due > loop.time():
                await asyncio.sleep(due - loop.time())
                continue
            self._due.popleft()
            if not socket.closing and not socket.closed:
                socket.last_ping = time.time()
                try:
                    await socket.send(engineio.packet.Packet(engineio.packet.PING))
                except Exception:  # noqa: BLE001 - one connection must not stop everyone's heartbeat
                    log.exception("ping to %s failed", socket.sid)

    async def close(self) -> None:
        self._due.clear()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


class WebSocketHook:
    """Installs the lean transport objects on one engine.io server and tracks its websockets."""

    def __init__(self, eio: Any, *, nodelay: bool = True) -> None:
        self.nodelay = nodelay
        self.handlers: dict[str, tornado.websocket.WebSocketHandler] = {}
        self.on_close: list[Callable[[str], None]] = []
        self.pings = PingWheel(eio)
        base = eio._async["websocket"]
        hook = self

        class HookedWebSocket(base):  # type: ignore[misc, valid-type]
            async def __call__(self, environ: dict) -> Any:
                handler = environ["tornado.handler"]
                forget_handshake(handler)
                if hook.nodelay:
                    handler.set_nodelay(True)
                # self.handler is the engine.io socket's bound _websocket_handler.
                sid = self.handler.__self__.sid
                hook.handlers[sid] = handler
                try:
                    return await super().__call__(environ)
                finally:
                    if hook.handlers.get(sid) is handler:
                        del hook.handlers[sid]
                    for callback in hook.on_close:
                        callback(sid)

        # engine.io keeps the driver table per module; give this server its own copy.
        eio._async = dict(eio._async, websocket=HookedWebSocket, translate_request=translate_request)
        # Every engine.io socket takes its send queue from its server's create_queue.
        eio.create_queue = LeanQueue
        # engine.io's schedule_ping starts _send_ping through its server's start_background_task.
        start_background_task = eio.start_background_task

        def start_task_or_schedule_ping(target: Any, *args: Any, **kwargs: Any) -> Any:
            if getattr(target, "__func__", None) is engineio.async_socket.AsyncSocket._send_ping:
                self.pings.schedule(target.__self__)
                return None
            return start_background_task(target, *args, **kwargs)

        eio.start_background_task = start_task_or_schedule_ping

    async def close(self) -> None:
        await self.pings.close()


def without_context_takeover(extensions: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    """Add both no-context-takeover parameters to each permessage-deflate offer.

    RFC 7692 (7.1.1) lets a server answer an offer with these even when the
    client did not ask; Tornado accepts and echoes the parameters of the
    offer it parsed, so they are added there.
    """
    for name, params in extensions:
        if name == "permessage-deflate":
            params.update(dict.fromkeys(_NO_CONTEXT_TAKEOVER))
    return extensions


class NoContextTakeoverProtocol(tornado.websocket.WebSocketProtocol13):
    """Tornado's websocket protocol, answering permessage-deflate offers without context takeover."""

    def _parse_extensions_header(self, headers: tornado.httputil.HTTPHeaders) -> list[tuple[str, dict[str, Any]]]:
        return without_context_takeover(super()._parse_extensions_header(headers))


def socketio_handler(sio: socketio.AsyncServer, origins: list[str] | None) -> type:
    """The Tornado handler for ``/socket.io/``: engine.io's, with racedash's transport rules."""
    base = socketio.get_tornado_handler(sio)

    class SocketIOHandler(base):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.receive_queue = LeanQueue()

        def get_websocket_protocol(self) -> Any:
            protocol = super().get_websocket_protocol()
            if type(protocol) is tornado.websocket.WebSocketProtocol13:
                # Tornado's own construction, with one method changed (a wrapper set
                # on the instance would cost the protocol a private dict: ~1.5 KB).
                protocol.__class__ = NoContextTakeoverProtocol
            return protocol

        def on_message(self, message: str | bytes) -> None:
            # Synchronous: an async on_message makes Tornado wrap every inbound
            # message in a task, and the queue is unbounded anyway.
            self.receive_queue.put_nowait(message)

        def check_origin(self, origin: str) -> bool:
            # engine.io's Tornado driver accepts any origin on the WebSocket
            # handshake when none are configured and refuses only after the
            # upgrade, leaving the client hanging: refuse at the handshake.
            if origins is not None:
                return origin in origins
            return tornado.websocket.WebSocketHandler.check_origin(self, origin)

        def check_xsrf_cookie(self) -> None:
            # Engine.IO's polling POSTs carry no XSRF token; CSRF does not
            # apply: they act only on the session the handshake opened, and
            # cross-origin handshakes are refused by the CORS setting.
            return None

    return SocketIOHandler
