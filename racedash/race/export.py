"""Per-lap exports: the lap rows of the race model as CSV cells. Pure: no I/O.

The rows come from a recording's race tables (:mod:`racedash.recording.race`),
possibly from a sidecar file, so every cell is formatted from what the value
*is*, never from what the column expects: a string where a number belongs, or
a number where a name belongs, becomes an empty cell, never text. Unknown
values are empty cells; booleans are 1/0.

Spreadsheets run a text cell that starts with ``=``, ``+``, ``-``, ``@``, tab
or CR as a formula, and a driver name is whatever the publisher sent, so such
a cell is prefixed with ``'`` (CSV injection).
"""

from __future__ import annotations

import csv
import io
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Iterator

from racedash.race.units import CORNERS, number

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
ROWS_PER_CHUNK = 200

Row = dict[str, Any]


# -- cells ---------------------------------------------------------------------------
def number_cell(value: object) -> str:
    """A finite number as plain decimal text (never exponent notation), else empty."""
    if type(value) is int:
        return str(value)
    finite = number(value)
    if finite is None:
        return ""
    text = f"{finite:.6f}".rstrip("0").rstrip(".")  # the model rounds to 4 decimals at most
    return "0" if text == "-0" else text


def flag_cell(value: object) -> str:
    if value is True:
        return "1"
    if value is False:
        return "0"
    return ""


def text_cell(value: object) -> str:
    if not isinstance(value, str):
        return ""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def lap_time_cell(seconds: object) -> str:
    """``m:ss.mmm``, as timing screens show a lap."""
    value = number(seconds)
    if value is None or value < 0:
        return ""
    minutes, millis = divmod(round(value * 1000), 60_000)
    return f"{minutes}:{millis // 1000:02d}.{millis % 1000:03d}"


def time_cell(epoch_seconds: object) -> str:
    """ISO 8601 UTC with ``Z``, to the millisecond (the monitor's clock)."""
    value = number(epoch_seconds)
    if value is None:
        return ""
    try:
        moment = datetime.fromtimestamp(value, timezone.utc)
    except (OverflowError, OSError, ValueError):
        return ""  # out of the calendar's range: not a time anyone recorded
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _corner(group: object, corner: str) -> object:
    return group.get(corner) if isinstance(group, dict) else None


# -- columns ---------------------------------------------------------------------------
Column = tuple[str, Callable[[Row], str]]


def _numeric(key: str) -> Callable[[Row], str]:
    return lambda row: number_cell(row.get(key))


def _flag(key: str) -> Callable[[Row], str]:
    return lambda row: flag_cell(row.get(key))


def _per_corner(key: str, corner: str) -> Callable[[Row], str]:
    return lambda row: number_cell(_corner(row.get(key), corner))


# (lap row key, column name prefix): the per-corner groups, units in the names.
CORNER_GROUPS = (
    ("tyre_temp_avg", "tyre_temp_avg_c"),
    ("tyre_temp_max", "tyre_temp_max_c"),
    ("pressure_avg", "pressure_avg_kpa"),
    ("wear_used", "wear_used"),
    ("brake_temp_avg", "brake_temp_avg_c"),
    ("brake_temp_max", "brake_temp_max_c"),
)

COLUMNS: tuple[Column, ...] = (
    ("lap", _numeric("lap")),
    ("time_s", _numeric("time")),
    ("lap_time", lambda row: lap_time_cell(row.get("time"))),
    ("start_fuel_l", _numeric("start_fuel")),
    ("end_fuel_l", _numeric("end_fuel")),
    ("fuel_used_l", _numeric("fuel_used")),
    ("fuel_added_l", _numeric("fuel_added")),
    ("in_lap", _flag("in_lap")),
    ("out_lap", _flag("out_lap")),
    ("pit_lap", _flag("pit_lap")),
    ("incomplete", _flag("incomplete")),
    ("clean", _flag("clean")),
    ("stint", _numeric("stint")),
    ("driver", lambda row: text_cell(row.get("driver"))),
    ("position", _numeric("position")),
    ("tyres_changed", _flag("tyres_changed")),
    *(
        (f"{prefix}_{corner}", _per_corner(key, corner))
        for corner in CORNERS
        for key, prefix in CORNER_GROUPS
    ),
    ("start_time", lambda row: time_cell(row.get("start_t"))),
    ("end_time", lambda row: time_cell(row.get("end_t"))),
)

COLUMN_NAMES: tuple[str, ...] = tuple(name for name, _ in COLUMNS)


def lap_cells(row: Row) -> list[str]:
    """One lap row as CSV cells, in :data:`COLUMN_NAMES` order."""
    return [cell(row) for _, cell in COLUMNS]


def csv_chunks(laps: Iterable[Row], rows_per_chunk: int = ROWS_PER_CHUNK) -> Iterator[str]:
    """The CSV text, header first, in pieces of ``rows_per_chunk`` rows: a caller can stream it."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)  # RFC 4180: CRLF, quotes where needed
    writer.writerow(COLUMN_NAMES)
    pending = 0
    for row in laps:
        writer.writerow(lap_cells(row))
        pending += 1
        if pending == rows_per_chunk:
            yield _take(buffer)
            pending = 0
    if buffer.tell():
        yield _take(buffer)


def _take(buffer: io.StringIO) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text
