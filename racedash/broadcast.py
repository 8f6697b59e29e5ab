"""The broadcast path: how frames reach a session's viewers.

Handlers talk to a :class:`Broadcaster`, never to the Socket.IO server's
emit directly, so that a faster fan-out or a multi-process (Redis) manager can
replace the implementation without touching them.
"""

from __future__ import annotations

from typing import Any, Protocol

import socketio


class Broadcaster(Protocol):
    async def to_room(self, room: str, event: str, data: Any) -> None: ...

    async def to_client(self, sid: str, event: str, data: Any) -> None: ...


class SocketIOBroadcaster:
    """Plain python-socketio emits: one encoded packet per room emit."""

    def __init__(self, sio: socketio.AsyncServer) -> None:
        self._sio = sio

    async def to_room(self, room: str, event: str, data: Any) -> None:
        await self._sio.emit(event, data, room=room)

    async def to_client(self, sid: str, event: str, data: Any) -> None:
        await self._sio.emit(event, data, to=sid)
