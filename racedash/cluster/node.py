"""This process's part of a deployment on Redis: room bus, followed sessions, writer leases.

One process writes a session at a time: the one its monitor is connected to,
holding the session's lease (racedash.cluster.state). It stamps the frames,
appends them to the recording and to the session's Redis stream, and
publishes them on the room channel; the other processes follow the session
for their viewers (racedash.cluster.follow). When the monitor comes back
through another process (its process was killed, or the network moved it),
that process claims the lease — at once if the old writer let it go, after
its TTL if it died — takes in the frames only Redis has, appends to the
recording what the file lacks, and goes on with the next seq: one file, no
frame lost or written twice.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from typing import Any, Awaitable, Callable

import socketio
from redis import asyncio as aioredis
from redis.exceptions import RedisError

from racedash.cluster.follow import Follower
from racedash.cluster.livelist import LiveList
from racedash.cluster.replays import ReplayDirectory
from racedash.cluster.roombus import ClusterBroadcaster, RoomBus
from racedash.cluster.state import SharedState
from racedash.errors import RacedashError
from racedash.sessions import RestoredState, Session, SessionRegistry
from racedash.teamview import session_row
from racedash.wire import EVENT_OF_KIND

log = logging.getLogger(__name__)


def client_manager(redis_url: str, prefix: str) -> socketio.AsyncRedisManager | None:
    """python-socketio's own Redis manager, for what the server sends across processes besides room
    frames (emits to a client of another process, disconnects); None without Redis."""
    if not redis_url:
        return None
    return socketio.AsyncRedisManager(redis_url, channel=f"{prefix}socketio")


class SessionBusy(RacedashError):
    def __init__(self, message: str) -> None:
        super().__init__(message, code="session_busy")


# How long a page waits for Redis to name its session's writer before it goes without the hint.
WRITER_LOOKUP_SECONDS = 0.25


class Cluster:
    def __init__(self, redis_url: str, prefix: str, local: Any, *, lease_seconds: float = 5.0,
                 ring_frames: int = 1200, node: str | None = None) -> None:
        self.redis = aioredis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=5)
        self.prefix = prefix
        self.local = local
        self.node = node or secrets.token_hex(6)
        self.state = SharedState(self.redis, prefix, self.node, lease_ms=int(lease_seconds * 1000),
                                 ring_frames=ring_frames)
        self.bus = RoomBus(redis_url, prefix, local)
        self.live = LiveList(self.redis, prefix, self.node, lease_seconds / 3)
        self.stale_seconds = 5.0  # the team view's "no data" threshold (ui_stale_seconds)
        self.broadcaster = ClusterBroadcaster(local, self.bus)
        self.follower: Follower | None = None
        self.leases: dict[str, str | None] = {}  # sessions written here: their lease (None: Redis was away)
        self._claims: dict[str, asyncio.Lock] = {}
        self._registry: SessionRegistry | None = None
        self._recorder: Any = None
        self._race: Any = None
        self._disconnect: Callable[[str], Awaitable[None]] | None = None
        self._task: asyncio.Task | None = None
        self.linger_seconds = 30.0
        self.replays: ReplayDirectory | None = None

    def bind(self, registry: SessionRegistry, race: Any, recorder: Any,
             disconnect: Callable[[str], Awaitable[None]], stale_seconds: float = 5.0) -> None:
        """The application's parts it works with (built after it)."""
        self._registry, self._race, self._recorder, self._disconnect = registry, race, recorder, disconnect
        self.stale_seconds = stale_seconds
        recorded = recorder.store.frames_between if recorder is not None else None
        self.follower = Follower(registry, race, self.local, self.state, recorded=recorded, frames=self.bus)
        self.bus.follower = self.follower
        registry.on_taken_up = self.follower.attach
        registry.on_end = self.follower.stop

    def bind_replays(self, manager: Any, sio: socketio.AsyncServer, events: Any) -> None:
        """Replays: listed for the other processes, joined and controlled from them (racedash.cluster.replays)."""
        self.replays = ReplayDirectory(self, manager, sio)
        events.elsewhere = self.replays

    def up(self) -> bool:
        return self.bus.up

    def start(self) -> None:
        self.bus.start()
        self._task = asyncio.create_task(self._keep_leases(), name="racedash-leases")

    async def close(self, sio: socketio.AsyncServer | None = None) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for session_id, lease in list(self.leases.items()):
            await self._let_go(session_id, lease)
        if self.follower is not None:
            await self.follower.close()
        if self.replays is not None:
            await self.replays.close()
        await self.bus.close()
        await self.redis.aclose()
        if sio is not None:
            await _close_manager(sio.manager)

    # -- taking a session up -----------------------------------------------------------------
    def restorer(self, restore: Callable[[str], Awaitable[RestoredState | None]]):
        """The registry's restore hook: the recording's state, completed from Redis."""

        async def restore_from_both(session_id: str) -> RestoredState | None:
            restored = await restore(session_id)
            assert self.follower is not None
            return await self.follower.restored(session_id, restored)

        return restore_from_both

    # -- writing a session -------------------------------------------------------------------
    def writes(self, session_id: str) -> bool:
        return session_id in self.leases

    async def writer_node(self, session_id: str) -> str | None:
        """The node name of the process writing the session, as a page's routing hint (None: unknown).

        The dashboard opens its socket with ``?node=<name>``, which the load balancer sends to that
        process (deploy/nginx/racedash-cluster.conf): viewers land where the frames are made, and no
        other process needs to follow the session for them. Only a hint: a slow or absent Redis
        gives none rather than holding the page.
        """
        if session_id in self.leases:
            held: str | None = self.node
        else:
            try:
                held = await asyncio.wait_for(self.state.owner(session_id), WRITER_LOOKUP_SECONDS)
            except (RedisError, OSError, ConnectionError, asyncio.TimeoutError):
                return None
        # A lease reads "<node>:<token>", and a node "<node_name>-<random>" (make_cluster).
        node = held.split(":", 1)[0] if held else ""
        return node.split("-", 1)[0] if "-" in node else None

    def written_elsewhere(self, session_id: str) -> bool:
        """Only followed here, for this process's viewers: another process writes it."""
        return self.follower is not None and self.follower.follows(session_id)

    async def claim(self, session: Session) -> None:
        """Become the session's writer before stamping its next frame (see module doc)."""
        if session.id in self.leases:
            return
        lock = self._claims.setdefault(session.id, asyncio.Lock())
        async with lock:  # the monitor's next events wait here, in order
            if session.id in self.leases:
                return
            lease = await self._acquire(session.id)
            assert self.follower is not None
            self.follower.stop(session.id)
            await self._catch_up(session)
            self.leases[session.id] = lease
            log.info("session %s: written by this process now", session.id[:8])
        self._claims.pop(session.id, None)

    async def _acquire(self, session_id: str) -> str | None:
        deadline = time.monotonic() + self.state.lease_ms / 1000 + 1.0
        while True:
            try:
                lease = await self.state.acquire(session_id)
            except (RedisError, OSError) as exc:
                log.warning("session %s: no lease (redis: %s); writing it here alone", session_id[:8], exc)
                return None
            if lease is not None:
                return lease
            if time.monotonic() > deadline:
                raise SessionBusy("this session is being published through another server process")
            await asyncio.sleep(0.1)

    async def _catch_up(self, session: Session) -> None:
        """Frames the previous writer acknowledged: into this state, and into the file if it lacks them."""
        assert self._registry is not None
        try:
            newer = await self.state.frames_after(session.id, session.next_seq - 1)
        except (RedisError, OSError):
            newer = []
        for frame in newer:
            self._registry.follow(session, frame)
            if self._race is not None:
                self._race.feed_quietly(session.id, frame)
        if self._recorder is None:
            return
        file_last = await self._recorder.store.last_seq(session.id)
        missing = [f for f in session.recent if f.seq > file_last and f.data_json is not None]
        if missing and missing[0].seq > file_last + 1:
            try:
                missing = await self.state.frames_after(session.id, file_last)
            except (RedisError, OSError):
                pass
        for frame in missing:
            self._recorder.append(session.id, frame)
        if missing:
            log.info("session %s: %d frames the previous writer had not recorded written here",
                     session.id[:8], len(missing))

    async def publish_frame(self, session: Session, frame: Any, message: bytes) -> None:
        """A frame just stamped here: to this process's viewers, the stream and the other processes."""
        self.local.send_message(session.id, EVENT_OF_KIND[frame.kind], message)
        lease = self.leases.get(session.id)
        if lease is None:
            return  # Redis was away when it was claimed: the lease keeper takes it when it returns
        assert frame.data_json is not None
        keys, args = self.state.append_args(session.id, lease, frame, self.bus.frame_message(
            frame.seq, frame.kind, frame.received, frame.tail_at, frame.data_json))
        # The bus settles every frame it is given (Redis's answer, or a ConnectionError: the connection
        # was lost, or Redis owed answers for 5 s): no timer of our own per frame.
        try:
            accepted = await self.bus.publish_frame(self.state.append_script, keys, args)
        except (ConnectionError, RedisError, OSError):
            return
        if not accepted:
            await self._lost(session.id)

    async def publisher_gone(self, session: Session) -> None:
        """Its monitor left this process: the recording flushed, the lease let go, and followed from now."""
        if session.id not in self.leases:
            return
        lease = self.leases.pop(session.id)
        if self._recorder is not None:
            # Closed, not just flushed: the next writer appends to the file, and this process, if the
            # monitor comes back here, reopens it from its end rather than from what it remembers.
            await self._recorder.close_session(session.id, ended=False)
        # Subscribed to its frames before the lease is let go: the next writer's first frame reaches us.
        subscribed = self.bus.follow_frames(session.id)
        try:
            await asyncio.wait_for(asyncio.shield(subscribed), 1.0)
        except asyncio.TimeoutError:
            pass  # Redis is slow or away: a later frame fetches what the channel missed (racedash.cluster.follow)
        await self._let_go(session.id, lease)
        assert self.follower is not None and self._registry is not None
        if self._registry.get(session.id) is session and session.id not in self.leases:
            self.follower.follow_existing(session)
        elif not self.follower.follows(session.id):
            self.bus.unfollow_frames(session.id)

    async def _let_go(self, session_id: str, lease: str | None) -> None:
        self.leases.pop(session_id, None)
        if lease is None:
            return
        try:
            await self.state.release(session_id, lease)
        except (RedisError, OSError):
            pass  # it expires by itself

    async def _lost(self, session_id: str) -> None:
        """Another process holds the lease now: stop writing, and let the monitor find its writer."""
        if self.leases.pop(session_id, "gone") == "gone":
            return
        log.warning("session %s: lease lost to another process; its monitor is disconnected here", session_id[:8])
        session = self._registry.get(session_id) if self._registry is not None else None
        if self._recorder is not None:
            await self._recorder.close_session(session_id, ended=False)
        if session is not None:
            if session.publisher_sid is not None and self._disconnect is not None:
                await self._disconnect(session.publisher_sid)
            assert self.follower is not None
            self.follower.follow_existing(session)

    async def _keep_leases(self) -> None:
        interval = self.state.lease_ms / 3000
        while True:
            await asyncio.sleep(interval)
            try:
                await self._renew_once()
                await self._list_sessions()
                if self.replays is not None:
                    await self.replays.renew()
                    await self.replays.check_elsewhere()
            except (RedisError, OSError) as exc:
                log.debug("leases not renewed: %s", exc)
            self._end_unwatched()

    async def _renew_once(self) -> None:
        held = {session_id: lease for session_id, lease in self.leases.items() if lease is not None}
        if held:
            for session_id, still in (await self.state.renew(held)).items():
                if not still and self.leases.get(session_id) == held[session_id]:
                    await self._lost(session_id)
        for session_id in [s for s, lease in self.leases.items() if lease is None]:
            lease = await self.state.acquire(session_id)  # Redis is back: take the lease it could not give
            if lease is not None and session_id in self.leases:
                self.leases[session_id] = lease
            elif lease is None:
                await self._lost(session_id)

    async def _list_sessions(self) -> None:
        """This process's rows of the team view, for the others' (racedash.cluster.livelist)."""
        if self._registry is None:
            return
        now = time.monotonic()
        rows = [session_row(s, self._race, now, self.stale_seconds)
                for s in self._registry if not self.written_elsewhere(s.id)]
        await self.live.publish(rows)

    def _end_unwatched(self) -> None:
        if self.follower is None or self._registry is None:
            return
        for session_id in self.follower.sweep(time.monotonic(), self.linger_seconds):
            self._registry.end(session_id)
            if self._race is not None:
                self._race.forget(session_id)


async def _close_manager(manager) -> None:
    """Stop python-socketio's Redis listener and close its connections: it has no close of its own."""
    listener = getattr(manager, "thread", None)
    if listener is not None and not listener.done():
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)
    for name in ("pubsub", "redis"):
        connection = getattr(manager, name, None)
        if connection is not None:
            await connection.aclose()


def make_cluster(settings, local) -> Cluster | None:
    if not settings.redis_url:
        return None
    # Unique per process even if two were given one node_name by mistake (a lease is told apart by it),
    # and carrying the name the load balancer routes on (writer_node).
    node = f"{settings.node_name}-{secrets.token_hex(4)}" if settings.node_name else None
    return Cluster(settings.redis_url, settings.redis_prefix, local, node=node,
                   lease_seconds=settings.cluster_lease_seconds, ring_frames=settings.ring_frames)
