"""Room broadcasts across processes: each room's frames on its own Redis channel.

A room emit is encoded once (racedash.wire), written to this process's viewers
by the local fan-out (racedash.fanout) at once, and published on
``<prefix>room:<room>``. Every process holds one pattern subscription
(racedash.cluster.subscriber); a process with viewers of the room writes the
same bytes to them, the others drop the frame by its channel name.

On the channel an event is ``<origin>\\nE\\n<event>\\n<message>``, and a
session's frame ``<origin>\\nF\\n<seq>\\n<kind>\\n<received>\\n<tail_at>\\n<JSON>``:
the frame itself, which the processes with viewers of it take in as the owner
did (racedash.cluster.follow) before they send it on. ``origin`` lets the
publishing process skip its own (its viewers already have them). Publishes
leave through one task, in order, pipelined: a room's frames reach other
processes in the order they were emitted, and the live path never waits on
Redis. While Redis is unreachable the frames for other processes are
dropped (bounded: ``max_queued``) and local viewers are served as before.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable

import hiredis

from racedash.cluster.resp import CommandPipe
from racedash.cluster.subscriber import RoomSubscriber
from racedash.sessions import Frame
from racedash.wire import event_message

log = logging.getLogger(__name__)


@dataclass
class BusStats:
    published: int = 0
    publish_dropped: int = 0  # frames other processes never got (Redis down, or the queue full)
    delivered: int = 0  # frames from other processes written to viewers here


# How long a batch waits for Redis's replies before its frames count as not published.
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
        # ("E", channel, data, None) or ("F", keys, args, done): one queue, so one order.
        self._queue: deque[tuple[str, Any, Any, asyncio.Future | None]] = deque()
        self._pipe = CommandPipe(url)  # the frames' own connection (racedash.cluster.resp)
        self._max_queued = max_queued
        self._wake = asyncio.Event()
        self.stats = BusStats()
        self.up = False
        self.subscriber = RoomSubscriber(url, prefix, self._wanted, self._deliver, on_state=self._subscribed)
        self.follower: Any = None  # racedash.cluster.follow.Follower: frames of sessions owned elsewhere
        # Other kinds of bus message (racedash.cluster.replays): kind -> handler(room, payload).
        self.handlers: dict[bytes, Callable[[str, bytes], None]] = {}
        self.also_wanted: Callable[[str], bool] = lambda room: False  # rooms read here with no viewer
        self.observe: Callable[[str, str, bytes], None] = lambda room, event, message: None
        self._tasks: list[asyncio.Task] = []

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        self._tasks = [asyncio.create_task(self.subscriber.run(), name="racedash-room-subscriber"),
                       asyncio.create_task(self._publish_forever(), name="racedash-room-publisher")]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.subscriber.close()
        self._pipe.close()

    def _subscribed(self, up: bool) -> None:
        if up != self.up:
            log.warning("redis room channels %s", "up" if up else "DOWN: other processes' viewers get no frames")
        self.up = up

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
        self._queue.append(("E", channel, b"\n".join((self.origin, kind, *parts)), None))
        self._wake.set()

    def publish_frame(self, append: Any, keys: list, args: list) -> asyncio.Future:
        """A session's frame: into its stream and its room channel by the fenced script ``append``.

        The future is done once Redis has it (True), refused it (False: the lease is no longer
        this process's), or could not be reached (an exception).
        """
        done = asyncio.get_running_loop().create_future()
        if self._full():
            done.set_exception(ConnectionError("the room bus is backed up"))
            done.exception()
            return done
        self._queue.append(("F", append, (keys, args), done))
        self._wake.set()
        return done

    def frame_head(self, seq: int, kind: str, received: float, tail_at: int) -> bytes:
        """A frame's room-channel message without its JSON, which follows it (racedash.cluster.state)."""
        return b"%s\nF\n%d\n%s\n%r\n%d\n" % (self.origin, seq, kind.encode(), received, tail_at)

    def _full(self) -> bool:
        if len(self._queue) >= self._max_queued:
            self.stats.publish_dropped += 1
            return True
        return False

    async def _publish_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                batch = list(self._queue)
                self._queue.clear()
                try:
                    await self._pipe.ensure()
                    results = await self._send(batch)
                    if any(_no_script(r) for r in results):
                        # Redis restarted (scripts are not kept): load the frames' script again and
                        # send again what it refused.
                        for script in {id(t): t for kind, t, _data, _done in batch if kind == "F"}.values():
                            await self._pipe.send("SCRIPT", "LOAD", script.script)
                        again = [item for item, r in zip(batch, results) if _no_script(r)]
                        for item, result in zip(again, await self._send(again)):
                            results[batch.index(item)] = result
                    self.stats.published += len(batch)
                    for (_kind, _target, _data, done), result in zip(batch, results):
                        if done is not None and not done.done():
                            if isinstance(result, Exception):  # Redis refused it (hiredis.ReplyError)
                                done.set_exception(NotPublished(f"redis refused the frame: {result}"))
                                done.exception()
                            else:
                                done.set_result(bool(result))
                except (ConnectionError, OSError, asyncio.TimeoutError) as exc:
                    self.stats.publish_dropped += len(batch)
                    log.debug("room frames not published: %s", exc)
                    for _kind, _target, _data, done in batch:
                        if done is not None and not done.done():
                            done.set_exception(ConnectionError(f"redis: {exc}"))
                            done.exception()
                    await asyncio.sleep(0.5)  # Redis is away: the next batch tries to reconnect

    async def _send(self, batch: list) -> list:
        """Every message of the batch in one write, in order; the replies (errors as ReplyError)."""
        futures = []
        for kind, target, data, _done in batch:
            if kind == "E":
                futures.append(self._pipe.send("PUBLISH", target, data))
            else:
                keys, args = data
                futures.append(self._pipe.send("EVALSHA", target.sha, len(keys), *keys, *args))
        return list(await asyncio.wait_for(asyncio.gather(*futures), ANSWER_SECONDS))

    # -- in ---------------------------------------------------------------------------
    def _wanted(self, room: str) -> bool:
        return (self._local.has_members(room) or (self.follower is not None and self.follower.follows(room))
                or self.also_wanted(room))

    def _deliver(self, room: str, data: bytes) -> None:
        origin, _, rest = data.partition(b"\n")
        if origin == self.origin:
            return  # ours: our viewers had it when it was emitted
        kind, _, rest = rest.partition(b"\n")
        self.stats.delivered += 1
        if kind == b"F":
            seq, kind_name, received, tail_at, data_json = rest.split(b"\n", 4)
            if self.follower is not None:
                self.follower.on_frame(room, Frame(int(seq), kind_name.decode(), float(received),
                                                   data_json=data_json, tail_at=int(tail_at)))
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
