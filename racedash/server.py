"""Running racedash: listen, serve until told to stop, shut down cleanly."""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Callable

import resource

import tornado.netutil

from racedash.app import Racedash, exempt_addresses, make_app
from racedash.config import Settings
from racedash.deadline import STEP_SECONDS, within
from racedash.gctuning import tune_gc
from racedash.listener import ConnectionGate, GatedHTTPServer

log = logging.getLogger(__name__)


# Descriptors kept free above the connection cap: recordings, sidecars, the loopback headroom.
FD_RESERVE = 512


def connection_cap(setting: int) -> int:
    """The total connection cap: the setting, or (0) what the descriptor limit leaves after a reserve."""
    if setting > 0:
        return setting
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 20_000
    return max(64, min(20_000, soft - FD_RESERVE))


class RacedashServer:
    """One racedash application bound to a socket. Usable as an async context manager."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.step_seconds = STEP_SECONDS  # each step of stop() but the recordings' close (racedash.deadline)
        self.app: Racedash | None = None
        self._http: GatedHTTPServer | None = None
        self.gate: ConnectionGate | None = None
        self.port: int | None = None

    @property
    def url(self) -> str:
        host = self.settings.host
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        return f"http://{host}:{self.port}"

    async def start(self) -> "RacedashServer":
        self.app = make_app(self.settings)
        sockets = tornado.netutil.bind_sockets(self.settings.port, self.settings.host)
        self.port = sockets[0].getsockname()[1]
        settings = self.settings
        self.gate = ConnectionGate(
            max_total=connection_cap(settings.max_connections),
            max_per_address=settings.connections_per_address,
            exempt=exempt_addresses(settings),
        )
        self.app.status.gate = self.gate
        self._http = GatedHTTPServer(
            self.app.web,
            gate=self.gate,
            xheaders=settings.trust_proxy_headers,
            # Also the header timeout: a client that opens a connection and sends nothing is dropped.
            idle_connection_timeout=settings.http_idle_seconds,
            body_timeout=settings.http_idle_seconds,
            # Bodies far over the largest message are not even read (the connection is closed).
            max_body_size=4 * settings.max_message_bytes,
        )
        self._http.add_sockets(sockets)
        self.app.start_background()
        log.info("racedash listening on %s:%s", self.settings.host, self.port)
        return self

    async def stop(self) -> None:
        """Drain: stop accepting, send every client away to reconnect elsewhere, then close the recordings.

        Clients go before the recordings close, so no frame can be acked after its recording was flushed.
        """
        if self._http is not None:
            self._http.stop()
        if self.app is not None:
            self.app.status.draining = True  # /healthz/ready answers 503 while the rest runs
            await within(self.step_seconds, "disconnecting clients", self._disconnect_clients())
            await self.app.close(self.step_seconds)
        if self._http is not None:
            await within(self.step_seconds, "closing HTTP connections", self._http.close_all_connections())
            self._http = None
        log.info("racedash stopped")

    async def _disconnect_clients(self) -> None:
        """Close every engine.io connection at the transport, without Socket.IO's "server disconnect".

        A client told "io server disconnect" stays disconnected; one whose transport closes
        reconnects by itself, and behind a load balancer lands on another process.
        """
        assert self.app is not None
        eio = self.app.sio.eio
        sockets = list(eio.sockets.items())
        for sid, socket in sockets:
            try:
                await socket.close(wait=False, abort=True, reason=eio.reason.SERVER_DISCONNECT)
                if not getattr(socket, "driver", None):
                    socket.queue.put_nowait(None)  # ends a stock websocket's writer, which closes it
            except Exception:  # noqa: BLE001 - one broken connection must not stop the drain
                log.exception("closing connection %s failed", sid)
            eio.sockets.pop(sid, None)
        if sockets:
            log.info("disconnected %d client(s); they reconnect by themselves", len(sockets))

    async def __aenter__(self) -> "RacedashServer":
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()


async def serve(settings: Settings, *, on_ready: Callable[[RacedashServer], None] | None = None) -> bool:
    """Serve until SIGINT or SIGTERM, then drain (see :meth:`RacedashServer.stop`) within ``drain_seconds``.

    Returns False when the drain did not finish in time (some recording may lack its last frames).
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    server = await RacedashServer(settings).start()
    tune_gc(freeze=settings.gc_freeze, thresholds=settings.gc_thresholds)
    try:
        if on_ready is not None:
            on_ready(server)
        await stop.wait()
        log.info("shutting down")
    finally:
        drained = await _stop_within(server, settings.drain_seconds)
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
    return drained


async def _stop_within(server: RacedashServer, seconds: float) -> bool:
    try:
        await asyncio.wait_for(server.stop(), timeout=seconds)
        return True
    except asyncio.TimeoutError:
        log.error("shutdown did not finish within drain_seconds (%s s); exiting anyway", seconds)
        return False
