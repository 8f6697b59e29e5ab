"""What racedash does with each engine.io websocket of one server (see racedash.transport)."""

from __future__ import annotations

import logging
from typing import Any, Callable

import engineio.async_socket
import tornado.httputil
import tornado.web
import tornado.websocket

from racedash.transport.driver import WebSocketDriver
from racedash.transport.environ import translate_request
from racedash.transport.pings import PingWheel
from racedash.transport.queues import LeanQueue
from racedash.transport.versions import VERIFIED_VERSIONS, installed_versions, versions_verified

log = logging.getLogger(__name__)


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


class WebSocketHook:
    """Installs the lean transport objects on one engine.io server and tracks its websockets."""

    def __init__(self, eio: Any, *, nodelay: bool = True, driven: bool = True) -> None:
        self.nodelay = nodelay
        # WebSocketDriver instead of engine.io's reader and writer tasks (False: engine.io's, for comparisons).
        self.driven = driven
        if driven and not versions_verified():
            # The driver does what engine.io's _websocket_handler does, as of the verified versions.
            log.warning("websocket driver disabled: installed %s, verified %s", installed_versions(), VERIFIED_VERSIONS)
            self.driven = False
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
                socket = self.handler.__self__
                sid = socket.sid
                hook.handlers[sid] = handler
                try:
                    if not hook.driven:
                        return await super().__call__(environ)
                    # What engine.io's WebSocket.__call__ keeps, for ws.wait() and ws.send().
                    self.tornado_handler = handler
                    self.environ = environ
                    return await WebSocketDriver(socket, handler).run(self)
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
