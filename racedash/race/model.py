"""The race model of one session: laps, stints, pit stops, driver and setup changes.

Pure and incremental: feed the session's frames in ``seq`` order with
:meth:`RaceModel.feed`; each call returns the events that frame caused
(``lap_completed``, ``pit_stop``, ``driver_change``, ``setup_change``,
``alert``). :meth:`RaceModel.tables` is everything derived so far. No clock,
no I/O: the same stream gives the same tables live, in a replay at any speed,
after a seek or a restart.

Timing basis. Lap times come from the game's own ``lap_time`` clock: at the
line, the lap took the previous frame's ``lap_time`` plus the game time
between the two frames minus the new frame's ``lap_time``. The game time
between frames is the monitor-timestamp interval times the rate at which
``lap_time`` advances per timestamp second, measured within laps (1 for the
real game; the simulator's ``--speedup`` makes it larger). Server or browser
arrival times are never used.

Gaps. Two frames further apart than ``gap_seconds`` of monitor time (an
outage, a server restart, a silent publisher) make the laps they span
incomplete: listed, never counted in a best, an average or fuel per lap.

Pit stops. The monitor has no pit flag. A stop is seen as the car stationary
(or, at a coarse frame rate, simply serviced between two frames): fuel
added, tyres changed (wear back up) or another driver. Its pit lane is the
run of frames at or below ``pit_lane_kmh`` around it. A slow stop without
service (a spin) is not a pit stop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from racedash.race import setupdiff, strategy as strategy_math
from racedash.race.alerts import AlertOptions, AlertWatch
from racedash.race.units import (
    CORNERS,
    brake_temp_c,
    corners,
    fuel_litres,
    monitor_time,
    number,
    pressure_kpa,
    tyre_temp_c,
    wear_left,
)

LAP_COMPLETED = "lap_completed"
PIT_STOP = "pit_stop"
DRIVER_CHANGE = "driver_change"
SETUP_CHANGE = "setup_change"
ALERT = "alert"
EVENT_NAMES = (LAP_COMPLETED, PIT_STOP, DRIVER_CHANGE, SETUP_CHANGE, ALERT)

# Below these the signal is noise: fuel sloshing, wear rounding.
_REFUEL_LITRES = 0.3
_TYRE_CHANGE_WEAR = 0.02


@dataclass(frozen=True)
class RaceOptions:
    gap_seconds: float = 5.0  # monitor time between frames that makes the laps spanned incomplete
    pit_lane_kmh: float = 65.0  # at or below, next to a stop: the pit lane (limiters are 50-80 km/h)
    stationary_kmh: float = 1.0
    recent_laps: int = 5  # fuel per lap and pace: the last N clean laps
    reserve_laps: float = 0.3  # "box by lap N" keeps this much fuel in the tank
    alerts: AlertOptions = AlertOptions()


class _Stats:
    """Per-corner average and maximum of the known values of one lap."""

    __slots__ = ("sums", "counts", "maxima")

    def __init__(self) -> None:
        self.sums = dict.fromkeys(CORNERS, 0.0)
        self.counts = dict.fromkeys(CORNERS, 0)
        self.maxima: dict[str, float] = {}

    def add(self, values: dict[str, float]) -> None:
        for corner, value in values.items():
            self.sums[corner] += value
            self.counts[corner] += 1
            if corner not in self.maxima or value > self.maxima[corner]:
                self.maxima[corner] = value

    def averages(self) -> dict[str, float]:
        return {c: round(self.sums[c] / self.counts[c], 2) for c in CORNERS if self.counts[c]}

    def maximums(self) -> dict[str, float]:
        return {c: round(v, 2) for c, v in self.maxima.items()}


class _Lap:
    """The lap being driven."""

    def __init__(self, number: int, *, start_seen: bool, start_fuel: float | None, seq: int, t: float | None,
                 out_lap: bool = False) -> None:
        self.number = number
        self.start_seen = start_seen
        self.start_fuel = start_fuel
        self.start_seq = seq
        self.start_t = t
        self.gap = not start_seen
        self.fuel_added = 0.0
        self.in_lap = False
        self.out_lap = out_lap
        self.pit_lap = False
        self.tyres_changed = False
        self.wear_used = dict.fromkeys(CORNERS, 0.0)
        self.tyre_temps = _Stats()
        self.pressures = _Stats()
        self.brakes = _Stats()


class _Sample:
    """What the model keeps of the previous frame."""

    __slots__ = ("seq", "t", "lap", "lap_time", "fuel", "speed", "driver", "wear", "pressures", "tyre_temps", "brakes",
                 "position")

    def __init__(self, seq: int, t: float | None, telemetry: dict[str, Any]) -> None:
        self.seq = seq
        self.t = t
        lap = telemetry.get("lap")
        self.lap = lap if isinstance(lap, int) and not isinstance(lap, bool) else None
        self.lap_time = number(telemetry.get("lap_time"))
        self.fuel = fuel_litres(telemetry.get("fuel"))
        self.speed = number(telemetry.get("speed"))
        driver = telemetry.get("player_name")
        self.driver = driver if isinstance(driver, str) and driver else None
        self.wear = corners(telemetry.get("tire_wear"), wear_left)
        self.pressures = corners(telemetry.get("tire_pressures"), pressure_kpa)
        self.tyre_temps = corners(telemetry.get("tire_temps"), tyre_temp_c)
        self.brakes = corners(telemetry.get("brake_temps"), brake_temp_c)
        position = telemetry.get("position")
        self.position = position if type(position) is int and position > 0 else None

    @property
    def on_lap(self) -> bool:
        """Past the first timing line (before it the game counts ``lap_time`` up from below 0)."""
        return self.lap is not None and self.lap_time is not None and self.lap_time >= 0


class _Stop:
    """A pit stop in progress."""

    def __init__(self, seq: int, lap: int | None, entry_t: float | None, entry_lap: int | None) -> None:
        self.seq = seq
        self.lap = lap
        self.entry_t = entry_t
        self.entry_lap = entry_lap
        self.stationary_from: float | None = None
        self.stationary_to: float | None = None
        self.fuel_added = 0.0
        self.tyres_changed = False
        self.driver_from: str | None = None
        self.driver_to: str | None = None

    @property
    def serviced(self) -> bool:
        return self.fuel_added > 0 or self.tyres_changed or self.driver_to is not None


class RaceModel:
    def __init__(self, options: RaceOptions | None = None) -> None:
        self.options = options or RaceOptions()
        self.laps: list[dict[str, Any]] = []
        self.pit_stops: list[dict[str, Any]] = []
        self.driver_changes: list[dict[str, Any]] = []
        self.setup_changes: list[dict[str, Any]] = []
        self.alerts: list[dict[str, Any]] = []
        self.seq = 0  # the last seq fed
        self._prev: _Sample | None = None
        self._lap: _Lap | None = None
        self._rate = 1.0  # game seconds of lap_time per second of monitor timestamp
        self._stint = 1
        self._stop: _Stop | None = None
        self._slow_since: tuple[float | None, int | None] | None = None  # (t, lap) of the first slow frame
        self._setup_values: dict[str, Any] | None = None  # shown values only: a setup is ~60 KB
        self._alerts = AlertWatch(self.options.alerts)
        self._position: int | None = None  # at the line: the last frame's before it
        self._aggregates_key: tuple[int, int] | None = None
        self._aggregates: tuple[float | None, float | None, int] = (None, None, 0)

    # -- feeding ---------------------------------------------------------------------
    def feed(self, seq: int, kind: str, payload: dict[str, Any], received: float | None = None) -> list[dict[str, Any]]:
        """One frame of the session (``kind`` "setup" or "telemetry", the payload as published)."""
        if seq <= self.seq:
            return []  # already counted (a resumed model fed an overlapping stream)
        self.seq = seq
        if kind == "setup":
            return self._feed_setup(seq, payload, received)
        telemetry = payload.get("telemetry") if isinstance(payload, dict) else None
        if not isinstance(telemetry, dict):
            return []
        return self._feed_telemetry(seq, telemetry, received)

    def _feed_setup(self, seq: int, payload: dict[str, Any], received: float | None) -> list[dict[str, Any]]:
        values = setupdiff.shown_values(payload.get("setup"))
        if not values:
            return []  # the game's API gave nothing: not a change
        previous, self._setup_values = self._setup_values, values
        if previous is None:
            return []
        changes = setupdiff.changed_settings(previous, values)
        if not changes:
            return []
        event = {
            "seq": seq,
            "t": monitor_time(payload.get("timestamp")) or received,
            "lap": self._prev.lap if self._prev else None,
            "changes": changes,
        }
        self.setup_changes.append(event)
        return [{"event": SETUP_CHANGE, **event}]

    def _feed_telemetry(self, seq: int, telemetry: dict[str, Any], received: float | None) -> list[dict[str, Any]]:
        t = monitor_time(telemetry.get("timestamp"))
        if t is None:
            t = received
        cur = _Sample(seq, t, telemetry)
        prev = self._prev
        events: list[dict[str, Any]] = []
        gap = prev is not None and (prev.t is None or t is None or not 0 <= t - prev.t <= self.options.gap_seconds)
        if prev is not None and not gap:
            self._measure_rate(prev, cur)
        events += self._laps_step(prev, cur, gap)
        events += self._pit_step(prev, cur, gap)
        # Across a gap too: another name, more fuel or fresher tyres after it are proof enough.
        if prev is not None and prev.driver and cur.driver and prev.driver != cur.driver:
            change = {"seq": seq, "t": t, "lap": cur.lap, "from": prev.driver, "to": cur.driver}
            self.driver_changes.append(change)
            events.append({"event": DRIVER_CHANGE, **change})
        if self._lap is not None:
            self._accumulate(self._lap, prev if not gap else None, cur)
        if cur.position is not None:
            self._position = cur.position
        for alert in self._alerts.check(cur, in_pit_lane=self._stop is not None, strategy=lambda: self._strategy_for(cur)):
            alert.update(seq=seq, t=t, lap=cur.lap)
            self.alerts.append(alert)
            events.append({"event": ALERT, **alert})
        self._prev = cur
        return events

    def _measure_rate(self, prev: _Sample, cur: _Sample) -> None:
        if prev.lap != cur.lap or prev.lap_time is None or cur.lap_time is None or prev.t is None or cur.t is None:
            return
        elapsed = cur.t - prev.t
        advanced = cur.lap_time - prev.lap_time
        if elapsed > 0 and advanced > 0:
            rate = advanced / elapsed
            if 0.05 <= rate <= 1000.0:
                self._rate = rate

    def note(self, kind: str, severity: str, message: str, t: float | None) -> dict[str, Any]:
        """An alert the stream cannot tell of by itself (the live session's clock: stale data, publisher gone)."""
        alert = {"kind": kind, "severity": severity, "corner": None, "message": message,
                 "seq": self.seq, "t": t, "lap": self._prev.lap if self._prev else None}
        self.alerts.append(alert)
        return {"event": ALERT, **alert}

    # -- laps -------------------------------------------------------------------------
    def _laps_step(self, prev: _Sample | None, cur: _Sample, gap: bool) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        if cur.lap is None:
            return events
        if prev is None or prev.lap is None:
            if cur.on_lap:
                seen = self._just_after_line(cur)
                self._lap = _Lap(cur.lap, start_seen=seen, start_fuel=cur.fuel if seen else None, seq=cur.seq, t=cur.t)
            return events
        if cur.lap > prev.lap:
            line_time, line_fuel = self._at_the_line(prev, cur, gap)
            lap = self._lap
            first_unseen = prev.lap
            if lap is not None and lap.number == prev.lap:
                events.append(self._complete(lap, cur, line_time, line_fuel, gap or cur.lap - prev.lap > 1))
                first_unseen = prev.lap + 1
            for unseen in range(first_unseen, cur.lap):
                events.append(self._complete_unseen(unseen, cur))
            if not gap and cur.lap == prev.lap + 1 and cur.on_lap:
                self._lap = _Lap(cur.lap, start_seen=True, start_fuel=line_fuel, seq=cur.seq, t=cur.t)
            else:
                seen = cur.on_lap and self._just_after_line(cur)
                self._lap = _Lap(cur.lap, start_seen=seen, start_fuel=cur.fuel if seen else None, seq=cur.seq, t=cur.t)
        elif cur.lap < prev.lap:
            # A new game session: the lap in progress ends unseen, counting starts again.
            if self._lap is not None:
                events.append(self._complete(self._lap, cur, None, None, True))
            self._lap = _Lap(cur.lap, start_seen=False, start_fuel=None, seq=cur.seq, t=cur.t) if cur.on_lap else None
        elif gap and self._lap is not None and self._lap.number == cur.lap:
            self._lap.gap = True  # the data stopped and came back within this lap
        elif self._lap is None and cur.on_lap:
            # First crossing of the timing line (lap_time turns from negative to counting up):
            # the car came out of the garage, so this is an out-lap.
            seen = not gap and prev.lap_time is not None and prev.lap_time < 0
            self._lap = _Lap(cur.lap, start_seen=seen, start_fuel=cur.fuel if seen else None, seq=cur.seq, t=cur.t,
                             out_lap=seen)
        return events

    def _just_after_line(self, cur: _Sample) -> bool:
        """A lap first seen this soon after its line is seen whole: less than a gap of it is missing."""
        return cur.lap_time is not None and 0 <= cur.lap_time <= self.options.gap_seconds * self._rate

    def _at_the_line(self, prev: _Sample, cur: _Sample, gap: bool) -> tuple[float | None, float | None]:
        """(lap time, fuel) when the car crossed the line between ``prev`` and ``cur``."""
        if gap or prev.lap_time is None or cur.lap_time is None or prev.t is None or cur.t is None:
            return None, None
        if prev.lap_time < 0 or cur.lap_time < 0:
            return None, None
        between = self._rate * (cur.t - prev.t)  # game seconds between the two frames
        before_line = between - cur.lap_time
        if before_line < 0:
            return None, None
        lap_time = prev.lap_time + before_line
        fuel = None
        if prev.fuel is not None and cur.fuel is not None:
            if cur.fuel > prev.fuel + _REFUEL_LITRES:
                fuel = prev.fuel  # refuelled just after the line: the in-lap ended with what it had
            elif between > 0:
                fuel = prev.fuel + (cur.fuel - prev.fuel) * (before_line / between)
        return lap_time, fuel

    def _complete(self, lap: _Lap, cur: _Sample, lap_time: float | None, end_fuel: float | None, gap: bool) -> dict[str, Any]:
        incomplete = lap.gap or gap or not lap.start_seen or lap_time is None
        fuel_used = None
        if not incomplete and lap.start_fuel is not None and end_fuel is not None:
            fuel_used = round(lap.start_fuel + lap.fuel_added - end_fuel, 3)
        row = {
            "lap": lap.number,
            "time": round(lap_time, 3) if lap_time is not None and lap_time > 0 else None,
            "start_fuel": _round(lap.start_fuel),
            "end_fuel": _round(end_fuel),
            "fuel_used": fuel_used,
            "fuel_added": round(lap.fuel_added, 2),
            "in_lap": lap.in_lap,
            "out_lap": lap.out_lap,
            "pit_lap": lap.pit_lap,
            "incomplete": incomplete,
            "clean": False,
            "stint": self._stint,
            "driver": (self._prev.driver if self._prev else None),
            "position": self._position,
            "tyres_changed": lap.tyres_changed,
            "tyre_temp_avg": lap.tyre_temps.averages(),
            "tyre_temp_max": lap.tyre_temps.maximums(),
            "pressure_avg": lap.pressures.averages(),
            "wear_used": {c: round(v, 4) for c, v in lap.wear_used.items()},
            "brake_temp_avg": lap.brakes.averages(),
            "brake_temp_max": lap.brakes.maximums(),
            "start_t": lap.start_t,
            "end_t": cur.t,
            "seq": cur.seq,
        }
        row["clean"] = not (row["incomplete"] or row["in_lap"] or row["out_lap"] or row["pit_lap"]) and row["time"] is not None
        self.laps.append(row)
        return {"event": LAP_COMPLETED, "seq": cur.seq, "t": cur.t, "lap": row, "stints": self.stints()}

    def _complete_unseen(self, number: int, cur: _Sample) -> dict[str, Any]:
        """A lap driven entirely inside a data gap: listed so the table has no hole."""
        row = {
            "lap": number, "time": None, "start_fuel": None, "end_fuel": None, "fuel_used": None, "fuel_added": 0.0,
            "in_lap": False, "out_lap": False, "pit_lap": False, "incomplete": True, "clean": False,
            "stint": self._stint, "driver": None, "position": None, "tyres_changed": False,
            "tyre_temp_avg": {}, "tyre_temp_max": {}, "pressure_avg": {}, "wear_used": {},
            "brake_temp_avg": {}, "brake_temp_max": {}, "start_t": None, "end_t": None, "seq": cur.seq,
        }
        self.laps.append(row)
        return {"event": LAP_COMPLETED, "seq": cur.seq, "t": cur.t, "lap": row, "stints": self.stints()}

    def _accumulate(self, lap: _Lap, prev: _Sample | None, cur: _Sample) -> None:
        if not cur.on_lap:
            return
        lap.tyre_temps.add(cur.tyre_temps)
        lap.pressures.add(cur.pressures)
        lap.brakes.add(cur.brakes)
        if prev is None:
            return
        if prev.fuel is not None and cur.fuel is not None and cur.fuel > prev.fuel + _REFUEL_LITRES:
            lap.fuel_added += cur.fuel - prev.fuel
        for corner, left in cur.wear.items():
            before = prev.wear.get(corner)
            if before is None:
                continue
            if left > before + _TYRE_CHANGE_WEAR:
                lap.tyres_changed = True
            elif left < before:
                lap.wear_used[corner] += before - left

    # -- pit stops ---------------------------------------------------------------------
    def _pit_step(self, prev: _Sample | None, cur: _Sample, gap: bool) -> list[dict[str, Any]]:
        opts = self.options
        slow = cur.on_lap and cur.speed is not None and cur.speed <= opts.pit_lane_kmh
        if slow and self._slow_since is None:
            # The car entered the lane after the last fast frame: at a coarse frame rate that
            # may be in the lap before (the timing line often crosses the pit lane).
            self._slow_since = (cur.t, prev.lap if prev is not None and prev.on_lap and not gap else cur.lap)
        stationary = slow and cur.speed is not None and cur.speed < opts.stationary_kmh
        refuel = tyres = 0.0
        driver_change = None
        if prev is not None and cur.on_lap:
            if prev.fuel is not None and cur.fuel is not None and cur.fuel > prev.fuel + _REFUEL_LITRES:
                refuel = cur.fuel - prev.fuel
            if any(left > prev.wear.get(c, 1.0) + _TYRE_CHANGE_WEAR for c, left in cur.wear.items()):
                tyres = 1.0
            if prev.driver and cur.driver and prev.driver != cur.driver:
                driver_change = (prev.driver, cur.driver)
        serviced = refuel > 0 or tyres > 0 or driver_change is not None
        stop = self._stop
        if stop is None and (stationary or serviced):
            entry_t, entry_lap = self._slow_since if self._slow_since is not None else (prev.t if prev else cur.t,
                                                                                       prev.lap if prev else cur.lap)
            stop = self._stop = _Stop(cur.seq, cur.lap, entry_t, entry_lap)
            if self._lap is not None:
                self._lap.pit_lap = True
        events: list[dict[str, Any]] = []
        if stop is not None:
            if stationary:
                if stop.stationary_from is None:
                    stop.stationary_from = cur.t
                stop.stationary_to = cur.t
            stop.fuel_added += refuel
            stop.tyres_changed = stop.tyres_changed or tyres > 0
            if driver_change is not None:
                stop.driver_from = stop.driver_from or driver_change[0]
                stop.driver_to = driver_change[1]
            if not slow:
                events += self._close_stop(stop, prev, cur)
        if not slow:
            self._slow_since = None
        return events

    def _close_stop(self, stop: _Stop, prev: _Sample | None, cur: _Sample) -> list[dict[str, Any]]:
        self._stop = None
        if not stop.serviced:
            return []  # stationary without service: a spin or a stall, not a pit stop
        exit_t = prev.t if prev is not None and prev.on_lap and prev.speed is not None and prev.speed <= self.options.pit_lane_kmh else cur.t
        stationary = None
        if stop.stationary_from is not None and stop.stationary_to is not None and stop.stationary_to > stop.stationary_from:
            stationary = round((stop.stationary_to - stop.stationary_from) * self._rate, 1)
        lane = None
        if stop.entry_t is not None and exit_t is not None and exit_t > stop.entry_t:
            lane = round((exit_t - stop.entry_t) * self._rate, 1)
        amended = []
        for row in self.laps:
            if row["lap"] == stop.entry_lap and stop.entry_lap != stop.lap and not row["in_lap"]:
                row["in_lap"] = True
                row["clean"] = False
                amended.append(row)
        if self._lap is not None:
            self._lap.out_lap = True
        record = {
            "number": len(self.pit_stops) + 1,
            "seq": cur.seq,  # the frame that closed it (the event's frame); where it began:
            "started_seq": stop.seq,
            "t": cur.t,
            "lap": stop.lap,
            "entry_lap": stop.entry_lap,
            "stationary_seconds": stationary,
            "pit_lane_seconds": lane,
            "fuel_added": round(stop.fuel_added, 2),
            "tyres_changed": stop.tyres_changed,
            "driver_change": {"from": stop.driver_from, "to": stop.driver_to} if stop.driver_to else None,
            "stint_ended": self._stint,
        }
        self.pit_stops.append(record)
        self._stint += 1
        self._alerts.new_stint()
        return [{"event": PIT_STOP, **record, "amended_laps": amended, "stints": self.stints()}]

    # -- what is derived ---------------------------------------------------------------
    def _clean_aggregates(self) -> tuple[float | None, float | None, int]:
        """(fuel per lap, pace, clean laps counted): recomputed only when the laps changed."""
        key = (len(self.laps), len(self.pit_stops))  # a stop may amend a lap's flags
        if self._aggregates_key != key:
            recent = self.options.recent_laps
            self._aggregates = (
                strategy_math.fuel_per_lap(self.laps, recent),
                strategy_math.pace(self.laps, recent),
                len(strategy_math.clean_laps(self.laps, recent)),
            )
            self._aggregates_key = key
        return self._aggregates

    def _strategy_for(self, cur: _Sample | None, target_laps: int | None = None,
                      target_seconds: float | None = None) -> dict[str, Any]:
        per_lap, lap_pace, clean = self._clean_aggregates()
        return strategy_math.strategy(
            per_lap=per_lap, lap_pace=lap_pace, clean=clean,
            fuel=cur.fuel if cur else None,
            lap=cur.lap if cur else None,
            lap_time=cur.lap_time if cur and cur.on_lap else None,
            reserve_laps=self.options.reserve_laps,
            target_laps=target_laps, target_seconds=target_seconds,
        )

    def strategy(self, target_laps: int | None = None, target_seconds: float | None = None) -> dict[str, Any]:
        """Fuel and pace now; with a target (laps, or seconds to the finish), the fuel to add for it."""
        return self._strategy_for(self._prev, target_laps, target_seconds)

    def frame_summary(self) -> dict[str, Any]:
        """What a dashboard shows with each telemetry frame (sent along with it as ``race``)."""
        plan = self._strategy_for(self._prev)
        return {
            "car_state": self.car_state(),
            "stint": self._stint,
            "fuel_per_lap": plan["fuel_per_lap"],
            "laps_left": plan["laps_left"],
            "time_left": plan["time_left"],
            "box_by_lap": plan["box_by_lap"],
        }

    def car_state(self) -> str:
        cur = self._prev
        if cur is None:
            return "unknown"
        if not cur.on_lap:
            return "garage"
        if self._stop is not None:
            return "in_pit" if cur.speed is not None and cur.speed < self.options.stationary_kmh else "pit_lane"
        return "on_track"

    def stints(self) -> list[dict[str, Any]]:
        return strategy_math.stints(self.laps)

    def tables(self) -> dict[str, Any]:
        """Everything derived so far, as sent to a joining viewer (``race_tables``)."""
        return {
            "seq": self.seq,
            "laps": self.laps,
            "stints": self.stints(),
            "pit_stops": self.pit_stops,
            "driver_changes": self.driver_changes,
            "setup_changes": self.setup_changes,
            "alerts": self.alerts,
            "strategy": self.strategy(),
            "car_state": self.car_state(),
        }


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def tables_until(tables: dict[str, Any], seq: int, telemetry: dict[str, Any] | None = None,
                 options: RaceOptions | None = None) -> dict[str, Any]:
    """The tables as they stood once frame ``seq`` had been fed (a replay's position).

    Rows and events carry the seq of the frame that produced them. The strategy
    is worked out again for ``telemetry`` (the frame at that position) when given.
    """
    options = options or RaceOptions()
    laps = [lap for lap in tables["laps"] if lap["seq"] <= seq]
    cut = {
        **tables,
        "seq": seq,
        "laps": laps,
        "stints": strategy_math.stints(laps),
        "pit_stops": [e for e in tables["pit_stops"] if e["seq"] <= seq],
        "driver_changes": [e for e in tables["driver_changes"] if e["seq"] <= seq],
        "setup_changes": [e for e in tables["setup_changes"] if e["seq"] <= seq],
        "alerts": [e for e in tables["alerts"] if e["seq"] <= seq],
        "car_state": None,
    }
    if telemetry is not None:
        cur = _Sample(seq, monitor_time(telemetry.get("timestamp")), telemetry)
        recent = options.recent_laps
        cut["strategy"] = strategy_math.strategy(
            per_lap=strategy_math.fuel_per_lap(laps, recent), lap_pace=strategy_math.pace(laps, recent),
            clean=len(strategy_math.clean_laps(laps, recent)), fuel=cur.fuel, lap=cur.lap,
            lap_time=cur.lap_time if cur.on_lap else None, reserve_laps=options.reserve_laps,
        )
    return cut


def events_after(tables: dict[str, Any], after_seq: int, upto_seq: int,
                 all_laps: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """The events of frames after ``after_seq`` up to ``upto_seq``, in stream order (a rejoin's gap).

    ``all_laps``: where a pit stop's in-lap is looked up, when ``tables`` holds only some rows.
    """
    named = [(LAP_COMPLETED, "laps"), (PIT_STOP, "pit_stops"), (DRIVER_CHANGE, "driver_changes"),
             (SETUP_CHANGE, "setup_changes"), (ALERT, "alerts")]
    events = []
    for event, table in named:
        for row in tables[table]:
            if after_seq < row["seq"] <= upto_seq:
                laps = all_laps if all_laps is not None else tables["laps"]
                if event == LAP_COMPLETED:
                    body = {"seq": row["seq"], "t": row.get("end_t"), "lap": row, "stints": _stints_at(laps, row["seq"])}
                elif event == PIT_STOP:
                    body = {**row, "amended_laps": _in_lap_of(laps, row), "stints": _stints_at(laps, row["seq"])}
                else:
                    body = row
                events.append({"event": event, **body})
    events.sort(key=lambda e: e["seq"])
    return events


def _in_lap_of(laps: list[dict[str, Any]], stop: dict[str, Any]) -> list[dict[str, Any]]:
    """As live tells a stop: with the in-lap's row, sent before the stop set its in_lap flag."""
    if stop["entry_lap"] == stop["lap"]:
        return []  # entered the lane in the lap it stopped in: no lap before it changed
    return [row for row in laps if row["lap"] == stop["entry_lap"] and row["in_lap"] and row["seq"] <= stop["seq"]][-1:]


def frame_sample(seq: int, telemetry: dict[str, Any]) -> _Sample:
    """What the model reads of one telemetry frame (units converted, unknowns None)."""
    return _Sample(seq, monitor_time(telemetry.get("timestamp")), telemetry)


def _stints_at(laps: list[dict[str, Any]], seq: int) -> list[dict[str, Any]]:
    """The stint table as live told it with the event of frame ``seq``."""
    return strategy_math.stints([lap for lap in laps if lap["seq"] <= seq])
