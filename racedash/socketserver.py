"""python-socketio's server, refusing what a client must not be able to dispatch.

The stock server hands any event name a client sends to the namespace,
including ``connect`` and ``disconnect``, which would run the server's own
connection handling for that client (resetting its rate limit and viewer
mark), and names that are not strings, which fail inside the dispatch with a
traceback. Packets whose JSON is nested too deep to decode fail the same way.
Each is refused here with an error ack when the client asked for one, and a
bounded log line (racedash.logbudget); the connection stays up.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import socketio
from socketio import packet

from racedash.logbudget import RefusalLog

log = logging.getLogger(__name__)

# Names python-socketio uses for its own events: never a client's to send.
RESERVED_EVENTS = frozenset({"connect", "connect_error", "disconnect", "message"})
_ACK_ID = re.compile(r"^2(?:/[^,]*,)?(\d+)")


def refusal(code: str, message: str) -> dict[str, Any]:
    return {"ok": False, "error": code, "message": message}


class GuardedServer(socketio.AsyncServer):
    def __init__(self, *args: Any, refusals: RefusalLog | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.refusals = refusals or RefusalLog(log)

    async def _handle_event(self, eio_sid, namespace, id, data):  # noqa: A002 - python-socketio's signature
        name = data[0] if isinstance(data, list) and data else None
        if not isinstance(name, str) or name in RESERVED_EVENTS:
            shown = name if isinstance(name, str) else type(name).__name__
            self.refusals.refused(eio_sid, "event_name", "event name %r from %s refused", shown[:40], eio_sid)
            if id is not None:
                await self._ack_error(eio_sid, namespace, id, refusal(
                    "invalid_event", "event names are strings, and connect/disconnect/message are the server's own"))
            return
        await super()._handle_event(eio_sid, namespace, id, data)

    async def _handle_eio_message(self, eio_sid, data):
        try:
            await super()._handle_eio_message(eio_sid, data)
        except (ValueError, RecursionError) as exc:
            # Undecodable JSON (nested beyond the decoder's depth, or not JSON at all).
            self.refusals.refused(eio_sid, "undecodable", "undecodable packet from %s refused: %s", eio_sid, type(exc).__name__)
            found = _ACK_ID.match(data) if isinstance(data, str) else None
            if found:
                await self._ack_error(eio_sid, "/", int(found.group(1)), refusal(
                    "invalid_payload", "the packet is not valid JSON or is nested too deeply"))

    async def _handle_eio_disconnect(self, eio_sid, reason):
        self.refusals.forget(eio_sid)
        await super()._handle_eio_disconnect(eio_sid, reason)

    async def _ack_error(self, eio_sid: str, namespace: str | None, id: int, error: dict[str, Any]) -> None:  # noqa: A002
        await self._send_packet(eio_sid, self.packet_class(packet.ACK, namespace=namespace or "/", id=id, data=[error]))
