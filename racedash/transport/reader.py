"""Reading a websocket's frames with one pending read per connection.

Tornado's ``WebSocketProtocol13`` reads each frame in pieces: two header
bytes, the extended length, the mask, the payload, each through its own
coroutine and future. After the header read, the rest of the frame waits in
the stream's buffer, so the stream drops its read interest and takes it again
for the next frame: a new selector key, handle and context per message. On an
idle connection those, with the coroutines, were what a heartbeat's pong left
behind for the garbage collector once racedash.transport.driver had replaced
engine.io's handler: 12 objects per connection and round, 4 with this reader.

:func:`receive_frames` replaces Tornado's ``_receive_frame_loop``: it asks
the stream for whatever has arrived (one partial read, which empties
Tornado's buffer, so the read interest stays), parses every complete frame
in it and hands each message to Tornado's own ``_handle_message`` (which
decompresses, decodes, answers pings and closes), with the checks Tornado's
``_receive_frame`` makes, in the same order. tests/test_fanout.py pins the
Tornado code this mirrors.
"""

from __future__ import annotations

import asyncio
from typing import Any

from tornado.iostream import StreamClosedError
from tornado.util import _websocket_mask

READ_SIZE = 64 * 1024  # at most this much is taken from the stream per read
YIELD_BYTES = 256 * 1024  # as Tornado: let other connections run after this much input

_FIN = 0x80
_RSV_MASK = 0x70
_RSV1 = 0x40
_OPCODE_MASK = 0x0F


async def receive_frames(protocol: Any) -> None:
    """Tornado's ``_receive_frame_loop`` for ``protocol`` (a ``WebSocketProtocol13``), a read at a time."""
    stream = protocol.stream
    pending = b""  # the start of a frame that has not fully arrived
    since_yield = 0
    try:
        while not protocol.client_terminated:
            chunk = await stream.read_bytes(READ_SIZE, partial=True)
            protocol._wire_bytes_in += len(chunk)
            data = pending + chunk if pending else chunk
            pos = 0
            while not protocol.client_terminated:
                frame = _next_frame(protocol, data, pos)
                if frame is None:  # incomplete: wait for more
                    break
                if frame is False:  # refused: Tornado has been told to close or abort
                    return
                pos, opcode, payload = frame
                if opcode is not None:
                    handled = protocol._handle_message(opcode, payload)
                    if handled is not None:
                        await handled
            pending = data[pos:]
            since_yield += len(chunk)
            if since_yield >= YIELD_BYTES:
                since_yield = 0
                await asyncio.sleep(0)
    except StreamClosedError:
        protocol._abort()
    finally:
        protocol.handler.on_ws_connection_close(protocol.close_code, protocol.close_reason)


def _next_frame(protocol: Any, data: bytes, pos: int) -> tuple[int, int | None, bytes] | bool | None:
    """The frame at ``data[pos:]``: (end, opcode of a complete message or None, its payload).

    None if the frame has not fully arrived; False if it was refused (the
    protocol is then closing or aborted, as Tornado's ``_receive_frame`` does).
    """
    available = len(data) - pos
    if available < 2:
        return None
    header, mask_payloadlen = data[pos], data[pos + 1]
    is_final_frame = header & _FIN
    reserved_bits = header & _RSV_MASK
    opcode = header & _OPCODE_MASK
    opcode_is_control = opcode & 0x8
    payloadlen = mask_payloadlen & 0x7F
    at = pos + 2
    if payloadlen == 126:
        if available < 4:
            return None
        payloadlen = int.from_bytes(data[at : at + 2], "big")
        at += 2
    elif payloadlen == 127:
        if available < 10:
            return None
        payloadlen = int.from_bytes(data[at : at + 8], "big")
        at += 8

    if protocol._decompressor is not None and opcode != 0:
        # The first frame of a message says whether the message is compressed.
        protocol._frame_compressed = bool(reserved_bits & _RSV1)
        reserved_bits &= ~_RSV1
    if reserved_bits:
        protocol._abort()  # extensions nobody negotiated
        return False
    if opcode_is_control and mask_payloadlen & 0x7F >= 126:
        protocol._abort()  # control frames carry at most 125 bytes
        return False
    fragmented = protocol._fragmented_message_buffer
    if payloadlen + (len(fragmented) if fragmented is not None else 0) > protocol.params.max_message_size:
        # Checked before the payload is buffered: a huge frame is never held.
        protocol.close(1009, "message too big")
        protocol._abort()
        return False

    is_masked = mask_payloadlen & 0x80
    end = at + (4 if is_masked else 0) + payloadlen
    if len(data) < end:
        return None
    if is_masked:
        payload = _websocket_mask(data[at : at + 4], data[at + 4 : end])
    else:
        payload = data[at:end]

    if opcode_is_control:
        # Control frames may come between the fragments of a message, never fragmented themselves.
        if not is_final_frame:
            protocol._abort()
            return False
    elif opcode == 0:  # continuation
        if fragmented is None:
            protocol._abort()
            return False
        fragmented.extend(payload)
        if not is_final_frame:
            return end, None, b""
        opcode = protocol._fragmented_message_opcode
        payload = bytes(fragmented)
        protocol._fragmented_message_buffer = None
    else:  # the first frame of a message
        if fragmented is not None:
            protocol._abort()
            return False
        if not is_final_frame:
            protocol._fragmented_message_opcode = opcode
            protocol._fragmented_message_buffer = bytearray(payload)
            return end, None, b""
    return end, opcode, payload
