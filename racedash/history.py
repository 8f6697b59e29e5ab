"""What a viewer receives when it joins: missed frames, or the state and recent history.

Joining with ``last_seq`` sends exactly the frames after it (from the
session's in-memory ring, or from the recording when the ring no longer
reaches back). Joining without it sends the session's setups (oldest first; the last is
the current one), a
``telemetry_history`` event (the session's recent telemetry, downsampled
when long) and the latest telemetry. Either way the viewer enters the
session's room only once nothing newer is left to send, in the same step
(no suspension) as that check: python-socketio computes a broadcast's
recipients when the frame is stamped, so every frame is delivered exactly
once — before entering by the join, after entering by the room. For that
last step the session's publishers are held (``Session.hold``) so a busy
stream cannot keep the joiner chasing it.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from racedash.recording.store import RecordingStore
from racedash.sessions import TELEMETRY, Frame, Session
from racedash.wire import EVENT_OF_KIND, frame_message, history_message, history_point, setup_value

log = logging.getLogger(__name__)

YIELD_EVERY = 64  # frames sent to one joiner between two turns of the event loop

Send = Callable[[str, bytes], Awaitable[None]]  # (event, message encoded by racedash.wire)
Enter = Callable[[], Awaitable[None]]
Flush = Callable[[str], Awaitable[bool]]


@dataclass(frozen=True)
class HistoryOptions:
    window_seconds: float = 1800.0
    max_points: int = 600
    max_catch_up: int = 7200
    concurrent_recording_reads: int = 2


@dataclass
class JoinResult:
    seq: int  # the last seq this viewer has been sent before live frames
    missed: int | None  # frames sent for last_seq, or None when it got the state instead
    history: int  # telemetry_history points sent


@dataclass
class HistoryPayload:
    """A ``telemetry_history`` event, encoded from its frames' bytes when it is sent."""

    session_id: str
    window_seconds: float
    count: int  # telemetry frames in the window
    frames: list[Frame]  # the points sent (downsampled when fewer than count)

    def _head(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "window_seconds": self.window_seconds,
            "count": self.count,
            "downsampled": len(self.frames) < self.count,
        }

    def message(self) -> bytes:
        """The event as sent: its points cut from the frames' JSON, never decoded."""
        return history_message(self._head(), (history_point(f) for f in self.frames))

    def body(self) -> dict[str, Any]:
        return {
            **self._head(),
            "frames": [{"seq": f.seq, "t": f.received, "telemetry": f.payload.get("telemetry")} for f in self.frames],
        }


def downsample(frames: list[Frame], max_points: int) -> list[Frame]:
    """At most ``max_points`` frames evenly spread over ``frames``, first and last kept."""
    n = len(frames)
    if n <= max_points:
        return frames
    if max_points <= 1:
        return frames[-max_points:] if max_points > 0 else []
    step = (n - 1) / (max_points - 1)
    return [frames[round(i * step)] for i in range(max_points)]


class SessionHistory:
    def __init__(
        self,
        options: HistoryOptions,
        *,
        store: RecordingStore | None = None,
        flush: Flush | None = None,
    ) -> None:
        self.options = options
        self.store = store
        self.flush = flush or self.no_flush
        self._recording_reads = asyncio.Semaphore(options.concurrent_recording_reads)

    @staticmethod
    async def no_flush(session_id: str) -> bool:
        """For a server that does not record: nothing is ever waiting to be written."""
        return True

    # -- the join sequence -------------------------------------------------------------
    async def join(self, session: Session, last_seq: int | None, send: Send, enter: Enter) -> JoinResult:
        missed = None if last_seq is None else await self.missed(session, last_seq)
        history = 0
        if missed is None:
            upto = session.next_seq - 1
            telemetry = session.telemetry
            points = await self.history_points(session, upto)
            # Every setup so far, oldest first, so the page can list each change; a setup re-sent
            # unchanged (the monitor sends its setup again on every reconnect) is not a change.
            sent = None
            for setup_frame in list(session.setups):
                value = setup_value(setup_frame)
                if sent is not None and value == sent:
                    continue
                sent = value
                await self._send_frame(session, setup_frame, send)
            if points.frames:
                history = len(points.frames)
                await send("telemetry_history", points.message())
            if telemetry is not None:
                await self._send_frame(session, telemetry, send)
        else:
            for count, frame in enumerate(missed, 1):
                await self._send_frame(session, frame, send)
                if count % YIELD_EVERY == 0:
                    await asyncio.sleep(0)  # a long gap-fill must not hold up other sessions' live frames
            upto = missed[-1].seq if missed else last_seq  # type: ignore[assignment]
        upto = max(upto, 0)
        # Frames stamped while we were sending: one round freely, then with the
        # session's publishers held, so that a busy stream cannot keep us chasing.
        upto = await self._send_newer(session, upto, send, rounds=1)
        hold = asyncio.get_running_loop().create_future()
        session.hold = hold
        try:
            upto = await self._send_newer(session, upto, send, rounds=None)
            await enter()  # no suspension between the last check and entering
        finally:
            session.hold = None
            hold.set_result(None)
        return JoinResult(seq=upto, missed=None if missed is None else len(missed), history=history)

    async def _send_newer(self, session: Session, upto: int, send: Send, rounds: int | None) -> int:
        """Send the frames after ``upto``, ``rounds`` times or until none is left; returns the last seq sent."""
        while rounds is None or rounds > 0:
            if rounds is not None:
                rounds -= 1
            newer = session.frames_after(upto)
            if newer is None:  # the ring moved past us meanwhile: read the gap back
                newer, _ = await self._from_recording(session, upto)
                if not newer:
                    newer = [f for f in session.recent if f.seq > upto]  # nothing recorded: do not spin
            if not newer:
                return upto
            for frame in newer:
                await self._send_frame(session, frame, send)
                upto = frame.seq
        return upto

    @staticmethod
    async def _send_frame(session: Session, frame: Frame, send: Send) -> None:
        await send(EVENT_OF_KIND[frame.kind], frame_message(session.id, frame))

    async def missed(self, session: Session, last_seq: int) -> list[Frame] | None:
        """Frames after ``last_seq``; None when they cannot be sent (then the viewer gets the state)."""
        current = session.next_seq - 1
        if last_seq > current or current - last_seq > self.options.max_catch_up:
            return None  # a viewer ahead of the server (frames lost to a crash) or too far behind
        in_ring = session.frames_after(last_seq)
        if in_ring is not None:
            return in_ring
        # Reading a gap back from the recording is the expensive join: a few at a time, server-wide.
        async with self._recording_reads:
            frames, complete = await self._from_recording(session, last_seq)
        return frames if complete else None

    async def _from_recording(self, session: Session, after_seq: int) -> tuple[list[Frame], bool]:
        """Frames after ``after_seq``: the recorded ones older than the ring, then the ring's.

        Reading the file suspends, and meanwhile the ring moves on: read again
        until the recorded part meets the ring. The flag says whether it did
        (False: frames between were never recorded, the list has a gap).
        """
        frames: list[Frame] = []
        last = after_seq
        while True:
            ring = list(session.recent)
            ring_start = ring[0].seq if ring else session.next_seq
            if ring_start <= last + 1:
                return frames + [f for f in ring if f.seq > last], True
            older = []
            if self.store is not None:
                await self.flush(session.id)
                older = await self.store.frames_between(session.id, last, ring_start)
            if not older:  # not recorded (recording failed or off)
                return frames + [f for f in list(session.recent) if f.seq > last], False
            frames += older
            last = older[-1].seq

    # -- telemetry_history -------------------------------------------------------------
    async def history_points(self, session: Session, upto: int) -> "HistoryPayload":
        """The ``telemetry_history`` event: telemetry of the last ``window_seconds`` before the latest frame."""
        points, count = await self.recent_telemetry(session, upto)
        return HistoryPayload(session.id, self.options.window_seconds, count, points)

    async def history_payload(self, session: Session, upto: int) -> dict[str, Any]:
        """:meth:`history_points` as the event's decoded body."""
        return (await self.history_points(session, upto)).body()

    async def recent_telemetry(self, session: Session, upto: int) -> tuple[list[Frame], int]:
        """(points, count): at most ``max_points`` frames spread over the window, and how many it holds.

        The ring holds the newest frames; older ones in the window come from the
        recording, sampled when there are many, so the cost is bounded whatever
        the window and the frame rate.
        """
        latest = session.telemetry
        if latest is None:
            return [], 0
        since = latest.received - self.options.window_seconds
        ring_start = session.recent[0] if session.recent else None
        ring = [f for f in session.recent if f.kind == TELEMETRY and f.seq <= upto and f.received >= since]
        covered = ring_start is not None and (ring_start.seq == 1 or ring_start.received <= since)
        older: list[Frame] = []
        older_count = 0
        if not covered and self.store is not None:
            before = ring_start.seq if ring_start is not None else upto + 1
            await self.flush(session.id)
            older, older_count = await self.store.telemetry_since(session.id, since, before, self.options.max_points)
        count = older_count + len(ring)
        if count <= self.options.max_points:
            return older + ring, count
        # Share the points between the two parts in proportion to what they hold.
        older_points = round(self.options.max_points * older_count / count)
        return downsample(older, older_points) + downsample(ring, self.options.max_points - older_points), count
