"""A recording's race tables: derived from the recording alone, cached in a sidecar.

The race model (:mod:`racedash.race`) is fed every event of the file in
order. The tables are kept in ``<session_id>.race.json`` beside the
recording with what they cover (the file's identity, the byte length of its
complete lines, the model's options); a sidecar that no longer matches (the
recording grew, another file, other options, a damaged or tampered file) is
ignored and rebuilt. It is only a cache: deleting it costs one scan.

Blocking: call from a worker thread.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import orjson

from racedash.race import RaceModel, RaceOptions
from racedash.recording.files import open_regular, read_regular, replace_atomically
from racedash.recording.format import RecordingFormatError, decode_header
from racedash.recording.reader import good_end, iter_events

log = logging.getLogger(__name__)

RACE_FORMAT = "racedash-race-tables"
RACE_VERSION = 1
RACE_SUFFIX = ".race.json"
_TABLE_LISTS = ("laps", "pit_stops", "driver_changes", "setup_changes", "alerts", "stints")


def race_sidecar_path(recording: Path) -> Path:
    return recording.with_name(recording.name.removesuffix(".jsonl") + RACE_SUFFIX)


def build_model(path: Path, options: RaceOptions) -> tuple[RaceModel, dict[str, Any], int]:
    """A model fed the whole recording: (model, header fields, byte length of the complete lines read)."""
    model = RaceModel(options)
    with open_regular(path) as f:
        header = decode_header(f.readline())
        start = f.tell()
        end = good_end(f)
        for _, event in iter_events(f, start, end):
            model.feed(event.seq, event.kind, event.data, event.t)
    return model, {"session_id": header.session_id, "created": header.created}, end


def load_tables(path: Path, options: RaceOptions, *, use_sidecar: bool = True) -> dict[str, Any]:
    """The race tables of a whole recording: from its sidecar when that still covers it, else by a scan."""
    if use_sidecar:
        cached = cached_tables(path, options)
        if cached is not None:
            return cached
    model, identity, end = build_model(path, options)
    tables = model.tables()
    if use_sidecar:
        _write_sidecar(path, {"format": RACE_FORMAT, "version": RACE_VERSION, **identity, "size": end,
                              "options": repr(options), "tables": tables})
    return tables


def cached_tables(path: Path, options: RaceOptions) -> dict[str, Any] | None:
    """The tables from a sidecar that still covers the recording, else None: never a scan (for listings)."""
    try:
        raw = read_regular(race_sidecar_path(path))
        with open_regular(path) as f:
            header = decode_header(f.readline())
            end = good_end(f)
    except FileNotFoundError:
        return None
    except (OSError, RecordingFormatError) as exc:
        log.warning("race tables of %s unreadable, rebuilding: %s", path.stem[:8], exc)
        return None
    try:
        cached = orjson.loads(raw)
    except orjson.JSONDecodeError:
        log.warning("race tables of %s are not JSON, rebuilding", path.stem[:8])
        return None
    if not _valid(cached):
        log.warning("race tables of %s are malformed, rebuilding", path.stem[:8])
        return None
    fresh = (
        cached["session_id"] == header.session_id
        and cached["created"] == header.created
        and cached["size"] == end
        and cached["options"] == repr(options)
    )
    return cached["tables"] if fresh else None


def _valid(cached: Any) -> bool:
    """Every field this module reads, with its type: a tampered sidecar is rebuilt, never trusted."""
    if not isinstance(cached, dict) or cached.get("format") != RACE_FORMAT or cached.get("version") != RACE_VERSION:
        return False
    if not isinstance(cached.get("session_id"), str) or not isinstance(cached.get("options"), str):
        return False
    if not isinstance(cached.get("created"), (int, float)) or type(cached.get("size")) is not int:
        return False
    tables = cached.get("tables")
    if not isinstance(tables, dict) or not isinstance(tables.get("strategy"), dict) or type(tables.get("seq")) is not int:
        return False
    for name in _TABLE_LISTS:
        rows = tables.get(name)
        if not isinstance(rows, list) or not all(isinstance(row, dict) and type(row.get("seq", 0)) is int for row in rows):
            return False
    return True


def _write_sidecar(path: Path, content: dict[str, Any]) -> None:
    """Atomically; a failure only costs a scan next time."""
    try:
        replace_atomically(race_sidecar_path(path), orjson.dumps(content))
    except OSError as exc:
        log.warning("could not write race tables of %s: %s", path.stem[:8], exc)
