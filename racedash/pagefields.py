"""The dashboard's first values, written into the page by the server.

A page that waits for its script before it shows a value waits for the module
graph to load and run; a page that already holds the values as text is on screen
as soon as its HTML and styles are (docs/ui.md, "Page load"). So the server writes
every value field of the latest frame into the HTML, with the window colour of each,
in the viewer's units, exactly as static/js/dashboard.js and static/js/format.js
would write them from the same state: the script then takes over without changing a
character (tests/test_page_fields.py checks both against each other in Chromium).

The viewer's display choices live in the browser (localStorage, static/js/prefs.js);
prefs.js mirrors them in a cookie, :data:`PREFS_COOKIE`, which is all the server
reads of them. A missing or unreadable cookie is the defaults: °C, kPa, litres, the
system's theme.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from racedash.jsnumbers import js_number, js_round, js_string, js_to_fixed, js_trim

PREFS_COOKIE = "racedash_prefs"
DASH = "—"
AFTER_FIRST_LAP = "after the first full lap"
STRATEGY_BASIS = "Per lap and pace: the server's, from its recent clean laps."
KPA_PER_PSI = 6.894757
LITRES_PER_GALLON = 3.785412  # US gallon
CORNERS = ("fl", "fr", "rl", "rr")
LIVE_FIELDS = ("stint", "fuel_per_lap", "laps_left", "time_left", "box_by_lap")  # race.js's


@dataclass(frozen=True)
class DisplayPrefs:
    """Theme and units as prefs.js stores them; the cookie reads ``<theme>.<temp>.<pressure>.<fuel>``."""

    theme: str | None = None  # "light" | "dark" | None: the system's
    temp: str = "C"
    pressure: str = "kPa"
    fuel: str = "L"

    @classmethod
    def from_cookie(cls, value: str | None) -> "DisplayPrefs":
        parts = (value or "").split(".")
        if len(parts) != 4:
            return cls()
        theme, temp, pressure, fuel = parts
        return cls(
            theme=theme if theme in ("light", "dark") else None,
            temp="F" if temp == "F" else "C",
            pressure="psi" if pressure == "psi" else "kPa",
            fuel="gal" if fuel == "gal" else "L",
        )


@dataclass(frozen=True)
class Field:
    text: str
    state: str | None = None  # the window class ("unknown", "cold", "ok", "hot", "warm"), if the field has one


@dataclass(frozen=True)
class FirstView:
    """What the page shows before its script runs: field texts, the fuel bar, badges, the title."""

    fields: dict[str, Field]
    fuel_fill: str  # the bar's CSS width
    fuel_percent: str  # aria-valuenow
    low_fuel: bool
    car_state: str | None  # the badge's text, None: hidden
    car_state_name: str
    title: str

    def text(self, name: str, default: str = DASH) -> str:
        field = self.fields.get(name)
        return default if field is None else field.text

    def state(self, name: str) -> str:
        field = self.fields.get(name)
        return "unknown" if field is None or field.state is None else field.state


# The page of a session with no telemetry here yet: dashes, as the template always had.
BLANK_VIEW = FirstView(fields={}, fuel_fill="", fuel_percent="", low_fuel=False, car_state=None, car_state_name="",
                       title="Dashboard · racedash")


class FieldFormatter:
    """format.js's display functions, in one viewer's units."""

    def __init__(self, prefs: DisplayPrefs) -> None:
        self.prefs = prefs

    def temp(self, celsius: float) -> str:
        shown = celsius * 9 / 5 + 32 if self.prefs.temp == "F" else celsius
        return f"{js_string(js_round(shown))} {'°F' if self.prefs.temp == 'F' else '°C'}"

    def temperature(self, value: Any, known=None) -> str:
        k = (known or known_temp)(value)
        return DASH if k is None else self.temp(k)

    def pressure(self, value: Any) -> str:
        k = known_pressure(value)
        if k is None:
            return DASH
        if self.prefs.pressure == "psi":
            return f"{js_to_fixed(k / KPA_PER_PSI, 1)} psi"
        return f"{js_to_fixed(k, 0)} kPa"

    def litres(self, value: Any, digits: int = 1) -> str:
        v = js_number(value)
        if v is None or v < 0:
            return DASH
        if self.prefs.fuel == "gal":
            return f"{js_to_fixed(v / LITRES_PER_GALLON, digits)} gal"
        return f"{js_to_fixed(v, digits)} L"


# -- format.js's rules for what the game reports as unknown ---------------------------------
def known_temp(value: Any) -> float | None:
    v = js_number(value)
    return v if v is not None and v > -273 else None


def known_water_temp(value: Any) -> float | None:
    v = js_number(value)
    return v if v is not None and v > 0 else None


def brake_celsius(kelvin: Any) -> float | None:
    v = js_number(kelvin)
    return v - 273.15 if v is not None and v > 0 else None


def known_pressure(value: Any) -> float | None:
    v = js_number(value)
    return v if v is not None and v > 0 else None


def known_wear(value: Any) -> float | None:
    v = js_number(value)
    return v if v is not None and 0 <= v <= 1 else None


def classify(value: float | None, window: Any) -> str:
    if value is None:
        return "unknown"
    if not isinstance(window, (list, tuple)) or len(window) != 2:
        return "ok"
    if value < window[0]:
        return "cold"
    if value > window[1]:
        return "hot"
    return "ok"


def classify_wear(value: float | None, thresholds: Any) -> str:
    if value is None:
        return "unknown"
    bad, warn = thresholds
    if value * 100 < bad:
        return "hot"
    if value * 100 < warn:
        return "warm"
    return "ok"


def text(value: Any) -> str:
    if isinstance(value, str) and js_trim(value):
        return js_trim(value)
    return DASH


def lap_time(value: Any) -> str:
    k = js_number(value)
    if k is None or k < 0:
        return DASH
    k = js_round(k * 1000) / 1000  # so that 59.9999 s shows as 1:00.000, not 0:60.000
    minutes = float(math.floor(k / 60))
    seconds = k - minutes * 60
    return f"{js_string(minutes)}:{js_to_fixed(seconds, 3).rjust(6, '0')}"


def duration(value: Any) -> str:
    v = js_number(value)
    if v is None or v < 0:
        return DASH
    # As format.js does it, in doubles (a huge figure prints as JavaScript prints it).
    total = float(math.floor(v))
    h = float(math.floor(total / 3600))
    m = float(math.floor((total % 3600) / 60))
    s = total % 60
    minutes = js_string(m).rjust(2 if h else 1, "0")
    return f"{js_string(h) + ':' if h else ''}{minutes}:{js_string(s).rjust(2, '0')}"


def position(value: Any) -> str:
    v = js_number(value)
    return f"P{js_string(v)}" if v is not None and v > 0 else DASH


def gear(value: Any) -> str:
    v = js_number(value)
    if v is None:
        return DASH
    if v == 0:
        return "N"
    return "R" if v < 0 else js_string(v)


def wear(value: Any) -> str:
    k = known_wear(value)
    return DASH if k is None else f"{js_string(js_round(k * 100))} %"


# -- race.js ------------------------------------------------------------------------------------
def _rows(value: Any) -> list[dict[str, Any]]:
    return [row for row in value if isinstance(row, dict)] if isinstance(value, list) else []


def last_lap_time(laps: list[dict[str, Any]]) -> float | None:
    time = js_number(laps[-1].get("time")) if laps else None
    return time if time is not None and time > 0 else None


def best_lap_time(laps: list[dict[str, Any]]) -> float | None:
    times = [js_number(lap.get("time")) for lap in laps if lap.get("clean") is True]
    return min((t for t in times if t is not None and t > 0), default=None)


def car_state_badge(car_state: Any) -> str | None:
    return {"in_pit": "IN PIT", "pit_lane": "PIT LANE"}.get(car_state) if isinstance(car_state, str) else None


def is_low_fuel(fuel: float | None, capacity: float | None, laps_left: float | None, threshold: Any) -> bool:
    if fuel is None or fuel < 0:
        return False
    if laps_left is not None:
        return laps_left < threshold
    return capacity is not None and capacity > 0 and fuel / capacity < 0.1


def race_summary(tables: Any) -> dict[str, Any]:
    """The strategy and car state the page holds after taking in ``race_tables`` (RaceTables.summary)."""
    tables = tables if isinstance(tables, dict) else {}
    strategy = tables.get("strategy") if isinstance(tables.get("strategy"), dict) else {}
    summary = {name: strategy.get(name) for name in LIVE_FIELDS}
    summary["car_state"] = tables.get("car_state") if isinstance(tables.get("car_state"), str) else None
    return summary


# -- the page ---------------------------------------------------------------------------------
def first_view(state: dict[str, Any] | None, config: dict[str, Any], prefs: DisplayPrefs) -> FirstView | None:
    """The fields dashboard.js's renderTelemetry writes for the page's inline ``state``; None without telemetry."""
    update = (state or {}).get("telemetry")
    tel = update.get("telemetry") if isinstance(update, dict) else None
    if not isinstance(tel, dict):
        return None
    fmt = FieldFormatter(prefs)
    tables = state.get("race_tables") if isinstance(state.get("race_tables"), dict) else {}
    laps = _rows(tables.get("laps"))
    summary = race_summary(tables)
    fields: dict[str, Field] = {}

    def put(name: str, shown: str, window_state: str | None = None) -> None:
        fields[name] = Field(shown, window_state)

    put("driver", text(tel.get("player_name")))
    put("car", text(tel.get("car_name")))
    put("track", text(tel.get("track_name")))
    put("session_type", text(tel.get("session_type")))
    put("position", position(tel.get("position")))
    lap = js_number(tel.get("lap"))
    put("lap", DASH if lap is None else js_string(lap))
    put("current_lap", lap_time(tel.get("lap_time")))
    put("last_lap", lap_time(last_lap_time(laps)))
    put("best_lap", lap_time(best_lap_time(laps)))

    # renderFuel and renderStrategy, for the latest frame (whose summary is never null).
    fuel = js_number(tel.get("fuel"))
    fuel = fuel if fuel is not None and fuel >= 0 else None
    capacity = js_number(tel.get("fuel_capacity"))
    capacity = capacity if capacity is not None and capacity > 0 else None
    pct = min(100, (fuel / capacity) * 100) if fuel is not None and capacity is not None else None
    put("fuel", fmt.litres(fuel))
    put("fuel_pct", "" if pct is None else f"{js_string(js_round(pct))} %")
    per_lap, laps_left, time_left = (js_number(summary.get(name)) for name in ("fuel_per_lap", "laps_left", "time_left"))
    waiting = DASH if fuel is None else AFTER_FIRST_LAP
    put("fuel_per_lap", waiting if per_lap is None else fmt.litres(per_lap, 2))
    put("fuel_laps_left", waiting if laps_left is None else js_to_fixed(laps_left, 1))
    put("fuel_time_left", waiting if time_left is None else duration(time_left))
    box_by = js_number(summary.get("box_by_lap"))
    put("box_by_lap", DASH if box_by is None else f"lap {js_string(box_by)}")
    put("strategy_basis", STRATEGY_BASIS)

    temps, pressures, wears, brakes = (
        tel.get(name) if isinstance(tel.get(name), dict) else {}
        for name in ("tire_temps", "tire_pressures", "tire_wear", "brake_temps")
    )
    for c in CORNERS:
        put(f"temp_{c}", fmt.temperature(temps.get(c)), classify(known_temp(temps.get(c)), config.get("tyre_temp")))
        put(f"pressure_{c}", fmt.pressure(pressures.get(c)), classify(known_pressure(pressures.get(c)), config.get("tyre_pressure")))
        put(f"wear_{c}", wear(wears.get(c)), classify_wear(known_wear(wears.get(c)), config.get("tyre_wear") or [20, 40]))
        put(f"brake_{c}", fmt.temperature(brakes.get(c), brake_celsius), classify(brake_celsius(brakes.get(c)), config.get("brake_temp")))
    water = known_water_temp(tel.get("engine_water_temp"))
    put("water_temp", fmt.temperature(tel.get("engine_water_temp"), known_water_temp), classify(water, config.get("water_temp")))
    put("track_temp", fmt.temperature(tel.get("track_temp")))
    put("ambient_temp", fmt.temperature(tel.get("ambient_temp")))
    speed = js_number(tel.get("speed"))
    put("speed", f"{js_string(js_round(speed))} km/h" if speed is not None and speed >= 0 else DASH)
    put("gear", gear(tel.get("gear")))
    rpm = js_number(tel.get("rpm"))
    put("rpm", js_string(js_round(rpm)) if rpm is not None and rpm > 0 else DASH)

    car_state = summary["car_state"]
    return FirstView(
        fields=fields,
        fuel_fill=f"{js_string(0 if pct is None else pct)}%",
        fuel_percent="" if pct is None else js_string(js_round(pct)),
        low_fuel=is_low_fuel(fuel, capacity, laps_left, config.get("low_fuel_laps") or 2),
        car_state=car_state_badge(car_state),
        car_state_name=car_state or "",
        title=f"{text(tel.get('player_name'))} · live · racedash",
    )
