"""The engineer's dashboard in a real browser: lap and stint tables, the event feed and its
timeline markers, the strategy panel, unmistakable data states, replay keyboard shortcuts,
theme and unit preferences."""

from __future__ import annotations

import json
import uuid

import pytest
from playwright.async_api import expect
from tornado.httpclient import AsyncHTTPClient

from tests.browser import PHONE, chromium
from tests.test_ui_dashboard import field, monitor_session, open_dashboard, publish
from tests.test_ui_recordings import write_recording
from tests.ui_data import changed_setup, garage_frame, pit_stop, setup_payload, stint

pytestmark = pytest.mark.browser

LAPTOP_WIDE = {"width": 1440, "height": 900}


@pytest.fixture
def settings(settings):
    # stint() sends 4 frames a lap, ~22 s of monitor time apart: without a wider gap the race
    # model would take every frame for a data gap (see tests/test_ui_dashboard.py).
    return settings.replace(race_gap_seconds=60.0)


async def table_text(page, selector: str) -> list[list[str]]:
    """A table body's cells as text, row by row."""
    return await page.evaluate(
        """(sel) => [...document.querySelectorAll(sel + ' tbody tr')]
                     .map((tr) => [...tr.cells].map((td) => td.textContent))""",
        selector,
    )


async def race_session(monitor, session_id: str) -> None:
    """Three laps, a pit stop with 30 L at the end of lap 3, two more laps, a setup change on lap 5."""
    await monitor.call("setup_data", setup_payload(session_id))
    await publish(monitor, [garage_frame(session_id), *stint(session_id, 1, 3), *pit_stop(session_id, 3)])
    await publish(monitor, stint(session_id, 4, 4, start_fuel=90.0))
    await monitor.call("setup_data", setup_payload(session_id, changed_setup(), seconds=400.0))
    await publish(monitor, stint(session_id, 5, 6, start_fuel=90.0))


async def test_tables_and_event_feed_late_joiner_equals_early(server, clients):
    monitor, session_id = await monitor_session(server, clients)
    async with chromium() as browser:
        early = await open_dashboard(browser, server, session_id, viewport=LAPTOP_WIDE)
        page = early.page
        await race_session(monitor, session_id)
        await expect(field(page, "lap")).to_have_text("6")
        await expect(page.locator("#lap-table tbody tr")).to_have_count(5)

        # Newest first by default; lap 1 (out of the garage) and lap 3 (the stop) flagged.
        rows = await table_text(page, "#lap-table")
        assert [r[0] for r in rows] == ["5", "4", "3", "2", "1"]
        flags = {r[0]: r[2].split() for r in rows}
        assert "OUT" in flags["1"] and "PIT" in flags["3"]  # the stop was in lap 3
        # Lap 2 is the only clean lap of stint 1 (its best, and the driver's): a symbol, not only a colour.
        lap2 = page.locator('#lap-table tr[data-lap="2"]')
        await expect(lap2.locator(".driver-best")).to_have_text(" ★")
        await expect(lap2.locator(".stint-best")).to_have_text(" ◆")
        await expect(page.locator("#lap-table span.stint-best")).to_have_count(2)  # one per stint
        # Sorting: click Lap for ascending, Time for fastest first.
        await page.locator('#lap-table th[data-key="lap"] button').click()
        assert [r[0] for r in await table_text(page, "#lap-table")] == ["1", "2", "3", "4", "5"]
        await expect(page.locator('#lap-table th[data-key="lap"]')).to_have_attribute("aria-sort", "ascending")
        await page.locator('#lap-table th[data-key="time"] button').click()
        assert (await table_text(page, "#lap-table"))[0][1].startswith("1:30.500")
        await page.locator('#lap-table th[data-key="lap"] button').click()  # Lap again after another column: newest first
        assert [r[0] for r in await table_text(page, "#lap-table")] == ["5", "4", "3", "2", "1"]
        stints = await table_text(page, "#stint-table")
        assert [s[0] for s in stints] == ["1", "2"]

        # The event feed: newest first, the setup change's settings old → new, the pit stop's details.
        feed = page.locator("#event-feed > li")
        await expect(feed.first).to_have_attribute("data-kind", "setup_change")
        setup = page.locator('#event-feed li[data-kind="setup_change"]')
        await expect(setup).to_contain_text("Brake balance: 55.0:45.0 → 56.0:44.0")
        await expect(setup).to_contain_text("135 kPa → 138 kPa")
        stop = page.locator('#event-feed li[data-kind="pit_stop"]')
        await expect(stop).to_contain_text("Pit stop 1")
        await expect(stop).to_contain_text("+30.0 L fuel")
        await expect(stop).to_contain_text("stationary")
        # ... and as markers on the timeline.
        await expect(page.locator('#tp-events [data-kind="pit_stop"]')).to_have_count(1)
        await expect(page.locator('#tp-events [data-kind="setup_change"]')).to_have_count(1)
        # Above the fold on a 1440×900 laptop.
        box = await page.locator("#feed-card").bounding_box()
        assert box is not None and box["y"] < 900, box

        # Strategy: the server's box-by lap, and the fuel to a typed target, worked out by the server.
        await expect(field(page, "box_by_lap")).to_contain_text("lap ")
        await page.locator("#target-laps").fill("10")
        need = server.app.race.model(session_id).strategy(target_laps=10)["fuel_to_target"]
        await expect(page.locator("#target-result")).to_contain_text(f"{abs(need):.1f} L")
        await expect(page.locator("#target-result")).to_contain_text("10 more laps")

        late = await open_dashboard(browser, server, session_id, viewport=LAPTOP_WIDE)
        await expect(field(late.page, "lap")).to_have_text("6")
        await expect(late.page.locator("#lap-table tbody tr")).to_have_count(5)
        assert await table_text(late.page, "#lap-table") == await table_text(page, "#lap-table")
        # The late joiner has the server's stint summaries; the early one lists the same stints and
        # drivers, the figures of those summed up since it joined waiting for its next race_tables.
        late_stints = await table_text(late.page, "#stint-table")
        assert [s[:2] for s in late_stints] == [s[:2] for s in await table_text(page, "#stint-table")]
        assert late_stints[0][3] == "1:31.000" and late_stints[1][5].endswith(" L"), late_stints
        assert await late.page.locator("#event-feed").inner_text() == await page.locator("#event-feed").inner_text()

        # Screenshots: laptop and phone, light and dark; the tables fit a 390 px phone (they scroll
        # inside their card, the page never scrolls sideways).
        await early.screenshot("engineer-laptop-light", full_page=False)
        await page.locator("#laps-card").scroll_into_view_if_needed()
        await early.screenshot("engineer-laptop-tables-light", full_page=False)
        await page.locator("#theme-toggle").click()
        await page.evaluate("() => window.scrollTo(0, 0)")
        await early.screenshot("engineer-laptop-dark", full_page=False)
        await page.locator("#laps-card").scroll_into_view_if_needed()
        await early.screenshot("engineer-laptop-tables-dark", full_page=False)
        phone = await open_dashboard(browser, server, session_id, viewport={**PHONE, "width": 390})
        await expect(phone.page.locator("#lap-table tbody tr")).to_have_count(5)
        widths = await phone.page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
        assert widths[0] <= widths[1], widths
        await phone.screenshot("engineer-phone-dark")  # the theme choice is remembered per browser
        await phone.page.locator("#theme-toggle").click()
        await phone.screenshot("engineer-phone-light")
        early.assert_clean()
        late.assert_clean()
        phone.assert_clean()


async def start_replay(server, recording: str) -> str:
    response = await AsyncHTTPClient().fetch(
        f"{server.url}/api/recordings/{recording}/replay",
        method="POST",
        body=json.dumps({"paused": True}),
        headers={"Authorization": f"Bearer {server.app.access.token}", "Content-Type": "application/json"},
    )
    return json.loads(response.body)["replay_id"]


async def position(page) -> float:
    return await page.evaluate("() => window.racedash.state.replayState.position")


async def test_replay_tables_after_a_seek_and_keyboard_shortcuts(server, settings, clients):
    recording = write_recording(settings.recordings_dir)
    replay_id = await start_replay(server, recording)
    async with chromium() as browser:
        tab = await browser.open(f"{server.url}/dashboard/{replay_id}", viewport=LAPTOP_WIDE)
        page = tab.page
        play = page.locator("#tp-play")
        await expect(play).to_have_attribute("data-state", "paused")
        await expect(page.locator("#keys-help-button")).to_be_visible()

        # ] four times: 1× → 16×; Space plays (and does not scroll the page) to the end.
        for _ in range(4):
            await page.keyboard.press("]")
            await page.wait_for_timeout(150)
        await expect(page.locator("#tp-speed")).to_have_value("16")
        await page.keyboard.press("[")
        await expect(page.locator("#tp-speed")).to_have_value("8")
        await page.keyboard.press("]")
        await expect(page.locator("#tp-speed")).to_have_value("16")
        await page.keyboard.press(" ")
        await expect(play).to_have_attribute("data-state", "playing")
        assert await page.evaluate("() => window.scrollY") == 0
        await expect(page.locator("#tp-time")).to_contain_text("ended", timeout=20_000)
        await page.locator('#lap-table th[data-key="lap"] button').click()  # oldest first
        full = await table_text(page, "#lap-table")
        assert [r[0] for r in full[:5]] == ["1", "2", "3", "4", "5"]
        await expect(page.locator('#event-feed li[data-kind="setup_change"]')).to_contain_text("Brake balance: 55.0:45.0 → 56.0:44.0")

        # A seek's race_tables replace the tables: the first rows of the whole pass.
        await page.locator("#tp-lap").select_option("4")
        await expect(field(page, "lap")).to_have_text("4")
        await expect(page.locator("#lap-table tbody tr")).to_have_count(3)
        assert await table_text(page, "#lap-table") == full[:3]
        await expect(page.locator('#event-feed li[data-kind="setup_change"]')).to_have_count(0)

        # Home, Shift+→ (next lap), → (+5 s), ← (−5 s), End.
        await page.keyboard.press("Home")
        await expect(page.locator("#tp-time")).to_contain_text("0:00 /")
        await page.keyboard.press("Shift+ArrowRight")
        await expect(field(page, "lap")).to_have_text("2")
        start_of_lap_2 = await position(page)
        await page.keyboard.press("ArrowRight")
        await page.wait_for_function("(p) => window.racedash.state.replayState.position >= p + 4.5", arg=start_of_lap_2)
        await page.keyboard.press("ArrowLeft")
        await page.wait_for_function("(p) => window.racedash.state.replayState.position < p + 1", arg=start_of_lap_2)
        await page.keyboard.press("Shift+ArrowRight")
        await expect(field(page, "lap")).to_have_text("3")
        await page.keyboard.press("Shift+ArrowLeft")
        await expect(field(page, "lap")).to_have_text("2")
        await page.keyboard.press("End")
        await expect(field(page, "lap")).to_have_text("6")

        # The setup change in the feed (and on the timeline) jumps to its moment, in lap 4.
        entry = page.locator('#event-feed li[data-kind="setup_change"] button.feed-head')
        await page.keyboard.press("Home")
        await page.keyboard.press("End")
        await expect(entry).to_have_count(1)
        await expect(page.locator('#tp-events [data-kind="setup_change"]')).to_have_count(1)
        await entry.click()
        await expect(field(page, "lap")).to_have_text("4")
        assert 60.0 <= await position(page) <= 66.0

        # ? opens the help, Escape-free: ? again closes it.
        await page.keyboard.press("?")
        await expect(page.locator("#keys-help")).to_be_visible()
        await expect(page.locator("#keys-help")).to_contain_text("previous / next lap")
        await tab.screenshot("engineer-replay-help", full_page=False)
        await page.keyboard.press("?")
        await expect(page.locator("#keys-help")).to_be_hidden()
        await page.locator("#keys-help-button").click()
        await expect(page.locator("#keys-help")).to_be_visible()
        await page.locator("#keys-help-close").click()
        await expect(page.locator("#keys-help")).to_be_hidden()
        tab.assert_clean()


async def test_dark_mode_and_units_persist_across_reload(server, clients):
    monitor, session_id = await monitor_session(server, clients)
    await publish(monitor, stint(session_id, 1, 3))
    async with chromium() as browser:
        tab = await open_dashboard(browser, server, session_id)
        page = tab.page
        await expect(field(page, "temp_fl")).to_have_text("86 °C")
        await expect(field(page, "temp_fl")).to_have_attribute("aria-label", "FL tyre temperature: 86 °C, in the window")
        assert await page.evaluate("() => document.documentElement.dataset.theme") == "light"
        await page.locator("#theme-toggle").click()
        assert await page.evaluate("() => document.documentElement.dataset.theme") == "dark"
        await page.locator("#unit-temp").select_option("F")
        await page.locator("#unit-pressure").select_option("psi")
        await page.locator("#unit-fuel").select_option("gal")
        await expect(field(page, "temp_fl")).to_have_text("187 °F")  # 86 °C
        await expect(field(page, "brake_fl")).to_have_text("842 °F")  # 450 °C
        await expect(field(page, "pressure_fl")).to_have_text("25.4 psi")  # 175 kPa

        await page.reload()
        await expect(field(page, "temp_fl")).to_have_text("187 °F")
        await expect(field(page, "fuel")).to_contain_text("gal")
        assert await page.evaluate("() => document.documentElement.dataset.theme") == "dark"
        await expect(page.locator("#unit-temp")).to_have_value("F")
        tab.assert_clean()


async def test_stale_then_session_ended_greys_the_values(server, clients):
    monitor, session_id = await monitor_session(server, clients)
    async with chromium() as browser:
        tab = await open_dashboard(browser, server, session_id)
        page = tab.page
        await publish(monitor, stint(session_id, 1, 1))
        await expect(page.locator("#conn-badge")).to_have_text("connected")
        await expect(page.locator("#main-grid")).not_to_have_class("grid dimmed")
        await expect(page.locator("#conn-badge")).to_have_attribute("data-state", "stale", timeout=15_000)
        await expect(page.locator("#main-grid")).to_have_class("grid dimmed")
        await expect(page.locator("#conn-badge")).to_contain_text("no data for")
        await publish(monitor, stint(session_id, 2, 2))
        await expect(page.locator("#conn-badge")).to_have_attribute("data-state", "connected")
        await expect(page.locator("#main-grid")).to_have_class("grid")

        await monitor.close()  # the monitor goes: the server says so
        await expect(page.locator("#conn-badge")).to_have_attribute("data-state", "ended")
        await expect(page.locator("#conn-badge")).to_contain_text("session ended")
        await expect(page.locator("#main-grid")).to_have_class("grid dimmed")
        await expect(page.locator('#event-feed li[data-kind="alert"]').first).to_contain_text("monitor disconnected")
        await tab.screenshot("engineer-session-ended", full_page=False)
        tab.assert_clean()


async def test_unknown_session_says_it_waits_for_its_monitor(server, clients):
    async with chromium() as browser:
        tab = await browser.open(f"{server.url}/dashboard/{uuid.uuid4()}")
        await expect(tab.page.locator("#conn-badge")).to_have_text("No such session yet — waiting for its monitor")
        tab.assert_clean()


# ---- trend charts, units on the charts, tables that fit, readable chart axes ------------------

async def drawn(page) -> None:
    """Two animation frames: the charts redraw at most once per frame."""
    await page.evaluate("() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))")


async def chart_data(page, name: str) -> list:
    await drawn(page)
    return await page.evaluate("(name) => window.racedash.charts[name].data", name)


async def test_brake_and_pressure_charts_follow_the_unit_preferences(server, clients):
    monitor, session_id = await monitor_session(server, clients)
    frames = stint(session_id, 1, 3)
    frames[5]["telemetry"]["brake_temps"]["fl"] = 0.0  # the game does not know: a gap, not −273 °C
    frames[6]["telemetry"]["tire_pressures"]["rr"] = 0.0  # garage-like 0 kPa: a gap, not 0
    await publish(monitor, frames)
    async with chromium() as browser:
        tab = await open_dashboard(browser, server, session_id, viewport=LAPTOP_WIDE)
        page = tab.page
        await expect(field(page, "lap")).to_have_text("3")
        await page.wait_for_function("() => window.racedash.charts.brakes.data[0].length === 12")

        brakes = await chart_data(page, "brakes")
        assert await page.evaluate("() => window.racedash.charts.brakes.series.map((s) => s.label)") == [
            "Time", "FL", "FR", "RL", "RR"]
        assert len(brakes) == 5 and all(len(s) == 12 for s in brakes)
        for series, celsius in zip(brakes[1:], (450.0, 460.0, 800.0, 150.0)):  # Kelvin − 273.15
            known = [v for v in series if v is not None]
            assert known and all(abs(v - celsius) < 0.01 for v in known), series
        assert brakes[1][5] is None and brakes[1].count(None) == 1  # unknown: nothing plotted
        pressures = await chart_data(page, "pressures")
        assert pressures[4][6] is None and pressures[4].count(None) == 1
        assert all(abs(v - 175.0) < 0.01 for v in pressures[1])
        assert await page.evaluate("() => window.racedash.charts.pressures.series.length") == 5
        # The chart's y scale never reaches down to 0 for the unknown values.
        assert await page.evaluate("() => window.racedash.charts.brakes.scales.y.min") > 50  # RR: 150 °C
        assert await page.evaluate("() => window.racedash.charts.pressures.scales.y.min") > 100  # RL: 150 kPa
        await expect(page.locator("#chart-brakes").locator("xpath=..").locator("figcaption")).to_contain_text("(°C)")

        await page.locator("#chart-brakes").scroll_into_view_if_needed()
        await tab.screenshot("engineer-charts-laptop", full_page=False)

        # °F, psi and gallons: the charts convert for display as the fields do.
        await page.locator("#unit-temp").select_option("F")
        await page.locator("#unit-pressure").select_option("psi")
        await page.locator("#unit-fuel").select_option("gal")
        await page.wait_for_function("() => window.racedash.charts.brakes.data[1][0] > 800")
        brakes_f = await chart_data(page, "brakes")
        assert abs(brakes_f[1][0] - 842.0) < 0.01 and brakes_f[1][5] is None  # 450 °C
        assert abs(brakes_f[4][0] - 302.0) < 0.01  # 150 °C
        tyres_f = await chart_data(page, "tyres")
        assert abs(tyres_f[1][0] - 186.8) < 0.01  # 86 °C
        pressures_psi = await chart_data(page, "pressures")
        assert abs(pressures_psi[1][0] - 175.0 / 6.894757) < 0.01 and pressures_psi[4][6] is None
        fuel_gal = await chart_data(page, "fuel")
        assert abs(fuel_gal[1][0] - 60.0 / 3.785412) < 0.01
        captions = await page.locator(".chart-grid figcaption").all_inner_texts()
        assert any("Brake temperatures (°F)" in c for c in captions), captions
        assert any("Tyre temperatures (°F)" in c for c in captions), captions
        assert any("Tyre pressures (psi)" in c for c in captions), captions
        assert any("Fuel (gal)" in c for c in captions), captions

        phone = await open_dashboard(browser, server, session_id, viewport={**PHONE, "width": 390})
        await phone.page.wait_for_function("() => window.racedash.charts.brakes.data[0].length === 12")
        await drawn(phone.page)
        await phone.page.locator("#chart-laps").scroll_into_view_if_needed()
        await phone.screenshot("engineer-charts-phone", full_page=False)
        await phone.page.locator("#chart-pressures").scroll_into_view_if_needed()
        await phone.screenshot("engineer-charts-phone-2", full_page=False)
        tab.assert_clean()
        phone.assert_clean()


# Every table: fits its scrolling container, or sits in one that scrolls sideways.
TABLES_FIT = """() => [...document.querySelectorAll('table')].filter((t) => t.offsetParent !== null).map((t) => {
  let box = t.parentElement;
  while (box && box !== document.body && !['auto', 'scroll'].includes(getComputedStyle(box).overflowX)) box = box.parentElement;
  const scroller = box && box !== document.body ? box : t.parentElement;
  return {
    id: t.id || t.className || t.closest('section').className,
    fits: scroller.scrollWidth <= scroller.clientWidth,
    scrolls: ['auto', 'scroll'].includes(getComputedStyle(scroller).overflowX),
  };
})"""

# The suspension table's RR header cell, once scrolled into view, lies within its container.
RR_VISIBLE = """() => {
  const group = [...document.querySelectorAll('.setup-group')].find((g) => g.querySelector('h3').textContent === 'Suspension');
  const th = [...group.querySelectorAll('table.corners th')].find((c) => c.textContent.trim() === 'RR');
  th.scrollIntoView({ block: 'nearest', inline: 'nearest' });
  const cell = th.getBoundingClientRect();
  const box = group.getBoundingClientRect();
  return { cell: [cell.left, cell.right], box: [box.left, box.right], fits: group.scrollWidth <= group.clientWidth, widths: [group.scrollWidth, group.clientWidth],
           inside: cell.left >= box.left - 0.5 && cell.right <= box.right + 0.5 && cell.width > 0 };
}"""


async def test_no_table_is_clipped_on_a_laptop_or_a_phone(server, clients):
    monitor, session_id = await monitor_session(server, clients)
    await monitor.call("setup_data", setup_payload(session_id))
    await publish(monitor, stint(session_id, 1, 3))
    async with chromium() as browser:
        for name, viewport in (("laptop", LAPTOP_WIDE), ("phone", {**PHONE, "width": 390})):
            tab = await open_dashboard(browser, server, session_id, viewport=viewport)
            page = tab.page
            await expect(page.locator(".setup-group h3", has_text="Suspension")).to_have_count(1)
            await expect(page.locator("#lap-table tbody tr")).to_have_count(2)
            tables = await page.evaluate(TABLES_FIT)
            assert len(tables) >= 3, tables
            bad = [t for t in tables if not (t["fits"] or t["scrolls"])]
            assert not bad, (name, bad)
            rr = await page.evaluate(RR_VISIBLE)
            assert rr["inside"], (name, rr)
            assert rr["fits"], (name, rr)  # the suspension sheet fits its card: nothing to scroll to
            widths = await page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
            assert widths[0] <= widths[1], (name, widths)
            suspension = page.locator(".setup-group", has=page.locator("h3", has_text="Suspension"))
            await suspension.locator("table.corners").scroll_into_view_if_needed()
            await tab.screenshot(f"engineer-setup-suspension-{name}", full_page=False)
            tab.assert_clean()


# For each chart: the x ticks uPlot drew, and the widest of their labels measured as uPlot draws them.
X_AXIS_ROOM = """() => {
  const ctx = document.createElement('canvas').getContext('2d');
  return Object.entries(window.racedash.charts).filter(([, u]) => u && u.axes && u.series)
    .map(([name, u]) => {
      const axis = u.axes[0];
      ctx.font = axis.font[0] || '12px system-ui';
      const labels = (axis._values || []).filter((v) => v !== null && v !== '');
      const ticks = labels.length;
      const widest = Math.max(0, ...labels.map((v) => ctx.measureText(String(v)).width));
      return { name, width: u.bbox.width / (window.devicePixelRatio || 1), chart: u.width, ticks, widest, labels };
    });
}"""


async def test_chart_time_axes_never_crowd_their_labels_on_a_phone(server, clients):
    monitor, session_id = await monitor_session(server, clients)
    await publish(monitor, stint(session_id, 1, 6))
    async with chromium() as browser:
        for viewport in ({**PHONE, "width": 390}, {"width": 320, "height": 700}, LAPTOP_WIDE):
            tab = await open_dashboard(browser, server, session_id, viewport=viewport)
            page = tab.page
            await page.wait_for_function("() => window.racedash.charts.brakes.data[0].length === 24")
            await drawn(page)
            charts = await page.evaluate(X_AXIS_ROOM)
            assert {c["name"] for c in charts} == {"laps", "fuel", "tyres", "brakes", "pressures"}, charts
            for c in charts:
                assert c["ticks"] >= 2, c
                assert c["chart"] / c["ticks"] >= c["widest"], c
                assert c["width"] / c["ticks"] >= c["widest"], c
                if c["name"] != "laps":  # short clock labels: HH:MM (or :SS between whole minutes)
                    assert all(len(v) <= 5 for v in c["labels"]), c
            tab.assert_clean()
