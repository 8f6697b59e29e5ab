"""What a telemetry value means, in the units the real monitor sends them.

The game reports tyre temperatures in °C (−273.15 when it does not know one),
brake temperatures in Kelvin (a parked car's brakes read ~307 K), tyre
pressures in kPa (0 in the garage) and ``lap_time`` in seconds of the game's
clock, negative before the car first crosses the line. Recordings keep the
values as sent; everything the race model derives goes through here, so an
unknown is ``None`` and never counted as data.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone

KELVIN = 273.15
CORNERS = ("fl", "fr", "rl", "rr")


def number(value: object) -> float | None:
    """A finite number, or None (bools, strings and NaN are not numbers here)."""
    kind = type(value)
    if kind is float:
        return value if math.isfinite(value) else None  # type: ignore[arg-type]
    if kind is int:
        return float(value)  # type: ignore[arg-type]
    return None


def tyre_temp_c(value: object) -> float | None:
    celsius = number(value)
    # −273.15 is the game's "unknown"; nothing real sits near absolute zero.
    return celsius if celsius is not None and celsius > -100.0 else None


def brake_temp_c(value: object) -> float | None:
    kelvin = number(value)
    return kelvin - KELVIN if kelvin is not None and kelvin > 0.0 else None


def pressure_kpa(value: object) -> float | None:
    kpa = number(value)
    return kpa if kpa is not None and kpa > 0.0 else None


def wear_left(value: object) -> float | None:
    """Fraction of tread left, 1.0 on a new tyre."""
    fraction = number(value)
    return fraction if fraction is not None and 0.0 <= fraction <= 1.0 else None


def fuel_litres(value: object) -> float | None:
    litres = number(value)
    return litres if litres is not None and litres >= 0.0 else None


def corners(group: object, convert) -> dict[str, float]:
    """The known corners of a ``{fl, fr, rl, rr}`` group, converted; unknown ones left out."""
    if type(group) is not dict:
        return {}
    known = {}
    for corner in CORNERS:
        value = convert(group.get(corner))
        if value is not None:
            known[corner] = value
    return known


def monitor_time(value: object) -> float | None:
    """The monitor's ``timestamp`` (naive UTC plus ``Z``) as epoch seconds."""
    if not isinstance(value, str) or not value:
        return None
    text = value[:-1] if value.endswith("Z") else value
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()
