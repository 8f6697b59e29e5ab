"""Fuel and pace arithmetic from the completed laps: pure functions, no state.

Only clean laps count (not an in-, out- or pit lap, not spanning a data gap,
timed from the game's clock), the last ``recent`` of them, so an in-lap's
refuel or an outage can never bend fuel per lap or pace.
"""

from __future__ import annotations

import math
from typing import Any, Sequence


def clean_laps(laps: Sequence[dict[str, Any]], recent: int) -> list[dict[str, Any]]:
    return [lap for lap in laps if lap["clean"]][-recent:] if recent > 0 else []


def fuel_per_lap(laps: Sequence[dict[str, Any]], recent: int) -> float | None:
    used = [lap["fuel_used"] for lap in clean_laps(laps, recent) if lap["fuel_used"] is not None]
    return sum(used) / len(used) if used else None


def pace(laps: Sequence[dict[str, Any]], recent: int) -> float | None:
    times = [lap["time"] for lap in clean_laps(laps, recent) if lap["time"] is not None]
    return sum(times) / len(times) if times else None


def stints(laps: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per stint (the laps between pit stops), from the lap rows."""
    by_stint: dict[int, list[dict[str, Any]]] = {}
    for lap in laps:
        by_stint.setdefault(lap["stint"], []).append(lap)
    rows = []
    for number, stint_laps in sorted(by_stint.items()):
        clean = [lap for lap in stint_laps if lap["clean"]]
        times = [lap["time"] for lap in clean]
        used = [lap["fuel_used"] for lap in clean if lap["fuel_used"] is not None]
        drivers = [lap["driver"] for lap in stint_laps if lap["driver"]]
        rows.append({
            "stint": number,
            "driver": drivers[-1] if drivers else None,
            "first_lap": stint_laps[0]["lap"],
            "last_lap": stint_laps[-1]["lap"],
            "laps": len(stint_laps),
            "clean_laps": len(clean),
            "best_lap": min(times) if times else None,
            "average_lap": round(sum(times) / len(times), 3) if times else None,
            "fuel_per_lap": round(sum(used) / len(used), 3) if used else None,
        })
    return rows


def strategy(
    *,
    per_lap: float | None,
    lap_pace: float | None,
    clean: int,
    fuel: float | None,
    lap: int | None,
    lap_time: float | None,
    reserve_laps: float,
    target_laps: int | None = None,
    target_seconds: float | None = None,
) -> dict[str, Any]:
    """What the strategy panel shows; None wherever the data does not tell yet.

    ``per_lap`` and ``lap_pace`` come from :func:`fuel_per_lap` and :func:`pace`.
    ``box_by_lap`` is the last lap at whose end the car can still reach the
    pits with ``reserve_laps`` of fuel left: the laps of fuel on board plus the
    part of the current lap already driven, counted from the current lap's start.
    """
    result: dict[str, Any] = {
        "fuel": fuel,
        "fuel_per_lap": _round(per_lap, 3),
        "pace": _round(lap_pace, 3),
        "clean_laps": clean,
        "laps_left": None,
        "time_left": None,
        "box_by_lap": None,
        "fuel_to_target": None,
        "target_laps": target_laps,
        "target_seconds": target_seconds,
    }
    if per_lap is None or per_lap <= 0 or fuel is None:
        return result
    laps_left = fuel / per_lap
    result["laps_left"] = round(laps_left, 2)
    if lap_pace is not None:
        result["time_left"] = round(laps_left * lap_pace, 1)
    if lap is not None:
        done = 0.0
        if lap_time is not None and lap_time > 0 and lap_pace:
            done = min(lap_time / lap_pace, 1.0)
        result["box_by_lap"] = lap + math.floor(done + laps_left - reserve_laps) - 1
    needed_laps = None
    if target_laps is not None:
        needed_laps = float(target_laps)
    elif target_seconds is not None and lap_pace:
        needed_laps = math.ceil(target_seconds / lap_pace)
    if needed_laps is not None:
        # Litres to add now to cover that many more laps (negative: that much to spare).
        result["fuel_to_target"] = round(needed_laps * per_lap - fuel, 2)
    return result


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)
