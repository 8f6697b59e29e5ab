"""Reading parts of a recording without reading all of it (blocking; run in a thread).

Events are appended in ``seq`` and receive-time order, so a byte-offset
binary search finds the first event at or after a given seq or time in a
logarithmic number of short reads. Every function stops at ``end`` (the end
of the last complete line) so a torn tail is never seen.
"""

from __future__ import annotations

import os
from typing import BinaryIO, Callable, Iterator

from racedash.recording.format import Event, decode_encoded_event, decode_event
from racedash.sessions import Frame

CHUNK = 64 * 1024
# Below this span the binary search gives way to a linear scan.
LINEAR_SPAN = 256 * 1024


def good_end(f: BinaryIO) -> int:
    """Offset just after the file's last ``\\n``: everything before it is complete lines."""
    size = os.fstat(f.fileno()).st_size
    position = size
    while position > 0:
        start = max(0, position - CHUNK)
        f.seek(start)
        chunk = f.read(position - start)
        newline = chunk.rfind(b"\n")
        if newline >= 0:
            return start + newline + 1
        position = start
    return 0


def event_at(f: BinaryIO, offset: int) -> Event | None:
    f.seek(offset)
    return decode_event(f.readline())


def _lines(f: BinaryIO, start: int, end: int) -> Iterator[tuple[int, bytes]]:
    """(offset, line) for every complete line that starts in [start, end); a torn last line ends it."""
    f.seek(start)
    offset = start
    while offset < end:
        line = f.readline()
        if not line.endswith(b"\n"):
            return
        yield offset, line
        offset += len(line)


def iter_events(f: BinaryIO, start: int, end: int) -> Iterator[tuple[int, Event]]:
    """(offset, event) for every decodable line that starts in [start, end)."""
    for offset, line in _lines(f, start, end):
        event = decode_event(line)
        if event is not None:
            yield offset, event


def iter_frames(f: BinaryIO, start: int, end: int) -> Iterator[tuple[int, Frame]]:
    """(offset, frame) for every decodable line that starts in [start, end).

    A line racedash wrote with its tail offset becomes a frame holding the line's own
    bytes (sent on as they are, racedash.wire); any other line is decoded.
    """
    for offset, line in _lines(f, start, end):
        encoded = decode_encoded_event(line)
        if encoded is not None:
            yield offset, Frame(encoded.seq, encoded.kind, encoded.t, data_json=encoded.data_json,
                                tail_at=encoded.tail_at)
        elif (event := decode_event(line)) is not None:
            yield offset, Frame(event.seq, event.kind, event.t, payload=event.data)


def find_offset(f: BinaryIO, start: int, end: int, key: Callable[[Event], float], target: float) -> int:
    """Offset of the first event in [start, end) with ``key(event) >= target`` (``end`` if none).

    ``start`` must be the start of a line; ``key`` must not decrease along the file.
    """
    lo, hi = start, end  # invariant: lo is a line start, and the answer lies in [lo, hi]
    while hi - lo > LINEAR_SPAN:
        mid = (lo + hi) // 2
        f.seek(mid)
        f.readline()  # the rest of the line mid falls into
        probe = f.tell()
        found = None
        while probe < hi:
            line = f.readline()
            if not line.endswith(b"\n"):
                break
            event = decode_event(line)
            if event is not None:
                found = event
                break
            probe += len(line)
        if found is None:
            hi = mid  # no event starts in (mid, hi): look before mid
            continue
        if key(found) < target:
            lo = probe + len(line)
        else:
            hi = probe
    for offset, event in iter_events(f, lo, end):
        if key(event) >= target:
            return offset
    return end


def tail_events(f: BinaryIO, end: int, count: int, floor: int = 0) -> list[Event]:
    """The last ``count`` events before ``end`` (oldest first), reading backwards in chunks.

    Linear in what it reads, however long a line: the pieces of a line that spans
    many chunks are kept apart and joined once its start is found (joining them
    at every chunk made an 80 MB line cost minutes).
    """
    if count <= 0:
        return []
    events: list[Event] = []
    position = end
    later: list[bytes] = []  # the text after this chunk not yet split into lines, in reverse file order
    while position > floor and len(events) < count:
        start = max(floor, position - CHUNK)
        f.seek(start)
        chunk = f.read(position - start)
        position = start
        at_floor = position <= floor  # the floor is a line start
        newline = chunk.find(b"\n")
        if newline < 0 and not at_floor:
            later.append(chunk)  # still inside one long line
            continue
        text = (chunk if at_floor else chunk[newline + 1:]) + b"".join(reversed(later))
        later = [] if at_floor else [chunk[:newline]]  # the end of a line that starts further back
        for raw in reversed(text.split(b"\n")):
            if not raw:
                continue
            event = decode_event(raw + b"\n")
            if event is not None:
                events.append(event)
                if len(events) >= count:
                    break
    events.reverse()
    return events
