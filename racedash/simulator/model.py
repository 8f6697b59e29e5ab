"""The stint model: a pure, seeded, physics-lite simulation of one car's endurance stint.

Nothing here touches a clock, a socket or global random state. ``StintModel``
advances by :meth:`StintModel.step` and returns what a monitor would publish,
so a 20-lap stint runs in well under a second in a test, and the same seed
always gives the same stream.

How the pieces fit:

* Everything random is drawn once per lap, when the car crosses the line
  (:class:`Lap`): pace, fuel burn, tyre wear rates, traffic, mistakes, weather
  drift, position changes, pit decisions. Lap position, speed, fuel and wear
  are then closed-form functions of the time spent in the lap, so the stream
  does not depend on how often it is sampled.
* Only temperatures (tyre core and surface, brakes, engine water) are
  integrated, with first-order lags on a fixed tick (:data:`TICK_S`) on an
  absolute time grid, which again keeps the result independent of the step.
* The game's oddities are reproduced on purpose: in the garage tyre
  temperatures are -273.15, pressures 0, engine water 0 and position 0; before
  the car first crosses the line ``lap_time`` is negative and counts up to 0;
  brake temperatures are published in Kelvin (tyres, water and air in °C),
  although the thermal model itself works in °C.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable

from racedash.simulator.setup_sheet import SetupSheet, brake_balance_front, pressure_kpa
from racedash.simulator.track import IMOLA, SpeedProfile, Track

TICK_S = 0.2  # temperature integration step (sim seconds); braking zones last 1-2 s
CORNERS = ("fl", "fr", "rl", "rr")
UNKNOWN_TEMP = -273.15  # what the game reports for a temperature it does not know
KELVIN = 273.15  # °C to K: the game's shared memory reports brake temperatures in Kelvin

SETUP = "setup"
TELEMETRY = "telemetry"


def _decay(tau: float) -> float:
    """Per-tick factor of a first-order lag with time constant ``tau`` seconds."""
    return math.exp(-TICK_S / tau)


# Thermal time constants (s) as per-tick factors: tyre cores warm over ~2 laps,
# surfaces and brakes react within a braking zone, engine water over minutes.
_K_CORE = {"track": _decay(45.0), "limiter": _decay(60.0), "stop": _decay(150.0), "garage": _decay(150.0)}
_CORE_OFFSET = {"fl": 4.0, "fr": 1.0, "rl": 2.5, "rr": 0.0}  # corner-to-corner spread at racing speed
_OFFSET_SHARE = {"track": 1.0, "limiter": 0.4, "stop": 0.0, "garage": 0.0}
_K_SURFACE = _decay(2.5)
_K_BRAKE_HEAT = _decay(0.9)
_K_BRAKE_COOL = {"track": _decay(7.0), "limiter": _decay(15.0), "stop": _decay(60.0), "garage": _decay(60.0)}
_BRAKE_IDLE = {"track": 200.0, "limiter": 150.0, "stop": 5.0, "garage": 5.0}  # above ambient
_K_WATER_RUN = _decay(90.0)
_K_WATER_OFF = _decay(900.0)

_FIRST_NAMES = ("Alex", "Jonas", "Priya", "Mateo", "Sofie", "Kenji", "Lea", "Tomas", "Ines", "Rafael", "Mara", "Oskar")
_LAST_NAMES = ("Moreau", "Keller", "Natarajan", "Okafor", "Lindqvist", "Sato", "Varga", "Costa", "Brennan", "Duval")
_TEAMS = ("Racedash Motorsport", "Apex Endurance", "Blue Line Racing", "Kestrel Sport", "Northwall Racing")


@dataclass(frozen=True)
class CarSpec:
    number: int
    team: str
    drivers: tuple[str, ...]
    car_class: str = "LMP2"
    fuel_capacity: float = 75.0
    burn_per_lap: float = 3.05  # litres per lap at this track, before variance
    gear_top_kmh: tuple[float, ...] = (0.0, 118.0, 155.0, 190.0, 224.0, 257.0, 288.0, 318.0)
    redline_rpm: float = 9000.0
    field_size: int = 24

    @property
    def name(self) -> str:
        """As the game spells it: ``<team> #<number>:<class>``."""
        return f"{self.team} #{self.number}:{self.car_class}"


def random_car(rng: random.Random, drivers: int = 3) -> CarSpec:
    names: list[str] = []
    while len(names) < drivers:
        name = f"{rng.choice(_FIRST_NAMES)} {rng.choice(_LAST_NAMES)}"
        if name not in names:
            names.append(name)
    return CarSpec(number=rng.randint(2, 99), team=rng.choice(_TEAMS), drivers=tuple(names))


@dataclass(frozen=True)
class StintConfig:
    seed: int
    track: Track = IMOLA
    car: CarSpec | None = None  # None: a car and its drivers drawn from the seed
    laps: int | None = None  # finish after this many laps; None runs until stopped
    session_type: str = "Practice"
    garage_s: float = 15.0  # time in the garage before the car leaves
    start: datetime = datetime(2025, 11, 22, 14, 0, 0)  # naive UTC, as the monitor writes it
    time_scale: float = 1.0  # timestamps advance sim_seconds / time_scale (the publisher's speedup)
    ambient_c: float | None = None  # None: drawn from the seed


@dataclass(frozen=True)
class Publication:
    """One message the monitor would send: a setup or a telemetry frame."""

    kind: str  # SETUP or TELEMETRY
    sim_time: float
    payload: dict  # SETUP: {"timestamp", "setup"}; TELEMETRY: the telemetry object


@dataclass(frozen=True)
class LapRecord:
    """A completed lap, for summaries and tests."""

    number: int
    lap_time: float
    fuel_start: float  # at the line, before any stop at the start of the lap
    fuel_end: float
    stopped: bool  # the lap began with a pit stop
    refuel_l: float
    new_tyres: bool
    driver: str
    wear_end: dict
    position_end: int
    pit_in: bool  # the lap ends in the pit lane


@dataclass
class _Segment:
    kind: str  # "garage", "stop", "limiter", "track"
    start: float  # offset in the lap, seconds
    duration: float
    p0: float  # lap distance fraction at the start
    p1: float  # ... and at the end (1.0 = the line)

    @property
    def end(self) -> float:
        return self.start + self.duration


@dataclass
class _Lap:
    number: int  # the lap shown; the pre-line phase is lap 1 too, with negative lap_time
    start: float
    pre_line: bool
    segments: list[_Segment]
    fuel_start: float
    refuel_l: float
    refuel_from: float  # offset when refuelling starts
    refuel_s: float
    burn_l: float  # for a whole lap's distance
    wear_start: dict
    wear_rate: dict
    position_start: int
    position_end: int
    position_change_at: float
    ambient: tuple[float, float]
    track_temp: tuple[float, float]
    events: list[tuple[float, Callable[[], None]]] = field(default_factory=list)
    pit_in: bool = False
    stopped: bool = False
    new_tyres: bool = False
    tyres_fitted_at: float | None = None
    duration: float = field(init=False, default=0.0)
    end: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        # Segments are fixed when the lap begins; these are read on every tick.
        self.duration = self.segments[-1].end
        self.end = self.start + self.duration


@dataclass
class _Where:
    distance: float  # covered since the lap's start, in laps (0..1)
    speed_kmh: float
    braking: float
    accelerating: float
    mode: str  # segment kind


class StintModel:
    """One car's stint. ``start()`` once, then ``step(dt)`` as often as you like."""

    def __init__(self, config: StintConfig) -> None:
        self.config = config
        self.track = config.track
        self.profile = SpeedProfile(config.track)
        seed = config.seed
        # Separate streams so that, e.g., a different car does not reshuffle the laps.
        self._laps_rng = random.Random(f"{seed}:laps")
        car_rng = random.Random(f"{seed}:car")
        self.car = config.car or random_car(car_rng)
        self._skill = {d: car_rng.uniform(-0.4, 0.7) for d in self.car.drivers}
        self._wear_factor = {d: car_rng.uniform(0.9, 1.12) for d in self.car.drivers}
        self.sheet = SetupSheet(
            random.Random(f"{seed}:setup"),
            vehicle_name=self.car.name,
            team_name=self.car.team,
            driver_names=list(self.car.drivers),
            fuel_capacity=self.car.fuel_capacity,
            burn_per_lap=self.car.burn_per_lap,
            gear_top_kmh=self.car.gear_top_kmh,
        )
        self.time = 0.0
        self.finished = False
        self.laps: list[LapRecord] = []
        self.driver = self.car.drivers[0]
        self._driver_index = 0
        self._started = False
        self._pending: list[Publication] = []
        self._event_time = 0.0  # sim time of the lap event being run
        self._share: dict = {}
        self._share_for: int | None = None
        rng = self._laps_rng
        ambient = config.ambient_c if config.ambient_c is not None else rng.uniform(18.0, 30.0)
        self._ambient0 = ambient
        self._weather = (ambient, ambient + rng.uniform(8.0, 16.0))
        self._position = rng.randint(6, min(16, self.car.field_size))
        self._stint_first_lap = 1
        self._laps_since_stop = 0
        self._setup_change_lap = 1 + rng.randint(2, 5)
        # thermal state, integrated on the tick grid
        self._tick_time = 0.0
        self._tyre_core = {c: ambient for c in CORNERS}
        self._tyre_surface = {c: 0.0 for c in CORNERS}
        self._brakes = {c: ambient + 5.0 for c in CORNERS}
        self._water = ambient
        self._tyre_set_c = ambient  # cold pressures were set at this temperature
        self._wear_after_change: dict | None = None
        fuel = min(self.car.fuel_capacity, self.car.burn_per_lap * rng.uniform(8.5, 10.0))
        self._lap = self._pre_line_lap(fuel)

    # -- public API -----------------------------------------------------------
    def start(self) -> list[Publication]:
        """The setup and the first frame, as the monitor sends them when it connects."""
        if self._started:
            raise RuntimeError("start() was already called")
        self._started = True
        return [self._setup_publication(), Publication(TELEMETRY, self.time, self._telemetry())]

    def step(self, dt: float) -> list[Publication]:
        """Advance ``dt`` sim seconds; returns any setup changes, then the telemetry frame."""
        if not self._started:
            raise RuntimeError("call start() first")
        if dt <= 0:
            raise ValueError("dt must be positive")
        target = self.time + dt
        while not self.finished and self._tick_time + TICK_S <= target + 1e-9:
            self._advance(self._tick_time + TICK_S)
            self._integrate(self._tick_time + TICK_S)
            self._tick_time += TICK_S
        if not self.finished:
            self._advance(target)
            self.time = target
        published, self._pending = self._pending, []
        return published + [Publication(TELEMETRY, self.time, self._telemetry())]

    def timestamp(self, sim_time: float) -> str:
        moment = self.config.start + timedelta(seconds=sim_time / self.config.time_scale)
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    # -- laps ---------------------------------------------------------------
    def _pre_line_lap(self, fuel: float) -> _Lap:
        """Garage, then the pit lane up to the line: lap 1 with a negative lap_time."""
        track = self.track
        lane = self._limiter(track.garage_at, 1.0, 0.0)
        garage = _Segment("garage", 0.0, self.config.garage_s, track.garage_at, track.garage_at)
        lane.start = garage.end
        return _Lap(
            number=1,
            start=0.0,
            pre_line=True,
            segments=[garage, lane],
            fuel_start=fuel,
            refuel_l=0.0,
            refuel_from=0.0,
            refuel_s=0.0,
            burn_l=self.car.burn_per_lap,
            wear_start={c: 1.0 for c in CORNERS},
            wear_rate={c: 0.0 for c in CORNERS},
            position_start=self._position,
            position_end=self._position,
            position_change_at=1.0,
            ambient=(self._weather[0], self._weather[0]),
            track_temp=(self._weather[1], self._weather[1]),
        )

    def _limiter(self, p0: float, p1: float, start: float) -> _Segment:
        metres = ((p1 - p0) % 1.0) * self.track.length_m
        return _Segment("limiter", start, metres / (self.track.pit_speed_kmh / 3.6), p0, p1)

    def _begin_lap(self, start: float, previous: _Lap) -> _Lap:
        rng = self._laps_rng
        car, track = self.car, self.track
        number = 1 if previous.pre_line else previous.number + 1
        fuel = self._fuel_at(previous, previous.duration)
        wear = self._wear_at(previous, previous.duration)
        segments: list[_Segment] = []
        offset = 0.0
        stopped = previous.pit_in
        refuel_l = refuel_s = refuel_from = 0.0
        events: list[tuple[float, Callable[[], None]]] = []
        if stopped:
            stint = rng.randint(11, 13)
            target = min(car.fuel_capacity, fuel + car.burn_per_lap * stint + 1.5)
            refuel_l = max(0.0, target - fuel)
            refuel_s = refuel_l / 2.2
            refuel_from = 3.0
            tyres_at = refuel_from + max(refuel_s, 9.0) + 16.0
            stop_s = tyres_at + rng.uniform(0.5, 2.5)
            segments.append(_Segment("stop", 0.0, stop_s, 0.0, 0.0))
            offset = stop_s
            if len(car.drivers) > 1:
                events.append((refuel_from + 6.0, self._change_driver))
            events.append((tyres_at, self._fit_tyres))
            self._stint_first_lap = number
            self._setup_change_lap = number + rng.randint(2, 5)
        from_pits = stopped or previous.pre_line
        first_track = track.pit_exit_at if from_pits else 0.0
        if from_pits:
            segments.append(self._limiter(0.0, track.pit_exit_at, offset))
            offset = segments[-1].end

        # The pace of this lap, decided at the line.
        driver = self._next_driver() if stopped and len(car.drivers) > 1 else self.driver
        mean_wear = sum(wear.values()) / 4 if not stopped else 1.0
        traffic = rng.uniform(0.4, 2.5) if rng.random() < 0.18 else 0.0
        mistake = rng.uniform(2.0, 6.0) if rng.random() < 0.04 else 0.0
        drive_s = (
            track.base_lap_s
            + 0.03 * (fuel + refuel_l)  # weight of the fuel on board
            + 12.0 * (1.0 - mean_wear)  # worn tyres
            + (2.5 if from_pits else 0.0)  # cold tyres on the out-lap
            + self._skill[driver]
            + rng.gauss(0.0, 0.3)
            + traffic
            + mistake
        )
        burn = car.burn_per_lap * min(max(rng.gauss(1.0, 0.02), 0.93), 1.07)
        fuel_end = fuel + refuel_l - burn
        pit_in = fuel_end < car.burn_per_lap * 1.12 + 0.8
        last_track = track.pit_entry_at if pit_in else 1.0
        duration = (self.profile_tau(last_track) - self.profile_tau(first_track)) * drive_s
        segments.append(_Segment("track", offset, duration, first_track, last_track))
        offset += duration
        if pit_in:
            segments.append(self._limiter(track.pit_entry_at, 1.0, offset))

        if number == self._setup_change_lap and not stopped:
            total = segments[-1].end
            events.append((total * rng.uniform(0.3, 0.7), self._driver_setup_change))

        position = self._position
        if stopped:
            new_position = position + rng.randint(2, 4)
        else:
            recently = 1 <= number - self._stint_first_lap <= 4
            gain, lose = (0.35, 0.1) if recently else (0.18, 0.15)
            roll = rng.random()
            new_position = position - 1 if roll < gain else position + 1 if roll < gain + lose else position
        new_position = min(max(new_position, 1), car.field_size)
        self._position = new_position

        amb0, trk0 = self._weather
        amb1 = min(max(amb0 + rng.gauss(0.02, 0.06), self._ambient0 - 3.0), self._ambient0 + 5.0)
        # the track follows the air, a bit warmer in the sun, and drifts on its own
        trk1 = trk0 + 0.2 * ((amb1 + 12.0) - trk0) + rng.gauss(0.0, 0.1)
        self._weather = (amb1, trk1)

        wear_rate = {}
        for c, base in zip(CORNERS, (1.15, 1.0, 1.05, 0.95)):
            heat = max(0.0, self._tyre_core[c] - 95.0) * 0.02
            wear_rate[c] = 0.011 * base * self._wear_factor[driver] * rng.uniform(0.93, 1.07) * (1.0 + heat)

        lap = _Lap(
            number=number,
            start=start,
            pre_line=False,
            segments=segments,
            fuel_start=fuel,
            refuel_l=refuel_l,
            refuel_from=refuel_from,
            refuel_s=refuel_s,
            burn_l=burn,
            wear_start=wear,
            wear_rate=wear_rate,
            position_start=position,
            position_end=new_position,
            position_change_at=segments[-1].end * rng.uniform(0.1, 0.9),
            ambient=(amb0, amb1),
            track_temp=(trk0, trk1),
            events=sorted(events, key=lambda e: e[0]),
            pit_in=pit_in,
            stopped=stopped,
        )
        return lap

    def profile_tau(self, distance: float) -> float:
        return 1.0 if distance >= 1.0 else self.profile.tau_at(distance)

    def _finish_lap(self) -> None:
        lap = self._lap
        end = lap.duration
        if not lap.pre_line:
            self.laps.append(
                LapRecord(
                    number=lap.number,
                    lap_time=end,
                    fuel_start=lap.fuel_start,
                    fuel_end=self._fuel_at(lap, end),
                    stopped=lap.stopped,
                    refuel_l=lap.refuel_l,
                    new_tyres=lap.new_tyres,
                    driver=self.driver,
                    wear_end=self._wear_at(lap, end),
                    position_end=lap.position_end,
                    pit_in=lap.pit_in,
                )
            )
            if self.config.laps is not None and lap.number >= self.config.laps:
                self.finished = True
                self.time = lap.end
                return
        self._lap = self._begin_lap(lap.end, lap)

    def _advance(self, t: float) -> None:
        """Run lap changes and scheduled events up to sim time ``t``."""
        while not self.finished:
            lap = self._lap
            while lap.events and lap.start + lap.events[0][0] <= min(t, lap.end):
                offset, action = lap.events.pop(0)
                self._event_time = lap.start + offset
                action()
            if t < lap.end:
                return
            self._finish_lap()

    # -- events ---------------------------------------------------------------
    def _next_driver(self) -> str:
        return self.car.drivers[(self._driver_index + 1) % len(self.car.drivers)]

    def _change_driver(self) -> None:
        self._driver_index = (self._driver_index + 1) % len(self.car.drivers)
        self.driver = self.car.drivers[self._driver_index]

    def _fit_tyres(self) -> None:
        lap = self._lap
        offset = self._event_time - lap.start
        lap.new_tyres = True
        lap.tyres_fitted_at = offset
        ambient = self._interp(lap.ambient, lap, offset)
        self._tyre_set_c = ambient
        for c in CORNERS:
            self._tyre_core[c] = ambient + 8.0
            self._tyre_surface[c] = 0.0
        # Fresh tyres are the moment teams touch pressures: sometimes a click.
        if self._laps_rng.random() < 0.5:
            delta = self._laps_rng.choice((-1, 1))
            keys = [f"WM_PRESSURE-W_{c.upper()}" for c in CORNERS]
            if all(self.sheet.can_move(k, delta) for k in keys):
                for key in keys:
                    self.sheet.change(key, delta)
                self._pending.append(self._setup_publication(self._event_time))

    def _driver_setup_change(self) -> None:
        rng = self._laps_rng
        key = "VM_BRAKE_BALANCE" if rng.random() < 0.75 else "VM_TRACTIONCONTROLMAP"
        delta = rng.choice((-1, 1))
        if not self.sheet.can_move(key, delta):
            delta = -delta
        self.sheet.change(key, delta)
        self._pending.append(self._setup_publication(self._event_time))

    def _setup_publication(self, sim_time: float | None = None) -> Publication:
        t = self.time if sim_time is None else sim_time
        lap = self._lap
        offset = max(0.0, t - lap.start)
        setup = self.sheet.payload(
            ambient_c=self._interp(lap.ambient, lap, offset),
            track_c=self._interp(lap.track_temp, lap, offset),
            position=lap.position_start,
            time_of_day_s=14 * 3600.0 + t,
        )
        return Publication(SETUP, t, {"timestamp": self.timestamp(t), "setup": setup})

    # -- where the car is ---------------------------------------------------------
    def _where(self, lap: _Lap, offset: float) -> _Where:
        seg = lap.segments[-1]
        for candidate in lap.segments:
            if offset < candidate.end:
                seg = candidate
                break
        f = min(max((offset - seg.start) / seg.duration, 0.0), 1.0) if seg.duration > 0 else 1.0
        speed = braking = accelerating = 0.0
        if seg.kind in ("garage", "stop"):
            p = seg.p0
        elif seg.kind == "limiter":
            p = seg.p0 + ((seg.p1 - seg.p0) % 1.0) * f
            speed = self.track.pit_speed_kmh
        else:
            tau0, tau1 = self.profile_tau(seg.p0), self.profile_tau(seg.p1)
            point = self.profile.at(tau0 + f * (tau1 - tau0), seg.duration / (tau1 - tau0))
            p, speed, braking, accelerating = point.distance, point.speed_kmh, point.braking, point.accelerating
        if f >= 1.0:
            p = seg.p1
        # Lap distance covered since the lap's start (the pre-line phase starts at the garage).
        base = lap.segments[0].p0
        covered = 1.0 - base if p >= 1.0 else (p - base) % 1.0
        return _Where(covered, speed, braking, accelerating, seg.kind)

    def _fuel_at(self, lap: _Lap, offset: float) -> float:
        where = self._where(lap, offset)
        refuelled = 0.0
        if lap.refuel_s > 0:
            refuelled = lap.refuel_l * min(max((offset - lap.refuel_from) / lap.refuel_s, 0.0), 1.0)
        return max(0.0, lap.fuel_start + refuelled - lap.burn_l * where.distance)

    def _wear_at(self, lap: _Lap, offset: float) -> dict:
        where = self._where(lap, offset)
        if lap.tyres_fitted_at is not None and offset >= lap.tyres_fitted_at:
            start = {c: 1.0 for c in CORNERS}
        else:
            start = lap.wear_start
        return {c: max(0.0, start[c] - lap.wear_rate[c] * where.distance) for c in CORNERS}

    @staticmethod
    def _interp(pair: tuple[float, float], lap: _Lap, offset: float) -> float:
        f = min(max(offset / lap.duration, 0.0), 1.0) if lap.duration > 0 else 0.0
        return pair[0] + (pair[1] - pair[0]) * f

    # -- temperatures -------------------------------------------------------------
    def _integrate(self, t: float) -> None:
        """One tick of every temperature (the hot loop of the model: kept plain)."""
        lap = self._lap
        offset = t - lap.start
        where = self._where(lap, offset)
        f = min(max(offset / lap.duration, 0.0), 1.0) if lap.duration > 0 else 0.0
        ambient = lap.ambient[0] + (lap.ambient[1] - lap.ambient[0]) * f
        track_c = lap.track_temp[0] + (lap.track_temp[1] - lap.track_temp[0]) * f
        v = where.speed_kmh / self.track.top_speed_kmh
        mode = where.mode
        core_k = _K_CORE[mode]
        if mode == "track":
            core_base = track_c + 38.0 + 14.0 * v
        elif mode == "limiter":
            core_base = track_c + 28.0
        else:
            core_base = ambient + 12.0
        if mode == "track" and where.braking > 0.05:
            brake_base, brake_gain, brake_k = ambient + 250.0, 480.0 * where.braking, _K_BRAKE_HEAT
        else:
            brake_base, brake_gain, brake_k = ambient + _BRAKE_IDLE[mode], 0.0, _K_BRAKE_COOL[mode]
        front_load, rear_load = 18.0 * where.braking, 14.0 * where.accelerating
        core, surface, brakes = self._tyre_core, self._tyre_surface, self._brakes
        share = self._brake_share()
        for c in CORNERS:
            target = core_base + _CORE_OFFSET[c] * _OFFSET_SHARE[mode]
            core[c] = target + (core[c] - target) * core_k
            load = front_load if c[0] == "f" else rear_load
            surface[c] = load + (surface[c] - load) * _K_SURFACE
            target = brake_base + brake_gain * share[c]
            brakes[c] = target + (brakes[c] - target) * brake_k
        if mode in ("track", "limiter"):
            target, k = 82.0 + 8.0 * v + 0.25 * (ambient - 20.0), _K_WATER_RUN
        else:
            target, k = ambient, _K_WATER_OFF
        self._water = target + (self._water - target) * k

    def _brake_share(self) -> dict:
        """Heat per brake for the current brake balance; rear brakes see less of it.

        The per-corner factors stand for ducting and the circuit's mostly
        right-hand corners. Cached: the balance changes a few times a stint.
        """
        value = self.sheet.values["VM_BRAKE_BALANCE"]
        if self._share_for != value:
            bias = brake_balance_front(value)
            self._share = {
                "fl": 1.03 * bias / 0.55,
                "fr": 0.98 * bias / 0.55,
                "rl": 0.62 * (1 - bias) / 0.45,
                "rr": 0.58 * (1 - bias) / 0.45,
            }
            self._share_for = value
        return self._share

    # -- the frame --------------------------------------------------------------
    def _telemetry(self) -> dict:
        lap = self._lap
        offset = self.time - lap.start
        where = self._where(lap, offset)
        seg_kind = where.mode
        in_garage = seg_kind == "garage"
        if lap.pre_line:
            lane = lap.segments[-1]
            lap_time = -lane.duration if in_garage else offset - lap.duration
        else:
            lap_time = offset
        speed = where.speed_kmh
        gear, rpm = self._gear_rpm(speed, seg_kind)
        fuel = self._fuel_at(lap, offset)
        wear = self._wear_at(lap, offset)
        if in_garage:
            temps = {c: UNKNOWN_TEMP for c in CORNERS}
            pressures = {c: 0.0 for c in CORNERS}
        else:
            temps = {c: round(self._tyre_core[c] + self._tyre_surface[c], 2) for c in CORNERS}
            pressures = {}
            for c in CORNERS:
                cold = pressure_kpa(self.sheet.values[f"WM_PRESSURE-W_{c.upper()}"])
                pressures[c] = round(cold * (temps[c] + 273.15) / (self._tyre_set_c + 273.15), 2)
        if in_garage:
            position = 0
        else:
            position = lap.position_end if offset >= lap.position_change_at else lap.position_start
        return {
            "timestamp": self.timestamp(self.time),
            "lap": lap.number,
            "position": position,
            "lap_time": round(lap_time, 3),
            "fuel": round(fuel, 3),
            "fuel_capacity": self.car.fuel_capacity,
            "tire_pressures": pressures,
            "tire_temps": temps,
            "tire_wear": {c: round(wear[c], 4) for c in CORNERS},
            "brake_temps": {c: round(self._brakes[c] + KELVIN, 2) for c in CORNERS},
            "engine_water_temp": 0.0 if in_garage else round(self._water, 2),
            "track_temp": round(self._interp(lap.track_temp, lap, offset), 3),
            "ambient_temp": round(self._interp(lap.ambient, lap, offset), 3),
            "speed": round(speed, 2),
            "gear": gear,
            "rpm": round(rpm, 1),
            "player_name": self.driver,
            "car_name": self.car.name,
            "track_name": self.track.name,
            "session_type": self.config.session_type,
        }

    def _gear_rpm(self, speed: float, mode: str) -> tuple[int, float]:
        if mode in ("garage", "stop") or speed <= 0.5:
            return 0, 0.0  # engine off: in the garage and while refuelling
        tops = self.car.gear_top_kmh
        for gear in range(1, len(tops)):
            if speed <= tops[gear] * 0.96 or gear == len(tops) - 1:
                break
        rpm = self.car.redline_rpm * min(speed / tops[gear], 1.0)
        return gear, max(rpm, 3000.0)




def run_stint(config: StintConfig, dt: float) -> tuple[StintModel, list[Publication]]:
    """Run a stint to its end (``config.laps`` must be set); returns the model and everything published."""
    if config.laps is None:
        raise ValueError("run_stint needs a lap count")
    model = StintModel(config)
    published = model.start()
    while not model.finished:
        published += model.step(dt)
    return model, published
