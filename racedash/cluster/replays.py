"""Replays across processes: started on any, watched and controlled from all, taken over when one dies.

A replay runs in the process that started it (racedash.replay). Its frames go
to its room's channel like any room emit, so viewers on every process get
them. The process lists each replay it runs in Redis (``p replay:<id>``, with
a TTL it renews), so that:

* a viewer joining on another process is answered by the replay itself: that
  process sends a ``join`` command on the replay's channel; the replay puts
  the viewer in its room (a ``J`` message on the viewer's own channel, which
  its process applies) and sends it the state, all between two frames and in
  one order, as for a local viewer;
* ``replay_control`` from another process travels the same way, and its
  answer comes back on the asking client's channel (an ``R`` message);
* when the process running a replay dies, its listing expires; a process with
  viewers of it restarts the replay under the same id, from the last state
  its viewers were sent (position, speed, playing or paused), and every
  process's viewers are sent the state again. When it cannot be restarted
  (its recording is gone), its viewers here are told it stopped.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import logging
from dataclasses import dataclass, field
from typing import Any

import orjson
from redis.exceptions import RedisError

from racedash.errors import RacedashError
from racedash.replay.errors import ReplayStopped
from racedash.replay.events import apply_control
from racedash.replay.manager import ReplayManager
from racedash.replay.player import Replay

log = logging.getLogger(__name__)

ANSWER_SECONDS = 5.0  # how long a client here waits for the process running its replay


class ReplayUnreachable(RacedashError):
    def __init__(self, message: str) -> None:
        super().__init__(message, code="replay_unreachable")


@dataclass
class _Elsewhere:
    """A replay run by another process, as this process knows it: for its viewers here."""

    recording_id: str
    anonymous: bool
    state: dict[str, Any] = field(default_factory=dict)  # the last replay_state its room was sent


class ReplayDirectory:
    def __init__(self, cluster: Any, manager: ReplayManager, sio: Any, namespace: str = "/") -> None:
        self._redis = cluster.redis
        self._prefix = cluster.prefix
        self._ttl_ms = cluster.state.lease_ms
        self._bus = cluster.bus
        self._local = cluster.local
        self.manager = manager
        self._sio = sio
        self._namespace = namespace
        self._node = self._bus.origin.decode()
        self._elsewhere: dict[str, _Elsewhere] = {}
        self._answers: dict[str, asyncio.Future] = {}
        self._answer_rooms: set[str] = set()  # where answers to this process's REST calls come back
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task] = set()
        manager.on_started = self._started
        manager.on_ended = self._ended
        self._bus.also_wanted = self._runs_here
        self._bus.observe = self._observe
        self._bus.handlers.update({b"C": self._on_command, b"J": self._on_enter, b"R": self._on_answer})

    def _key(self, replay_id: str) -> str:
        return f"{self._prefix}replay:{replay_id}"

    def _spawn(self, coro) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- the replays this process runs --------------------------------------------------------
    def _listing(self, replay: Replay) -> bytes:
        return orjson.dumps({"node": self._node, "recording_id": replay.recording_id, "anonymous": replay.anonymous})

    def _started(self, replay: Replay) -> None:
        self._elsewhere.pop(replay.id, None)
        self._spawn(self._list(replay))

    async def _list(self, replay: Replay) -> None:
        try:
            await self._redis.set(self._key(replay.id), self._listing(replay), px=self._ttl_ms)
        except (RedisError, OSError) as exc:
            log.warning("replay %s not listed in redis (%s): other processes cannot join it", replay.id[:8], exc)

    def _ended(self, replay: Replay) -> None:
        self._spawn(self._unlist(replay.id))

    async def _unlist(self, replay_id: str) -> None:
        try:
            held = await self._redis.get(self._key(replay_id))
            if held is not None and orjson.loads(held).get("node") == self._node:
                await self._redis.delete(self._key(replay_id))
        except (RedisError, OSError):
            pass  # it expires

    async def renew(self) -> None:
        """Keep this process's listings alive (called with the session leases)."""
        replays = list(self.manager)
        if not replays:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for replay in replays:
                pipe.set(self._key(replay.id), self._listing(replay), px=self._ttl_ms)
            await pipe.execute()

    def _runs_here(self, room: str) -> bool:
        if room in self._answer_rooms:
            return True
        try:
            return self.manager.find(room) is not None
        except ReplayStopped:
            return False

    def _on_command(self, room: str, payload: bytes) -> None:
        try:
            replay = self.manager.find(room)
        except ReplayStopped:
            replay = None
        if replay is None:
            return
        self._spawn(self._command(replay, orjson.loads(payload)))

    async def _command(self, replay: Replay, command: dict[str, Any]) -> None:
        sid, asked = command.get("sid"), command.get("asked")
        op = command.get("op")
        try:
            if op == "join":
                state = await replay.join(sid, self._enter_elsewhere)
                self.manager.viewer_joined(replay)
                answer = {"ok": True, "session_id": replay.id, "replay": True, "state": state}
            elif op == "leave":
                self.manager.viewer_left(replay, sid)
                return
            else:
                answer = {"ok": True, "state": await apply_control(replay, command["control"])}
        except RacedashError as exc:
            answer = exc.to_ack()
        except Exception:  # noqa: BLE001 - the asking process must get an answer, not a timeout
            log.exception("replay command from another process failed")
            answer = {"ok": False, "error": "internal_error", "message": "the replay failed to handle this"}
        self._bus.publish_other(b"R", sid, orjson.dumps({"asked": asked, "answer": answer}))

    async def _enter_elsewhere(self, sid: str, room: str) -> None:
        self._bus.publish_other(b"J", sid, room.encode())

    # -- this process's clients, of replays run elsewhere -----------------------------------------
    async def owner(self, replay_id: str) -> dict[str, Any] | None:
        try:
            listed = await self._redis.get(self._key(replay_id))
        except (RedisError, OSError):
            return None
        return orjson.loads(listed) if listed is not None else None

    async def join(self, sid: str, replay_id: str) -> dict | None:
        """Join a replay another process runs; None when no process runs one with this id."""
        listed = await self.owner(replay_id)
        if listed is None or listed.get("node") == self._node:
            return None
        self._elsewhere.setdefault(replay_id, _Elsewhere(listed["recording_id"], bool(listed.get("anonymous"))))
        return await self._ask(sid, replay_id, {"op": "join"})

    async def control(self, sid: str | None, replay_id: str, control: dict) -> dict | None:
        """A control of a replay another process runs, for client ``sid`` (None: a REST call here)."""
        listed = await self.owner(replay_id)
        if listed is None or listed.get("node") == self._node:
            return None
        if sid is not None:
            return await self._ask(sid, replay_id, {"op": "control", "control": control})
        room = f"answer-{secrets.token_hex(8)}"  # a channel of this call's own for the answer
        self._answer_rooms.add(room)
        try:
            return await self._ask(room, replay_id, {"op": "control", "control": control})
        finally:
            self._answer_rooms.discard(room)

    def leave(self, sid: str, replay_id: str) -> bool:
        if replay_id not in self._elsewhere:
            return False
        self._bus.publish_other(b"C", replay_id, orjson.dumps({"op": "leave", "sid": sid}))
        return True

    def forget_connection(self, sid: str) -> None:
        """A client of this process left: the replays it watched elsewhere count it out."""
        for replay_id in list(self._elsewhere):
            if sid in self._viewers_here(replay_id):
                self.leave(sid, replay_id)

    async def _ask(self, sid: str, replay_id: str, command: dict) -> dict:
        asked = f"{sid}:{next(self._ids)}"
        answer = asyncio.get_running_loop().create_future()
        self._answers[asked] = answer
        self._bus.publish_other(b"C", replay_id, orjson.dumps({**command, "sid": sid, "asked": asked}))
        try:
            return await asyncio.wait_for(answer, ANSWER_SECONDS)
        except asyncio.TimeoutError:
            raise ReplayUnreachable("the server process running this replay did not answer") from None
        finally:
            self._answers.pop(asked, None)

    def _on_answer(self, sid_room: str, payload: bytes) -> None:
        answer = orjson.loads(payload)
        waiting = self._answers.get(answer.get("asked"))
        if waiting is not None and not waiting.done():
            waiting.set_result(answer["answer"])

    def _on_enter(self, sid: str, payload: bytes) -> None:
        """The replay puts a client of this process in its room, before it sends it anything else."""
        manager = self._sio.manager
        if manager.is_connected(sid, self._namespace):
            manager.basic_enter_room(sid, self._namespace, payload.decode())

    def _observe(self, room: str, event: str, message: bytes) -> None:
        elsewhere = self._elsewhere.get(room)
        if elsewhere is not None and event == "replay_state":
            elsewhere.state = orjson.loads(message[2:])[1]

    # -- a replay whose process died ---------------------------------------------------------------
    async def check_elsewhere(self) -> None:
        """Replays watched here and run elsewhere: restart here those whose process is gone."""
        for replay_id, elsewhere in list(self._elsewhere.items()):
            if not self._local.has_members(replay_id):
                del self._elsewhere[replay_id]  # no viewer here any more
                continue
            if await self.owner(replay_id) is not None:
                continue
            claimed = await self._redis.set(self._key(replay_id), orjson.dumps({"node": self._node, "claiming": True,
                                            "recording_id": elsewhere.recording_id}), px=self._ttl_ms, nx=True)
            if claimed:
                await self._take_over(replay_id, elsewhere)
            elif await self._restarted_elsewhere(replay_id):
                for sid in self._viewers_here(replay_id):  # the state again, from where it runs now
                    try:
                        await self._ask(sid, replay_id, {"op": "join"})
                    except RacedashError:
                        pass

    async def _restarted_elsewhere(self, replay_id: str) -> bool:
        """Whether the process that claimed the replay got it running (its real listing appears)."""
        for _ in range(int(ANSWER_SECONDS / 0.1)):
            listed = await self.owner(replay_id)
            if listed is None:
                return False
            if not listed.get("claiming"):
                return True
            await asyncio.sleep(0.1)
        return False

    def _viewers_here(self, room: str) -> list[str]:
        members = self._sio.manager.rooms.get(self._namespace, {}).get(room) or {}
        return list(members)

    async def _take_over(self, replay_id: str, elsewhere: _Elsewhere) -> None:
        state = elsewhere.state
        del self._elsewhere[replay_id]
        try:
            replay = await self.manager.start(
                elsewhere.recording_id, replay_id=replay_id, paused=True, position=float(state.get("position", 0.0)),
                speed=float(state.get("speed", 1.0)), anonymous=elsewhere.anonymous)
        except RacedashError as exc:
            log.warning("replay %s lost with its process and not restarted: %s", replay_id[:8], exc.message)
            await self._redis.delete(self._key(replay_id))
            stopped = {**state, "session_id": replay_id, "status": "stopped", "reason": "its server process stopped"}
            await self._local.to_room(replay_id, "replay_state", stopped)
            return
        log.warning("replay %s restarted here: the process running it stopped", replay_id[:8])
        for sid in self._viewers_here(replay_id):
            await replay.join(sid, self._enter_here)
        if state.get("status") == "playing":
            await replay.play()

    async def _enter_here(self, sid: str, room: str) -> None:
        await self._sio.enter_room(sid, room, namespace=self._namespace)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
