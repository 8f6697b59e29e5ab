"""Alerts the stream itself tells of: fuel for the pit window, hot tyres and brakes, pressure loss.

Each alert is raised once: a temperature alert re-arms only after that corner
was back in its window, the fuel and pressure alerts once per stint. Time is
the monitor's clock (``_Sample.t``), so a replay raises the same alerts at the
same moments. Alerts that need a wall clock (stale data, publisher gone) are
the live session's (racedash/race/live.py).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Callable

from racedash.race.units import CORNERS


@dataclass(frozen=True)
class AlertOptions:
    tyre_temp_max_c: float = 110.0
    brake_temp_max_c: float = 750.0
    over_seconds: float = 5.0  # a temperature must stay over its limit this long
    pressure_drop_kpa: float = 20.0
    pressure_drop_seconds: float = 10.0
    box_call_laps: float = 3.0  # warn when the last lap the car can pit at is this close


class AlertWatch:
    def __init__(self, options: AlertOptions) -> None:
        self.options = options
        self._over_since: dict[str, float] = {}
        self._raised: set[str] = set()
        self._pressures: dict[str, deque[tuple[float, float]]] = {c: deque() for c in CORNERS}

    def new_stint(self) -> None:
        """After a pit stop: fuel and pressure alerts may come again."""
        self._raised = {key for key in self._raised if not key.startswith(("fuel", "pressure"))}
        for history in self._pressures.values():
            history.clear()

    def check(self, cur: Any, *, in_pit_lane: bool, strategy: Callable[[], dict[str, Any]]) -> list[dict[str, Any]]:
        if cur.t is None or not cur.on_lap:
            return []
        alerts: list[dict[str, Any]] = []
        opts = self.options
        alerts += self._over("tyre", cur.tyre_temps, opts.tyre_temp_max_c, cur.t)
        alerts += self._over("brake", cur.brakes, opts.brake_temp_max_c, cur.t)
        if not in_pit_lane:
            alerts += self._pressure_loss(cur.pressures, cur.t)
        if "fuel" not in self._raised and cur.lap is not None:
            plan = strategy()
            box_by = plan["box_by_lap"]
            if box_by is not None and box_by - cur.lap < opts.box_call_laps:
                self._raised.add("fuel")
                alerts.append(_alert("fuel_window", "warning", None,
                                     f"Box by lap {box_by}: {plan['laps_left']:.1f} laps of fuel left",
                                     box_by_lap=box_by))
        return alerts

    def _over(self, what: str, values: dict[str, float], limit: float, t: float) -> list[dict[str, Any]]:
        alerts = []
        for corner in CORNERS:
            key = f"{what}:{corner}"
            value = values.get(corner)
            if value is None or value <= limit:
                if key in self._over_since:
                    del self._over_since[key]
                    self._raised.discard(key)  # back in the window: a new excursion alerts again
                continue
            since = self._over_since.setdefault(key, t)
            if t - since >= self.options.over_seconds and key not in self._raised:
                self._raised.add(key)
                alerts.append(_alert(f"{what}_hot", "warning", corner,
                                     f"{corner.upper()} {what} {value:.0f} °C, over {limit:.0f} °C for {t - since:.0f} s",
                                     value=round(value, 1)))
        return alerts

    def _pressure_loss(self, pressures: dict[str, float], t: float) -> list[dict[str, Any]]:
        alerts = []
        window = self.options.pressure_drop_seconds
        for corner, kpa in pressures.items():
            # A monotone queue: its head is the highest pressure of the window, O(1) a frame.
            highest = self._pressures[corner]
            while highest and highest[-1][1] <= kpa:
                highest.pop()
            highest.append((t, kpa))
            while t - highest[0][0] > window:
                highest.popleft()
            peak = highest[0][1]
            key = f"pressure:{corner}"
            if peak - kpa >= self.options.pressure_drop_kpa and key not in self._raised:
                self._raised.add(key)
                alerts.append(_alert("pressure_loss", "critical", corner,
                                     f"{corner.upper()} tyre pressure fell {peak - kpa:.0f} kPa in {window:.0f} s",
                                     value=round(kpa, 1)))
        return alerts


def _alert(kind: str, severity: str, corner: str | None, message: str, **extra: Any) -> dict[str, Any]:
    return {"kind": kind, "severity": severity, "corner": corner, "message": message, **extra}
