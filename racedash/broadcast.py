"""The broadcast path: how frames reach a session's viewers.

Handlers talk to a :class:`Broadcaster`, never to the Socket.IO server's
emit directly, so that a faster fan-out or a multi-process (Redis) manager can
replace the implementation without touching them.
"""

from __future__ import annotations

from typing import Any, Protocol

import socketio


class Broadcaster(Protocol):
    """``to_*`` encode ``data``; ``*_message`` send a message already encoded (racedash.wire)."""

    async def to_room(self, room: str, event: str, data: Any) -> None: ...

    async def to_client(self, sid: str, event: str, data: Any) -> None: ...

    async def room_message(self, room: str, event: str, message: bytes) -> None: ...

    async def client_message(self, sid: str, event: str, message: bytes) -> None: ...


class SocketIOBroadcaster:
    """Plain python-socketio emits: one encoded packet per room emit."""

    def __init__(self, sio: socketio.AsyncServer) -> None:
        self._sio = sio

    async def to_room(self, room: str, event: str, data: Any) -> None:
        await self._sio.emit(event, data, room=room)

    async def to_client(self, sid: str, event: str, data: Any) -> None:
        await self._sio.emit(event, data, to=sid)

    async def room_message(self, room: str, event: str, message: bytes) -> None:
        text = message[1:].decode()  # engine.io adds the MESSAGE type ("4") back
        for _sid, eio_sid in list(self._sio.manager.get_participants("/", room)):
            await self._sio.eio.send(eio_sid, text)

    async def client_message(self, sid: str, event: str, message: bytes) -> None:
        await self.room_message(sid, event, message)  # every client is in a room named after its sid
