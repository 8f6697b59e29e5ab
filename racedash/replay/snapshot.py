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
    setup_offset: int | None = None
    telemetry: Event | None = None
    history: list[tuple[float, Event]] = field(default_factory=list)  # (position, telemetry) in the window

    @property
    def seq(self) -> int:
        """The seq of the last frame at or before the position (0: none): where playback stands.

        A recording holds only setups and telemetry, and its seqs grow along the
        file, so the later of the last setup and the last telemetry is that frame.
        """
        return max((event.seq for event in (self.setup, self.telemetry) if event is not None), default=0)


def snapshot_at(
    path: Path,
    index: RecordingIndex,
    position: float,
    *,
    history_seconds: float,
    history_points: int,
    known_setup: tuple[int, Event] | None = None,
) -> Snapshot:
    """Blocking: run it in a worker thread.

    When the history window holds no more frames than ``history_points``, the
    window is read line by line. When it holds more, the history points are
    the checkpoints' telemetry lines (evenly spread, one decode each) and only
    the last checkpoint interval is read line by line. Either way the cost is
    bounded by ``history_points`` decodes plus one checkpoint interval,
    whatever the recording's length. ``known_setup`` (offset, event): a setup
    already decoded, reused when it is still the one in force (saves decoding
    ~60 KB, and the garbage it would leave).
    """
    window_start = position - max(history_seconds, 0.0)
    t0 = index.t0 if index.t0 is not None else 0.0
    last_cp = index.checkpoint_at(position)
    window_cp = index.checkpoints_after(window_start) - 1  # the checkpoint the window starts in
    history: list[tuple[float, Event]] = []
    telemetry: Event | None = None
    with RecordingReader(path) as reader:
        if history_points > 0 and index.events_between(window_cp, last_cp) <= history_points:
            scan_cp, history_from_scan = window_cp, True
        else:
            scan_cp, history_from_scan = last_cp, False
            if history_points > 0:
                seen = -1
                for i in _spread(window_cp + 1, last_cp, history_points):
                    offset = index.cp_telemetry[i]
                    if offset <= seen:
                        continue
                    seen = offset
                    event = reader.read_event_at(offset)
                    if event is not None and event.t - t0 > window_start:
                        history.append((event.t - t0, event))
        reader.seek(index.cp_offsets[scan_cp] if scan_cp >= 0 else index.header_end)
        resume = None
        running = index.cp_positions[scan_cp] if scan_cp >= 0 else 0.0
        for event_offset, event in reader.events():
            running = max(event.t - t0, running)
            if running > position:
                resume = event_offset
                break
            if event.kind == "telemetry":
                telemetry = event
                if history_from_scan and running > window_start:
                    history.append((running, event))
        if resume is None:
            resume = reader.tell()
        if telemetry is None and last_cp >= 0 and index.cp_telemetry[last_cp] >= 0:
            telemetry = reader.read_event_at(index.cp_telemetry[last_cp])
        if telemetry is not None and history_points > 0 and telemetry.t - t0 > window_start:
            if not history or history[-1][1].seq < telemetry.seq:
                history.append((telemetry.t - t0, telemetry))
        setup_offset = index.setup_before(position)
        if setup_offset is None:
            setup = None
        elif known_setup is not None and known_setup[0] == setup_offset:
            setup = known_setup[1]
        else:
            setup = reader.read_event_at(setup_offset)
    return Snapshot(
        position=position,
        resume_offset=resume,
        setup=setup,
        setup_offset=setup_offset,
        telemetry=telemetry,
        history=history,
    )


def _spread(first: int, last: int, points: int) -> list[int]:
    """At most ``points`` indexes evenly spread over first..last, both ends included."""
    n = last - first + 1
    if n <= 0:
        return []
    if n <= points:
        return list(range(first, last + 1))
    if points == 1:
        return [last]
    step = (n - 1) / (points - 1)
    return [first + round(k * step) for k in range(points)]
