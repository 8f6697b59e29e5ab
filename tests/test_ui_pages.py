"""The UI's page handlers and their settings, over real HTTP (no browser needed)."""

from __future__ import annotations

import html
import json
import re
import uuid

import pytest

from racedash.config import Settings, SettingsError
from racedash.server import RacedashServer
from racedash.web import ui_config
from tests.test_http import fetch


def page_config(body: str) -> dict:
    raw = re.search(r'data-config="([^"]*)"', body).group(1)
    return json.loads(html.unescape(raw))


async def test_dashboard_page_carries_the_colour_windows(server):
    response = await fetch(server, f"/dashboard/{uuid.uuid4()}")
    config = page_config(response.body.decode())
    assert config == {
        "tyre_temp": [70.0, 100.0],
        "tyre_pressure": [160.0, 190.0],
        "brake_temp": [200.0, 750.0],
        "water_temp": [60.0, 105.0],
        "tyre_wear": [20.0, 40.0],
        "low_fuel_laps": 2.0,
        "stale_seconds": 5.0,
    }
    body = response.body.decode()
    for asset in ("js/dashboard.js", "vendor/uplot/uPlot.iife.min.js", "vendor/uplot/uPlot.min.css"):
        assert f"/static/{asset}" in body


async def test_windows_are_configurable(settings):
    # Set through the environment, as an operator would.
    env = {
        "RACEDASH_UI_TYRE_TEMP_WINDOW": "65:95",
        "RACEDASH_UI_TYRE_PRESSURE_WINDOW": "150.5:180",
        "RACEDASH_UI_LOW_FUEL_LAPS": "3",
    }
    async with RacedashServer(Settings.from_env(env, settings)) as server:
        config = page_config((await fetch(server, f"/dashboard/{uuid.uuid4()}")).body.decode())
    assert config["tyre_temp"] == [65.0, 95.0]
    assert config["tyre_pressure"] == [150.5, 180.0]
    assert config["low_fuel_laps"] == 3.0


@pytest.mark.parametrize("raw", ["70", "70:80:90", "hot:cold", "100:70", ""])
def test_bad_windows_are_refused_with_the_setting_named(raw):
    with pytest.raises(SettingsError, match="ui_brake_temp_window"):
        ui_config(Settings(ui_brake_temp_window=raw))


async def test_recordings_page_needs_team_access(server):
    response = await fetch(server, "/recordings", follow_redirects=False)
    assert response.code == 302 and response.headers["Location"] == "/login?next=%2Frecordings"

    token = server.app.access.token
    response = await fetch(server, "/recordings", headers={"Authorization": f"Bearer {token}"})
    body = response.body.decode()
    assert response.code == 200
    assert 'id="rec-table"' in body and "/static/js/recordings.js" in body
    assert 'name="xsrf-token" content="2|' in body  # for the Replay button's POST
    assert "http://" not in body and "https://" not in body  # nothing loaded from the internet
