"""python-socketio's server, refusing what a client must not be able to dispatch.

The stock server hands any event name a client sends to the namespace,
including ``connect`` and ``disconnect``, which would run the server's own
connection handling for that client (resetting its rate limit and viewer
mark), and names that are not strings, which fail inside the dispatch with a
traceback. Packets whose JSON is nested too deep to decode fail the same way.
Each is refused here with an error ack when the client asked for one, and a
bounded log line (racedash.logbudget); the connection stays up.

With several processes behind one URL (``node_name``), each process names
itself in the Engine.IO session ids it issues, so the load balancer can send
every later request of a session back to it (docs/scaling.md, "Load balancer").
"""

from __future__ import annotations

import logging
import re
from typing import Any

import socketio
from socketio import packet

from racedash.config import SettingsError
from racedash.logbudget import RefusalLog

log = logging.getLogger(__name__)

# Names python-socketio uses for its own events: never a client's to send.
RESERVED_EVENTS = frozenset({"connect", "connect_error", "disconnect", "message"})
_ACK_ID = re.compile(r"^2(?:/[^,]*,)?(\d+)")
# A node name goes into URLs (?sid=...) and nginx map patterns: plain, short, no separator of its own.
NODE_NAME = re.compile(r"[a-z0-9]{1,16}")


def refusal(code: str, message: str) -> dict[str, Any]:
    return {"ok": False, "error": code, "message": message}


def check_node_name(name: str) -> str:
    if name and not NODE_NAME.fullmatch(name):
        raise SettingsError(f"invalid value {name!r} for node_name (expected 1-16 of a-z and 0-9, or empty)")
    return name


def name_session_ids(eio: Any, node_name: str) -> None:
    """Make the engine.io server issue ``<node_name>.<random>`` session ids (empty name: unchanged).

    The client repeats its sid in the query of every later request of the
    session (``?sid=``: polling GET and POST, the websocket upgrade), so a
    load balancer can route on the prefix with no cookie and no address
    affinity. engine.io and python-socketio treat a sid as an opaque string
    (dict key, query value, JSON): '.' is an unreserved URL character and
    never occurs in engine.io's own ids (url-safe base64), so the prefix is
    unambiguous. python-socketio draws its namespace sids from the same
    method: they carry the name too. Pinned by tests/test_cluster_routing.py.
    """
    if not check_node_name(node_name):
        return
    generate = eio.generate_id  # engine.io's: 20 url-safe base64 characters, unique per process

    def generate_id() -> str:
        return f"{node_name}.{generate()}"

    eio.generate_id = generate_id


class GuardedServer(socketio.AsyncServer):
    def __init__(self, *args: Any, refusals: RefusalLog | None = None, node_name: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.refusals = refusals or RefusalLog(log)
        name_session_ids(self.eio, node_name)

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
