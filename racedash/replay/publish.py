"""``racedash replay FILE --url``: publish a recording into a running server as a monitor would.

A plain python-socketio client, like the real monitor: it requests a session
id (or uses the one given), then sends every recorded ``setup_data`` and
``telemetry_update`` payload as recorded, with only ``session_id`` replaced,
at the recorded cadence (divided by ``speed``). Each frame waits until its
absolute due time on one schedule (timing.py), so the cadence does not drift
however long the recording is.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Callable

import socketio

from racedash.errors import RacedashError
from racedash.ids import parse_session_id
from racedash.recording.format import Event
from racedash.replay.errors import InvalidControl
from racedash.replay.reader import RecordingReader
from racedash.replay.timing import MAX_SPEED, MIN_SPEED, Schedule, valid_speed

EVENT_OF_KIND = {"setup": "setup_data", "telemetry": "telemetry_update"}


async def publish_recording(
    path: Path,
    url: str,
    *,
    speed: float = 1.0,
    session_id: str | None = None,
    publish_token: str | None = None,
    say: Callable[[str], None] = print,
) -> int:
    """Publish every event of ``path``; returns how many were sent.

    Raises UnknownRecording/BadRecording for the file and
    ``socketio.exceptions.ConnectionError`` when the server cannot be reached.
    """
    if not valid_speed(speed):
        raise InvalidControl(f"speed must be between {MIN_SPEED} and {MAX_SPEED}")
    fixed_id = parse_session_id(session_id) if session_id is not None else None
    loop = asyncio.get_running_loop()
    with RecordingReader(path) as reader:
        sio = socketio.AsyncClient()
        # In token mode (docs/security.md) a fixed session id needs its publish token.
        auth = {"publish_token": publish_token} if publish_token else None
        await sio.connect(url, transports=["websocket"], wait_timeout=10, auth=auth)
        try:
            if fixed_id is None:
                assigned = await sio.call("request_session_id", {}, timeout=10)
                target, dashboard = assigned["session_id"], assigned.get("dashboard_url", "")
            else:
                target, dashboard = fixed_id, f"{url.rstrip('/')}/dashboard/{fixed_id}"
            say(f"publishing {Path(path).name} as session {target} at {speed:g}x: {dashboard}")
            schedule = Schedule(anchor_time=loop.time(), speed=speed)
            t0: float | None = None
            running = 0.0
            sent = 0
            pending: Event | None = None
            for _offset, event in reader.events():
                if event.kind not in EVENT_OF_KIND:
                    continue
                if t0 is None:
                    t0 = event.t
                running = max(event.t - t0, running)
                delay = schedule.due(running) - loop.time()
                if pending is not None:
                    if sent == 0:
                        await _acked(sio, pending, target)  # fail fast if the server refuses us
                    else:
                        await sio.emit(EVENT_OF_KIND[pending.kind], {**pending.data, "session_id": target})
                    sent += 1
                if delay > 0:
                    await asyncio.sleep(delay)
                pending = event
            if pending is not None:
                # The last one is acknowledged, so nothing is left in flight when we disconnect.
                await _acked(sio, pending, target)
                sent += 1
            say(f"published {sent} frames")
            return sent
        finally:
            await sio.disconnect()
            await sio.shutdown()


async def _acked(sio: socketio.AsyncClient, event: Event, target: str) -> None:
    """Send one frame and wait for the server's ack; a refusal becomes a RacedashError."""
    ack = await sio.call(EVENT_OF_KIND[event.kind], {**event.data, "session_id": target}, timeout=10)
    if isinstance(ack, dict) and ack.get("ok") is False:
        raise RacedashError(f"the server refused the recording's frames: {ack.get('message')}", code=str(ack.get("error")))
