"""A recording's seek index: position -> byte offset, lap starts, setups.

Seeking must not cost more for a longer recording, so a replay never scans
from the start. One streamed pass over the file (on first use, in a worker
thread) records:

- a checkpoint every ``CHECKPOINT_SECONDS`` of recording time (or every
  ``CHECKPOINT_EVERY`` events, or ``CHECKPOINT_BYTES``): its position, byte
  offset and the offset of the last telemetry line at or before it. The state
  at any point is then one checkpoint interval of reading, and the chart
  history window is read from the checkpoints' telemetry lines alone, one
  decode per history point instead of one per frame. Kept in arrays:
  24 bytes a checkpoint, ~0.7 MB for 24 hours;
- every lap start (the first telemetry frame of a lap number higher than any
  seen before), with its position and offset;
- every setup line's position and offset (setups are rare and ~60 KB).

Positions are seconds since the recording's first event, made monotone
(``max`` with the previous one) so that a server clock stepping back cannot
break the bisections.

The index grows with the file: :meth:`RecordingIndex.extend` scans only the
bytes added since the last scan (a live recording), and it is cached in a
sidecar ``<session_id>.index.json`` beside the recording. The sidecar is only
a cache: a missing, corrupt or stale one (another file, a shorter file, a
boundary that is no longer a line end) is ignored and rebuilt.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import tempfile
from array import array
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from racedash.errors import RacedashError
from racedash.recording.files import open_regular, read_regular, shown
from racedash.recording.format import Event, decode_event
from racedash.replay.reader import RecordingReader

log = logging.getLogger(__name__)

INDEX_FORMAT = "racedash-replay-index"
INDEX_VERSION = 2
CHECKPOINT_SECONDS = 3.0
CHECKPOINT_EVERY = 128
CHECKPOINT_BYTES = 512 * 1024
SIDECAR_SUFFIX = ".index.json"


def sidecar_path(recording: Path) -> Path:
    return recording.with_name(recording.name.removesuffix(".jsonl") + SIDECAR_SUFFIX)


@dataclass(frozen=True, slots=True)
class LapStart:
    lap: int
    position: float
    offset: int


@dataclass
class RecordingIndex:
    session_id: str
    created: float
    header_end: int
    scanned: int = 0  # end of the last complete line scanned
    t0: float | None = None  # receive time of the first event
    last_position: float = 0.0
    events: int = 0
    cp_positions: array = field(default_factory=lambda: array("d"))
    cp_offsets: array = field(default_factory=lambda: array("q"))
    cp_telemetry: array = field(default_factory=lambda: array("q"))  # last telemetry at or before; -1: none
    cp_events: array = field(default_factory=lambda: array("q"))  # events before the checkpoint line
    laps: list[LapStart] = field(default_factory=list)
    setup_positions: list[float] = field(default_factory=list)
    setup_offsets: list[int] = field(default_factory=list)
    # Scan state, kept so that extend() continues exactly where it stopped.
    since_checkpoint: int = 0
    checkpoint_bytes: int = 0
    last_telemetry: int = -1
    max_lap: int | None = None

    def __post_init__(self) -> None:
        self.scanned = max(self.scanned, self.header_end)
        # Bisection keys for the lap list, kept in step with it.
        self._lap_numbers = [s.lap for s in self.laps]
        self._lap_positions = [s.position for s in self.laps]

    # -- queries ----------------------------------------------------------------
    @property
    def duration(self) -> float:
        return self.last_position

    def position_of(self, t: float) -> float:
        return 0.0 if self.t0 is None else t - self.t0

    def checkpoint_at(self, position: float) -> int:
        """Index of the last checkpoint at or before ``position`` (-1: none)."""
        return bisect_right(self.cp_positions, position) - 1

    def checkpoints_after(self, position: float) -> int:
        """Index of the first checkpoint after ``position``."""
        return bisect_right(self.cp_positions, position)

    def events_between(self, first_cp: int, last_cp: int) -> int:
        """Events from checkpoint ``first_cp`` up to checkpoint ``last_cp``'s interval end (at most)."""
        end = self.cp_events[last_cp + 1] if last_cp + 1 < len(self.cp_events) else self.events
        start = self.cp_events[first_cp] if first_cp >= 0 else 0
        return end - start

    def setup_before(self, position: float) -> int | None:
        """Offset of the last setup at or before ``position``."""
        i = bisect_right(self.setup_positions, position) - 1
        return self.setup_offsets[i] if i >= 0 else None

    def lap_start(self, lap: int) -> LapStart | None:
        i = bisect_left(self._lap_numbers, lap)
        if i < len(self.laps) and self.laps[i].lap == lap:
            return self.laps[i]
        return None

    def lap_at(self, position: float) -> int | None:
        """The lap being driven at ``position`` (None before the first lap start)."""
        i = bisect_right(self._lap_positions, position) - 1
        return self.laps[i].lap if i >= 0 else None

    # -- building ---------------------------------------------------------------
    def extend(self, path: Path) -> int:
        """Scan the bytes added since the last scan; returns the number of new events.

        Raises :class:`StaleIndex` when the file no longer continues what was
        scanned (it is shorter, or the boundary is not a line end).
        """
        with open_regular(path) as f:
            size = os.fstat(f.fileno()).st_size
            if size < self.scanned:
                raise StaleIndex(f"{path.name} is shorter than its index")
            if size == self.scanned:
                return 0
            if self.scanned > self.header_end:
                f.seek(self.scanned - 1)
                if f.read(1) != b"\n":
                    raise StaleIndex(f"{path.name} changed under its index")
            f.seek(self.scanned)
            before = self.events
            offset = self.scanned
            for line in f:
                if not line.endswith(b"\n"):
                    break  # torn tail, or a line still being written
                event = decode_event(line)
                if event is not None:
                    self._add(offset, len(line), event)
                offset += len(line)
            self.scanned = offset
            return self.events - before

    def _add(self, offset: int, length: int, event: Event) -> None:
        if self.t0 is None:
            self.t0 = event.t
        position = max(event.t - self.t0, self.last_position)
        if event.kind == "telemetry":
            self.last_telemetry = offset
        if (
            not self.cp_offsets
            or position - self.cp_positions[-1] >= CHECKPOINT_SECONDS
            or self.since_checkpoint >= CHECKPOINT_EVERY
            or self.checkpoint_bytes >= CHECKPOINT_BYTES
        ):
            self.cp_positions.append(position)
            self.cp_offsets.append(offset)
            self.cp_telemetry.append(self.last_telemetry)
            self.cp_events.append(self.events)
            self.since_checkpoint = 0
            self.checkpoint_bytes = 0
        self.since_checkpoint += 1
        self.checkpoint_bytes += length
        self.events += 1
        self.last_position = position
        if event.kind == "setup":
            self.setup_positions.append(position)
            self.setup_offsets.append(offset)
        elif event.kind == "telemetry":
            lap = lap_of(event)
            if lap is not None and (self.max_lap is None or lap > self.max_lap):
                self.max_lap = lap
                self.laps.append(LapStart(lap=lap, position=position, offset=offset))
                self._lap_numbers.append(lap)
                self._lap_positions.append(position)

    # -- sidecar ----------------------------------------------------------------
    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "format": INDEX_FORMAT,
                "version": INDEX_VERSION,
                "session_id": self.session_id,
                "created": self.created,
                "header_end": self.header_end,
                "scanned": self.scanned,
                "t0": self.t0,
                "last_position": self.last_position,
                "events": self.events,
                # The columns as the arrays' bytes (hex): a day's 28,800 checkpoints
                # load in a millisecond, without a Python object per number.
                "byteorder": sys.byteorder,
                "checkpoints": [
                    column.tobytes().hex()
                    for column in (self.cp_positions, self.cp_offsets, self.cp_telemetry, self.cp_events)
                ],
                "laps": [[s.lap, s.position, s.offset] for s in self.laps],
                "setups": list(zip(self.setup_positions, self.setup_offsets)),
                "scan": [self.since_checkpoint, self.checkpoint_bytes, self.last_telemetry, self.max_lap],
            }
        )

    @classmethod
    def from_json(cls, raw: bytes) -> "RecordingIndex":
        """Raises ValueError (or KeyError/TypeError) for anything that is not a current index."""
        obj = orjson.loads(raw)
        if obj.get("format") != INDEX_FORMAT or obj.get("version") != INDEX_VERSION:
            raise ValueError("not a current replay index")
        if obj.get("byteorder") != sys.byteorder:
            raise ValueError("index written on a machine of another byte order")
        positions, offsets, telemetry, events = (
            _column(code, raw) for code, raw in zip("dqqq", obj["checkpoints"])
        )
        if not len(positions) == len(offsets) == len(telemetry) == len(events):
            raise ValueError("checkpoint columns differ in length")
        setups = obj["setups"]
        since, cp_bytes, last_telemetry, max_lap = obj["scan"]
        index = cls(
            session_id=str(obj["session_id"]),
            created=float(obj["created"]),
            header_end=int(obj["header_end"]),
            scanned=int(obj["scanned"]),
            t0=None if obj["t0"] is None else float(obj["t0"]),
            last_position=float(obj["last_position"]),
            events=int(obj["events"]),
            cp_positions=positions,
            cp_offsets=offsets,
            cp_telemetry=telemetry,
            cp_events=events,
            laps=[LapStart(lap=int(lap), position=float(p), offset=int(o)) for lap, p, o in obj["laps"]],
            setup_positions=[float(s[0]) for s in setups],
            setup_offsets=[int(s[1]) for s in setups],
            since_checkpoint=int(since),
            checkpoint_bytes=int(cp_bytes),
            last_telemetry=int(last_telemetry),
            max_lap=None if max_lap is None else int(max_lap),
        )
        index.check_consistent()
        return index

    def check_consistent(self) -> None:
        """Offsets inside what was scanned, positions and offsets in file order: else ValueError.

        The sidecar is only a cache, but a tampered one with the right types and
        wrong numbers would send a seek to the middle of a line or past the end.
        """
        low, high = self.header_end, self.scanned
        if not 0 < low <= high or self.events < 0 or not math.isfinite(self.last_position):
            raise ValueError("index extent is impossible")
        for name, offsets in (("checkpoint", self.cp_offsets), ("telemetry", [o for o in self.cp_telemetry if o >= 0]),
                              ("lap", [s.offset for s in self.laps]), ("setup", self.setup_offsets)):
            if any(not low <= o < high for o in offsets) or any(a > b for a, b in zip(offsets, offsets[1:])):
                raise ValueError(f"index {name} offsets are out of the file or out of order")
        for name, positions in (("checkpoint", list(self.cp_positions)), ("lap", [s.position for s in self.laps]),
                                ("setup", self.setup_positions)):
            if any(not math.isfinite(p) or p < 0 or p > self.last_position for p in positions) or any(
                a > b for a, b in zip(positions, positions[1:])
            ):
                raise ValueError(f"index {name} positions are out of order")
        if any(e < 0 for e in self.cp_events) or any(a > b for a, b in zip(self.cp_events, list(self.cp_events)[1:])):
            raise ValueError("index event counts are out of order")

    def save(self, path: Path) -> None:
        """Write the sidecar atomically; a failure only costs a rebuild next time."""
        try:
            fd, tmp = tempfile.mkstemp(prefix=".index-", dir=path.parent)
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(self.to_json())
                os.replace(tmp, path)
            except BaseException:
                os.unlink(tmp)
                raise
        except OSError as exc:
            log.warning("could not write replay index %s: %s", shown(path), getattr(exc, "strerror", None) or exc)


def _column(typecode: str, raw: str) -> array:
    column = array(typecode)
    column.frombytes(bytes.fromhex(raw))  # ValueError for bad hex or a partial item
    return column


class StaleIndex(Exception):
    """The recording no longer continues what the index scanned."""


def lap_of(event: Event) -> int | None:
    telemetry = event.data.get("telemetry")
    if not isinstance(telemetry, dict):
        return None
    lap = telemetry.get("lap")
    return lap if isinstance(lap, int) and not isinstance(lap, bool) else None


def _load_sidecar(path: Path, reader: RecordingReader) -> RecordingIndex | None:
    try:
        raw = read_regular(sidecar_path(path))
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning("replay index for %s unreadable, rebuilding: %s", path.stem[:8], exc)
        return None
    try:
        index = RecordingIndex.from_json(raw)
    except (ValueError, KeyError, TypeError) as exc:
        log.warning("replay index for %s is invalid, rebuilding: %s", path.stem[:8], exc)
        return None
    header = reader.header
    if (index.session_id, index.created, index.header_end) != (
        header.session_id,
        header.created,
        reader.header_end,
    ):
        log.info("replay index for %s belongs to another file, rebuilding", path.stem[:8])
        return None
    return index


def open_index(path: Path, *, use_sidecar: bool = True) -> RecordingIndex:
    """The up-to-date index of a recording: the sidecar extended, or a fresh scan.

    Blocking (it may read the whole file once): call it from a worker thread.
    Raises UnknownRecording / BadRecording like :class:`RecordingReader`.
    """
    with RecordingReader(path) as reader:
        index = _load_sidecar(path, reader) if use_sidecar else None
        header, header_end = reader.header, reader.header_end
    from_sidecar = index is not None
    if index is None:
        index = RecordingIndex(session_id=header.session_id, created=header.created, header_end=header_end)
    try:
        added = index.extend(path)
    except StaleIndex as exc:
        log.info("replay index for %s is stale (%s), rebuilding", path.stem[:8], exc)
        index = RecordingIndex(session_id=header.session_id, created=header.created, header_end=header_end)
        added = index.extend(path)
        from_sidecar = False
    if use_sidecar and (added or not from_sidecar):
        index.save(sidecar_path(path))
    return index


def keep_sidecar_current(path: Path) -> None:
    """Bring a growing recording's sidecar up to what the file holds now (blocking: a worker thread).

    The process writing a live recording calls it now and then, so that the first time-shift or
    replay of a long session scans only what was written since, not the whole file. A failure
    only costs that first open a longer scan.
    """
    try:
        open_index(path)
    except (RacedashError, OSError) as exc:
        log.warning("could not bring the replay index of %s up to date: %s", path.stem[:8], exc)


def refresh_index(index: RecordingIndex, path: Path) -> tuple[RecordingIndex, int]:
    """``index`` extended with what was appended (or rebuilt if stale); returns (index, new events)."""
    try:
        return index, index.extend(path)
    except StaleIndex:
        fresh = open_index(path, use_sidecar=False)
        return fresh, fresh.events
