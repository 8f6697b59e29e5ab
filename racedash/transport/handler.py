"""The Tornado handler for ``/socket.io/`` and its permessage-deflate negotiation."""

from __future__ import annotations

from typing import Any

import socketio
import tornado.httputil
import tornado.websocket

from racedash.transport.queues import LeanQueue
from racedash.transport.reader import receive_frames

_NO_CONTEXT_TAKEOVER = ("server_no_context_takeover", "client_no_context_takeover")


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


class OneReadProtocol(NoContextTakeoverProtocol):
    """The same, reading frames with one pending read per connection (racedash.transport.reader)."""

    async def _receive_frame_loop(self) -> None:
        await receive_frames(self)


def socketio_handler(sio: socketio.AsyncServer, origins: list[str] | None, *, one_read: bool = True) -> type:
    """The Tornado handler for ``/socket.io/``: engine.io's, with racedash's transport rules.

    ``one_read``: read websocket frames with racedash.transport.reader instead
    of Tornado's frame-by-piece reader.
    """
    protocol_class = OneReadProtocol if one_read else NoContextTakeoverProtocol
    base = socketio.get_tornado_handler(sio)

    class SocketIOHandler(base):  # type: ignore[misc, valid-type]
        # Set while a racedash.transport.driver.WebSocketDriver runs this websocket:
        # messages and the close go to it instead of engine.io's reader.
        driver: Any = None

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.receive_queue = LeanQueue()

        def prepare(self) -> Any:
            # engine.io refuses an oversized polling POST by disconnecting the session while
            # the client's GET still waits: the POST then hangs. Answer 413 at once instead.
            if self.request.method == "POST" and len(self.request.body) > sio.eio.max_http_buffer_size:
                self.set_status(413)
                self.finish("Payload Too Large")
                return None
            # engine.io's Tornado driver accepts a websocket (101) before it looks its sid up,
            # then leaves it open: an upgrade of a session this process does not have (it
            # restarted, or a load balancer sent it to the wrong process) hangs until a proxy
            # times out. Refuse it at once, as engine.io refuses such a polling request.
            sid = self.get_query_argument("sid", None)
            if (sid is not None and self.request.headers.get("Upgrade", "").lower() == "websocket"
                    and sid not in sio.eio.sockets):
                self.set_status(400)
                self.finish("Unknown session")
                return None
            return super().prepare()

        def get_websocket_protocol(self) -> Any:
            protocol = super().get_websocket_protocol()
            if type(protocol) is tornado.websocket.WebSocketProtocol13:
                # Tornado's own construction, with one method changed (a wrapper set
                # on the instance would cost the protocol a private dict: ~1.5 KB).
                protocol.__class__ = protocol_class
            return protocol

        def on_message(self, message: str | bytes) -> None:
            # Synchronous: an async on_message makes Tornado wrap every inbound
            # message in a task.
            if self.driver is not None:
                self.driver.on_message(message)
            else:
                self.receive_queue.put_nowait(message)

        def on_close(self) -> None:
            if self.driver is not None:
                self.driver.transport_closed()
            else:
                super().on_close()  # engine.io's: None on the receive queue

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
