"""What the listening socket lets in: connection caps, accept back-off, a bounded log.

Every TCP connection (HTTP, long-polling, websocket) holds a file descriptor
until it closes. Without a cap, one client opening thousands of idle sockets
runs the process out of descriptors: recordings can no longer be opened and
Tornado's accept loop logs a traceback per attempt. So:

- at most ``max_per_address`` open connections per client address and
  ``max_total`` in all; a connection over a cap gets ``503`` and is closed at
  once. Addresses in ``exempt`` (loopback by default: local health checks and
  tools) are not counted per address and may go ``headroom`` over the total, so
  ``/healthz`` still answers at the cap;
- when ``accept()`` fails for want of descriptors (EMFILE, ENFILE) or memory,
  accepting pauses for ``backoff`` seconds, with one log line per pause
  instead of a traceback per attempt.

Idle and header timeouts (slowloris) are Tornado's ``idle_connection_timeout``
and ``body_timeout``, set by the server (racedash/server.py).
"""

from __future__ import annotations

import errno
import logging
import socket
from collections import Counter
from typing import Any, Callable

import tornado.httpserver
import tornado.iostream
from tornado.ioloop import IOLoop

log = logging.getLogger(__name__)

_OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
_REFUSAL = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\nRetry-After: 5\r\n\r\n"


class ConnectionGate:
    """Counts open connections per address and in total; says whether one more may come in."""

    def __init__(self, *, max_total: int, max_per_address: int, exempt: frozenset[str] = frozenset({"127.0.0.1", "::1"}),
                 headroom: int = 64) -> None:
        self.max_total = max_total
        self.max_per_address = max_per_address
        self.exempt = exempt
        self.headroom = headroom
        self.total = 0
        self.refused = 0
        self._per_address: Counter[str] = Counter()

    def admit(self, address: str) -> bool:
        exempt = address in self.exempt
        limit = self.max_total + (self.headroom if exempt else 0)
        if self.max_total and self.total >= limit:
            self.refused += 1
            return False
        if not exempt and self.max_per_address and self._per_address[address] >= self.max_per_address:
            self.refused += 1
            return False
        self.total += 1
        self._per_address[address] += 1
        return True

    def release(self, address: str) -> None:
        self.total -= 1
        self._per_address[address] -= 1
        if self._per_address[address] <= 0:
            del self._per_address[address]


class _CountedStream(tornado.iostream.IOStream):
    """An IOStream that tells the gate when its socket closes (exactly once)."""

    def __init__(self, connection: socket.socket, on_close: Callable[[], None], **kwargs: Any) -> None:
        self._on_fd_close: Callable[[], None] | None = on_close
        super().__init__(connection, **kwargs)

    def close_fd(self) -> None:
        try:
            super().close_fd()
        finally:
            release, self._on_fd_close = self._on_fd_close, None
            if release is not None:
                release()


class GatedHTTPServer(tornado.httpserver.HTTPServer):
    """Tornado's HTTP server behind a :class:`ConnectionGate`, accepting with back-off."""

    def initialize(self, *args: Any, gate: ConnectionGate, backoff: float = 0.5, **kwargs: Any) -> None:  # type: ignore[override]
        super().initialize(*args, **kwargs)
        self.gate = gate
        self.backoff = backoff

    def add_sockets(self, sockets: Any) -> None:
        for sock in sockets:
            self._sockets[sock.fileno()] = sock
            self._handlers[sock.fileno()] = _accept_with_backoff(sock, self._handle_connection, self.backoff)

    def _handle_connection(self, connection: socket.socket, address: Any) -> None:
        host = address[0] if isinstance(address, tuple) else str(address)
        if self.ssl_options is not None:  # not used by racedash (TLS ends at the proxy); keep Tornado's path
            return super()._handle_connection(connection, address)
        if not self.gate.admit(host):
            try:
                connection.send(_REFUSAL)
            except OSError:
                pass
            connection.close()
            return
        try:
            stream = _CountedStream(connection, lambda: self.gate.release(host),
                                    max_buffer_size=self.max_buffer_size, read_chunk_size=self.read_chunk_size)
        except Exception:
            self.gate.release(host)
            connection.close()
            raise
        future = self.handle_stream(stream, address)
        if future is not None:
            IOLoop.current().add_future(future, lambda f: f.result())


def _accept_with_backoff(sock: socket.socket, callback: Callable[[socket.socket, Any], None], backoff: float) -> Callable[[], None]:
    """Like ``tornado.netutil.add_accept_handler``, pausing instead of failing when descriptors run out."""
    loop = IOLoop.current()
    state = {"removed": False, "paused": False}

    def resume() -> None:
        state["paused"] = False
        if not state["removed"]:
            loop.add_handler(sock, accept, IOLoop.READ)

    def accept(fd: Any, events: int) -> None:
        for _ in range(128):
            if state["removed"] or state["paused"]:
                return
            try:
                connection, address = sock.accept()
            except BlockingIOError:
                return
            except ConnectionAbortedError:
                continue
            except OSError as exc:
                if exc.errno not in _OUT_OF_RESOURCES:
                    raise
                log.warning("cannot accept connections (%s): pausing accepts for %.1f s", errno.errorcode.get(exc.errno, exc.errno), backoff)
                state["paused"] = True
                loop.remove_handler(sock)
                loop.call_later(backoff, resume)
                return
            callback(connection, address)

    def remove() -> None:
        state["removed"] = True
        if not state["paused"]:
            loop.remove_handler(sock)

    loop.add_handler(sock, accept, IOLoop.READ)
    return remove
