"""GC settings: parsing, and that tuning really changes the collector (restored afterwards)."""

from __future__ import annotations

import gc

import pytest

from racedash.config import Settings, SettingsError
from racedash.gctuning import parse_thresholds, tune_gc


def test_parse_thresholds():
    assert parse_thresholds("") is None
    assert parse_thresholds(" 50000,20,100 ") == (50000, 20, 100)
    assert parse_thresholds("1000") == (1000,)
    for bad in ("a,b", "1,2,3,4", "-1", ","):
        with pytest.raises(SettingsError):
            parse_thresholds(bad)


def test_default_settings_parse():
    assert parse_thresholds(Settings().gc_thresholds) is not None


def test_tune_gc_sets_thresholds_and_freezes():
    before = gc.get_threshold()
    try:
        tune_gc(freeze=True, thresholds="12345,17,99")
        assert gc.get_threshold() == (12345, 17, 99)
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_tune_gc_keeps_defaults_when_empty():
    before = gc.get_threshold()
    tune_gc(freeze=False, thresholds="")
    assert gc.get_threshold() == before


async def test_serve_tunes_gc_once_started(settings):
    """`racedash serve` applies the GC settings after start-up, and SIGTERM still stops it cleanly."""
    import asyncio
    import os
    import signal

    from racedash.server import serve

    before = gc.get_threshold()
    ready = asyncio.Event()
    task = asyncio.create_task(
        serve(settings.replace(gc_thresholds="4321,9,9", gc_freeze=True), on_ready=lambda server: ready.set())
    )
    try:
        await asyncio.wait_for(ready.wait(), 10)
        assert gc.get_threshold() == (4321, 9, 9)
        assert gc.get_freeze_count() > 0
    finally:
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(task, 10)
        gc.unfreeze()
        gc.set_threshold(*before)
