"""Sessions written by another process, followed here for this process's viewers.

A viewer may join a session on any process. The process it reached takes the
session up as usual (its recording, on the shared volume), then reads from
the session's Redis stream the frames the writer acknowledged but had not
flushed yet (racedash.cluster.state), and from then on takes in each frame
the writer publishes on the session's frame channel exactly as the writer did:
the same ring, latest state and race model (racedash.sessions.SessionRegistry.follow,
racedash.racefeed), then its viewers get it. So a join, a ``last_seq``
gap-fill, the history and the race tables are served here exactly as on the
writer. A frame missing from the channel (Redis was away) is read back from
the stream; frames already taken in are never applied or sent twice.

The process subscribes to the frame channel while, and only while, it follows
the session (racedash.cluster.subscriber): before it reads the stream when it
takes a session up, so no frame falls between the two.

Frames arriving while the session is being taken up wait in a buffer and are
applied, in the same step as the session is registered, after the restored
state (racedash.sessions.SessionRegistry.on_taken_up).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Protocol

from redis.exceptions import RedisError

from racedash.cluster.state import SharedState
from racedash.racefeed import RaceFeed
from racedash.sessions import TELEMETRY, Frame, RestoredState, Session, SessionRegistry
from racedash.wire import EVENT_OF_KIND, frame_message

log = logging.getLogger(__name__)

# (session id, after seq, before seq) -> the recorded frames between them.
Recorded = Callable[[str, int, int], Awaitable[list[Frame]]]

# Frames a writer may have put in its file and not yet in its stream when it died (those in flight).
STREAM_SLACK = 64

# How long taking a session up waits for Redis to confirm its frame subscription (then it goes on:
# a frame that arrives after a gap fetches the missing ones from the stream).
SUBSCRIBE_WAIT = 1.0


class Frames(Protocol):
    """Where a session's frames are subscribed to (racedash.cluster.roombus.RoomBus)."""

    def follow_frames(self, session_id: str) -> asyncio.Future: ...

    def unfollow_frames(self, session_id: str) -> None: ...


@dataclass
class _Following:
    session: Session | None = None
    buffer: list[Frame] = field(default_factory=list)
    filling: bool = False
    quiet_since: float | None = None  # monotonic: when its last viewer here left


class Follower:
    def __init__(self, registry: SessionRegistry, race: RaceFeed | None, local: Any, state: SharedState, *,
                 max_buffered: int = 2400, recorded: Recorded | None = None, recorded_wait: float = 0.5,
                 frames: Frames | None = None) -> None:
        self.registry = registry
        self.frames = frames
        # Frames between two seqs from the recording (the writer's file on the shared volume): what
        # fills a gap neither the channel nor the stream has (both missed it while Redis was away).
        self.recorded = recorded
        self.recorded_wait = recorded_wait
        self.race = race
        self.local = local
        self.state = state
        self.max_buffered = max_buffered
        self._following: dict[str, _Following] = {}
        self._tasks: set[asyncio.Task] = set()

    def follows(self, session_id: str) -> bool:
        return session_id in self._following

    # -- taking a session up --------------------------------------------------------------
    async def restored(self, session_id: str, restored: RestoredState | None) -> RestoredState | None:
        """``restored`` (from the recording) completed with the frames only Redis has yet.

        From this call on, the room's frames are kept for the session (see :meth:`attach`).
        """
        self._following[session_id] = _Following()
        if self.frames is not None:
            subscribed = self.frames.follow_frames(session_id)
            try:
                await asyncio.wait_for(asyncio.shield(subscribed), SUBSCRIBE_WAIT)
            except asyncio.TimeoutError:
                log.warning("session %s: frame subscription not confirmed by redis yet", session_id[:8])
        file_last = restored.recent[-1].seq if restored is not None and restored.recent else 0
        try:
            stream_last = await self.state.last_seq(session_id)
            newer = await self.state.frames_after(session_id, file_last) if stream_last > file_last else []
        except (RedisError, OSError) as exc:
            log.warning("session %s: recent frames not read from redis (%s)", session_id[:8], exc)
            return restored
        if restored is None and newer:
            restored = RestoredState(next_seq=1, setups=[], telemetry=None, recent=[], created=newer[0].received)
        for frame in newer:
            restored.recent.append(frame)
            if frame.kind == TELEMETRY:
                restored.telemetry = frame
            else:
                restored.setups.append(frame)
            if self.race is not None:
                self.race.feed_quietly(session_id, frame)
        if restored is not None and stream_last and stream_last >= file_last - STREAM_SLACK:
            # Every acknowledged frame is in the stream (acks wait for it): the next seq follows on,
            # with no gap for frames a crash might have lost. A frame the file has and the stream
            # not was never acknowledged (its writer died before Redis had it).
            restored.next_seq = max(file_last, stream_last) + 1
        return restored

    def attach(self, session: Session) -> None:
        """The session is registered: apply what arrived meanwhile, and go on live."""
        following = self._following.get(session.id)
        if following is None or following.session is not None:
            return
        following.session = session
        buffered, following.buffer = following.buffer, []
        for frame in buffered:
            self._take(following, frame)

    # -- frames from the room channel ---------------------------------------------------------
    def on_frame(self, session_id: str, frame: Frame) -> None:
        following = self._following.get(session_id)
        if following is None:
            return
        if following.session is None:
            self._buffer(following, frame)
            return
        self._take(following, frame)

    def _take(self, following: _Following, frame: Frame) -> None:
        session = following.session
        assert session is not None
        if frame.seq < session.next_seq:
            return  # taken in already (from the recording or the stream)
        if frame.seq > session.next_seq or following.filling:
            self._buffer(following, frame)
            self._fill(following)
            return
        self._apply(session, frame)

    def _buffer(self, following: _Following, frame: Frame) -> None:
        if len(following.buffer) < self.max_buffered:
            following.buffer.append(frame)

    def _apply(self, session: Session, frame: Frame) -> None:
        self.registry.follow(session, frame)
        race = None
        if self.race is not None:
            self.race.feed_quietly(session.id, frame)  # its events reach the room from the writer
            if frame.kind == TELEMETRY:
                race = self.race.frame_summary(session.id)
        self.local.send_message(session.id, EVENT_OF_KIND[frame.kind], frame_message(session.id, frame, race))

    def _fill(self, following: _Following) -> None:
        if following.filling:
            return
        following.filling = True
        task = asyncio.create_task(self._fill_from_stream(following), name="racedash-follow-fill")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _fill_from_stream(self, following: _Following) -> None:
        """A frame is missing from the channel: read it from the stream, then apply what waited behind it."""
        session = following.session
        assert session is not None
        try:
            try:
                found = await self.state.frames_after(session.id, session.next_seq - 1)
            except (RedisError, OSError) as exc:
                log.warning("session %s: gap not filled from redis (%s)", session.id[:8], exc)
                found = []
            behind = sorted(found + following.buffer, key=lambda f: f.seq)
            if behind and behind[0].seq > session.next_seq and self.recorded is not None:
                # Not in the stream either (Redis was away while they were published): the writer's
                # recording has them, once its next flush is done.
                await asyncio.sleep(self.recorded_wait)
                found += await self.recorded(session.id, session.next_seq - 1, behind[0].seq)
        finally:
            following.filling = False
        if self._following.get(session.id) is not following:
            return  # no longer followed (written here now, or ended)
        waiting = sorted(found + following.buffer, key=lambda f: f.seq)
        following.buffer = []
        for frame in waiting:
            if frame.seq < session.next_seq:
                continue  # had it (the buffer and the stream overlap)
            if frame.seq > session.next_seq:
                log.warning("session %s: frames %d-%d not followed", session.id[:8], session.next_seq, frame.seq - 1)
            self._apply(session, frame)

    def follow_existing(self, session: Session) -> None:
        """A session this process wrote until now: written elsewhere from now on."""
        self._following[session.id] = _Following(session=session)
        if self.frames is not None:
            self.frames.follow_frames(session.id)

    # -- end ----------------------------------------------------------------------------------
    def stop(self, session_id: str) -> None:
        """No longer taken in from the channel: ended here, or written by this process from now on."""
        if self._following.pop(session_id, None) is not None and self.frames is not None:
            self.frames.unfollow_frames(session_id)

    def sweep(self, now_monotonic: float, linger_seconds: float) -> list[str]:
        """Followed sessions with no viewer here for ``linger_seconds``: returns their ids (to end)."""
        done = []
        for session_id, following in list(self._following.items()):
            session = following.session
            if session is None:
                continue
            if session.viewer_sids or session.publisher_sid is not None:
                following.quiet_since = None
            elif following.quiet_since is None:
                following.quiet_since = now_monotonic
            elif now_monotonic - following.quiet_since >= linger_seconds:
                done.append(session_id)
        return done

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

