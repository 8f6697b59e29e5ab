"""The recording format, pure: encode and decode lines, no I/O (docs/recording-format.md).

Readers use :func:`decode_event` on every line and treat ``None`` as "no
event here" (a torn last line, a kind they do not know), so a crash in the
middle of a write never breaks reading, replay or download.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

from racedash.teams.model import is_team_id

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
    # The team the session belongs to (racedash.teams); None: no team (admin only). Additive:
    # absent from the line when None, so a single-team server's recordings are as before.
    team: str | None = None


@dataclass(frozen=True, slots=True)
class Event:
    t: float
    seq: int
    kind: str
    data: dict


def encode_header(header: Header) -> bytes:
    fields: dict[str, Any] = {
        "format": FORMAT_NAME,
        "version": header.version,
        "session_id": header.session_id,
        "created": header.created,
        "racedash_version": header.racedash_version,
    }
    if header.team is not None:
        fields["team"] = header.team
    return orjson.dumps(fields, option=orjson.OPT_APPEND_NEWLINE)


def encode_event(t: float, seq: int, kind: str, data: Any) -> bytes:
    """One event line, newline included. Raises orjson.JSONEncodeError for unencodable data."""
    return encode_event_json(t, seq, kind, orjson.dumps(data))


def encode_event_json(t: float, seq: int, kind: str, data_json: bytes, tail_at: int = 0) -> bytes:
    """One event line around ``data`` already encoded as JSON (the live path encodes a payload once).

    ``tail_at`` (additive ``"at"``): where, in ``data``, the part viewers are sent starts
    (racedash.wire), so that a reader can cut it out of the line instead of decoding it.
    """
    at = b',"at":%d' % tail_at if tail_at else b""
    return b"".join(
        (b'{"t":', orjson.dumps(t), b',"seq":', b"%d" % seq, b',"kind":', orjson.dumps(kind), at, b',"data":', data_json,
         b"}\n")
    )


@dataclass(frozen=True, slots=True)
class EncodedEvent:
    """An event line taken apart without decoding its data (see :func:`decode_encoded_event`)."""

    t: float
    seq: int
    kind: str
    data_json: bytes
    tail_at: int


_ENCODED_LINE = re.compile(rb'\{"t":(-?[0-9][0-9.eE+-]*),"seq":([0-9]{1,19}),"kind":"(setup|telemetry)","at":([0-9]{1,9}),"data":')
_TAIL_KEYS = {"setup": b'"timestamp":', "telemetry": b'"telemetry":'}


def decode_encoded_event(line: bytes) -> EncodedEvent | None:
    """A line racedash wrote with ``"at"``, taken apart by its layout; None for any other line.

    Checks what a torn or foreign line would break (the layout, the tail's key at ``at``,
    the closing braces); a caller falls back to :func:`decode_event` on None.
    """
    match = _ENCODED_LINE.match(line)
    if match is None or not line.endswith(b"}}\n"):
        return None
    data = line[match.end():-2]
    at = int(match.group(4))
    kind = match.group(3).decode()
    if not (0 < at < len(data)) or data[at - 1] not in b"{," or not data.startswith(_TAIL_KEYS[kind], at):
        return None
    try:
        t = float(match.group(1))
    except ValueError:
        return None
    return EncodedEvent(t=t, seq=int(match.group(2)), kind=kind, data_json=data, tail_at=at)


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
    team = obj.get("team")
    return Header(
        session_id=session_id,
        created=float(created),
        racedash_version=str(obj.get("racedash_version", "")),
        version=FORMAT_VERSION,
        # Anything but a team id (a tampered or damaged field) belongs to no team: the admin's alone.
        team=team if is_team_id(team) else None,
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
