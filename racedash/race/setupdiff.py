"""Which garage settings a new setup changed: the keys, with old and new values."""

from __future__ import annotations

from typing import Any


def garage_values(setup: object) -> dict[str, dict[str, Any]]:
    """``carSetup.garageValues`` of a setup payload, or {} when the game's API gave nothing."""
    if not isinstance(setup, dict):
        return {}
    car = setup.get("carSetup")
    values = car.get("garageValues") if isinstance(car, dict) else None
    if not isinstance(values, dict):
        return {}
    return {k: v for k, v in values.items() if isinstance(k, str) and isinstance(v, dict)}


def shown_value(setting: dict[str, Any]) -> Any:
    """What the garage shows for a setting: its string form when there is one."""
    shown = setting.get("stringValue")
    return shown if isinstance(shown, (str, int, float)) else setting.get("value")


def shown_values(setup: object) -> dict[str, Any]:
    """``{key: shown value}`` of a setup: all a setup change is judged by (and all the model keeps)."""
    return {key: shown_value(setting) for key, setting in garage_values(setup).items()}


def changed_settings(old: dict[str, Any], new: dict[str, Any]) -> list[dict[str, Any]]:
    """One ``{key, old, new}`` per setting whose shown value differs; keys sorted (``shown_values`` maps)."""
    changes = []
    for key in sorted(set(old) | set(new)):
        before, after = old.get(key), new.get(key)
        if before != after:
            changes.append({"key": key, "old": before, "new": after})
    return changes
