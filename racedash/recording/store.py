"""The recordings store: list, describe, read parts of and delete recordings.

Paths come only from validated session ids (:func:`path_for`); nothing from a
payload or a URL reaches the file system unvalidated. Metadata comes from the
summary sidecars (see :mod:`racedash.recording.summary`), so listing never
reads whole recordings; the blocking reads run in a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path
from typing import Any, Callable

from racedash.errors import RacedashError, UnknownRecording
from racedash.ids import is_session_id, parse_session_id
from racedash.recording.files import is_regular, open_regular, shown
from racedash.recording.format import Event, RecordingFormatError, decode_header
from racedash.recording.reader import event_at, find_offset, good_end, iter_frames, tail_events
from racedash.recording.summary import Summary, load_summary
from racedash.sessions import TELEMETRY, Frame, RestoredState

log = logging.getLogger(__name__)

# After a crash, frames acknowledged in the last flush window may be missing
# from the file. Resuming right after the last recorded seq would hand their
# numbers to new frames, and a viewer that saw the lost ones would take the new
# ones for duplicates. Jumping ahead keeps every seq unique per session; the
# jump is far larger than any flush window can hold at the rate limits.
CRASH_SEQ_GAP = 1_000_000

SUFFIX = ".jsonl"


def seq_from_clock() -> int:
    """A seq above any a session can have reached: milliseconds since the epoch.

    At the rate limits a session would need decades of frames to count that
    high, and the clock only moves on, so a session whose recording could not
    be read never reuses a seq already in its file.
    """
    return int(time.time() * 1000)

# A range longer than this many bytes per wanted point is sampled, not read whole.
SAMPLE_BYTES_PER_POINT = 4096

LiveSummaries = Callable[[], "dict[str, Summary | None]"]

# What a request is told of a recording that does not exist, and of one it may not see
# (another team's): the same words, so that the answer never confirms that it exists.
NO_RECORDING = "no recording for this session"
HEADER_MAX_BYTES = 64 * 1024  # a header is ~150 bytes; a longer first line is no header


def _no_live() -> dict[str, Summary]:
    return {}


def to_frame(event: Event) -> Frame:
    return Frame(seq=event.seq, kind=event.kind, received=event.t, payload=event.data)


class RecordingStore:
    def __init__(self, directory: Path, *, live_summaries: LiveSummaries = _no_live) -> None:
        self.directory = Path(directory)
        # Set by the recorder: the in-memory summaries of recordings being written.
        self.live_summaries = live_summaries

    def path_for(self, session_id: str) -> Path:
        return self.directory / f"{parse_session_id(session_id)}{SUFFIX}"

    def existing_path(self, session_id: str) -> Path:
        """The recording file of this session (for readers such as replay); UnknownRecording if none."""
        path = self.path_for(session_id)
        if not is_regular(path):  # a link planted in the directory is no recording
            raise UnknownRecording(NO_RECORDING)
        return path

    async def team_of(self, session_id: str) -> str | None:
        """The team a recording belongs to (its header's): None for no team, and for a missing,
        unreadable or malformed one. Reads the header line only."""
        try:
            path = self.path_for(session_id)
        except RacedashError:
            return None
        return await asyncio.to_thread(self._team_of, path)

    def _team_of(self, path: Path) -> str | None:
        try:
            with open_regular(path) as f:
                return decode_header(f.readline(HEADER_MAX_BYTES)).team
        except (RecordingFormatError, OSError):
            return None

    # -- metadata ---------------------------------------------------------------------
    async def list(self) -> list[dict[str, Any]]:
        """Every recording's metadata, newest first."""
        live = self.live_summaries()
        return await asyncio.to_thread(self._list, live)

    def _list(self, live: dict[str, Summary | None]) -> list[dict[str, Any]]:
        items = []
        try:
            entries = list(os.scandir(self.directory))
        except (FileNotFoundError, NotADirectoryError):
            return []
        for entry in entries:
            session_id = entry.name.removesuffix(SUFFIX)
            if not entry.name.endswith(SUFFIX) or not is_session_id(session_id) or not entry.is_file(follow_symlinks=False):
                continue
            item = self._describe(Path(entry.path), session_id, live)
            if item is not None:
                items.append(item)
        items.sort(key=lambda item: item["first_time"] or item["created"], reverse=True)
        return items

    def _describe(self, path: Path, session_id: str, live: dict[str, Summary | None]) -> dict[str, Any] | None:
        summary = live.get(session_id)
        if summary is not None:
            return summary.public(live=True)
        try:
            return load_summary(path).public(live=session_id in live)
        except (RecordingFormatError, OSError) as exc:
            log.warning("skipping recording %s: %s", shown(path), getattr(exc, "strerror", None) or exc)
            return None

    async def metadata(self, session_id: str) -> dict[str, Any]:
        live = self.live_summaries()
        path = self.existing_path(session_id)
        item = await asyncio.to_thread(self._describe, path, path.name.removesuffix(SUFFIX), live)
        if item is None:
            raise UnknownRecording("this recording cannot be read")
        return item

    # -- restore ------------------------------------------------------------------------
    async def restore_state(self, session_id: str, recent: int) -> RestoredState | None:
        """What a resumed session needs: next seq, its recent setups, last telemetry, the recent frames."""
        path = self.path_for(session_id)
        try:
            return await asyncio.to_thread(self._restore_state, path, recent)
        except (RecordingFormatError, OSError) as exc:
            # The session goes on live (its writer sets a bad file aside, or retries a failing
            # disk). Its frames may still be appended to this file: number them from the clock,
            # above any seq the file can hold, so that no seq ever repeats inside it.
            log.error("recording %s cannot be resumed: %s; its frames are numbered from the clock",
                      shown(path), getattr(exc, "strerror", None) or exc)
            return RestoredState(next_seq=seq_from_clock(), setups=[], telemetry=None, recent=[], created=time.time())

    def _restore_state(self, path: Path, recent: int) -> RestoredState | None:
        if not is_regular(path):
            return None
        summary = load_summary(path)
        with open_regular(path) as f:
            setups = [event_at(f, offset) for offset in summary.setup_offsets]
            telemetry = (
                event_at(f, summary.last_telemetry_offset) if summary.last_telemetry_offset is not None else None
            )
            tail = tail_events(f, summary.good_size, recent)
        return RestoredState(
            next_seq=summary.last_seq + 1 + (0 if summary.closed_cleanly else CRASH_SEQ_GAP),
            setups=[to_frame(setup) for setup in setups if setup],
            telemetry=to_frame(telemetry) if telemetry else None,
            recent=[to_frame(e) for e in tail],
            created=summary.created,
            team=summary.team,  # a resumed session keeps its team
        )

    async def last_seq(self, session_id: str) -> int:
        """The seq of the recording's last complete frame (0 when there is none)."""
        path = self.path_for(session_id)

        def read() -> int:
            if not is_regular(path):
                return 0
            return load_summary(path).last_seq

        try:
            return await asyncio.to_thread(read)
        except (RecordingFormatError, OSError):
            return 0

    # -- parts of a recording -------------------------------------------------------------
    async def frames_between(self, session_id: str, after_seq: int, before_seq: int) -> list[Frame]:
        """Recorded frames with ``after_seq < seq < before_seq``, in order (none if there is no recording)."""
        return await asyncio.to_thread(self._frames_between, self.path_for(session_id), after_seq, before_seq)

    def _frames_between(self, path: Path, after_seq: int, before_seq: int) -> list[Frame]:
        try:
            f = open_regular(path)
        except FileNotFoundError:
            return []
        with f:
            start, end = _body(f)
            offset = find_offset(f, start, end, lambda e: e.seq, after_seq + 1)
            frames = []
            for _, frame in iter_frames(f, offset, end):
                if frame.seq >= before_seq:
                    break
                if frame.seq > after_seq:
                    frames.append(frame)
            return frames

    async def telemetry_since(
        self, session_id: str, since: float, before_seq: int, max_points: int
    ) -> tuple[list[Frame], int]:
        """Recorded telemetry received at or after ``since`` with ``seq < before_seq``.

        Returns (frames, total): every frame when the range is short, else about
        ``max_points`` frames spread evenly over it (read at evenly spaced byte
        offsets, so the cost does not grow with the window) and an estimate of
        how many there are.
        """
        path = self.path_for(session_id)
        return await asyncio.to_thread(self._telemetry_since, path, since, before_seq, max_points)

    def _telemetry_since(self, path: Path, since: float, before_seq: int, max_points: int) -> tuple[list[Frame], int]:
        try:
            f = open_regular(path)
        except FileNotFoundError:
            return [], 0
        with f:
            body, end = _body(f)
            start = find_offset(f, body, end, lambda e: e.t, since)
            stop = find_offset(f, start, end, lambda e: e.seq, before_seq)
            if stop - start <= max_points * SAMPLE_BYTES_PER_POINT:
                frames = [frame for _, frame in iter_frames(f, start, stop) if frame.kind == TELEMETRY]
                return frames, len(frames)
            frames = []
            span = stop - start
            cursor = start  # a line start: everything before it has been sampled past
            for i in range(max_points):
                target = start + span * i // max_points
                if target <= cursor:
                    position = cursor  # a long line (a setup) swallowed this point: take the next line
                else:
                    f.seek(target)
                    f.readline()  # finish the line the offset fell into
                    position = f.tell()
                for offset, frame in iter_frames(f, position, stop):
                    if frame.kind == TELEMETRY:
                        frames.append(frame)
                        cursor = f.tell()
                        break
                else:
                    break  # nothing left before stop
            if not frames:
                return [], 0
            return frames, max(len(frames), before_seq - frames[0].seq)

    async def download_extent(self, session_id: str) -> tuple[Path, int]:
        """The file and the number of bytes to serve: up to the last complete line."""
        path = self.existing_path(session_id)

        def extent() -> int:
            with open_regular(path) as f:
                return good_end(f)

        return path, await asyncio.to_thread(extent)

    # -- deletion (retention) --------------------------------------------------------------
    def delete(self, session_id: str) -> int:
        """Remove a recording and its sidecars; returns the bytes freed. Blocking, but only unlinks."""
        session_id = parse_session_id(session_id)
        freed = 0
        prefix = f"{session_id}."
        for entry in os.scandir(self.directory):
            if entry.name.startswith(prefix) and entry.is_file(follow_symlinks=False):
                freed += entry.stat(follow_symlinks=False).st_size
                os.unlink(entry.path)
        return freed


def _body(f: Any) -> tuple[int, int]:
    """(offset after the header, end of the last complete line)."""
    end = good_end(f)
    f.seek(0)
    header = f.readline()
    return min(len(header), end), end
