"""One replay: a recording re-emitted into its own room on an absolute schedule.

The room receives ordinary ``setup_update`` / ``telemetry_update`` events (the
live payloads, ``session_id`` being the replay id and ``seq`` the recorded
one), so the live dashboard shows a replay unchanged, plus ``replay_state``
on every change and every ``state_interval`` seconds, and after a seek or on
join the state at that point (``setup_update``, ``telemetry_history``,
``telemetry_update``, ``race_tables``) before anything else.

Race facts are told as live: right after a frame, the race events it caused
(``lap_completed``, ``pit_stop``, ...), cut from the recording's race tables
(:class:`RaceTables`) by seq. A seek starts a new pass: the tables up to the
new position, then the events of the frames played from there, each once.

Everything that touches the room runs in the replay's one task: controls and
joins are queued as commands and applied between frames, so a viewer can
never receive a frame from before a seek after the state from after it, and
a joiner always gets the state before the next frame.

Timing: frame ``i`` is due at ``schedule.due(p_i)`` (see timing.py); the
task waits for the earlier of that and the next periodic state with one timer
on the injected clock, woken early by any command.
"""

from __future__ import annotations

import asyncio
import logging
import time
from bisect import bisect_right
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable

from racedash.broadcast import Broadcaster
from racedash.race import RaceModel, RaceOptions, events_after, tables_until
from racedash.race.model import frame_sample
from racedash.recording.files import open_regular
from racedash.race.strategy import clean_laps, fuel_per_lap, pace, strategy
from racedash.racefeed import wire_event
from racedash.recording.format import Event
from racedash.recording.race import build_model, load_tables
from racedash.recording.reader import good_end, iter_events
from racedash.replay.errors import InvalidControl, ReplayStopped, UnknownLap
from racedash.replay.index import RecordingIndex, refresh_index
from racedash.replay.reader import RecordingReader
from racedash.replay.snapshot import HistoryWindow, Snapshot, snapshot_at
from racedash.replay.timing import MAX_SPEED, MIN_SPEED, Clock, Schedule, valid_speed
from racedash.sessions import Frame
from racedash.wire import EVENT_OF_KIND, event_message, frame_message, history_message, history_point

log = logging.getLogger(__name__)

PLAYING = "playing"
PAUSED = "paused"
ENDED = "ended"
STOPPED = "stopped"

ACTIONS = frozenset({"play", "pause", "resume", "seek", "speed", "stop"})

# Emit at most this many overdue frames back to back before yielding to the loop.
_BURST = 32

EmitHook = Callable[[int, float, float], None]
EnterRoom = Callable[[str, str], Awaitable[None]]


@dataclass(frozen=True)
class ReplayOptions:
    history_seconds: float = 1800.0
    history_frames: int = 150
    state_interval: float = 1.0
    follow_interval: float = 0.25


# The tables whose rows are events (``stints`` are derived, never announced).
_EVENT_TABLES = ("laps", "pit_stops", "driver_changes", "setup_changes", "alerts")


class RaceTables:
    """The race tables of the recording a replay plays, covering every frame it emits.

    Every row carries the seq of the frame that produced it, so the tables of
    the whole file serve any position: :meth:`until` and :meth:`events` cut
    them by seq. A finished recording's tables come whole from
    :func:`~racedash.recording.race.load_tables` (cached in its sidecar). A
    growing one (a time-shifted live session) keeps the model that made them
    and feeds it only the lines written since, whenever the replay reaches a
    frame the tables do not cover yet: no rescan however long the session.
    :meth:`load` and :meth:`extend` are blocking: run them in a worker thread.
    """

    def __init__(self, path: Path, options: RaceOptions, tables: dict[str, Any],
                 model: RaceModel | None = None, fed_to: int = 0) -> None:
        self.path = path
        self.options = options
        self._model = model
        self._fed_to = fed_to  # byte offset: the model has been fed every line before it
        self._set(tables)

    @classmethod
    def load(cls, path: Path, options: RaceOptions, *, growing: bool = False, use_sidecar: bool = True) -> "RaceTables":
        if growing:
            # Its sidecar is stale by the next frame: build the model that can be continued.
            model, _identity, end = build_model(path, options)
            return cls(path, options, model.tables(), model, end)
        return cls(path, options, load_tables(path, options, use_sidecar=use_sidecar))

    def covers(self, seq: int) -> bool:
        return seq <= self.tables["seq"]

    def extend(self) -> list[dict[str, Any]]:
        """Take in the lines written since the tables were made; returns the events that added."""
        known = {name: len(self.tables[name]) for name in _EVENT_TABLES}
        if self._model is None:
            # Finished when the replay started, growing now (its session resumed):
            # tables alone cannot be continued, a model can. It makes the same first rows.
            self._model, _identity, self._fed_to = build_model(self.path, self.options)
        else:
            with open_regular(self.path) as f:
                end = good_end(f)
                for _offset, event in iter_events(f, self._fed_to, end):
                    self._model.feed(event.seq, event.kind, event.data, event.t)
            self._fed_to = end
        self._set(self._model.tables())
        added = {name: self.tables[name][known[name]:] for name in _EVENT_TABLES}  # tables only ever append
        return events_after(added, 0, self.tables["seq"], all_laps=self.tables["laps"])

    def _set(self, tables: dict[str, Any]) -> None:
        self.tables = tables
        # Most frames cause no event: a bisection says so without going through
        # a long recording's tables at every frame.
        self._event_seqs = sorted(row["seq"] for name in _EVENT_TABLES for row in tables[name])
        self._lap_seqs = [row["seq"] for row in tables["laps"]]
        self._aggregates_for: int | None = None
        self._aggregates: tuple[float | None, float | None, int] = (None, None, 0)

    def events(self, after_seq: int, upto_seq: int) -> list[dict[str, Any]]:
        """The events of the frames after ``after_seq`` up to ``upto_seq``, in stream order."""
        first = bisect_right(self._event_seqs, after_seq)
        if first == len(self._event_seqs) or self._event_seqs[first] > upto_seq:
            return []
        return events_after(self.tables, after_seq, upto_seq)

    def frame_summary(self, seq: int, telemetry: object) -> dict[str, Any]:
        """The ``race`` object a live frame carries, for the recorded frame ``seq``.

        Per frame of a replay at up to 16x: the clean-lap averages are worked out
        once per number of laps completed (laps are in seq order), the rest is O(1).
        """
        completed = bisect_right(self._lap_seqs, seq)
        if self._aggregates_for != completed:
            laps = self.tables["laps"][:completed]
            recent = self.options.recent_laps
            self._aggregates = (fuel_per_lap(laps, recent), pace(laps, recent), len(clean_laps(laps, recent)))
            self._aggregates_for = completed
        per_lap, lap_pace, clean = self._aggregates
        tel = telemetry if isinstance(telemetry, dict) else {}
        sample = frame_sample(seq, tel)
        plan = strategy(per_lap=per_lap, lap_pace=lap_pace, clean=clean, fuel=sample.fuel, lap=sample.lap,
                        lap_time=sample.lap_time if sample.on_lap else None, reserve_laps=self.options.reserve_laps)
        stops = self.tables["pit_stops"]
        return {
            "car_state": _car_state(sample, stops, seq, self.options),
            "stint": 1 + sum(1 for stop in stops if stop["seq"] <= seq),
            "fuel_per_lap": plan["fuel_per_lap"],
            "laps_left": plan["laps_left"],
            "time_left": plan["time_left"],
            "box_by_lap": plan["box_by_lap"],
        }

    def until(self, seq: int, telemetry: dict[str, Any] | None) -> dict[str, Any]:
        """The tables as they stood at frame ``seq``, the strategy worked out for ``telemetry``."""
        # Without telemetry yet, the strategy is worked out from nothing rather than
        # left as it stood at the end of the recording.
        return tables_until(self.tables, seq, telemetry if isinstance(telemetry, dict) else {}, self.options)


def _car_state(sample: Any, stops: list[dict[str, Any]], seq: int, options: RaceOptions) -> str:
    """Where the car was at frame ``seq``, from the frame and the recorded stops (as the model says live)."""
    if not sample.on_lap:
        return "garage"
    for stop in stops:
        if stop["started_seq"] <= seq < stop["seq"]:
            return "in_pit" if sample.speed is not None and sample.speed < options.stationary_kmh else "pit_lane"
    return "on_track"


@dataclass
class _Command:
    name: str
    args: dict[str, Any]
    done: asyncio.Future


class Replay:
    """A replay room. Create through :class:`~racedash.replay.manager.ReplayManager`."""

    def __init__(
        self,
        *,
        replay_id: str,
        recording_id: str,
        path: Path,
        index: RecordingIndex,
        broadcaster: Broadcaster,
        clock: Clock,
        options: ReplayOptions = ReplayOptions(),
        is_live: Callable[[], bool] = lambda: False,
        speed: float = 1.0,
        paused: bool = False,
        on_emit: EmitHook | None = None,
        race: RaceTables | None = None,
        anonymous: bool = False,
    ) -> None:
        if not valid_speed(speed):
            raise InvalidControl(f"speed must be between {MIN_SPEED} and {MAX_SPEED}")
        self.id = replay_id
        self.recording_id = recording_id
        self.path = path
        self.index = index
        self.options = options
        self.viewers: set[str] = set()
        self.on_emit = on_emit
        self._broadcaster = broadcaster
        self._clock = clock
        self._is_live = is_live
        self._reader = RecordingReader(path)
        self._reader.seek(index.header_end)
        self._t0 = index.t0
        self._schedule = Schedule(anchor_time=clock.now(), speed=float(speed), paused=paused)
        self.status = PAUSED if paused else PLAYING
        self._next: tuple[int, Event] | None = None
        self._next_position = 0.0
        self._running = 0.0  # monotone position of the last event read
        self._setup: Event | None = None
        self._setup_offset: int | None = None
        self._telemetry: Event | None = None
        self._history = HistoryWindow(options.history_seconds, options.history_frames)
        self._lap: int | None = None
        self._laps_cache: tuple[list, int, list[dict[str, Any]]] | None = None
        self._race = race  # None: this replay tells no race facts
        # Started by a live session's viewer, not the team: the room never learns the session's id.
        self.anonymous = anonymous
        self.seeks = 0
        self.seek_seconds = 0.0
        self._race_seq = 0  # the last frame whose race facts this pass has told
        self._commands: deque[_Command] = deque()
        self._waiter: asyncio.Future | None = None
        self._next_state = clock.now()
        self.task: asyncio.Task | None = None
        self.stopped = asyncio.Event()

    # -- public controls (safe from any task) ---------------------------------
    def start(self) -> asyncio.Task:
        self.task = asyncio.get_running_loop().create_task(self._run(), name=f"replay-{self.id[:8]}")
        return self.task

    async def play(self) -> dict:
        return await self._command("play")

    async def pause(self) -> dict:
        return await self._command("pause")

    async def seek(self, position: float) -> dict:
        return await self._command("seek", position=position)

    async def seek_lap(self, lap: int) -> dict:
        return await self._command("seek", lap=lap)

    async def set_speed(self, speed: float) -> dict:
        return await self._command("speed", speed=speed)

    async def stop(self, reason: str = "stopped") -> dict:
        if self.status == STOPPED:
            return self.state()
        return await self._command("stop", reason=reason)

    async def join(self, sid: str, enter_room: EnterRoom) -> dict:
        """Put ``sid`` in the room and send it the state before any further frame."""
        return await self._command("join", sid=sid, enter_room=enter_room)

    async def control(self, action: str, *, time: float | None = None, lap: int | None = None,
                      speed: float | None = None) -> dict:
        """One transport action (``replay_control``); returns the new state."""
        if action in ("play", "resume"):
            return await self.play()
        if action == "pause":
            return await self.pause()
        if action == "stop":
            return await self.stop()
        if action == "speed":
            if speed is None or not valid_speed(speed):
                raise InvalidControl(f"speed must be a number between {MIN_SPEED} and {MAX_SPEED}")
            return await self.set_speed(float(speed))
        if action == "seek":
            if (time is None) == (lap is None):
                raise InvalidControl("seek takes either time (seconds) or lap")
            return await (self.seek(float(time)) if time is not None else self.seek_lap(int(lap)))  # type: ignore[arg-type]
        raise InvalidControl(f"unknown action {action!r}; expected one of {', '.join(sorted(ACTIONS))}")

    def leave(self, sid: str) -> None:
        self.viewers.discard(sid)

    # -- state ------------------------------------------------------------------
    @property
    def duration(self) -> float:
        return self.index.duration

    @property
    def position(self) -> float:
        if self.status == ENDED:
            return self.duration
        return min(max(self._schedule.position(self._clock.now()), 0.0), self.duration)

    @property
    def speed(self) -> float:
        return self._schedule.speed

    def state(self) -> dict[str, Any]:
        position = self.position
        state = {
            "session_id": self.id,
            "status": self.status,
            "position": round(position, 3),
            "duration": round(self.duration, 3),
            "speed": self.speed,
            "lap": self.index.lap_at(position),
            "laps": self._laps_payload(),
            "start": self._t0,
            "live": self._following(),
        }
        if not self.anonymous:
            state["recording_id"] = self.recording_id  # the team knows its recordings
        return state

    def _laps_payload(self) -> list[dict[str, Any]]:
        # Built again only when the index gained laps (a long recording has hundreds).
        laps = self.index.laps
        if self._laps_cache is None or self._laps_cache[0] is not laps or self._laps_cache[1] != len(laps):
            self._laps_cache = (laps, len(laps), [{"lap": s.lap, "t": round(s.position, 3)} for s in laps])
        return self._laps_cache[2]

    # -- the task ---------------------------------------------------------------
    async def _command(self, name: str, **args: Any) -> dict:
        if self.status == STOPPED or self.task is None or self.task.done():
            raise ReplayStopped(f"replay {self.id} has stopped")
        done = asyncio.get_running_loop().create_future()
        self._commands.append(_Command(name, args, done))
        self._wake()
        return await done

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def _sleep_until(self, deadline: float) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self._waiter = waiter
        timer = self._clock.call_at(deadline, self._wake)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None

    async def _run(self) -> None:
        try:
            await self._emit_state()
            while True:
                while self._commands:
                    await self._apply(self._commands.popleft())
                if self.status == STOPPED:
                    return
                now = self._clock.now()
                if now >= self._next_state:
                    await self._emit_state()
                deadline = self._next_state
                if self.status == PLAYING:
                    due = await self._emit_due(now)
                    if due is None:
                        continue  # state changed (ended) or frames emitted: look again
                    deadline = min(deadline, due)
                await self._sleep_until(deadline)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - a broken replay must stop alone, not take the server along
            log.exception("replay %s failed", self.id[:8])
        finally:
            self.status = STOPPED
            self._reader.close()
            for command in self._commands:
                if not command.done.done():
                    command.done.set_exception(ReplayStopped(f"replay {self.id} has stopped"))
            self._commands.clear()
            self.stopped.set()

    async def _emit_due(self, now: float) -> float | None:
        """Emit the frames that are due; the next due time, or None to re-check at once."""
        emitted = 0
        while emitted < _BURST:
            if self._next is None and not self._read_next():
                if self._following():
                    self._refresh_index()
                    return self._clock.now() + self.options.follow_interval
                self.status = ENDED
                self._schedule.pause(now)
                await self._emit_state()
                return None
            due = self._schedule.due(self._next_position)
            if due > self._clock.now():
                return due if emitted == 0 else None
            await self._emit_next(due)
            emitted += 1
            if self._commands:
                return None
        await asyncio.sleep(0)
        return None

    def _read_next(self) -> bool:
        read = self._reader.read_event()
        if read is None:
            return False
        event = read[1]
        if self._t0 is None:
            # The index was taken before the first event was written (a new live recording).
            self._refresh_index()
            self._t0 = self.index.t0 if self.index.t0 is not None else event.t
        self._running = max(event.t - self._t0, self._running)
        self._next, self._next_position = read, self._running
        return True

    async def _emit_next(self, due: float) -> None:
        assert self._next is not None
        (offset, event), position = self._next, self._next_position
        self._next = None
        if event.kind == "setup":
            self._setup, self._setup_offset = event, offset
        else:
            self._telemetry = event
            self._history.add(position, event)
        race = None
        if self._race is not None:
            await self._cover_race(event.seq)
            if event.kind == "telemetry":
                race = self._race.frame_summary(event.seq, event.data.get("telemetry"))  # as live frames carry
        message = frame_message(self.id, _as_frame(event), race)
        if self.on_emit is not None:
            self.on_emit(event.seq, due, self._clock.now())
        await self._broadcaster.room_message(self.id, EVENT_OF_KIND[event.kind], message)
        await self._emit_race_events(event.seq)
        if event.kind == "telemetry" and position > self.duration:
            self._refresh_index()  # a live recording grew past the index
        lap = self.index.lap_at(position)
        if lap != self._lap:
            self._lap = lap
            await self._emit_state()

    async def _emit_race_events(self, seq: int) -> None:
        """The race events of frame ``seq`` (just emitted), as live sends them after a frame."""
        if self._race is None:
            return
        events = self._race.events(self._race_seq, seq)
        self._race_seq = seq
        for event in events:
            await self._broadcaster.to_room(self.id, *wire_event(self.id, event))

    async def _cover_race(self, seq: int) -> None:
        """Race tables that reach frame ``seq``: a followed recording may have grown past them.

        A row carries the seq of the frame that made it known (a pit stop's is
        the frame where the car left), so tables extended up to a frame hold
        every event of the frames played so far: nothing is learnt late.
        """
        if self._race is not None and not self._race.covers(seq):
            await asyncio.to_thread(self._race.extend)

    async def _emit_state(self) -> None:
        self._next_state = self._clock.now() + self.options.state_interval
        if self._following():
            self._refresh_index()
        await self._broadcaster.to_room(self.id, "replay_state", self.state())

    def _following(self) -> bool:
        return self.status != STOPPED and self._is_live()

    def _refresh_index(self) -> None:
        self.index, _added = refresh_index(self.index, self.path)
        if self._t0 is None:
            self._t0 = self.index.t0

    # -- commands -----------------------------------------------------------------
    async def _apply(self, command: _Command) -> None:
        try:
            result = await getattr(self, f"_do_{command.name}")(**command.args)
        except asyncio.CancelledError:
            command.done.cancel()
            raise
        except Exception as exc:  # noqa: BLE001 - handed to the caller, who translates it
            if not command.done.done():
                command.done.set_exception(exc)
            return
        if not command.done.done():
            command.done.set_result(result)

    async def _do_play(self) -> dict:
        if self.status == ENDED:
            await self._seek_to(0.0)  # play after the end starts over (paused at 0 first)
        if self.status == PAUSED:
            self._schedule.resume(self._clock.now())
            self.status = PLAYING
            await self._emit_state()
        return self.state()

    async def _do_pause(self) -> dict:
        if self.status == PLAYING:
            self._schedule.pause(self._clock.now())
            self.status = PAUSED
            await self._emit_state()
        return self.state()

    async def _do_speed(self, speed: float) -> dict:
        self._schedule.set_speed(speed, self._clock.now())
        await self._emit_state()
        return self.state()

    async def _do_stop(self, reason: str) -> dict:
        self.status = STOPPED
        state = self.state()
        state["reason"] = reason
        await self._broadcaster.to_room(self.id, "replay_state", state)
        log.info("replay %s stopped (%s)", self.id[:8], reason)
        return state

    async def _do_seek(self, position: float | None = None, lap: int | None = None) -> dict:
        if self._following():
            self._refresh_index()
        if lap is not None:
            start = self.index.lap_start(lap)
            if start is None:
                raise UnknownLap(f"lap {lap} is not in this recording")
            position = start.position
        assert position is not None
        await self._seek_to(min(max(position, 0.0), self.duration))
        return self.state()

    async def _seek_to(self, position: float) -> None:
        started = time.perf_counter()
        snapshot: Snapshot = await asyncio.to_thread(
            snapshot_at,
            self.path,
            self.index,
            position,
            history_seconds=self.options.history_seconds,
            history_points=self.options.history_frames,
            known_setup=None if self._setup is None or self._setup_offset is None else (self._setup_offset, self._setup),
        )
        await self._cover_race(snapshot.seq)  # what it learns of earlier frames is in the tables sent below
        self._reader.seek(snapshot.resume_offset)
        self._next = None
        self._running = position
        self._race_seq = snapshot.seq  # a new pass: the frames from here on are told again
        self._setup, self._setup_offset, self._telemetry = snapshot.setup, snapshot.setup_offset, snapshot.telemetry
        self._history.clear()
        for history_position, event in snapshot.history:
            self._history.add(history_position, event)
        self._history.trim(position)
        self._lap = self.index.lap_at(position)
        self._schedule.seek(position, self._clock.now())
        if self.status == ENDED:
            self.status = PAUSED
            self._schedule.paused = True
        await self._emit_state()
        await self._send_snapshot(self._broadcaster.room_message, self.id)
        self.seeks += 1  # for /metrics: a seek's time until its state is handed to the room
        self.seek_seconds += time.perf_counter() - started

    async def _do_join(self, sid: str, enter_room: EnterRoom) -> dict:
        await enter_room(sid, self.id)
        self.viewers.add(sid)
        state = self.state()
        await self._broadcaster.to_client(sid, "replay_state", state)
        await self._send_snapshot(self._broadcaster.client_message, sid)
        return state

    async def _send_snapshot(self, send: Callable[[str, str, bytes], Awaitable[None]], to: str) -> None:
        """The state at the current point: last setup, chart history, last telemetry, race tables.

        Each event is encoded once, with orjson (racedash.wire): a setup is ~60 KB.
        """
        if self._setup is not None:
            await send(to, "setup_update", frame_message(self.id, _as_frame(self._setup)))
        head = {"session_id": self.id, "window_seconds": self.options.history_seconds}
        points = (history_point(_as_frame(e)) for e in self._history.frames(self._telemetry))
        await send(to, "telemetry_history", history_message(head, points))
        if self._telemetry is not None:
            await send(to, "telemetry_update", frame_message(self.id, _as_frame(self._telemetry)))
        if self._race is not None:
            telemetry = self._telemetry.data.get("telemetry") if self._telemetry is not None else None
            tables = {"session_id": self.id, **self._race.until(self._race_seq, telemetry)}
            await send(to, "race_tables", event_message("race_tables", tables))


def _as_frame(event: Event) -> Frame:
    return Frame(seq=event.seq, kind=event.kind, received=event.t, payload=event.data)
