from __future__ import annotations

from pathlib import Path

import pytest

from racedash.config import Settings
from racedash.server import RacedashServer


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(host="127.0.0.1", port=0, recordings_dir=tmp_path / "recordings", state_dir=tmp_path / "state")


async def _stop_server(srv: RacedashServer) -> None:
    await srv.stop()


def _run_server(io_loop, settings: Settings):
    srv = RacedashServer(settings)
    io_loop.run_sync(srv.start)
    return srv


@pytest.fixture
def server(io_loop, settings: Settings):
    """A real racedash server on a free loopback port, stopped after the test."""
    srv = _run_server(io_loop, settings)
    yield srv
    io_loop.run_sync(lambda: _stop_server(srv))


@pytest.fixture
def settings_changes() -> dict:
    """Override with @pytest.mark.parametrize("settings_changes", [{...}]) to use server_with."""
    return {}


@pytest.fixture
def server_with(io_loop, settings: Settings, settings_changes: dict):
    """Like ``server``, with the test's settings_changes applied."""
    srv = _run_server(io_loop, settings.replace(**settings_changes))
    yield srv
    io_loop.run_sync(lambda: _stop_server(srv))


@pytest.fixture
def clients(io_loop):
    """Collects Client objects made in a test and closes them all afterwards."""
    made = []
    yield made
    async def close_all() -> None:
        for client in made:
            await client.close()
    io_loop.run_sync(close_all)
