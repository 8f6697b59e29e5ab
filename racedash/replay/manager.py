"""Every replay of this process: creation, lookup, limits, idle reaping, shutdown.

Replays are independent rooms with UUID4 ids (so ``/dashboard/<replay_id>``
works like a live session's page). Replays of one recording share its index
(built once, in a worker thread) but each has its own reader and schedule,
and its own race tables (:class:`~racedash.replay.player.RaceTables`: from
the recording's race sidecar, or a model kept to extend for a growing one).
The manager owns every replay task and its own reaper task, and cancels them
all in :meth:`close`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from pathlib import Path
from typing import Callable

from racedash.broadcast import Broadcaster
from racedash.race import RaceOptions
from racedash.ids import new_session_id, parse_session_id
from racedash.errors import InvalidSessionId
from racedash.replay.errors import ReplayStopped, TooManyReplays, UnknownReplay
from racedash.replay.index import RecordingIndex, open_index, refresh_index, sidecar_path
from racedash.replay.player import EmitHook, RaceTables, Replay, ReplayOptions
from racedash.replay.reader import recording_path
from racedash.replay.timing import Clock, LoopClock

log = logging.getLogger(__name__)

# How many stopped replay ids are remembered, so that a late viewer gets
# "replay_stopped" instead of an empty live session under that id.
_REMEMBER_STOPPED = 1024


class ReplayManager:
    def __init__(
        self,
        *,
        recordings_dir: Path,
        broadcaster: Broadcaster,
        options: ReplayOptions = ReplayOptions(),
        max_replays: int = 16,
        max_anonymous: int | None = None,
        idle_seconds: float = 60.0,
        use_sidecar: bool = True,
        is_live: Callable[[str], bool] = lambda recording_id: False,
        clock: Clock | None = None,
        race_options: RaceOptions | None = None,
    ) -> None:
        self.recordings_dir = Path(recordings_dir)
        self.race_options = race_options or RaceOptions()  # the race tables replays show (racedash.race)
        self.options = options
        self.max_replays = max_replays
        self.max_anonymous = max_replays // 2 if max_anonymous is None else max_anonymous
        self.idle_seconds = idle_seconds
        self.on_emit: EmitHook | None = None  # benchmarks measure emit times through it
        self._broadcaster = broadcaster
        self._use_sidecar = use_sidecar
        self._is_live = is_live
        self._clock = clock or LoopClock()
        self._replays: dict[str, Replay] = {}
        self._past_seeks = 0
        self._past_seek_seconds = 0.0
        self._idle_since: dict[str, float] = {}
        self._stopped: OrderedDict[str, None] = OrderedDict()
        self._indexes: dict[str, RecordingIndex] = {}
        self._index_locks: dict[str, asyncio.Lock] = {}
        self._saved_scanned: dict[str, int] = {}
        self._starting = 0
        self._tasks: set[asyncio.Task] = set()
        # Told of each replay started and ended here (racedash.cluster lists them for other processes).
        self.on_started: Callable[[Replay], None] = lambda replay: None
        self.on_ended: Callable[[Replay], None] = lambda replay: None

    # -- lookup -----------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._replays)

    def __iter__(self):
        return iter(list(self._replays.values()))

    def find(self, replay_id: str) -> Replay | None:
        """The running replay with this (canonical) id, or None; raises if it has stopped."""
        replay = self._replays.get(replay_id)
        if replay is None and replay_id in self._stopped:
            raise ReplayStopped(f"replay {replay_id} has stopped")
        return replay

    def was_stopped(self, replay_id: str) -> bool:
        return replay_id in self._stopped

    def get(self, replay_id: object) -> Replay:
        try:
            canonical = parse_session_id(replay_id)
        except InvalidSessionId:
            raise UnknownReplay(f"no replay {replay_id!r}") from None
        replay = self.find(canonical)
        if replay is None:
            raise UnknownReplay(f"no replay {canonical}")
        return replay

    def is_live(self, recording_id: object) -> bool:
        """The recording's session has a publisher here (its recording still grows)."""
        try:
            return self._is_live(parse_session_id(recording_id))
        except InvalidSessionId:
            return False

    # -- lifecycle --------------------------------------------------------------
    async def start(
        self,
        recording_id: object,
        *,
        paused: bool = False,
        position: float | None = None,
        speed: float = 1.0,
        anonymous: bool = False,
        replay_id: str | None = None,
    ) -> Replay:
        """A new replay of a recording, playing (or paused) from ``position`` (default 0).

        ``replay_id``: the id of a replay whose process died, restarted here (racedash.cluster).
        ``anonymous``: started without team access (a live session's viewer time-shifting):
        such replays hold at most ``max_anonymous`` of the slots, so the team's own replays
        always find one, and their state never names the recording (the live session's id).
        """
        path = recording_path(self.recordings_dir, recording_id)
        recording_id = path.name.removesuffix(".jsonl")
        if len(self._replays) + self._starting >= self.max_replays:
            raise TooManyReplays(
                f"{self.max_replays} replays are running, the most this server allows; stop one first"
            )
        if anonymous and sum(1 for r in self._replays.values() if r.anonymous) >= self.max_anonymous:
            raise TooManyReplays(f"{self.max_anonymous} time-shifts are running, the most this server allows")
        self._starting += 1
        try:
            index = await self._index(recording_id, path)  # first: it tells a missing or bad recording
            race = await self._race_tables(recording_id, path)
            replay = Replay(
                replay_id=replay_id or new_session_id(),
                recording_id=recording_id,
                path=path,
                index=index,
                broadcaster=self._broadcaster,
                clock=self._clock,
                options=self.options,
                is_live=lambda: self._is_live(recording_id),
                speed=speed,
                paused=paused or position is not None,
                on_emit=self._emit_hook,
                race=race,
                anonymous=anonymous,
            )
        finally:
            self._starting -= 1
        self._replays[replay.id] = replay
        self._idle_since[replay.id] = self._clock.now()
        task = replay.start()
        self._own(task)
        task.add_done_callback(lambda _t, r=replay: self._forget(r))
        log.info("replay %s of recording %s started", replay.id[:8], recording_id[:8])
        self.on_started(replay)
        if position is not None:
            await replay.seek(position)
            if not paused:
                await replay.play()
        return replay

    def _emit_hook(self, seq: int, due: float, emitted: float) -> None:
        if self.on_emit is not None:
            self.on_emit(seq, due, emitted)

    async def _index(self, recording_id: str, path: Path) -> RecordingIndex:
        """The shared index of a recording, built (or extended) once for concurrent starters."""
        lock = self._index_locks.setdefault(recording_id, asyncio.Lock())
        async with lock:
            index = self._indexes.get(recording_id)
            if index is None:
                index = await asyncio.to_thread(open_index, path, use_sidecar=self._use_sidecar)
            else:
                index, _added = await asyncio.to_thread(refresh_index, index, path)
            self._indexes[recording_id] = index
            self._saved_scanned[recording_id] = index.scanned
            return index

    async def _race_tables(self, recording_id: str, path: Path) -> RaceTables:
        return await asyncio.to_thread(
            RaceTables.load, path, self.race_options, growing=self._is_live(recording_id), use_sidecar=self._use_sidecar
        )

    def seek_totals(self) -> tuple[int, float]:
        """(seeks, seconds until their state was sent) of every replay this server has run."""
        replays = list(self._replays.values())
        return (self._past_seeks + sum(r.seeks for r in replays),
                self._past_seek_seconds + sum(r.seek_seconds for r in replays))

    def _forget(self, replay: Replay) -> None:
        self.on_ended(replay)
        if self._replays.pop(replay.id, None) is not None:
            self._past_seeks += replay.seeks
            self._past_seek_seconds += replay.seek_seconds
        self._idle_since.pop(replay.id, None)
        self._stopped[replay.id] = None
        while len(self._stopped) > _REMEMBER_STOPPED:
            self._stopped.popitem(last=False)
        if not any(r.recording_id == replay.recording_id for r in self._replays.values()):
            self._indexes.pop(replay.recording_id, None)
            lock = self._index_locks.get(replay.recording_id)
            if lock is not None and not lock.locked():
                del self._index_locks[replay.recording_id]
            saved = self._saved_scanned.pop(replay.recording_id, 0)
            if self._use_sidecar and replay.index.scanned > saved and replay.path.exists():
                # A live recording grew while replayed: keep the longer index for next time.
                replay.index.save(sidecar_path(replay.path))

    # -- viewers ----------------------------------------------------------------
    def viewer_joined(self, replay: Replay) -> None:
        self._idle_since.pop(replay.id, None)

    def viewer_left(self, replay: Replay, sid: str) -> None:
        replay.leave(sid)
        if not replay.viewers and replay.id in self._replays:
            self._idle_since[replay.id] = self._clock.now()

    def forget_connection(self, sid: str) -> None:
        for replay in list(self._replays.values()):
            if sid in replay.viewers:
                self.viewer_left(replay, sid)

    # -- background -------------------------------------------------------------
    def start_background(self) -> None:
        self._own(asyncio.get_running_loop().create_task(self._reap_idle(), name="replay-reaper"))

    def _own(self, task: asyncio.Task) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def reap_interval(self) -> float:
        return max(0.05, min(5.0, self.idle_seconds / 4))

    async def _reap_idle(self) -> None:
        while True:
            await asyncio.sleep(self.reap_interval())
            await self.reap_idle()

    async def reap_idle(self) -> list[str]:
        """Stop every replay that has had no viewer for ``idle_seconds``; returns their ids."""
        now = self._clock.now()
        reaped = []
        for replay_id, since in list(self._idle_since.items()):
            replay = self._replays.get(replay_id)
            if replay is None or replay.viewers or now - since < self.idle_seconds:
                continue
            try:
                await replay.stop(reason="idle")
            except ReplayStopped:
                pass  # it stopped by itself meanwhile: nothing left to free
            reaped.append(replay_id)
        return reaped

    async def close(self) -> None:
        """Cancel every replay and the reaper; wait until they are gone."""
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._replays.clear()
        self._idle_since.clear()
        self._indexes.clear()
