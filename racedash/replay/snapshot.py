"""The state of a recording at a position: what a viewer needs after a seek.

The last setup and the last telemetry at or before the position, the
telemetry of the chart history window before it, and the byte offset of the
first event after it (where playback continues). Found through the index, so
the cost is one checkpoint interval plus the history window, whatever the
recording's length. Blocking: the player runs it in a worker thread.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from racedash.recording.format import Event
from racedash.replay.index import RecordingIndex
from racedash.replay.reader import RecordingReader


class HistoryWindow:
    """The chart history: telemetry of the last ``seconds``, at most ``points`` frames.

    Downsampled by time buckets of ``seconds / points`` (the first frame of
    each bucket is kept), so the same frames are kept whether they were
    played through or read back after a seek, and memory stays bounded.
    """

    def __init__(self, seconds: float, points: int) -> None:
        self.seconds = max(seconds, 0.0)
        self.points = max(points, 0)
        self._width = self.seconds / self.points if self.points else 0.0
        self._frames: deque[tuple[float, int, Event]] = deque(maxlen=self.points + 1 if self.points else 0)

    def add(self, position: float, event: Event) -> None:
        if not self.points:
            return
        bucket = int(position // self._width) if self._width > 0 else 0
        if not self._frames or self._frames[-1][1] != bucket:
            self._frames.append((position, bucket, event))
        self.trim(position)

    def trim(self, position: float) -> None:
        horizon = position - self.seconds
        while self._frames and self._frames[0][0] <= horizon:
            self._frames.popleft()

    def clear(self) -> None:
        self._frames.clear()

    def frames(self, latest: Event | None = None) -> list[Event]:
        """The kept frames, ending with ``latest`` (the last telemetry) when given."""
        kept = [event for _p, _b, event in self._frames]
        if self.points and latest is not None and (not kept or kept[-1].seq != latest.seq):
            kept.append(latest)
        return kept[-self.points:] if self.points else []

    def __len__(self) -> int:
        return len(self._frames)


@dataclass(slots=True)
class Snapshot:
    position: float
    resume_offset: int  # first event after ``position``
    setup: Event | None = None
    telemetry: Event | None = None
    history: list[tuple[float, Event]] = field(default_factory=list)  # (position, telemetry) in the window


def snapshot_at(
    path: Path,
    index: RecordingIndex,
    position: float,
    *,
    history_seconds: float,
) -> Snapshot:
    """Blocking: run it in a worker thread. The history is every telemetry frame of the
    window; the caller feeds it through a :class:`HistoryWindow`."""
    window_start = position - max(history_seconds, 0.0)
    offset, telemetry_before = index.checkpoint_before(window_start)
    t0 = index.t0 if index.t0 is not None else 0.0
    history: list[tuple[float, Event]] = []
    telemetry: Event | None = None
    running = 0.0
    with RecordingReader(path) as reader:
        reader.seek(offset)
        resume = None
        for event_offset, event in reader.events():
            running = max(event.t - t0, running)
            if running > position:
                resume = event_offset
                break
            if event.kind == "telemetry":
                telemetry = event
                if running > window_start:
                    history.append((running, event))
        if resume is None:
            resume = reader.tell()
        if telemetry is None and telemetry_before >= 0:
            telemetry = reader.read_event_at(telemetry_before)
        setup_offset = index.setup_before(position)
        setup = reader.read_event_at(setup_offset) if setup_offset is not None else None
    return Snapshot(
        position=position,
        resume_offset=resume,
        setup=setup,
        telemetry=telemetry,
        history=list(history),
    )
