"""Room broadcasts across processes: each room's events on its own Redis channel, each session's frames on theirs.

A room emit is encoded once (racedash.wire), written to this process's viewers
by the local fan-out (racedash.fanout) at once, and published on
``<prefix>room:<room>``. Every process holds one pattern subscription
(racedash.cluster.subscriber); a process with viewers of the room writes the
same bytes to them, the others drop the message by its channel name.

On a room channel an event is ``<origin>\\nE\\n<event>\\n<message>``. A session's
frame, ``<origin>\\nF\\n<seq>\\n<kind>\\n<received>\\n<tail_at>\\n<JSON>``, goes to
its stream and to ``<prefix>f:<session>`` by the writer's fenced script
(racedash.cluster.state); only the processes following the session for their
viewers subscribe to that channel (racedash.cluster.follow), take the frame in
as the writer did, and send it on. ``origin`` lets a process skip its own.

Everything leaves through one connection, in order: the messages queued in
one turn of the event loop go in one write, and each reply settles its message
(a frame's acknowledgement waits for it). The live path never waits on Redis.
While Redis is unreachable the messages for other processes are dropped
(bounded: ``max_queued``) and local viewers are served as before.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import deque
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable

import hiredis

from racedash.cluster.resp import CommandPipe, pack
from racedash.cluster.subscriber import RoomSubscriber
from racedash.sessions import Frame
from racedash.wire import event_message

log = logging.getLogger(__name__)


@dataclass
class BusStats:
    published: int = 0
    publish_dropped: int = 0  # frames other processes never got (Redis down, or the queue full)
    delivered: int = 0  # frames from other processes written to viewers here


# How long Redis may owe replies without sending any before the connection is dropped (and what
# it owed counts as not published).
ANSWER_SECONDS = 5.0


class NotPublished(ConnectionError):
    """A frame Redis did not take: unreachable, or it refused the command."""


def _no_script(reply: Any) -> bool:
    return isinstance(reply, hiredis.ReplyError) and str(reply).startswith("NOSCRIPT")


class RoomBus:
    def __init__(self, url: str, prefix: str, local: Any, *, max_queued: int = 10_000) -> None:
        """``local`` is the process's own fan-out (racedash.fanout.FanoutBroadcaster)."""
        self._prefix = prefix
        self._local = local
        self.origin = secrets.token_hex(4).encode()
        # (packed command, its reply's callback, script) in emit order: one queue, so one order.
        self._queue: deque[tuple[bytes, Any, Any]] = deque()
        self._pipe = CommandPipe(url)  # the frames' own connection (racedash.cluster.resp)
        self._max_queued = max_queued
        self._flush_soon = False
        self._connecting: asyncio.Task | None = None
        self._loaded: set[str] = set()  # scripts loaded on the current connection (by sha)
        self._watch: asyncio.TimerHandle | None = None
        self._progress = (0, 0.0)  # (replies read, monotonic time) when the watchdog last saw one arrive
        self.stats = BusStats()
        self.up = False
        self.subscriber = RoomSubscriber(url, prefix, self._wanted, self._deliver, on_state=self._subscribed,
                                         deliver_frame=self._deliver_frame)
        self.follower: Any = None  # racedash.cluster.follow.Follower: frames of sessions owned elsewhere
        # Other kinds of bus message (racedash.cluster.replays): kind -> handler(room, payload).
        self.handlers: dict[bytes, Callable[[str, bytes], None]] = {}
        self.also_wanted: Callable[[str], bool] = lambda room: False  # rooms read here with no viewer
        self.observe: Callable[[str, str, bytes], None] = lambda room, event, message: None
        self._tasks: list[asyncio.Task] = []

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        self._tasks = [asyncio.create_task(self.subscriber.run(), name="racedash-room-subscriber")]
        self._progress = (self._pipe.replies, time.monotonic())
        self._watch = asyncio.get_running_loop().call_later(1.0, self._watchdog)

    async def close(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
        if self._connecting is not None:
            self._tasks.append(self._connecting)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.subscriber.close()
        self._pipe.close()

    def _subscribed(self, up: bool) -> None:
        if up != self.up:
            log.warning("redis room channels %s", "up" if up else "DOWN: other processes' viewers get no frames")
        self.up = up

    # -- frame channels (racedash.cluster.follow) -------------------------------------------
    def follow_frames(self, session_id: str) -> asyncio.Future:
        """Receive the session's frames from now on (see RoomSubscriber.follow).

        Done once Redis confirmed it, or at once while the subscription is down (it is made when Redis
        is back, and the frames missed meanwhile are fetched from the stream: racedash.cluster.follow).
        """
        confirmed = self.subscriber.follow(session_id)
        if self.subscriber.subscribed.is_set():
            return confirmed
        now = asyncio.get_running_loop().create_future()
        now.set_result(False)
        return now

    def unfollow_frames(self, session_id: str) -> None:
        self.subscriber.unfollow(session_id)

    # -- out --------------------------------------------------------------------------
    def publish(self, room: str, event: str, message: bytes) -> None:
        """Any room event but a session's frames: the message as this process's viewers got it."""
        self._enqueue(room, b"E", event.encode(), message)

    def publish_other(self, kind: bytes, room: str, payload: bytes) -> None:
        """A message of another kind (see ``handlers``) on ``room``'s channel, in order with the rest."""
        self._enqueue(room, kind, payload)

    def _enqueue(self, room: str, kind: bytes, *parts: bytes) -> None:
        if self._full():
            return
        channel = f"{self._prefix}room:{room}".encode()
        self._queue.append((pack("PUBLISH", channel, b"\n".join((self.origin, kind, *parts))), self._published, None))
        self._schedule()

    def publish_frame(self, append: Any, keys: list, args: list) -> asyncio.Future:
        """A session's frame: into its stream and its frame channel by the fenced script ``append``.

        The future is done once Redis has it (True), refused it (False: the lease is no longer
        this process's), or could not be reached (an exception).
        """
        done = asyncio.get_running_loop().create_future()
        if self._full():
            done.set_exception(ConnectionError("the room bus is backed up"))
            done.exception()
            return done
        command = pack("EVALSHA", append.sha, len(keys), *keys, *args)
        self._queue.append((command, partial(self._settle_frame, done, append, keys, args), append))
        self._schedule()
        return done

    def frame_message(self, seq: int, kind: str, received: float, tail_at: int, data_json: bytes) -> bytes:
        """A frame's message on its channel and in its stream (racedash.cluster.state)."""
        return b"%s\nF\n%d\n%s\n%r\n%d\n%s" % (self.origin, seq, kind.encode(), received, tail_at, data_json)

    def _full(self) -> bool:
        if len(self._queue) >= self._max_queued:
            self.stats.publish_dropped += 1
            return True
        return False

    def _schedule(self) -> None:
        # Everything queued in this turn of the event loop leaves in one write, in order.
        if not self._flush_soon:
            self._flush_soon = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_soon = False
        if not self._queue:
            return
        if not self._pipe.connected:
            if self._connecting is None:
                self._connecting = asyncio.create_task(self._connect(), name="racedash-room-publisher")
            return  # sent once connected
        commands: list[bytes] = []
        callbacks: list[Any] = []
        loaded = self._loaded
        for command, callback, script in self._queue:
            if script is not None and script.sha not in loaded:
                # Loaded before its first use on each connection: EVALSHA never meets NOSCRIPT (a
                # restarted Redis forgot its scripts, and it reconnects us).
                loaded.add(script.sha)
                commands.append(pack("SCRIPT", "LOAD", script.script))
                callbacks.append(None)
            commands.append(command)
            callbacks.append(callback)
        self._queue.clear()
        self._pipe.write(b"".join(commands), callbacks)

    async def _connect(self) -> None:
        try:
            while self._queue:
                try:
                    await self._pipe.ensure()
                except (ConnectionError, OSError, asyncio.TimeoutError) as exc:
                    log.debug("room messages not published: %s", exc)
                    failed = list(self._queue)
                    self._queue.clear()
                    error = ConnectionError(f"redis: {exc}")
                    for _command, callback, _script in failed:
                        callback(error)
                    await asyncio.sleep(0.5)  # Redis is away: what is queued meanwhile tries again
                    continue
                self._loaded = set()
                self._flush()
        finally:
            self._connecting = None

    def _watchdog(self) -> None:
        """Redis owes replies and sent none for ANSWER_SECONDS: drop the connection (its callers get
        a ConnectionError: not published), and the next message reconnects."""
        now = time.monotonic()
        replies = self._pipe.replies
        if replies != self._progress[0] or not self._pipe.waiting:
            self._progress = (replies, now)
        elif now - self._progress[1] >= ANSWER_SECONDS:
            log.warning("redis did not answer for %.0f s: reconnecting the room publisher", ANSWER_SECONDS)
            self._pipe.abort()
            self._progress = (replies, now)
        self._watch = asyncio.get_running_loop().call_later(1.0, self._watchdog)

    def _published(self, reply: Any) -> None:
        if isinstance(reply, ConnectionError):
            self.stats.publish_dropped += 1
        else:
            self.stats.published += 1

    def _settle_frame(self, done: asyncio.Future, append: Any, keys: list, args: list, reply: Any) -> None:
        if isinstance(reply, ConnectionError):
            self.stats.publish_dropped += 1
            if not done.done():
                done.set_exception(reply)
                done.exception()
            return
        if append is not None and _no_script(reply) and self._pipe.connected:
            # The script was flushed from Redis under us (SCRIPT FLUSH): this frame goes with the script itself.
            self._pipe.write(pack("EVAL", append.script, len(keys), *keys, *args),
                             [partial(self._settle_frame, done, None, keys, args)])
            return
        self.stats.published += 1
        if done.done():
            return
        if isinstance(reply, Exception):  # Redis refused it (hiredis.ReplyError)
            done.set_exception(NotPublished(f"redis refused the frame: {reply}"))
            done.exception()
        else:
            done.set_result(bool(reply))

    # -- in ---------------------------------------------------------------------------
    def _wanted(self, room: str) -> bool:
        return (self._local.has_members(room) or (self.follower is not None and self.follower.follows(room))
                or self.also_wanted(room))

    def _deliver_frame(self, session_id: str, data: bytes) -> None:
        """A frame off the session's own channel (subscribed only while it is followed here)."""
        origin, _, rest = data.partition(b"\n")
        if origin == self.origin or self.follower is None:
            return  # ours (written here since): our viewers had it
        self.stats.delivered += 1
        self.follower.on_frame(session_id, frame_of_message(rest))

    def _deliver(self, room: str, data: bytes) -> None:
        origin, _, rest = data.partition(b"\n")
        if origin == self.origin:
            return  # ours: our viewers had it when it was emitted
        kind, _, rest = rest.partition(b"\n")
        self.stats.delivered += 1
        if kind == b"F":  # a frame on the room channel: from a process of an earlier version
            if self.follower is not None:
                self.follower.on_frame(room, frame_of_message(data.partition(b"\n")[2]))
            return
        if kind != b"E":
            handler = self.handlers.get(kind)
            if handler is not None:
                handler(room, rest)
            return
        event, _, message = rest.partition(b"\n")
        name = event.decode()
        self.observe(room, name, message)
        self._local.send_message(room, name, message)


def frame_of_message(message: bytes) -> Frame:
    """The frame of a frame message without its origin: ``F\n<seq>\n<kind>\n<received>\n<tail_at>\n<JSON>``."""
    _f, seq, kind, received, tail_at, data_json = message.split(b"\n", 5)
    return Frame(int(seq), kind.decode(), float(received), data_json=data_json, tail_at=int(tail_at))


class ClusterBroadcaster:
    """A :class:`racedash.broadcast.Broadcaster` for several processes: local fan-out + the room bus.

    A message to one client goes straight to it when it is connected here; to a
    client of another process (a viewer of a replay this process runs) through the
    channel of its own room (every client is in a room named after its sid), so it
    keeps its order with the replay's frames: one publisher, one subscription.
    """

    def __init__(self, local: Any, bus: RoomBus) -> None:
        self.local = local
        self.bus = bus
        self.stats = getattr(local, "stats", None)

    async def to_room(self, room: str, event: str, data: Any) -> None:
        await self.room_message(room, event, event_message(event, data))

    async def room_message(self, room: str, event: str, message: bytes) -> None:
        self.local.send_message(room, event, message)
        self.bus.publish(room, event, message)

    async def to_client(self, sid: str, event: str, data: Any) -> None:
        await self.client_message(sid, event, event_message(event, data))

    async def client_message(self, sid: str, event: str, message: bytes) -> None:
        if self.local.has_members(sid):
            self.local.send_message(sid, event, message)
        else:
            self.bus.publish(sid, event, message)
