"""A minimal Socket.IO-over-websocket client for load generation.

python-socketio's client costs ~100 µs of Python per received event; at
10,000 deliveries/s that would need more CPU than this 2-core machine has
next to the server under test. This client speaks just enough of Engine.IO v4
and Socket.IO v5 (websocket transport, default namespace, no binary, no
compression) on a raw asyncio protocol, so a viewer costs a few µs per
frame and 5,000 of them fit in one process. It is a benchmark tool, not a
product client: the product is tested with real python-socketio clients.
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import struct
import time
import zlib
from typing import Any, Callable

import orjson

_ZERO_MASK = b"\x00\x00\x00\x00"  # a valid mask; XOR with zero keeps the payload as is


def _client_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """A masked (as clients must) websocket frame."""
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n <= 0xFFFF:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    return head + _ZERO_MASK + payload


OnEvent = Callable[[str, Any, float], None]


class SioConnection(asyncio.Protocol):
    """One Engine.IO/Socket.IO websocket connection. Events go to ``on_event(name, data, t_recv)``."""

    def __init__(self, on_event: OnEvent | None = None, *, deflate: bool = False) -> None:
        self.on_event = on_event
        # Browsers offer permessage-deflate; an inflater kept across messages reads
        # frames compressed with or without the server's context takeover.
        self._inflater = zlib.decompressobj(-zlib.MAX_WBITS) if deflate else None
        self.transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._handshaken = False
        self.opened = asyncio.get_running_loop().create_future()  # Socket.IO "40" received
        self.closed = asyncio.get_running_loop().create_future()
        self._acks: dict[int, asyncio.Future] = {}
        self._next_ack = 0
        self.paused = False
        self.closed_at: float | None = None

    # -- asyncio.Protocol -------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed_at = time.time()
        if not self.closed.done():
            self.closed.set_result(exc)
        if not self.opened.done():
            self.opened.set_exception(ConnectionError("closed before the namespace opened"))

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        if not self._handshaken:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(buf[: buf.find(b"\r\n")])
            if b" 101 " not in status:
                self.transport.close()
                return
            del buf[: end + 4]
            self._handshaken = True
        now = time.time()
        pos = 0
        n = len(buf)
        while n - pos >= 2:
            b0 = buf[pos]
            length = buf[pos + 1] & 0x7F
            hdr = 2
            if length == 126:
                if n - pos < 4:
                    break
                length = (buf[pos + 2] << 8) | buf[pos + 3]
                hdr = 4
            elif length == 127:
                if n - pos < 10:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                hdr = 10
            if n - pos < hdr + length:
                break
            payload = bytes(buf[pos + hdr : pos + hdr + length])
            pos += hdr + length
            opcode = b0 & 0x0F
            if b0 & 0x40:  # RSV1: a permessage-deflate message
                assert self._inflater is not None, "compressed frame without permessage-deflate"
                payload = self._inflater.decompress(payload + b"\x00\x00\xff\xff")
            if opcode == 0x1:
                self._on_text(payload, now)
            elif opcode == 0x9:
                self.transport.write(_client_frame(payload, 0xA))
            elif opcode == 0x8:
                self.transport.close()
                break
        if pos:
            del buf[:pos]

    # -- Engine.IO / Socket.IO --------------------------------------------------
    def _on_text(self, payload: bytes, now: float) -> None:
        kind = payload[:1]
        if kind == b"4":  # Engine.IO message -> Socket.IO packet
            sio_type = payload[1:2]
            if sio_type == b"2":  # EVENT
                body = payload[2:]
                if self.on_event is not None:
                    name, *args = orjson.loads(body)
                    self.on_event(name, args[0] if args else None, now)
            elif sio_type == b"3":  # ACK: 43<id>[...]
                body = payload[2:]
                i = body.find(b"[")
                fut = self._acks.pop(int(body[:i]), None)
                if fut is not None and not fut.done():
                    args = orjson.loads(body[i:])
                    fut.set_result(args[0] if args else None)
            elif sio_type == b"0":  # namespace CONNECT ok
                if not self.opened.done():
                    self.opened.set_result(None)
            elif sio_type == b"4":  # CONNECT_ERROR
                if not self.opened.done():
                    self.opened.set_exception(ConnectionError(payload.decode()))
        elif kind == b"2":  # Engine.IO ping -> pong
            self.transport.write(_client_frame(b"3"))
        elif kind == b"0":  # Engine.IO open -> connect to the default namespace
            self.transport.write(_client_frame(b"40"))

    def emit(self, event: str, data: Any) -> None:
        self.transport.write(_client_frame(b"42" + orjson.dumps([event, data])))

    def emit_raw(self, encoded_json_array: bytes) -> None:
        """Emit an already encoded ``["event", data]`` array."""
        self.transport.write(_client_frame(b"42" + encoded_json_array))

    async def call(self, event: str, data: Any, timeout: float = 10) -> Any:
        ack_id = self._next_ack
        self._next_ack += 1
        fut = asyncio.get_running_loop().create_future()
        self._acks[ack_id] = fut
        self.transport.write(_client_frame(b"42" + str(ack_id).encode() + orjson.dumps([event, data])))
        return await asyncio.wait_for(fut, timeout)

    def pause(self) -> None:
        self.paused = True
        self.transport.pause_reading()

    def resume(self) -> None:
        self.paused = False
        self.transport.resume_reading()

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()


async def connect(
    host: str,
    port: int,
    on_event: OnEvent | None = None,
    *,
    rcvbuf: int | None = None,
    timeout: float = 20,
    deflate: bool = False,
) -> SioConnection:
    """Open a websocket-only Socket.IO connection to the default namespace."""
    return await open_connection(lambda: SioConnection(on_event, deflate=deflate), host, port,
                                 rcvbuf=rcvbuf, timeout=timeout, deflate=deflate)


async def open_connection(
    factory: Callable[[], "SioConnection"],
    host: str,
    port: int,
    *,
    rcvbuf: int | None = None,
    timeout: float = 20,
    deflate: bool = False,
) -> Any:
    """:func:`connect` with the connection made by ``factory`` (a SioConnection or a subclass)."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # our side must not add Nagle delay
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    await asyncio.wait_for(loop.sock_connect(sock, (host, port)), timeout)
    _, conn = await loop.create_connection(factory, sock=sock)
    extensions = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n" if deflate else ""
    key = base64.b64encode(os.urandom(16)).decode()
    conn.transport.write(
        (
            f"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n"
            f"Host: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{extensions}\r\n"
        ).encode()
    )
    try:
        await asyncio.wait_for(asyncio.shield(conn.opened), timeout)
    except BaseException:
        conn.close()
        raise
    return conn
