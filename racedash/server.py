"""Running racedash: listen, serve until told to stop, shut down cleanly."""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Callable

import tornado.httpserver
import tornado.netutil

from racedash.app import Racedash, make_app
from racedash.config import Settings
from racedash.gctuning import tune_gc

log = logging.getLogger(__name__)


class RacedashServer:
    """One racedash application bound to a socket. Usable as an async context manager."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.app: Racedash | None = None
        self._http: tornado.httpserver.HTTPServer | None = None
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
        self._http = tornado.httpserver.HTTPServer(self.app.web, xheaders=True)
        self._http.add_sockets(sockets)
        self.app.start_background()
        log.info("racedash listening on %s:%s", self.settings.host, self.port)
        return self

    async def stop(self) -> None:
        if self._http is not None:
            self._http.stop()
        if self.app is not None:
            await self.app.close()
        if self._http is not None:
            await self._http.close_all_connections()
            self._http = None
        log.info("racedash stopped")

    async def __aenter__(self) -> "RacedashServer":
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()


async def serve(settings: Settings, *, on_ready: Callable[[RacedashServer], None] | None = None) -> None:
    """Serve until SIGINT or SIGTERM, then shut down cleanly."""
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
        await server.stop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
