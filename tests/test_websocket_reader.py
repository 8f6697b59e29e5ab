"""racedash.transport.reader: websocket frames as a client may send them, through a real server.

Frames split across TCP segments or sharing one, fragmented messages with a
control frame between the fragments, 16- and 64-bit lengths, and every frame
RFC 6455 says to refuse (the server drops that connection, and only that one).
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct

import orjson
import pytest

from racedash.transport import OneReadProtocol
from tests.helpers import pop_server_frame, raw_websocket

TEXT, CONTINUATION, CLOSE, PING, PONG = 0x1, 0x0, 0x8, 0x9, 0xA


def frame(
    opcode: int, payload: bytes, *, fin: bool = True, rsv: int = 0, length: int | None = None, masked: bool = True
) -> bytes:
    """A client frame, masked unless asked; ``length`` overrides the declared payload length."""
    n = len(payload) if length is None else length
    head = bytes(((0x80 if fin else 0) | rsv | opcode,))
    mask_bit = 0x80 if masked else 0
    if n < 126:
        head += bytes((mask_bit | n,))
    elif n <= 0xFFFF:
        head += bytes((mask_bit | 126,)) + struct.pack("!H", n)
    else:
        head += bytes((mask_bit | 127,)) + struct.pack("!Q", n)
    if not masked:  # RFC 6455 wants clients to mask; Tornado reads unmasked frames anyway
        return head + payload
    mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


class RawClient:
    """An engine.io websocket client on a plain socket, which sends whatever frames a test writes."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()

    @classmethod
    async def open(cls, url: str) -> "RawClient":
        sock, rest = await raw_websocket(url, nodelay=True)
        client = cls(sock)
        client.buf = rest
        assert (await client.next_frame())[1].startswith(b"0")
        await client.write(frame(TEXT, b"40"))
        assert (await client.next_frame())[1].startswith(b"40")
        return client

    async def write(self, data: bytes) -> None:
        await asyncio.get_running_loop().sock_sendall(self.sock, data)

    async def next_frame(self, timeout: float = 5) -> tuple[int, bytes] | None:
        """The server's next frame (opcode, payload); None once the server has closed the connection."""
        loop = asyncio.get_running_loop()
        while True:
            parsed = pop_server_frame(self.buf)
            if parsed is not None:
                return parsed
            try:
                chunk = await asyncio.wait_for(loop.sock_recv(self.sock, 65536), timeout)
            except ConnectionResetError:
                return None
            if not chunk:
                return None
            self.buf += chunk

    async def ack(self, ack_id: int) -> list:
        """The data of the Socket.IO ack ``ack_id`` (answering pings and skipping events on the way)."""
        prefix = b"43%d[" % ack_id
        while True:
            got = await self.next_frame()
            assert got is not None, "the server closed the connection"
            opcode, payload = got
            if payload == b"2":
                await self.write(frame(TEXT, b"3"))
            elif opcode == TEXT and payload.startswith(prefix):
                return orjson.loads(payload[len(prefix) - 1 :])

    async def closed(self) -> bool:
        """True once the server has ended the connection (a close frame, then EOF, or EOF alone)."""
        while True:
            got = await self.next_frame()
            if got is None or got[0] == CLOSE:
                return True

    def close(self) -> None:
        self.sock.close()


def call(ack_id: int, event: str, data) -> bytes:
    return b"42%d" % ack_id + orjson.dumps([event, data])


@pytest.fixture
def raw(server):
    clients = []

    async def open_client() -> RawClient:
        clients.append(await RawClient.open(server.url))
        return clients[-1]

    yield open_client
    for client in clients:
        client.close()


async def test_connections_read_with_one_pending_read(server, raw):
    await raw()
    handler = next(iter(server.app.transport.handlers.values()))
    assert type(handler.ws_connection) is OneReadProtocol


async def test_a_fragmented_message_with_a_ping_between_its_fragments(server, raw):
    client = await raw()
    message = call(1, "request_session_id", {})
    await client.write(frame(TEXT, message[:5], fin=False))
    await client.write(frame(PING, b"between"))
    await client.write(frame(CONTINUATION, message[5:12], fin=False))
    await client.write(frame(CONTINUATION, message[12:]))
    assert await client.next_frame() == (PONG, b"between")
    assert "session_id" in (await client.ack(1))[0]


async def test_frames_sharing_a_segment_and_a_frame_split_byte_by_byte(server, raw):
    client = await raw()
    await client.write(frame(TEXT, call(1, "request_session_id", {})) + frame(TEXT, call(2, "request_session_id", {})))
    first, second = await client.ack(1), await client.ack(2)
    assert first[0]["session_id"] != second[0]["session_id"]
    for byte in frame(TEXT, call(3, "request_session_id", {})):
        await client.write(bytes((byte,)))
        await asyncio.sleep(0.002)
    assert "session_id" in (await client.ack(3))[0]


@pytest.mark.parametrize("size", [300, 70_000], ids=["16-bit-length", "64-bit-length"])
async def test_long_frames_in_pieces_and_in_bulk(server, raw, size):
    client = await raw()
    data = frame(TEXT, call(1, "join_session", {"session_id": "x" * size}))
    for piece in (data[:3], data[3:9], data[9:]):  # the extended length itself arrives in parts
        await client.write(piece)
        await asyncio.sleep(0.01)
    assert (await client.ack(1))[0]["ok"] is False  # refused by validation: it arrived whole and parsed
    # More than the reader takes before letting other connections run, in one go.
    await client.write(b"".join(frame(TEXT, call(i, "join_session", {"session_id": "x" * size})) for i in range(2, 6)))
    for i in range(2, 6):
        assert (await client.ack(i))[0]["ok"] is False


async def test_an_unmasked_frame_is_read_as_tornado_reads_it(server, raw):
    client = await raw()
    await client.write(frame(TEXT, call(1, "request_session_id", {}), masked=False))
    assert "session_id" in (await client.ack(1))[0]


REFUSED = {
    "reserved-bits": frame(TEXT, b"3", rsv=0x20),
    "long-control-frame": frame(PING, b"x" * 200),
    "continuation-without-a-start": frame(CONTINUATION, b"3"),
    "new-message-inside-a-fragmented-one": frame(TEXT, b"4", fin=False) + frame(TEXT, b"3"),
    "fragmented-control-frame": frame(PING, b"x", fin=False),
    "declared-too-large": frame(TEXT, b"", length=2**40),  # its payload never comes: refused on the header
}


@pytest.mark.parametrize("data", REFUSED.values(), ids=REFUSED.keys())
async def test_refused_frames_close_only_their_connection(server, raw, data):
    bystander, client = await raw(), await raw()
    await client.write(data)
    assert await client.closed()
    await bystander.write(frame(TEXT, call(1, "request_session_id", {})))
    assert "session_id" in (await bystander.ack(1))[0]


async def test_a_too_large_message_is_refused_with_1009(server, raw):
    client = await raw()
    await client.write(frame(TEXT, b"", length=2**40))
    opcode, payload = await client.next_frame()
    assert opcode == CLOSE and struct.unpack("!H", payload[:2])[0] == 1009


async def test_the_reader_ends_when_the_client_goes(server, raw):
    client = await raw()
    assert len(server.app.sio.eio.sockets) == 1
    client.close()
    for _ in range(200):
        if not server.app.sio.eio.sockets and not server.app.transport.handlers:
            break
        await asyncio.sleep(0.01)
    assert not server.app.sio.eio.sockets and not server.app.transport.handlers
