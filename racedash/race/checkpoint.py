"""A race model's whole state as JSON, and back: what lets a long session resume without a rescan.

Rebuilding a 24 h session's model means feeding it ~170,000 frames (seconds
of CPU, holding the GIL, while every other session of the process waits).
A model restored from :func:`model_state` as of frame ``seq`` and fed the
frames after it is the same model as one fed everything: same tables, same
events, same strategy (tests/test_race_checkpoint.py checks this at every
frame of a stint with stops, driver and setup changes, alerts and gaps).

The state is the model's private fields, so this module lives beside it and
changes with it: bump :data:`STATE_VERSION` whenever a field is added,
removed or changes meaning; a state of another version is not read (the
model is rebuilt from the recording instead).

What is read back is checked field by field: a checkpoint is a file on the
recordings volume, and anything malformed raises :class:`CheckpointError`
(the caller rebuilds) rather than failing later on the publish path.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

from racedash.race.model import RaceModel, RaceOptions, _Lap, _Sample, _Stats, _Stop
from racedash.race.units import CORNERS

STATE_VERSION = 1
_TABLES = ("laps", "pit_stops", "driver_changes", "setup_changes", "alerts")


class CheckpointError(ValueError):
    """A model state that cannot be restored (malformed, another version)."""


# -- out -------------------------------------------------------------------------------------
def model_state(model: RaceModel) -> dict[str, Any]:
    """Everything ``model`` holds, as JSON-able values (the tables' rows are shared, not copied)."""
    alerts = model._alerts
    return {
        "version": STATE_VERSION,
        "seq": model.seq,
        **{name: getattr(model, name) for name in _TABLES},
        "prev": _sample_out(model._prev),
        "lap": _lap_out(model._lap),
        "rate": model._rate,
        "stint": model._stint,
        "stop": _stop_out(model._stop),
        "slow_since": list(model._slow_since) if model._slow_since is not None else None,
        "setup_values": model._setup_values,
        "position": model._position,
        "alert_watch": {
            "over_since": alerts._over_since,
            "raised": sorted(alerts._raised),
            "pressures": {corner: [list(entry) for entry in entries] for corner, entries in alerts._pressures.items()},
        },
    }


def _sample_out(sample: _Sample | None) -> dict[str, Any] | None:
    return None if sample is None else {name: getattr(sample, name) for name in _Sample.__slots__}


def _stats_out(stats: _Stats) -> dict[str, Any]:
    return {"sums": stats.sums, "counts": stats.counts, "maxima": stats.maxima}


def _lap_out(lap: _Lap | None) -> dict[str, Any] | None:
    if lap is None:
        return None
    plain = ("number", "start_seen", "start_fuel", "start_seq", "start_t", "gap", "fuel_added", "in_lap", "out_lap",
             "pit_lap", "tyres_changed", "wear_used")
    return {**{name: getattr(lap, name) for name in plain},
            "tyre_temps": _stats_out(lap.tyre_temps), "pressures": _stats_out(lap.pressures),
            "brakes": _stats_out(lap.brakes)}


_STOP_FIELDS = ("seq", "lap", "entry_t", "entry_lap", "stationary_from", "stationary_to", "fuel_added",
                "tyres_changed", "driver_from", "driver_to")


def _stop_out(stop: _Stop | None) -> dict[str, Any] | None:
    return None if stop is None else {name: getattr(stop, name) for name in _STOP_FIELDS}


# -- in --------------------------------------------------------------------------------------
def model_from_state(state: Any, options: RaceOptions) -> RaceModel:
    """The model ``state`` describes, with ``options`` (which must be those it was made with)."""
    if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
        raise CheckpointError("not a race model state of this version")
    model = RaceModel(options)
    model.seq = _int(state, "seq")
    for name in _TABLES:
        setattr(model, name, _rows(state, name))
    for row in model.laps:
        _check_lap_row(row)
    model._prev = _sample_in(_field(state, "prev"))
    model._lap = _lap_in(_field(state, "lap"))
    model._rate = _number(state, "rate")
    model._stint = _int(state, "stint")
    model._stop = _stop_in(_field(state, "stop"))
    slow = _field(state, "slow_since")
    if slow is not None:
        if not (isinstance(slow, list) and len(slow) == 2):
            raise CheckpointError("slow_since")
        model._slow_since = (_opt_number_value(slow[0]), _opt_int_value(slow[1]))
    setup_values = _field(state, "setup_values")
    if setup_values is not None and not isinstance(setup_values, dict):
        raise CheckpointError("setup_values")
    model._setup_values = setup_values
    model._position = _opt_int(state, "position")
    _alert_watch_in(model, _dict(state, "alert_watch"))
    return model


def _field(obj: dict[str, Any], name: str) -> Any:
    if name not in obj:
        raise CheckpointError(f"{name} missing")
    return obj[name]


def _object_or_none(raw: Any, name: str) -> dict[str, Any] | None:
    if raw is not None and not isinstance(raw, dict):
        raise CheckpointError(f"{name} is not an object")
    return raw


def _dict(obj: dict[str, Any], name: str) -> dict[str, Any]:
    value = _field(obj, name)
    if not isinstance(value, dict):
        raise CheckpointError(f"{name} is not an object")
    return value


def _int(obj: dict[str, Any], name: str) -> int:
    value = _field(obj, name)
    if type(value) is not int:
        raise CheckpointError(f"{name} is not an integer")
    return value


def _opt_int_value(value: Any) -> int | None:
    if value is not None and type(value) is not int:
        raise CheckpointError("not an integer")
    return value


def _opt_int(obj: dict[str, Any], name: str) -> int | None:
    return _opt_int_value(_field(obj, name))


def _opt_number_value(value: Any) -> float | None:
    if value is None:
        return None
    if type(value) not in (int, float) or not math.isfinite(value):
        raise CheckpointError("not a finite number")
    return value


def _number_value(value: Any) -> float:
    if value is None or _opt_number_value(value) is None:
        raise CheckpointError("not a number")
    return value


def _number(obj: dict[str, Any], name: str) -> float:
    try:
        return _number_value(_field(obj, name))
    except CheckpointError:
        raise CheckpointError(f"{name} is not a number") from None


def _opt_number(obj: dict[str, Any], name: str) -> float | None:
    return _opt_number_value(_field(obj, name))


def _bool(obj: dict[str, Any], name: str) -> bool:
    value = _field(obj, name)
    if type(value) is not bool:
        raise CheckpointError(f"{name} is not a boolean")
    return value


def _opt_str(obj: dict[str, Any], name: str) -> str | None:
    value = _field(obj, name)
    if value is not None and not isinstance(value, str):
        raise CheckpointError(f"{name} is not a string")
    return value


def _corner_numbers(obj: dict[str, Any], name: str, kind: type = float) -> dict[str, Any]:
    """{corner: number} with known corners only (ints where ``kind`` is int)."""
    values = _dict(obj, name)
    for corner, value in values.items():
        if corner not in CORNERS:
            raise CheckpointError(f"{name}: unknown corner")
        if kind is int:
            _opt_int_value(value)
        _number_value(value)
    return values


def _rows(state: dict[str, Any], name: str) -> list[dict[str, Any]]:
    rows = _field(state, name)
    if not isinstance(rows, list) or not all(isinstance(row, dict) and type(row.get("seq")) is int for row in rows):
        raise CheckpointError(f"{name} is not a list of rows")
    return rows


def _check_lap_row(row: dict[str, Any]) -> None:
    """The members of a lap row the model and the strategy read again."""
    _int(row, "lap")
    for flag in ("in_lap", "out_lap", "pit_lap", "incomplete", "clean"):
        _bool(row, flag)
    for value in ("time", "fuel_used"):
        _opt_number(row, value)
    _opt_str(row, "driver")
    _field(row, "stint")


def _sample_in(raw: Any) -> _Sample | None:
    raw = _object_or_none(raw, "prev")
    if raw is None:
        return None
    sample = _Sample.__new__(_Sample)
    sample.seq = _int(raw, "seq")
    sample.t = _opt_number(raw, "t")
    sample.lap = _opt_int(raw, "lap")
    sample.lap_time = _opt_number(raw, "lap_time")
    sample.fuel = _opt_number(raw, "fuel")
    sample.speed = _opt_number(raw, "speed")
    sample.driver = _opt_str(raw, "driver")
    for name in ("wear", "pressures", "tyre_temps", "brakes"):
        setattr(sample, name, _corner_numbers(raw, name))
    sample.position = _opt_int(raw, "position")
    return sample


def _stats_in(raw: dict[str, Any]) -> _Stats:
    stats = _Stats()
    sums, counts, maxima = _corner_numbers(raw, "sums"), _corner_numbers(raw, "counts", int), _corner_numbers(raw, "maxima")
    if set(sums) != set(CORNERS) or set(counts) != set(CORNERS):
        raise CheckpointError("lap statistics")
    stats.sums, stats.counts, stats.maxima = sums, counts, maxima
    return stats


def _lap_in(raw: Any) -> _Lap | None:
    raw = _object_or_none(raw, "lap")
    if raw is None:
        return None
    lap = _Lap(_int(raw, "number"), start_seen=_bool(raw, "start_seen"), start_fuel=_opt_number(raw, "start_fuel"),
               seq=_int(raw, "start_seq"), t=_opt_number(raw, "start_t"), out_lap=_bool(raw, "out_lap"))
    lap.gap = _bool(raw, "gap")
    lap.fuel_added = _number(raw, "fuel_added")
    lap.in_lap = _bool(raw, "in_lap")
    lap.pit_lap = _bool(raw, "pit_lap")
    lap.tyres_changed = _bool(raw, "tyres_changed")
    wear_used = _corner_numbers(raw, "wear_used")
    if set(wear_used) != set(CORNERS):
        raise CheckpointError("wear_used")
    lap.wear_used = wear_used
    lap.tyre_temps = _stats_in(_dict(raw, "tyre_temps"))
    lap.pressures = _stats_in(_dict(raw, "pressures"))
    lap.brakes = _stats_in(_dict(raw, "brakes"))
    return lap


def _stop_in(raw: Any) -> _Stop | None:
    raw = _object_or_none(raw, "stop")
    if raw is None:
        return None
    stop = _Stop(_int(raw, "seq"), _opt_int(raw, "lap"), _opt_number(raw, "entry_t"), _opt_int(raw, "entry_lap"))
    stop.stationary_from = _opt_number(raw, "stationary_from")
    stop.stationary_to = _opt_number(raw, "stationary_to")
    stop.fuel_added = _number(raw, "fuel_added")
    stop.tyres_changed = _bool(raw, "tyres_changed")
    stop.driver_from = _opt_str(raw, "driver_from")
    stop.driver_to = _opt_str(raw, "driver_to")
    return stop


def _alert_watch_in(model: RaceModel, raw: dict[str, Any]) -> None:
    watch = model._alerts
    over_since = _dict(raw, "over_since")
    for since in over_since.values():
        if _opt_number_value(since) is None:
            raise CheckpointError("over_since")
    raised = _field(raw, "raised")
    if not isinstance(raised, list) or not all(isinstance(key, str) for key in raised):
        raise CheckpointError("raised")
    pressures = _dict(raw, "pressures")
    if set(pressures) != set(CORNERS):
        raise CheckpointError("pressures")
    queues: dict[str, deque[tuple[float, float]]] = {}
    for corner in CORNERS:
        entries = pressures[corner]
        if not isinstance(entries, list) or not all(isinstance(e, list) and len(e) == 2 for e in entries):
            raise CheckpointError("pressure history")
        queues[corner] = deque((_number_value(t), _number_value(kpa)) for t, kpa in entries)
    watch._over_since = over_since
    watch._raised = set(raised)
    watch._pressures = queues
