"""A recording's summary: what listing, restore and the API need without reading the file.

The summary is kept up to date by the writer as lines reach the disk and is
saved beside the recording as ``<session_id>.summary.json`` (a sidecar). It is
always derivable from the recording itself: :func:`load_summary` uses the
sidecar when it is fresh, scans only the bytes appended since it was written
when it is stale, and rebuilds it from the whole file when it is missing,
unreadable, or describes another file.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, BinaryIO, NamedTuple

import orjson

from racedash.recording.format import decode_event, decode_header
from racedash.recording.files import open_regular, read_regular, replace_atomically, shown
from racedash.sessions import SETUP_HISTORY
from racedash.teams.model import is_team_id

log = logging.getLogger(__name__)

SIDECAR_SUFFIX = ".summary.json"
SIDECAR_VERSION = 2  # 2: setup_offsets replaced last_setup_offset
# Fields added within a version, and their value when a sidecar written before them lacks
# them (``team``: no team; load_summary checks it against the header, else it rebuilds).
_ADDED_FIELDS: dict[str, Any] = {"team": None}
MAX_DRIVERS = 32  # a stint has a handful; bounds a sidecar fed hostile names


class FrameFacts(NamedTuple):
    """The few fields of one frame that a summary keeps (extracted once, at append time)."""

    kind: str
    seq: int
    t: float
    lap: int | None
    driver: str | None
    car: str | None
    track: str | None
    session_type: str | None


def facts_of(kind: str, seq: int, t: float, data: dict) -> FrameFacts:
    telemetry = data.get("telemetry") if kind == "telemetry" else None
    if not isinstance(telemetry, dict):
        return FrameFacts(kind, seq, t, None, None, None, None, None)
    lap = telemetry.get("lap")
    return FrameFacts(
        kind,
        seq,
        t,
        lap if isinstance(lap, int) and not isinstance(lap, bool) else None,
        _text(telemetry.get("player_name")),
        _text(telemetry.get("car_name")),
        _text(telemetry.get("track_name")),
        _text(telemetry.get("session_type")),
    )


def _text(value: Any) -> str | None:
    return value[:200] if isinstance(value, str) and value else None


@dataclass
class Summary:
    session_id: str
    created: float
    racedash_version: str = ""
    first_time: float | None = None
    last_time: float | None = None
    frames: int = 0
    setups: int = 0
    last_seq: int = 0
    first_lap: int | None = None
    last_lap: int | None = None
    track: str | None = None
    car: str | None = None
    session_type: str | None = None
    drivers: list[str] = field(default_factory=list)
    # Where the last SETUP_HISTORY setups start, oldest first: a resumed session
    # shows its viewers every setup change, as it did before the restart.
    setup_offsets: list[int] = field(default_factory=list)
    last_telemetry_offset: int | None = None
    # Byte offset just after the last complete line, and the file's size when
    # this summary was made: a different size means the summary is stale.
    good_size: int = 0
    file_size: int = 0
    # True once the session ended and its writer closed the recording cleanly.
    ended: bool = False
    # True when the writer closed the file with every accepted frame on disk
    # (a session end or a clean server stop). False while it is being written
    # and after a crash: resuming then skips seq numbers (store.CRASH_SEQ_GAP).
    closed_cleanly: bool = False
    # The team of the recording's header (racedash.teams): listing filters by it without reading the file.
    team: str | None = None

    def observe(self, facts: FrameFacts, offset: int) -> None:
        """Account for one event line that starts at ``offset`` in the file."""
        self.frames += 1
        if self.first_time is None:
            self.first_time = facts.t
        self.last_time = facts.t
        self.last_seq = max(self.last_seq, facts.seq)
        if facts.kind == "setup":
            self.setups += 1
            self.setup_offsets.append(offset)
            if len(self.setup_offsets) > SETUP_HISTORY:
                del self.setup_offsets[0]
            return
        self.last_telemetry_offset = offset
        if facts.lap is not None:
            self.first_lap = facts.lap if self.first_lap is None else min(self.first_lap, facts.lap)
            self.last_lap = facts.lap if self.last_lap is None else max(self.last_lap, facts.lap)
        self.track = facts.track or self.track
        self.car = facts.car or self.car
        self.session_type = facts.session_type or self.session_type
        driver = facts.driver
        if driver and driver not in self.drivers and len(self.drivers) < MAX_DRIVERS:
            self.drivers.append(driver)

    @property
    def laps(self) -> int:
        """Laps seen in the recording (first to last lap number, inclusive)."""
        if self.first_lap is None or self.last_lap is None:
            return 0
        return self.last_lap - self.first_lap + 1

    @property
    def duration(self) -> float:
        if self.first_time is None or self.last_time is None:
            return 0.0
        return round(self.last_time - self.first_time, 6)

    def copy(self) -> "Summary":
        return Summary(**asdict(self))

    def to_sidecar(self) -> bytes:
        return orjson.dumps({"sidecar_version": SIDECAR_VERSION, **asdict(self)})

    @classmethod
    def from_sidecar(cls, raw: bytes) -> "Summary":
        """Parse and type-check a sidecar: a damaged or tampered one is a ValueError (then rebuilt), never a 500."""
        obj = orjson.loads(raw)
        if not isinstance(obj, dict) or obj.pop("sidecar_version", None) != SIDECAR_VERSION:
            raise ValueError("not a summary sidecar of this version")
        obj = {**_ADDED_FIELDS, **obj}
        if set(obj) != set(_FIELD_CHECKS):
            raise ValueError("summary sidecar fields differ from this version's")
        for name, check in _FIELD_CHECKS.items():
            if not check(obj[name]):
                raise ValueError(f"summary sidecar field {name!r} has a wrong type or value")
        return cls(**obj)

    def public(self, *, live: bool) -> dict[str, Any]:
        """The metadata the API shows (no internal offsets)."""
        return {
            "session_id": self.session_id,
            "created": self.created,
            "track": self.track,
            "car": self.car,
            "session_type": self.session_type,
            "drivers": list(self.drivers),
            "first_time": self.first_time,
            "last_time": self.last_time,
            "duration": self.duration,
            "frames": self.frames,
            "setups": self.setups,
            "last_seq": self.last_seq,
            "first_lap": self.first_lap,
            "last_lap": self.last_lap,
            "laps": self.laps,
            "size": self.good_size,
            "live": live,
            "state": "live" if live else ("ended" if self.ended else "interrupted"),
            "team": self.team,
        }


def _is_int(value: Any) -> bool:
    return type(value) is int and value >= 0


def _is_number(value: Any) -> bool:
    return type(value) in (int, float)


def _optional(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda value: value is None or check(value)


def _list_of(check: Callable[[Any], bool], most: int) -> Callable[[Any], bool]:
    return lambda value: type(value) is list and len(value) <= most and all(check(v) for v in value)


def _is_text(value: Any) -> bool:
    return type(value) is str and len(value) <= 200


_FIELD_CHECKS: dict[str, Callable[[Any], bool]] = {
    "session_id": lambda v: type(v) is str,
    "created": _is_number,
    "racedash_version": lambda v: type(v) is str,
    "first_time": _optional(_is_number),
    "last_time": _optional(_is_number),
    "frames": _is_int,
    "setups": _is_int,
    "last_seq": _is_int,
    "first_lap": _optional(lambda v: type(v) is int),
    "last_lap": _optional(lambda v: type(v) is int),
    "track": _optional(_is_text),
    "car": _optional(_is_text),
    "session_type": _optional(_is_text),
    "drivers": _list_of(_is_text, MAX_DRIVERS),
    "setup_offsets": _list_of(_is_int, SETUP_HISTORY),
    "last_telemetry_offset": _optional(_is_int),
    "good_size": _is_int,
    "file_size": _is_int,
    "ended": lambda v: type(v) is bool,
    "closed_cleanly": lambda v: type(v) is bool,
    "team": _optional(is_team_id),
}


def sidecar_path(recording: Path) -> Path:
    return recording.with_name(recording.name.removesuffix(".jsonl") + SIDECAR_SUFFIX)


def scan(f: BinaryIO, summary: Summary, start: int) -> None:
    """Fold the complete lines from ``start`` to the end of ``f`` into ``summary``.

    A last line without its newline (torn by a crash) is not counted: it is
    left out of ``good_size`` so that every reader stops before it.
    """
    f.seek(start)
    offset = start
    for line in f:
        if not line.endswith(b"\n"):
            break
        event = decode_event(line)
        if event is not None:
            summary.observe(facts_of(event.kind, event.seq, event.t, event.data), offset)
        offset += len(line)
    summary.good_size = offset


def rebuild(f: BinaryIO, size: int) -> Summary:
    """A summary from the whole file. Raises RecordingFormatError for a bad header."""
    f.seek(0)
    first = f.readline()
    header = decode_header(first)
    summary = Summary(
        session_id=header.session_id, created=header.created, racedash_version=header.racedash_version, team=header.team
    )
    scan(f, summary, len(first))
    summary.file_size = size
    return summary


def read_sidecar(path: Path) -> Summary | None:
    try:
        return Summary.from_sidecar(read_regular(sidecar_path(path)))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError) as exc:
        log.warning("ignoring unreadable summary sidecar %s: %s", shown(sidecar_path(path)), getattr(exc, "strerror", None) or exc)
        return None


def write_sidecar(path: Path, summary: Summary) -> None:
    """Replace the sidecar atomically (a reader never sees half of one)."""
    replace_atomically(sidecar_path(path), summary.to_sidecar())


def load_summary(path: Path, *, persist: bool = True) -> Summary:
    """The recording's current summary, reading as little of the file as possible.

    Fresh sidecar: no read of the recording beyond its header. Stale (the file
    grew): only the new bytes are scanned. Missing or for another file: a full
    rebuild. A rebuilt summary is saved (``persist``) so the next call is cheap.
    Raises RecordingFormatError when the recording's header is bad and OSError
    when the file cannot be read.
    """
    with open_regular(path) as f:
        size = os.fstat(f.fileno()).st_size
        first = f.readline()
        header = decode_header(first)
        cached = read_sidecar(path)
        usable = (
            cached is not None
            and cached.session_id == header.session_id
            and cached.created == header.created
            and cached.team == header.team
            and len(first) <= cached.good_size <= cached.file_size <= size
        )
        if usable and cached is not None and cached.file_size == size:
            return cached
        if usable and cached is not None:
            summary = cached
            summary.ended = False  # it grew after it was closed: it was resumed
            summary.closed_cleanly = False
            scan(f, summary, summary.good_size)
            summary.file_size = size
        else:
            summary = rebuild(f, size)
    if persist:
        try:
            write_sidecar(path, summary)
        except OSError as exc:
            log.warning("could not save summary sidecar for %s: %s", shown(path), getattr(exc, "strerror", None) or exc)
    return summary

