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


@dataclass(slots=True)
class Snapshot:
    position: float
    resume_offset: int  # first event after ``position``
    setup: Event | None = None
    telemetry: Event | None = None
    history: list[tuple[float, Event]] = field(default_factory=list)  # (position, telemetry event)


def snapshot_at(
    path: Path,
    index: RecordingIndex,
    position: float,
    *,
    history_seconds: float,
    history_frames: int,
) -> Snapshot:
    window_start = position - max(history_seconds, 0.0)
    offset, telemetry_before = index.checkpoint_before(window_start)
    t0 = index.t0 if index.t0 is not None else 0.0
    history: deque[tuple[float, Event]] = deque(maxlen=max(history_frames, 0))
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
