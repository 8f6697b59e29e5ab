"""Server websocket frames built by racedash, and writing them without Tornado's per-write objects."""

from __future__ import annotations

import zlib
from typing import Any

import tornado.iostream

TEXT_FIN = 0x80 | 0x1  # FIN + text opcode
BINARY_FIN = 0x80 | 0x2  # FIN + binary opcode
RSV1 = 0x40  # permessage-deflate: the payload is compressed


def websocket_frame(payload: bytes, first_byte: int = TEXT_FIN) -> bytes:
    """An unmasked, unfragmented server frame (RFC 6455 5.2), text unless ``first_byte`` says otherwise."""
    n = len(payload)
    if n < 126:
        head = bytes((first_byte, n))
    elif n <= 0xFFFF:
        head = bytes((first_byte, 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((first_byte, 127)) + n.to_bytes(8, "big")
    return head + payload


def deflate_message(payload: bytes, wbits: int, level: int, mem_level: int) -> bytes:
    """One message compressed on its own (no context takeover, RFC 7692 7.2.1)."""
    compressor = zlib.compressobj(level, zlib.DEFLATED, -wbits, mem_level)
    data = compressor.compress(payload) + compressor.flush(zlib.Z_SYNC_FLUSH)
    return data[:-4]  # drop the 00 00 ff ff tail, as the RFC asks


def compressor_key(compressor: Any) -> tuple[int, int, int]:
    """The parameters that decide a connection's compressed bytes: (wbits, level, mem_level)."""
    return (compressor._max_wbits, compressor._compression_level, compressor._mem_level)


def message_frame(connection: Any, message: str | bytes) -> bytes:
    """The frame ``connection`` (a Tornado websocket protocol) would send for one message."""
    binary = isinstance(message, bytes)
    payload = message if binary else message.encode()
    first_byte = BINARY_FIN if binary else TEXT_FIN
    if connection._compressor is not None:
        payload = deflate_message(payload, *compressor_key(connection._compressor))
        first_byte |= RSV1
    return websocket_frame(payload, first_byte)


def send_now(stream: tornado.iostream.IOStream, data: bytes) -> None:
    """Write ``data`` to the stream's socket now, or queue it behind what Tornado still holds.

    ``IOStream.write`` costs a Future, a done-callback and a loop callback per
    call, more than the loopback ``send()`` itself. When Tornado holds nothing
    unsent for this stream, the bytes go to the socket directly; whatever the
    socket does not take (or an error) goes through ``IOStream.write``, which
    buffers it, or closes the stream and reports the error as usual.
    """
    if not stream._write_buffer and type(stream) is tornado.iostream.IOStream:
        try:
            sent = stream.socket.send(data)
        except OSError:  # EAGAIN, or a broken connection Tornado should see
            sent = 0
        if sent == len(data):
            return
        if sent:
            data = data[sent:]
    stream.write(data)
