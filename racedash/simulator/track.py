"""A circuit as the simulator sees it: a length, corners, and the speed profile they imply.

The profile is computed once per track from simple kinematics (brake into each
corner at a constant deceleration, accelerate out of it at a lower one, never
above the car's top speed). Driving a lap in ``T`` seconds is then the same
profile scaled by one factor, so speed, braking and lap distance are closed-form
functions of the time spent in the lap: the model never integrates position and
cannot drift.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

_GRID = 1000  # profile points per lap: ~5 m at Imola, far finer than a 2 Hz stream needs
_BRAKE_MS2 = 22.0  # a high-downforce prototype brakes at ~2.2 g
_ACCEL_MS2 = 7.0  # and accelerates out of corners far more gently


@dataclass(frozen=True)
class Corner:
    at: float  # lap fraction of the apex (0 = the timing line)
    speed_kmh: float  # minimum speed at the apex


@dataclass(frozen=True)
class Track:
    name: str
    length_m: float
    base_lap_s: float  # a clean lap on fresh tyres with an empty tank
    corners: tuple[Corner, ...]
    top_speed_kmh: float = 300.0
    garage_at: float = 0.97  # the garage sits in the pit lane, this far round the lap
    pit_entry_at: float = 0.95
    pit_exit_at: float = 0.06
    pit_speed_kmh: float = 60.0


IMOLA = Track(
    name="Autodromo Enzo e Dino Ferrari",
    length_m=4909.0,
    base_lap_s=98.0,
    top_speed_kmh=330.0,
    corners=(
        Corner(0.135, 105.0),  # Tamburello
        Corner(0.255, 115.0),  # Villeneuve
        Corner(0.335, 80.0),  # Tosa
        Corner(0.445, 135.0),  # Piratella
        Corner(0.545, 95.0),  # Acque Minerali
        Corner(0.665, 90.0),  # Variante Alta
        Corner(0.805, 100.0),  # Rivazza 1
        Corner(0.835, 110.0),  # Rivazza 2
        Corner(0.935, 205.0),  # the kink before the pit straight
    ),
)

TRACKS = {IMOLA.name: IMOLA}


@dataclass(frozen=True)
class ProfilePoint:
    distance: float  # lap fraction, 0..1
    speed_kmh: float
    braking: float  # 0 (not braking) .. 1 (hardest braking zone of the lap)
    accelerating: float  # 0 .. 1, likewise


class SpeedProfile:
    """The lap as a function of elapsed lap time: where the car is and how fast it goes."""

    def __init__(self, track: Track) -> None:
        self.track = track
        length = track.length_m
        top = track.top_speed_kmh / 3.6
        fractions = [i / _GRID for i in range(_GRID + 1)]
        speeds = []
        for p in fractions:
            v = top
            for corner in track.corners:
                vc = corner.speed_kmh / 3.6
                ahead = ((corner.at - p) % 1.0) * length  # still to go before the apex: braking
                behind = ((p - corner.at) % 1.0) * length  # since the apex: accelerating
                v = min(v, math.sqrt(vc * vc + 2 * _BRAKE_MS2 * ahead), math.sqrt(vc * vc + 2 * _ACCEL_MS2 * behind))
            speeds.append(v)
        # Time to cover each grid step at the mean speed of its ends; ``tau`` is the
        # cumulative share of the lap's time spent by each grid point.
        times = [0.0]
        for i in range(_GRID):
            step = length / _GRID
            times.append(times[-1] + step / ((speeds[i] + speeds[i + 1]) / 2))
        self.nominal_lap_s = times[-1]
        self._tau = [t / self.nominal_lap_s for t in times]
        self._fractions = fractions
        self._speeds = [v * 3.6 for v in speeds]
        drops = [max(0.0, speeds[i] - speeds[i + 1]) for i in range(_GRID)] + [0.0]
        gains = [max(0.0, speeds[i + 1] - speeds[i]) for i in range(_GRID)] + [0.0]
        self._braking = [d / max(drops) for d in drops]
        self._accelerating = [g / max(gains) for g in gains]

    def tau_at(self, distance: float) -> float:
        """Share of a lap's driving time spent before lap fraction ``distance``."""
        i = min(int(distance * _GRID), _GRID - 1)
        frac = distance * _GRID - i
        return self._tau[i] + (self._tau[i + 1] - self._tau[i]) * frac

    def at(self, tau: float, lap_s: float) -> ProfilePoint:
        """Where a car driving this lap in ``lap_s`` seconds is after ``tau`` of its time."""
        tau = min(max(tau, 0.0), 1.0)
        i = min(max(bisect.bisect_right(self._tau, tau) - 1, 0), _GRID - 1)
        span = self._tau[i + 1] - self._tau[i]
        frac = (tau - self._tau[i]) / span if span > 0 else 0.0
        scale = self.nominal_lap_s / lap_s
        speed = (self._speeds[i] + (self._speeds[i + 1] - self._speeds[i]) * frac) * scale
        return ProfilePoint(
            distance=self._fractions[i] + frac / _GRID,
            speed_kmh=speed,
            braking=self._braking[i],
            accelerating=self._accelerating[i],
        )
