"""Socket.IO messages assembled from bytes: a frame's JSON is encoded once, when it arrives.

The live path encodes a payload once (:func:`payload_json`), laid out so that
what viewers are sent of it — ``"telemetry":{...}``, or
``"timestamp":"...","setup":{...}`` — is its tail, and the frame remembers
where that tail starts (``Frame.tail_at``). Every message that carries the
frame afterwards is concatenated from those bytes: the room broadcast, the
setups, gap-fill and latest telemetry a joining viewer gets, the points of its
``telemetry_history``. Nothing is decoded again, and nothing goes through
python-socketio's encoder and its recursive binary check: the broadcaster
writes the bytes (racedash.fanout).

A frame read back from a recording has no such offset; its value is encoded
once, with orjson, when a message needs it.

A message is the Engine.IO text message of a Socket.IO EVENT on ``/``:
``42["event",{...}]``.
"""

from __future__ import annotations

import json
from typing import Any, Iterable

import orjson

from racedash.sessions import SETUP, TELEMETRY, Frame

EVENT_OF_KIND = {SETUP: "setup_update", TELEMETRY: "telemetry_update"}


def dumps(value: Any) -> bytes:
    """orjson, or the standard encoder for what orjson refuses (integers beyond 64 bits)."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return json.dumps(value, separators=(",", ":")).encode()


def event_message(event: str, data: Any) -> bytes:
    """Any event with a JSON-able body: ``42["event",data]``."""
    return b"42" + dumps([event, data])


def payload_json(kind: str, payload: dict) -> tuple[bytes, int]:
    """(JSON of ``payload``, offset of its wire tail): the one encode of a live frame.

    Raises orjson.JSONEncodeError for what cannot be recorded. Members the
    contract does not name come first; the tail is ``"telemetry":T}`` or
    ``"timestamp":S,"setup":U}`` (a setup's timestamp is required).
    """
    if kind == TELEMETRY:
        rest = {k: v for k, v in payload.items() if k != "telemetry"}
        tail = b'"telemetry":' + orjson.dumps(payload["telemetry"]) + b"}"
    else:
        rest = {k: v for k, v in payload.items() if k not in ("timestamp", "setup")}
        tail = b"".join((b'"timestamp":', orjson.dumps(payload["timestamp"]), b',"setup":', orjson.dumps(payload["setup"]), b"}"))
    head = orjson.dumps(rest)
    head = head[:-1] + b"," if rest else b"{"
    return head + tail, len(head)


def _tail(frame: Frame) -> bytes | memoryview:
    """``"telemetry":T`` / ``"timestamp":S,"setup":U`` of ``frame`` (no closing brace)."""
    if frame.tail_at and frame.data_json is not None:
        return memoryview(frame.data_json)[frame.tail_at:-1]
    payload = frame.payload
    if frame.kind == TELEMETRY:
        return b'"telemetry":' + dumps(payload.get("telemetry"))
    return b"".join((b'"timestamp":', dumps(payload.get("timestamp")), b',"setup":', dumps(payload.get("setup"))))


def setup_value(frame: Frame) -> bytes | memoryview:
    """The JSON of a setup frame's ``setup`` (to tell a re-sent setup from a change, without decoding)."""
    data = frame.data_json
    if frame.tail_at and data is not None:
        # The tail is "timestamp":<string>,"setup":<value>; an unescaped quote cannot occur inside
        # a JSON string, so the first ',"setup":' after the tail's start is the member's own.
        at = data.find(b',"setup":', frame.tail_at)
        if at >= 0:
            return memoryview(data)[at + len(b',"setup":'):-1]
    return dumps(frame.payload.get("setup"))


def frame_message(room_id: str, frame: Frame, race: dict[str, Any] | None = None) -> bytes:
    """The ``setup_update`` / ``telemetry_update`` a frame is sent as, to room ``room_id``.

    ``race`` (telemetry only) is the race model's summary as of this frame.
    """
    parts = [b'42["', EVENT_OF_KIND[frame.kind].encode(), b'",{"session_id":', dumps(room_id), b",", _tail(frame),
             b',"seq":%d' % frame.seq]
    if race is not None:
        parts += (b',"race":', dumps(race))
    parts.append(b"}]")
    return b"".join(parts)


def history_point(frame: Frame) -> bytes:
    """One point of ``telemetry_history``: ``{"seq":N,"t":T,"telemetry":{...}}``."""
    return b"".join((b'{"seq":%d,"t":' % frame.seq, dumps(frame.received), b",", _tail(frame), b"}"))


def history_message(head: dict[str, Any], points: Iterable[bytes]) -> bytes:
    """``telemetry_history``: the members of ``head``, then ``"frames":[points]``."""
    encoded_head = dumps(head)[:-1]
    separator = b"," if head else b""
    return b"".join((b'42["telemetry_history",', encoded_head, separator, b'"frames":[', b",".join(points), b"]}]"))
