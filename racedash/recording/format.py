"""The recording format, pure: encode and decode lines, no I/O (docs/recording-format.md).

Readers use :func:`decode_event` on every line and treat ``None`` as "no
event here" (a torn last line, a kind they do not know), so a crash in the
middle of a write never breaks reading, replay or download.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

FORMAT_NAME = "racedash-recording"
FORMAT_VERSION = 1
KNOWN_KINDS = frozenset({"setup", "telemetry"})


class RecordingFormatError(ValueError):
    """A recording's header is missing, unreadable or of another format/version."""


@dataclass(frozen=True, slots=True)
class Header:
    session_id: str
    created: float
    racedash_version: str
    version: int = FORMAT_VERSION


@dataclass(frozen=True, slots=True)
class Event:
    t: float
    seq: int
    kind: str
    data: dict


def encode_header(header: Header) -> bytes:
    return orjson.dumps(
        {
            "format": FORMAT_NAME,
            "version": header.version,
            "session_id": header.session_id,
            "created": header.created,
            "racedash_version": header.racedash_version,
        },
        option=orjson.OPT_APPEND_NEWLINE,
    )


def encode_event(t: float, seq: int, kind: str, data: Any) -> bytes:
    """One event line, newline included. Raises orjson.JSONEncodeError for unencodable data."""
    return encode_event_json(t, seq, kind, orjson.dumps(data))


def encode_event_json(t: float, seq: int, kind: str, data_json: bytes) -> bytes:
    """One event line around ``data`` already encoded as JSON (the live path encodes a payload once)."""
    return b"".join(
        (b'{"t":', orjson.dumps(t), b',"seq":', b"%d" % seq, b',"kind":', orjson.dumps(kind), b',"data":', data_json, b"}\n")
    )


def decode_header(line: bytes) -> Header:
    if not line.endswith(b"\n"):
        raise RecordingFormatError("recording header is incomplete")
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise RecordingFormatError("recording header is not JSON") from exc
    if not isinstance(obj, dict) or obj.get("format") != FORMAT_NAME:
        raise RecordingFormatError("not a racedash recording")
    if obj.get("version") != FORMAT_VERSION:
        raise RecordingFormatError(f"unsupported recording version {obj.get('version')!r}")
    session_id, created = obj.get("session_id"), obj.get("created")
    if not isinstance(session_id, str) or not isinstance(created, (int, float)):
        raise RecordingFormatError("recording header lacks session_id or created")
    return Header(
        session_id=session_id,
        created=float(created),
        racedash_version=str(obj.get("racedash_version", "")),
        version=FORMAT_VERSION,
    )


def decode_event(line: bytes) -> Event | None:
    """The event on ``line``, or None for a torn, undecodable or unknown-kind line."""
    if not line.endswith(b"\n"):
        return None
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(obj, dict):
        return None
    kind, t, seq, data = obj.get("kind"), obj.get("t"), obj.get("seq"), obj.get("data")
    if kind not in KNOWN_KINDS or not isinstance(t, (int, float)) or not isinstance(seq, int):
        return None
    if not isinstance(data, dict):
        return None
    return Event(t=float(t), seq=seq, kind=kind, data=data)
