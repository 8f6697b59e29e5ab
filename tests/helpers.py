"""Test helpers: a recording Socket.IO client and the real sample payloads (tests/data)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable

import socketio

# Payloads captured from the real monitor; tests/data/README.md says where each came from.
SAMPLE_DATA = Path(__file__).resolve().parent / "data"


def sample_setup() -> dict:
    return json.loads((SAMPLE_DATA / "car_setup_overview.json").read_text())


def sample_telemetry_payloads() -> list[dict]:
    with open(SAMPLE_DATA / "telemetry_update_samples.jsonl") as f:
        return [json.loads(line) for line in f if line.strip()]


class Client:
    """A real python-socketio client that keeps every event it receives, in order."""

    def __init__(self, url: str, **client_options: Any) -> None:
        self.url = url
        self.sio = socketio.AsyncClient(**client_options)
        self.events: dict[str, list[Any]] = defaultdict(list)
        self.log: list[tuple[str, Any]] = []
        self._changed = asyncio.Event()
        self.sio.on("*", self._record)

    async def _record(self, event: str, *args: Any) -> None:
        data = args[0] if len(args) == 1 else list(args)
        self.events[event].append(data)
        self.log.append((event, data))
        self._changed.set()

    async def connect(self, **kwargs: Any) -> "Client":
        await self.sio.connect(self.url, transports=["websocket"], wait_timeout=5, **kwargs)
        return self

    async def call(self, event: str, data: Any = None, timeout: float = 5) -> Any:
        if data is None:
            return await self.sio.call(event, timeout=timeout)
        return await self.sio.call(event, data, timeout=timeout)

    async def emit(self, event: str, data: Any = None) -> None:
        await self.sio.emit(event, data)

    async def wait_for(self, event: str, count: int = 1, timeout: float = 5) -> list[Any]:
        """Wait until at least ``count`` ``event``s arrived; returns them all."""
        async def _wait() -> list[Any]:
            while len(self.events[event]) < count:
                self._changed.clear()
                await self._changed.wait()
            return self.events[event]

        return await asyncio.wait_for(_wait(), timeout)

    async def close(self) -> None:
        await self.sio.disconnect()
        await self.sio.shutdown()
        http = self.sio.eio.http
        if http is not None and not http.closed:  # left open when the connect itself failed
            await http.close()


async def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02) -> Any:
    """Poll ``predicate`` until it is truthy (condition-based waiting, never a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


def pop_server_frame(buf: bytearray) -> tuple[int, bytes] | None:
    """Take one whole (unmasked) server websocket frame off ``buf``: (opcode, payload), or None if incomplete."""
    if len(buf) < 2:
        return None
    n, at = buf[1] & 0x7F, 2
    if n == 126:
        if len(buf) < 4:
            return None
        n, at = int.from_bytes(buf[2:4], "big"), 4
    elif n == 127:
        if len(buf) < 10:
            return None
        n, at = int.from_bytes(buf[2:10], "big"), 10
    if len(buf) < at + n:
        return None
    opcode, payload = buf[0] & 0x0F, bytes(buf[at : at + n])
    del buf[: at + n]
    return opcode, payload


async def raw_websocket(
    url: str, *, nodelay: bool = False, rcvbuf: int | None = None
) -> tuple[socket.socket, bytearray]:
    """A plain socket upgraded to an engine.io websocket at ``url``, and what the server sent after its 101."""
    loop = asyncio.get_running_loop()
    host, port = url.split("//")[1].split(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if nodelay:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    await loop.sock_connect(sock, (host, int(port)))
    key = base64.b64encode(os.urandom(16)).decode()
    await loop.sock_sendall(
        sock,
        (
            f"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode(),
    )
    buf = bytearray()
    while b"\r\n\r\n" not in buf:
        buf += await loop.sock_recv(sock, 4096)
    assert b" 101 " in buf.split(b"\r\n", 1)[0]
    del buf[: buf.index(b"\r\n\r\n") + 4]
    return sock, buf
