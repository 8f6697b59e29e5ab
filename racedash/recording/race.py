"""A recording's race tables: derived from the recording alone, cached in a sidecar.

The race model (:mod:`racedash.race`) is fed every event of the file in
order. The tables are kept in ``<session_id>.race.json`` beside the
recording with what they cover (the file's identity, the byte length of its
complete lines, the model's options); a sidecar that no longer matches (the
recording grew, another file, other options, a damaged or tampered file) is
ignored and rebuilt. It is only a cache: deleting it costs one scan.

A live recording also gets ``<session_id>.race-state.json``: the whole state
of its race model as of one frame (racedash.race.checkpoint), saved by the
process writing it every few hundred frames (racedash.racefeed). A model is
then rebuilt from that state and the frames after it instead of from the
whole file: resuming a 24 h session reads minutes of it, not a day. It too is
only a cache, checked against the recording (same file, same options, a
frame the file holds) and ignored when it does not match.

Blocking: call from a worker thread.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import orjson

from racedash.race import RaceModel, RaceOptions
from racedash.race.checkpoint import CheckpointError, model_from_state
from racedash.recording.files import open_regular, read_regular, replace_atomically
from racedash.recording.format import Header, RecordingFormatError, decode_header
from racedash.recording.reader import find_offset, good_end, iter_events, tail_events

log = logging.getLogger(__name__)

RACE_FORMAT = "racedash-race-tables"
RACE_VERSION = 1
RACE_SUFFIX = ".race.json"
STATE_FORMAT = "racedash-race-state"
STATE_SUFFIX = ".race-state.json"
# A 24 h session's state is ~0.5 MB; a file far larger than any state is not read into memory.
MAX_STATE_BYTES = 64 * 1024 * 1024
_TABLE_LISTS = ("laps", "pit_stops", "driver_changes", "setup_changes", "alerts", "stints")


def race_sidecar_path(recording: Path) -> Path:
    return recording.with_name(recording.name.removesuffix(".jsonl") + RACE_SUFFIX)


def model_state_path(recording: Path) -> Path:
    return recording.with_name(recording.name.removesuffix(".jsonl") + STATE_SUFFIX)


def build_model(path: Path, options: RaceOptions, *, resume: bool = True) -> tuple[RaceModel, dict[str, Any], int]:
    """A model fed the whole recording: (model, header fields, byte length of the complete lines read).

    ``resume``: start from the saved model state when it matches the recording, and feed
    only the frames after it.
    """
    with open_regular(path) as f:
        header = decode_header(f.readline())
        start = f.tell()
        end = good_end(f)
        model = _saved_model(path, f, header, start, end, options) if resume else None
        saved_seq = None
        if model is None:
            model = RaceModel(options)
        else:
            saved_seq = model.seq
            start = find_offset(f, start, end, lambda event: event.seq, model.seq + 1)
        fed = 0
        for _, event in iter_events(f, start, end):
            model.feed(event.seq, event.kind, event.data, event.t)
            fed += 1
    if saved_seq is not None:
        log.info("race model of %s… from its state saved at seq %d and the %d frames after it",
                 header.session_id[:8], saved_seq, fed)
    return model, {"session_id": header.session_id, "created": header.created}, end


def _saved_model(path: Path, f: Any, header: Header, start: int, end: int, options: RaceOptions) -> RaceModel | None:
    """The model saved beside the recording, when it is this file's, made with ``options``, and the file has its frame."""
    try:
        with open_regular(model_state_path(path)) as state_file:
            raw = state_file.read(MAX_STATE_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning("race model state of %s unreadable, rebuilding: %s", path.stem[:8], exc)
        return None
    if len(raw) > MAX_STATE_BYTES:
        log.warning("race model state of %s is larger than any state, rebuilding", path.stem[:8])
        return None
    try:
        saved = orjson.loads(raw)
        if not isinstance(saved, dict) or saved.get("format") != STATE_FORMAT:
            raise CheckpointError("not a race model state file")
        if (saved.get("session_id"), saved.get("created"), saved.get("options")) != (
                header.session_id, header.created, repr(options)):
            return None  # another file of the same name, or other options: not this model
        model = model_from_state(saved.get("state"), options)
    except (orjson.JSONDecodeError, CheckpointError) as exc:
        log.warning("race model state of %s is malformed (%s), rebuilding", path.stem[:8], exc)
        return None
    last = tail_events(f, end, 1, floor=start)
    if not last or last[0].seq < model.seq:
        return None  # the file lacks frames the state counts (cut short since): rebuild from the file
    return model


def save_model_state(path: Path, options: RaceOptions, state_json: bytes) -> None:
    """Save a live model's state (``state_json``: racedash.race.checkpoint.model_state, encoded) beside ``path``.

    The recording must hold every frame the state counts. Atomic; a failure costs a longer rebuild.
    """
    try:
        with open_regular(path) as f:
            header = decode_header(f.readline())
        head = orjson.dumps({"format": STATE_FORMAT, "session_id": header.session_id, "created": header.created,
                             "options": repr(options)})
        replace_atomically(model_state_path(path), head[:-1] + b',"state":' + state_json + b"}")
    except (OSError, RecordingFormatError) as exc:
        log.warning("could not save the race model state of %s: %s", path.stem[:8], getattr(exc, "strerror", None) or exc)


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
