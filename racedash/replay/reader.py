"""Streaming reads of one recording file: a line at a time, from any byte offset.

A recording is never loaded whole. The reader stops at the last complete line:
a torn tail (no ``\\n``, a crash mid-write) is left unread, and because the
file position is put back before it, a reader of a growing recording simply
sees the line once the writer has finished it. Complete lines that do not
decode, or carry a kind we do not know, are skipped (docs/recording-format.md).

Reads are synchronous on purpose: one line of a local file in the page cache
costs microseconds, less than a hop to a thread; anything that reads many
lines at once (index build, seek) runs in a worker thread instead.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import BinaryIO, Iterator

from racedash.ids import parse_session_id
from racedash.recording.files import NotARegularFile, open_regular
from racedash.recording.format import Event, Header, RecordingFormatError, decode_event, decode_header
from racedash.replay.errors import BadRecording, UnknownRecording
from racedash.errors import InvalidSessionId

RECORDING_SUFFIX = ".jsonl"


def recording_path(recordings_dir: Path, recording_id: object) -> Path:
    """The file of a recording; the name comes only from a validated session id."""
    try:
        session_id = parse_session_id(recording_id)
    except InvalidSessionId as exc:
        raise UnknownRecording(f"no recording {recording_id!r}: {exc.message}") from None
    return Path(recordings_dir) / f"{session_id}{RECORDING_SUFFIX}"


class RecordingReader:
    """Reads the header on open, then events from the current offset onwards."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            self._file: BinaryIO = open_regular(self.path)  # closed by close()
        except (FileNotFoundError, NotARegularFile):
            raise UnknownRecording(f"no recording {self.path.stem}") from None
        try:
            first = self._file.readline()
            self.header: Header = decode_header(first)
        except RecordingFormatError as exc:
            self._file.close()
            raise BadRecording(f"recording {self.path.stem} cannot be replayed: {exc}") from None
        self.header_end = self._file.tell()

    def tell(self) -> int:
        return self._file.tell()

    def seek(self, offset: int) -> None:
        self._file.seek(max(offset, self.header_end))

    def read_line(self) -> tuple[int, bytes] | None:
        """The next complete line and its offset, or None at the end (or a torn tail)."""
        offset = self._file.tell()
        line = self._file.readline()
        if not line.endswith(b"\n"):
            # End of file or a line still being written: stay before it.
            self._file.seek(offset, io.SEEK_SET)
            return None
        return offset, line

    def read_event(self) -> tuple[int, Event] | None:
        """The next event and its offset, skipping complete lines that are not events."""
        while True:
            read = self.read_line()
            if read is None:
                return None
            event = decode_event(read[1])
            if event is not None:
                return read[0], event

    def events(self) -> Iterator[tuple[int, Event]]:
        while (item := self.read_event()) is not None:
            yield item

    def read_event_at(self, offset: int) -> Event | None:
        """The event on the line starting at ``offset`` (the current position is kept)."""
        here = self._file.tell()
        try:
            self._file.seek(offset)
            return decode_event(self._file.readline())
        finally:
            self._file.seek(here)

    def size(self) -> int:
        return self.path.stat().st_size

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "RecordingReader":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
