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


def changed_settings(old: dict[str, dict[str, Any]], new: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One ``{key, old, new}`` per setting whose shown value differs; keys sorted."""
    changes = []
    for key in sorted(set(old) | set(new)):
        before = shown_value(old[key]) if key in old else None
        after = shown_value(new[key]) if key in new else None
        if before != after:
            changes.append({"key": key, "old": before, "new": after})
    return changes
