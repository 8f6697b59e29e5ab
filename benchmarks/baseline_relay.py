"""The bare baseline: the smallest Tornado + python-socketio relay of the base contract.

In memory, no recording, no validation, no acks: the measuring stick for what
the stack itself costs. Every racedash figure in benchmarks/README.md is
quoted as a ratio against this relay, measured in the same run.
"""

from __future__ import annotations

import uuid

import socketio
import tornado.web


def make_relay() -> tuple[tornado.web.Application, socketio.AsyncServer]:
    sio = socketio.AsyncServer(async_mode="tornado", max_http_buffer_size=1_048_576)
    latest: dict[str, dict[str, dict]] = {}  # session id -> {"setup_update": payload, "telemetry_update": payload}

    @sio.on("request_session_id")
    async def request_session_id(sid: str, data: object = None) -> None:
        session_id = str(uuid.uuid4())
        latest[session_id] = {}
        await sio.emit("session_id_assigned", {"session_id": session_id}, to=sid)

    @sio.on("setup_data")
    async def setup_data(sid: str, data: dict) -> None:
        latest.setdefault(data["session_id"], {})["setup_update"] = data
        await sio.emit("setup_update", data, room=data["session_id"])

    @sio.on("telemetry_update")
    async def telemetry_update(sid: str, data: dict) -> None:
        latest.setdefault(data["session_id"], {})["telemetry_update"] = data
        await sio.emit("telemetry_update", data, room=data["session_id"])

    @sio.on("join_session")
    async def join_session(sid: str, data: dict) -> None:
        session_id = data["session_id"]
        await sio.enter_room(sid, session_id)
        for event, payload in latest.get(session_id, {}).items():
            await sio.emit(event, payload, to=sid)

    app = tornado.web.Application([(r"/socket.io/", socketio.get_tornado_handler(sio))])
    return app, sio
