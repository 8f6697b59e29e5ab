"""Garbage-collector settings for a long-running server (measured in benchmarks/README.md).

A full collection walks every tracked object; with thousands of connections
that is tens of milliseconds during which no frame leaves the server. After
start-up, :func:`gc.freeze` moves everything alive into a generation the
collector never scans, and higher thresholds make young collections rarer.
Reference counting still frees almost everything on the hot path at once; the
collector is only needed for cycles.
"""

from __future__ import annotations

import gc
import logging

from racedash.config import SettingsError

log = logging.getLogger(__name__)


def parse_thresholds(text: str) -> tuple[int, ...] | None:
    """``"50000,20,100"`` -> (50000, 20, 100); empty -> None (keep Python's defaults)."""
    text = text.strip()
    if not text:
        return None
    try:
        values = tuple(int(part) for part in text.split(","))
    except ValueError:
        values = ()
    if not 1 <= len(values) <= 3 or any(v < 0 for v in values):
        raise SettingsError(f"gc thresholds must be 1 to 3 non-negative integers, got {text!r}")
    return values


def tune_gc(*, freeze: bool, thresholds: str) -> None:
    """Apply the settings; call once, after start-up, in the serving process only."""
    values = parse_thresholds(thresholds)
    if values is not None:
        gc.set_threshold(*values)
    if freeze:
        gc.collect()  # freeze only what is alive, not start-up garbage
        gc.freeze()
    log.info("gc thresholds %s, %d objects frozen", gc.get_threshold(), gc.get_freeze_count())
