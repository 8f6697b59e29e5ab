"""The dashboard's first values, written by the server: the same characters the page's script writes.

The server writes every value field of the latest frame into the page (racedash/pagefields.py,
racedash/jsnumbers.py) so that the first frame needs no script; the script then takes over
(static/js/boot.js runs it after that frame). Real server, real monitor-like client, real
Chromium: once with JavaScript off (what the server wrote), once with it on (what the script
writes from the same state), in default and in imperial units and the dark theme.
"""

from __future__ import annotations

import copy
import json
import re
import uuid

import pytest
from playwright.async_api import expect

from racedash.jsnumbers import js_round, js_string, js_to_fixed, js_trim
from racedash.pagefields import BLANK_VIEW, DisplayPrefs, first_view
from tests.browser import LAPTOP, chromium
from tests.test_ui_dashboard import monitor_session, publish
from tests.ui_data import setup_payload, stint


@pytest.fixture
def settings(settings):
    return settings.replace(race_gap_seconds=60.0)  # stint() frames are ~22 s apart: let the model time its laps


# Numbers where JavaScript's formatting and Python's part ways: halves, binary fractions just under
# a half, integral doubles, exponents, negative zero, the largest and smallest doubles.
NUMBERS = [
    0.5, 1.5, 2.5, -0.5, -2.5, -1.5, 0.25, 0.35, 1.005, 1.45, 2.675, 59.9999, 59.9995, 0.49999999999999994,
    -0.04, -0.0, 0.0, 5.0, 3.0, 100.0, 7250.5, 172.5, 0.1 + 0.2, 1e21, 1.2e21, 123e20, 1e-6, 1e-7, 1.5e-7,
    123456789.125, 12345678901234567890.0, 5e-324, 1.7976931348623157e308, -1234.5678, 98.6, 37.05,
]
TEXTS = ["  Ana  ", "\u00a0\ufeffBo\u3000", "\x85Cy\x85", "\u2028D\u2029", "\t\n", "E\u200bF"]

JS_FORMATS = r"""
([numbers, texts]) => ({
  round: numbers.map((x) => String(Math.round(x))),
  fixed: numbers.map((x) => [0, 1, 2, 3].map((d) => x.toFixed(d))),
  string: numbers.map((x) => String(x)),
  trim: texts.map((t) => t.trim()),
})
"""


@pytest.mark.browser
async def test_number_formatting_is_javascripts():
    async with chromium() as browser:
        context = await browser.browser.new_context()
        page = await context.new_page()
        js = await page.evaluate(JS_FORMATS, [NUMBERS, TEXTS])
        await context.close()
    assert [js_string(js_round(x)) for x in NUMBERS] == js["round"]
    assert [[js_to_fixed(x, d) for d in range(4)] for x in NUMBERS] == js["fixed"]
    assert [js_string(x) for x in NUMBERS] == js["string"]
    assert [js_trim(t) for t in TEXTS] == js["trim"]


def test_the_prefs_cookie_reads_only_known_choices():
    assert DisplayPrefs.from_cookie("dark.F.psi.gal") == DisplayPrefs("dark", "F", "psi", "gal")
    assert DisplayPrefs.from_cookie("auto.C.kPa.L") == DisplayPrefs()
    assert DisplayPrefs.from_cookie("light.K.bar.l") == DisplayPrefs(theme="light")
    for garbage in (None, "", "dark", "dark.F.psi", "dark.F.psi.gal.x", "<script>.F.psi.gal", "\x00" * 4096):
        assert DisplayPrefs.from_cookie(garbage).theme in (None, "light", "dark")
    assert DisplayPrefs.from_cookie("<script>.F.psi.gal") == DisplayPrefs(None, "F", "psi", "gal")


def test_a_state_without_telemetry_has_no_first_view():
    assert first_view(None, {}, DisplayPrefs()) is None
    assert first_view({"telemetry": None, "setups": []}, {}, DisplayPrefs()) is None
    assert first_view({"telemetry": {"telemetry": ["not", "a", "dict"]}}, {}, DisplayPrefs()) is None
    assert BLANK_VIEW.text("speed") == "—" and BLANK_VIEW.state("temp_fl") == "unknown"


def test_odd_values_are_shown_as_the_script_shows_them():
    tel = {"lap": 7.0, "position": 0, "gear": -1, "speed": -1, "rpm": 0, "fuel": float("nan"), "fuel_capacity": 0,
           "lap_time": 59.9999, "tire_temps": [1, 2], "tire_wear": {"fl": 1.5, "fr": True}, "player_name": "  ",
           "engine_water_temp": 2**70, "track_temp": 10**400, "brake_temps": {"fl": 273.15}}
    view = first_view({"telemetry": {"telemetry": tel}, "race_tables": {"strategy": {"box_by_lap": 12.0}}},
                      {"tyre_temp": "not a window"}, DisplayPrefs())
    assert view is not None
    shown = {name: view.text(name) for name in view.fields}
    assert shown["lap"] == "7" and shown["position"] == "—" and shown["gear"] == "R" and shown["speed"] == "—"
    assert shown["rpm"] == "—" and shown["fuel"] == "—" and shown["fuel_per_lap"] == "—" and shown["fuel_pct"] == ""
    assert shown["current_lap"] == "1:00.000" and shown["box_by_lap"] == "lap 12" and shown["driver"] == "—"
    assert shown["temp_fl"] == "—" and view.state("temp_fl") == "unknown"
    assert shown["wear_fl"] == "—" and shown["wear_fr"] == "—"
    assert shown["water_temp"] == "1.1805916207174113e+21 °C"  # String(Math.round(2 ** 70))
    assert shown["track_temp"] == "—"  # beyond a double: Infinity in the browser, not a number
    assert shown["brake_fl"] == "0 °C" and view.state("brake_fl") == "ok"  # no brake window: "ok", as classify() says
    assert view.fuel_fill == "0%" and not view.low_fuel and view.car_state is None


# --- the page, with and without its script ---------------------------------------------------------


def edge_frames(session_id: str) -> list[dict]:
    """A stint whose last frame holds values at every formatting edge the dashboard has."""
    frames = stint(session_id, 1, 3)
    last = copy.deepcopy(frames[-1])
    last["telemetry"].update(
        player_name="  <b>Ana</b> & \u00a0", position=3.0, lap=3.0, lap_time=59.9999, speed=2.5, gear=-1, rpm=7250.5,
        fuel=2.25, fuel_capacity=75.0, engine_water_temp=0, track_temp=-273.15, ambient_temp=22.5,
        tire_temps={"fl": -273.15, "fr": 95.5, "rl": 70.5, "rr": 120.0},
        tire_pressures={"fl": 0, "fr": 172.5, "rl": 150.25, "rr": 210.0},
        tire_wear={"fl": 0.355, "fr": 0.15, "rl": 1.0, "rr": 0.625},
        brake_temps={"fl": 0, "fr": 873.15, "rl": 300.5, "rr": 1200.0},
    )
    frames.append(last)
    return frames


# Every field's text and classes, the fuel bar, the badges, the title and the unit choices.
SHOWN = r"""
() => ({
  fields: Object.fromEntries([...document.querySelectorAll("[data-field]")].map((el) =>
    [el.dataset.field, [el.textContent, [...el.classList].sort().join(" ")]])),
  fuelFill: document.getElementById("fuel-fill").style.width,
  fuelLow: document.getElementById("fuel-fill").classList.contains("low"),
  fuelNow: document.getElementById("fuel-bar").getAttribute("aria-valuenow") || "",
  lowFuelHidden: document.getElementById("low-fuel").hidden,
  carState: [document.getElementById("car-state").hidden, document.getElementById("car-state").textContent],
  title: document.title,
  units: ["unit-temp", "unit-pressure", "unit-fuel"].map((id) => document.getElementById(id).value),
  theme: document.documentElement.dataset.theme || null,
})
"""


async def scripted(browser, url: str, cookies: list | None = None, storage: dict | None = None):
    """The page with its script (its localStorage holding ``storage``), once the script has taken in
    the state the page carries."""
    context = await browser.browser.new_context(viewport=LAPTOP, service_workers="block")
    if cookies:
        await context.add_cookies(cookies)
    if storage:
        await context.add_init_script(
            f"for (const [k, v] of Object.entries({json.dumps(storage)})) localStorage.setItem(k, v);"
        )
    page = await context.new_page()
    page.set_default_timeout(10_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(url)
    await page.wait_for_function("() => window.racedash && window.racedash.store.length > 0")
    return page, errors


async def unscripted(browser, url: str, cookies: list | None = None) -> dict:
    """What the server wrote: the page with JavaScript off."""
    context = await browser.browser.new_context(viewport=LAPTOP, java_script_enabled=False)
    if cookies:
        await context.add_cookies(cookies)
    page = await context.new_page()
    await page.goto(url)
    # With scripts off page.evaluate still runs (in Playwright's own world): it reads, it never ran the page's.
    shown = await page.evaluate(SHOWN)
    assert await page.evaluate("() => window.racedash === undefined")
    await context.close()
    return shown


@pytest.mark.browser
async def test_the_server_writes_the_values_the_script_would(server, clients):
    monitor, session_id = await monitor_session(server, clients)
    await monitor.call("setup_data", setup_payload(session_id))
    await publish(monitor, edge_frames(session_id))
    url = f"{server.url}/dashboard/{session_id}"
    async with chromium() as browser:
        page, errors = await scripted(browser, url)
        by_script = await page.evaluate(SHOWN)
        by_server = await unscripted(browser, url)
        # With no choice made, the server leaves the theme to the system's (app.css); the script names it.
        assert by_server.pop("theme") is None and by_script.pop("theme") == "light"
        assert by_server == by_script
        fields = by_server["fields"]
        assert fields["speed"][0] == "3 km/h" and fields["rpm"][0] == "7251"  # Math.round: halves up
        assert fields["current_lap"][0] == "1:00.000" and fields["gear"][0] == "R" and fields["position"][0] == "P3"
        assert fields["pressure_fr"][0] == "173 kPa"  # toFixed: halves away from zero
        assert fields["driver"][0] == "<b>Ana</b> &"  # text, trimmed as String.trim does
        assert fields["temp_fl"] == ["—", "tyre-temp unknown val"]
        assert fields["brake_fr"][0] == "600 °C" and fields["water_temp"] == ["—", "unknown val"]
        assert fields["last_lap"][0] == "1:31.000" and fields["best_lap"][0] == "1:30.500"  # the server's lap rows
        assert not by_server["lowFuelHidden"] and by_server["fuelLow"] and by_server["fuelFill"] == "3%"  # 0.75 laps left
        assert by_server["title"] == "<b>Ana</b> & · live · racedash"

        # The viewer picks imperial units and the dark theme: the page mirrors them in a cookie ...
        for select, value in (("#unit-temp", "F"), ("#unit-pressure", "psi"), ("#unit-fuel", "gal")):
            await page.select_option(select, value)
        if await page.evaluate("() => document.documentElement.dataset.theme") != "dark":
            await page.click("#theme-toggle")
        cookies = [c for c in await page.context.cookies() if c["name"] == "racedash_prefs"]
        assert [c["value"] for c in cookies] == ["dark.F.psi.gal"]
        assert cookies[0]["sameSite"] == "Lax" and cookies[0]["path"] == "/"
        by_script = await page.evaluate(SHOWN)
        assert errors == []
        await page.context.close()

        # ... and the server writes the next page in them.
        by_server = await unscripted(browser, url, cookies)
        assert by_server == by_script
        assert by_server["units"] == ["F", "psi", "gal"] and by_server["theme"] == "dark"
        assert by_server["fields"]["brake_fr"][0] == "1112 °F" and by_server["fields"]["fuel"][0] == "0.6 gal"
        assert by_server["fields"]["pressure_rl"][0] == "21.8 psi"

        # A script that starts with those choices in its storage changes nothing the server wrote.
        storage = {"racedash.units": json.dumps({"temp": "F", "pressure": "psi", "fuel": "gal"}), "racedash.theme": "dark"}
        page, errors = await scripted(browser, url, cookies, storage)
        assert await page.evaluate(SHOWN) == by_server
        assert errors == []
        await page.context.close()


@pytest.mark.browser
async def test_a_page_without_a_session_here_shows_dashes_until_its_script_joins(server):
    url = f"{server.url}/dashboard/{uuid.uuid4()}"
    async with chromium() as browser:
        shown = await unscripted(browser, url)
    assert {text for text, _ in shown["fields"].values()} <= {"—", ""}
    assert shown["title"] == "Dashboard · racedash" and shown["theme"] is None


@pytest.mark.browser
async def test_a_page_whose_scripts_do_not_load_says_so(server, clients):
    monitor, session_id = await monitor_session(server, clients)
    await publish(monitor, stint(session_id, 1, 1))
    async with chromium() as browser:
        context = await browser.browser.new_context(viewport=LAPTOP, service_workers="block")
        await context.route(re.compile(r".*/socket\.io\.min\.js.*"), lambda route: route.abort())
        page = await context.new_page()
        await page.goto(f"{server.url}/dashboard/{session_id}")
        await expect(page.locator("#conn-badge")).to_have_text("scripts did not load: reload the page")
        await expect(page.locator('[data-field="speed"]')).to_have_text("203 km/h")  # the server's values stay
        await context.close()


async def test_names_stay_text_in_the_page(server, clients):
    from tornado.httpclient import AsyncHTTPClient

    monitor, session_id = await monitor_session(server, clients)
    frames = stint(session_id, 1, 1)
    frames[-1]["telemetry"]["player_name"] = '<img src=x onerror="alert(1)">'
    await publish(monitor, frames)
    client = AsyncHTTPClient()
    try:
        body = (await client.fetch(f"{server.url}/dashboard/{session_id}")).body.decode()
    finally:
        client.close()
    assert "<img" not in body
    assert '&lt;img src=x onerror=&quot;alert(1)&quot;&gt;' in body
    assert f'data-state-url="/dashboard/{session_id}/state"' in body
