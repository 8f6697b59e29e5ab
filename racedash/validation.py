"""Payload validation for the monitor and dashboard events.

Schemas are compiled once per process by fastjsonschema (generated Python, a
few microseconds for a telemetry frame) and failures become typed errors with
the offending field in the message. Known telemetry fields are type-checked
when present; unknown extra fields are kept, as the contract asks.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import fastjsonschema
import orjson

from racedash.errors import InvalidPayload, LimitExceeded, MissingField, WrongType
from racedash.ids import parse_session_id
from racedash.wire import payload_json

_NUMBER = {"type": "number"}
_INTEGER = {"type": "integer"}
_STRING = {"type": "string"}
_CORNERS = {
    "type": "object",
    "properties": {corner: _NUMBER for corner in ("fl", "fr", "rl", "rr")},
}

TELEMETRY_SCHEMA: dict = {
    "type": "object",
    "properties": {
        "timestamp": _STRING,
        "lap": _INTEGER,
        "position": _INTEGER,
        "lap_time": _NUMBER,
        "fuel": _NUMBER,
        "fuel_capacity": _NUMBER,
        "tire_pressures": _CORNERS,
        "tire_temps": _CORNERS,
        "tire_wear": _CORNERS,
        "brake_temps": _CORNERS,
        "engine_water_temp": _NUMBER,
        "track_temp": _NUMBER,
        "ambient_temp": _NUMBER,
        "speed": _NUMBER,
        "gear": _INTEGER,
        "rpm": _NUMBER,
        "player_name": _STRING,
        "car_name": _STRING,
        "track_name": _STRING,
        "session_type": _STRING,
    },
}

SETUP_DATA_SCHEMA: dict = {
    "type": "object",
    "required": ["session_id", "timestamp", "setup"],
    "properties": {
        "session_id": _STRING,
        "timestamp": _STRING,
        "setup": {"type": "object"},
        "publish_token": _STRING,
    },
}

TELEMETRY_UPDATE_SCHEMA: dict = {
    "type": "object",
    "required": ["session_id", "telemetry"],
    "properties": {"session_id": _STRING, "telemetry": TELEMETRY_SCHEMA, "publish_token": _STRING},
}

RACE_STRATEGY_SCHEMA: dict = {
    "type": "object",
    "required": ["session_id"],
    "properties": {
        "session_id": _STRING,
        "target_laps": {"type": "integer", "minimum": 1, "maximum": 100_000},
        "target_seconds": {"type": "number", "minimum": 1, "maximum": 10_000_000},
    },
}

JOIN_SESSION_SCHEMA: dict = {
    "type": "object",
    "required": ["session_id"],
    "properties": {"session_id": _STRING, "last_seq": _INTEGER},
}

# Deeper than any real payload (the setup nests 4 levels); bounds the cost of
# the finiteness walk and refuses pathological nesting.
MAX_DEPTH = 32


class PayloadValidator:
    """Validates one event's payload against a schema compiled at construction."""

    def __init__(self, schema: dict, event: str, max_values: int = 0) -> None:
        self.event = event
        self.max_values = max_values
        self._validate: Callable[[Any], Any] = fastjsonschema.compile(schema)

    def __call__(self, payload: Any) -> dict:
        if payload is None:
            raise InvalidPayload(f"{self.event} needs a payload object")
        if not isinstance(payload, dict):
            raise InvalidPayload(f"{self.event} payload must be a JSON object")
        try:
            self._validate(payload)
        except fastjsonschema.JsonSchemaValueException as exc:
            field = ".".join(exc.path[1:]) if exc.path else ""
            if exc.rule == "required":
                raise MissingField(f"{self.event}: {exc.message.replace('data', 'payload', 1)}") from None
            raise WrongType(f"{self.event}: {field or 'payload'} {_rule_text(exc)}") from None
        _check_finite(payload, self.event, self.max_values)
        return payload


def recordable_payload(kind: str, payload: dict) -> tuple[bytes, int]:
    """The payload as the JSON its recording line will hold, encoded once per frame, and where
    the part viewers are sent starts in it (racedash.wire).

    What orjson cannot encode (integers beyond 64 bits, lone UTF-16
    surrogates) could not be recorded: it is refused before it is stamped.
    """
    try:
        return payload_json(kind, payload)
    except orjson.JSONEncodeError as exc:
        raise InvalidPayload(f"{kind} event: payload cannot be recorded as JSON ({exc})") from None


def _rule_text(exc: fastjsonschema.JsonSchemaValueException) -> str:
    text = exc.message
    marker = " must "
    return text[text.index(marker) + 1:] if marker in text else text


def _check_finite(value: Any, event: str, max_values: int = 0) -> None:
    """Refuse NaN/Infinity (not JSON; orjson would silently write null), deep nesting and too many values.

    The count bounds what a payload costs once parsed: a 512 KB ``[{}, {}, …]``
    setup is 170,000 Python objects (~12 MB); a real setup has ~2,000 values.
    """
    budget = [max_values or -1]
    _walk(value, event, 0, budget)


def _walk(value: Any, event: str, depth: int, budget: list[int]) -> None:
    if depth > MAX_DEPTH:
        raise InvalidPayload(f"{event}: payload nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise WrongType(f"{event}: numbers must be finite (NaN and Infinity are not JSON)")
        return
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else None
    if items is None:
        return
    if budget[0] >= 0:
        budget[0] -= len(items)
        if budget[0] < 0:
            raise LimitExceeded(f"{event}: payload holds too many values")
    for item in items:
        if isinstance(item, (dict, list, float)):
            _walk(item, event, depth + 1, budget)


class Validators:
    """The compiled validators for every event, built once per application."""

    def __init__(self, max_values: int = 20_000) -> None:
        self.setup_data = PayloadValidator(SETUP_DATA_SCHEMA, "setup_data", max_values)
        self.telemetry_update = PayloadValidator(TELEMETRY_UPDATE_SCHEMA, "telemetry_update", max_values)
        self.join_session = PayloadValidator(JOIN_SESSION_SCHEMA, "join_session", max_values)
        self.race_strategy = PayloadValidator(RACE_STRATEGY_SCHEMA, "race_strategy", max_values)

    @staticmethod
    def session_id_of(payload: dict) -> str:
        return parse_session_id(payload["session_id"])
