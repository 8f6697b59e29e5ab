"""The live dashboard in a real browser, fed by a real monitor-like Socket.IO client."""

from __future__ import annotations

import re
import signal

import pytest
from playwright.async_api import expect

from tests.browser import PHONE, chromium
from tests.helpers import Client, sample_telemetry_payloads
from tests.procs import ServerProcess
from tests.ui_data import changed_setup, garage_frame, pit_stop, setup_payload, stint

pytestmark = pytest.mark.browser


@pytest.fixture
def settings(settings):
    # stint() sends 4 frames a lap, ~22 s of monitor time apart; the race model takes frames more
    # than race_gap_seconds (default 5 s) apart for a data gap and never times the laps spanning
    # one. A wider gap lets these coarse test streams be timed as the dense real ones are.
    return settings.replace(race_gap_seconds=60.0)


async def monitor_session(server, clients) -> tuple[Client, str]:
    monitor = Client(server.url)
    clients.append(monitor)
    await monitor.connect()
    ack = await monitor.call("request_session_id", {})
    return monitor, ack["session_id"]


async def publish(monitor: Client, frames: list[dict]) -> list[int]:
    seqs = []
    for frame in frames:
        ack = await monitor.call("telemetry_update", frame)
        assert ack["ok"], ack
        seqs.append(ack["seq"])
    return seqs


async def open_dashboard(browser, server, session_id: str, **options):
    """The session's dashboard in a new tab, once its Socket.IO connection is up."""
    tab = await browser.open(f"{server.url}/dashboard/{session_id}", **options)
    await connected(tab.page)
    return tab


def field(page, name: str):
    return page.locator(f'[data-field="{name}"]')


async def connected(page) -> None:
    await expect(page.locator("#conn-badge")).to_have_attribute("data-state", "connected")


async def handled(page, seq: int) -> None:
    """Wait until the page has handled the frame numbered ``seq``.

    A field showing lap N only proves that the first frame of lap N was handled:
    ``publish`` returns on the monitor's acks, not on the page's receipt.
    """
    await page.wait_for_function(
        "(seq) => window.racedash.store.lastSeq !== null && window.racedash.store.lastSeq >= seq", arg=seq
    )


async def lap_chart(page) -> list:
    """The lap chart's data once drawn: [laps, clean lap times, in/out/pit lap times]."""
    await page.evaluate("() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))")
    return await page.evaluate("() => window.racedash.charts.laps.data")


async def test_values_update_as_the_car_publishes(server, clients):
    monitor, session_id = await monitor_session(server, clients)
    async with chromium() as browser:
        tab = await open_dashboard(browser, server, session_id)
        page = tab.page
        await expect(page.locator("#mode-badge")).to_have_text("LIVE")

        # The game's unknowns (garage: −273.15 °C, 0 kPa, negative lap time) show as "—".
        await publish(monitor, [garage_frame(session_id)])
        await expect(field(page, "driver")).to_have_text("Dean Davids")
        await expect(field(page, "track")).to_have_text("Autodromo Enzo e Dino Ferrari")
        await expect(field(page, "session_type")).to_have_text("Practice")
        for corner in ("fl", "fr", "rl", "rr"):
            await expect(field(page, f"temp_{corner}")).to_have_text("—")
            await expect(field(page, f"pressure_{corner}")).to_have_text("—")
            await expect(field(page, f"temp_{corner}")).to_have_class("tyre-temp val unknown")
        await expect(field(page, "current_lap")).to_have_text("—")
        await expect(field(page, "position")).to_have_text("—")
        await expect(field(page, "water_temp")).to_have_text("—")
        await expect(field(page, "fuel")).to_have_text("75.0 L")
        # The server has no clean lap to go by yet (its fuel_per_lap is null): the page says so.
        await expect(field(page, "fuel_per_lap")).to_have_text("after the first full lap")
        await expect(field(page, "fuel_time_left")).to_have_text("after the first full lap")
        await expect(page.locator("#car-state")).to_be_hidden()  # in the garage: no pit badge

        await publish(monitor, stint(session_id, 1, 4, fuel_per_lap=2.8))
        await expect(field(page, "lap")).to_have_text("4")
        await expect(field(page, "position")).to_have_text("P3")
        # The server's race model: lap 1 (90.5 s) left the garage, so it is an out-lap and no
        # best; laps 2 and 3 took 91.0 and 91.5 s on 2.8 L each. 49.5 L / 2.8 = 17.68 laps left,
        # at the clean laps' pace (91.25 s) 26:53.
        await expect(field(page, "best_lap")).to_have_text("1:31.000")
        await expect(field(page, "last_lap")).to_have_text("1:31.500")
        await expect(field(page, "fuel_per_lap")).to_have_text("2.80 L")
        await expect(field(page, "fuel")).to_have_text("49.5 L")
        await expect(field(page, "fuel_pct")).to_have_text("66 %")
        await expect(field(page, "fuel_laps_left")).to_have_text("17.7")
        await expect(field(page, "fuel_time_left")).to_have_text("26:53")
        await expect(page.locator("#car-state")).to_be_hidden()
        await expect(page.locator("#low-fuel")).to_be_hidden()
        # Colour windows (defaults 70–100 °C, 160–190 kPa, wear 20/40 %, brakes 200–750 °C).
        await expect(field(page, "temp_fl")).to_have_text("86 °C")
        await expect(field(page, "temp_fl")).to_have_class("tyre-temp val ok")
        await expect(field(page, "temp_rl")).to_have_class("tyre-temp val cold")
        await expect(field(page, "temp_rr")).to_have_class("tyre-temp val hot")
        await expect(field(page, "pressure_rl")).to_have_class("val cold")
        await expect(field(page, "wear_rl")).to_have_text("35 %")
        await expect(field(page, "wear_rl")).to_have_class("val warm")
        await expect(field(page, "wear_rr")).to_have_class("val hot")
        await expect(field(page, "brake_fl")).to_have_text("450 °C")
        await expect(field(page, "brake_rl")).to_have_class("val brake hot")
        await expect(field(page, "brake_rr")).to_have_class("val brake cold")
        await expect(field(page, "water_temp")).to_have_text("88 °C")
        await expect(field(page, "gear")).to_have_text("5")
        # Charts: four laps seen, three completed: the out-lap a dot, the clean laps the line.
        laps = await page.evaluate("() => window.racedash.race.laps.map(l => [l.lap, l.time, l.clean])")
        assert laps == [[1, 90.5, False], [2, 91.0, True], [3, 91.5, True]]
        assert await lap_chart(page) == [[1, 2, 3], [None, 91.0, 91.5], [90.5, None, None]]
        await tab.screenshot("dashboard-live-laptop")
        tab.assert_clean()


async def test_real_brake_temps_in_kelvin_show_as_celsius(server, clients):
    # The real monitor's parked car: brakes 307.57 K, which is 34 °C, not "307 °C".
    monitor, session_id = await monitor_session(server, clients)
    async with chromium() as browser:
        tab = await open_dashboard(browser, server, session_id)
        page = tab.page
        sample = sample_telemetry_payloads()[0]
        await publish(monitor, [{**sample, "session_id": session_id}])
        for corner in ("fl", "fr", "rl", "rr"):
            await expect(field(page, f"brake_{corner}")).to_have_text("34 °C")
            await expect(field(page, f"brake_{corner}")).to_have_class("val brake cold")  # window 200–750 °C
        tab.assert_clean()


async def test_low_fuel_warning(server, clients):
    monitor, session_id = await monitor_session(server, clients)
    async with chromium() as browser:
        tab = await open_dashboard(browser, server, session_id)
        await publish(monitor, stint(session_id, 1, 3, start_fuel=10.0, fuel_per_lap=3.0))
        await expect(field(tab.page, "fuel_laps_left")).to_have_text("0.6")
        await expect(tab.page.locator("#low-fuel")).to_be_visible()
        await expect(tab.page.locator("#fuel-fill")).to_have_class("bar-fill low")
        tab.assert_clean()


# stint() with a garage frame first and 2.8 L a lap, as the server's race model has it: lap 1 is
# the out-lap (no best), laps 2-4 are clean (91.0, 91.5, 92.0 s); 46.7 L left is 16.68 laps, at
# their pace (91.5 s) 25:26.
SERVER_FIGURES = {
    "best_lap": "1:31.000", "last_lap": "1:32.000", "fuel_per_lap": "2.80 L", "fuel_laps_left": "16.7",
    "fuel_time_left": "25:26",
}


@pytest.mark.parametrize("settings_changes", [{"history_max_points": 6}])
async def test_late_joiner_sees_the_servers_laps_and_fuel(server_with, clients):
    """A page opened after the laps were published shows the server's figures, the very ones a page
    that watched them shows, though the history it is sent holds too few frames to time a lap."""
    monitor, session_id = await monitor_session(server_with, clients)
    async with chromium() as browser:
        early = await open_dashboard(browser, server_with, session_id)
        await publish(monitor, [garage_frame(session_id), *stint(session_id, 1, 5, fuel_per_lap=2.8)])
        await expect(field(early.page, "lap")).to_have_text("5")
        for name, text in SERVER_FIGURES.items():
            await expect(field(early.page, name)).to_have_text(text)

        late = await open_dashboard(browser, server_with, session_id)
        await expect(field(late.page, "lap")).to_have_text("5")
        assert await late.page.evaluate("() => window.racedash.store.length") <= 6  # of 21 frames
        for name, text in SERVER_FIGURES.items():
            await expect(field(late.page, name)).to_have_text(text)
        rows = "() => window.racedash.race.laps.map(l => [l.lap, l.seq, l.time, l.clean, l.fuel_used])"
        assert await late.page.evaluate(rows) == await early.page.evaluate(rows)
        assert await lap_chart(late.page) == await lap_chart(early.page) == [
            [1, 2, 3, 4], [None, 91.0, 91.5, 92.0], [90.5, None, None, None]
        ]
        await expect(late.page.locator("#tp-markers .marker")).to_have_count(4)
        early.assert_clean()
        late.assert_clean()


async def test_in_pit_badge_follows_the_servers_car_state(server, clients):
    monitor, session_id = await monitor_session(server, clients)
    async with chromium() as browser:
        tab = await open_dashboard(browser, server, session_id)
        page = tab.page
        badge = page.locator("#car-state")
        await publish(monitor, stint(session_id, 1, 3))
        await expect(field(page, "lap")).to_have_text("3")
        await expect(field(page, "fuel_per_lap")).to_have_text("3.00 L")
        await expect(badge).to_be_hidden()

        stop = pit_stop(session_id, 3)
        await publish(monitor, stop[:1])  # stopped mid-lap
        await expect(badge).to_be_visible()
        await expect(badge).to_have_text("IN PIT")
        await publish(monitor, stop[1:3])  # still stopped, refuelled
        await expect(field(page, "speed")).to_have_text("0 km/h")
        await expect(badge).to_have_text("IN PIT")
        await page.locator("#dashboard").scroll_into_view_if_needed()
        await tab.screenshot("dashboard-in-pit", full_page=False)
        # Somebody opening the page now learns it from the join's race_tables.
        late = await open_dashboard(browser, server, session_id)
        await expect(late.page.locator("#car-state")).to_have_text("IN PIT")

        await publish(monitor, stop[3:4])  # rolling down the pit lane
        await expect(badge).to_have_text("PIT LANE")
        await expect(late.page.locator("#car-state")).to_have_text("PIT LANE")
        await publish(monitor, stop[4:])  # back at speed: the stop is over
        await expect(badge).to_be_hidden()
        await expect(late.page.locator("#car-state")).to_be_hidden()
        await page.wait_for_function("() => window.racedash.race.pitStops.length === 1")
        stops = await page.evaluate("() => window.racedash.race.pitStops.map(s => [s.lap, s.fuel_added])")
        assert stops == [[3, 30.0]]
        # The refuel is the server's business: fuel per lap is still what the clean laps used.
        await expect(field(page, "fuel_per_lap")).to_have_text("3.00 L")
        tab.assert_clean()
        late.assert_clean()


async def test_lap_chart_has_no_lap_without_a_time(server, clients):
    """An out-lap, a pit stop, a data gap spanning a whole lap: the chart's line is the clean laps,
    the in/out/pit laps are dots, the laps the server could not time are left out: never 0:00."""
    monitor, session_id = await monitor_session(server, clients)
    async with chromium() as browser:
        tab = await open_dashboard(browser, server, session_id)
        page = tab.page
        await publish(monitor, [
            garage_frame(session_id), *stint(session_id, 1, 3), *pit_stop(session_id, 3),
            *stint(session_id, 4, 4, start_fuel=90.0),
            *stint(session_id, 6, 7, start_fuel=90.0),  # lap 5 never arrives: a gap of 115 s
        ])
        await expect(field(page, "lap")).to_have_text("7")
        await expect(field(page, "last_lap")).to_have_text("1:33.000")  # lap 6
        await expect(field(page, "best_lap")).to_have_text("1:31.000")  # lap 2: lap 1 is the out-lap
        await page.wait_for_function("() => window.racedash.race.laps.length === 6")
        rows = await page.evaluate(
            "() => window.racedash.race.laps.map(l => [l.lap, l.time, l.clean, l.out_lap, l.pit_lap, l.incomplete])"
        )
        assert rows == [
            [1, 90.5, False, True, False, False],
            [2, 91.0, True, False, False, False],
            [3, 91.5, False, True, True, False],
            [4, None, False, False, False, True],  # ends in the gap
            [5, None, False, False, False, True],  # driven inside it
            [6, 93.0, True, False, False, False],
        ]
        # The timeline: laps 2, 3 and 4 began at the line; the first frame after the gap began lap 6.
        markers = await page.locator("#tp-markers .marker").evaluate_all("(els) => els.map(e => e.dataset.lap)")
        assert markers == ["2", "3", "4", "6", "7"]
        # Laps 4 and 5 are not on the chart at all; the y axis never reaches down to 0:00.
        assert await lap_chart(page) == [[1, 2, 3, 6], [None, 91.0, None, 93.0], [90.5, None, 91.5, None]]
        y_min = await page.evaluate("() => window.racedash.charts.laps.scales.y.min")
        assert y_min > 60, y_min
        await page.locator("#chart-laps").scroll_into_view_if_needed()
        await tab.screenshot("dashboard-lap-chart", full_page=False)
        tab.assert_clean()


async def test_setup_change_is_highlighted_old_to_new(server, clients):
    monitor, session_id = await monitor_session(server, clients)
    await monitor.call("setup_data", setup_payload(session_id))
    async with chromium() as browser:
        tab = await open_dashboard(browser, server, session_id)
        page = tab.page
        # Joining shows the current setup as a readable sheet, not JSON.
        balance = page.locator('#setup-sheet td[data-key="VM_BRAKE_BALANCE"]')
        await expect(balance).to_have_text("55.0:45.0")
        await expect(page.locator('#setup-sheet tr[data-key="VM_BRAKE_BALANCE"] th')).to_have_text("Brake balance")
        await expect(page.locator("#setup-sheet h3", has_text="Brakes")).to_be_visible()
        await expect(page.locator('#setup-sheet td[data-key="VM_GEAR_8"]')).to_have_count(0)  # N/A hidden
        await expect(page.locator("#setup-change")).to_be_hidden()

        await publish(monitor, stint(session_id, 1, 1))
        ack = await monitor.call("setup_data", setup_payload(session_id, changed_setup(), seconds=125.0))
        assert ack["ok"]
        await expect(balance).to_have_text("55.0:45.0 → 56.0:44.0")
        await expect(balance).to_have_class("changed")
        pressure = page.locator('#setup-sheet td[data-key="WM_PRESSURE-W_FL"]')
        await expect(pressure).to_have_text("135 kPa → 138 kPa")
        await expect(page.locator('#setup-sheet td[data-key="WM_PRESSURE-W_FR"]')).to_have_text("135 kPa")
        banner = page.locator("#setup-change")
        await expect(banner).to_be_visible()
        await expect(banner.locator("h3")).to_contain_text("2 settings")
        await expect(banner.locator('li[data-key="VM_BRAKE_BALANCE"]')).to_have_text("Brake balance: 55.0:45.0 → 56.0:44.0")
        await expect(page.locator("#setup-history-count")).to_have_text("1")

        # A second change: the history lists both, newest first; the highlight follows the latest.
        second = changed_setup()
        second["carSetup"]["garageValues"]["VM_REAR_WING"].update(stringValue="P14", value=13)
        await monitor.call("setup_data", setup_payload(session_id, second, seconds=300.0))
        await expect(page.locator("#setup-history-count")).to_have_text("2")
        await expect(balance).to_have_text("56.0:44.0")
        await expect(page.locator('#setup-sheet td[data-key="VM_REAR_WING"]')).to_have_text("P13 → P14")
        await page.locator("#setup-history-box summary").click()
        entries = page.locator("#setup-history > li")
        await expect(entries).to_have_count(2)
        await expect(entries.nth(0)).to_contain_text("Rear wing: P13 → P14")
        await expect(entries.nth(1)).to_contain_text("Brake balance: 55.0:45.0 → 56.0:44.0")
        await page.locator("#setup-card").scroll_into_view_if_needed()
        await tab.screenshot("dashboard-setup-change")
        tab.assert_clean()

        # Somebody opening the dashboard later still sees every change of the session.
        late = await open_dashboard(browser, server, session_id)
        await expect(late.page.locator("#setup-history-count")).to_have_text("2")
        await expect(late.page.locator('#setup-sheet td[data-key="VM_REAR_WING"]')).to_have_text("P13 → P14")
        late.assert_clean()


async def test_rejoin_with_last_seq_fills_the_gap(server, clients):
    monitor, session_id = await monitor_session(server, clients)
    async with chromium() as browser:
        tab = await open_dashboard(browser, server, session_id)
        page = tab.page
        before = await publish(monitor, stint(session_id, 1, 2))
        await expect(field(page, "lap")).to_have_text("2")
        await handled(page, before[-1])  # so the rejoin asks after exactly before[-1]
        # What reaches the socket from here on (the store drops duplicates, the wire does not).
        await page.evaluate(
            "() => { window.wire = []; window.racedash.socket.on('telemetry_update', (m) => window.wire.push(m.seq)); }"
        )

        await page.evaluate("() => window.racedash.socket.disconnect()")
        await expect(page.locator("#conn-badge")).to_have_attribute("data-state", "reconnecting")
        missed = await publish(monitor, stint(session_id, 3, 5))
        await expect(field(page, "lap")).to_have_text("2")

        await page.evaluate("() => window.racedash.socket.connect()")
        await connected(page)
        await expect(field(page, "lap")).to_have_text("5")
        after = await publish(monitor, stint(session_id, 6, 6))
        await expect(field(page, "lap")).to_have_text("6")
        await handled(page, after[-1])
        seqs = await page.evaluate("() => window.racedash.store.frames.map(f => f.seq)")
        assert seqs == before + missed + after  # no gap, in order
        wire = await page.evaluate("() => window.wire")
        assert wire == missed + after  # each frame sent once: the rejoin re-sent nothing
        await expect(field(page, "last_lap")).to_have_text("1:32.500")
        tab.assert_clean()


async def scrub_to(page, seconds: float) -> None:
    await page.evaluate(
        """(value) => { const s = document.getElementById('tp-scrub');
                        s.value = String(value); s.dispatchEvent(new Event('input'));
                        s.dispatchEvent(new Event('change')); }""",
        seconds,
    )


async def marker_pixels(page, chart: str) -> int:
    """Pixels of the time-shift marker's colour in one chart's plot area, once it has drawn."""
    await page.evaluate("() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))")
    return await page.evaluate(
        """(name) => {
             const u = window.racedash.charts[name];
             const { left, top, width, height } = u.bbox;
             const data = u.ctx.getImageData(left, top, width, height).data;
             let n = 0;
             for (let i = 0; i < data.length; i += 4) {
               // #e6007e, allowing for anti-aliasing
               if (data[i] > 180 && data[i + 1] < 60 && data[i + 2] > 90 && data[i + 2] < 170) n += 1;
             }
             return n;
           }""",
        chart,
    )


async def test_time_shift_and_go_live(server, clients):
    monitor, session_id = await monitor_session(server, clients)
    async with chromium() as browser:
        tab = await open_dashboard(browser, server, session_id)
        page = tab.page
        await publish(monitor, stint(session_id, 1, 4))
        await expect(field(page, "lap")).to_have_text("4")
        await expect(page.locator("#tp-time")).to_contain_text("LIVE")
        await expect(page.locator("#tp-markers .marker")).to_have_count(3)

        # Drag back to the middle of lap 2 (lap 1 is 90.5 s long).
        await scrub_to(page, 120)
        await expect(field(page, "lap")).to_have_text("2")
        await expect(field(page, "last_lap")).to_have_text("1:30.500")  # as it was then
        # The server's strategy as of the shown frame: 56.25 L at 3.0 L a lap.
        await expect(field(page, "fuel_laps_left")).to_have_text("18.8")
        await expect(field(page, "fuel_per_lap")).to_have_text("3.00 L")
        await expect(page.locator("#tp-time")).to_have_text("3:42 behind live")
        await expect(page.locator("#shift-badge")).to_be_visible()
        await expect(page.locator("#shift-badge")).to_contain_text("TIME-SHIFT")
        await expect(page.locator("#tp-live")).to_be_visible()
        # The charts mark the shown moment: on the fuel chart at its time, on the lap chart at its lap.
        marker = await page.evaluate("() => window.racedash.charts.marker")
        assert marker["lap"] == 2 and marker["t"] == await page.evaluate("() => window.racedash.store.at(window.racedash.state.viewTime).t")
        assert await marker_pixels(page, "fuel") > 20 and await marker_pixels(page, "laps") > 20
        # Live data keeps coming in while looking back; the view stays put.
        await publish(monitor, stint(session_id, 5, 5))
        await expect(page.locator("#tp-markers .marker")).to_have_count(4)
        await expect(field(page, "lap")).to_have_text("2")
        await tab.screenshot("dashboard-time-shift")

        await page.locator("#tp-lap").select_option("3")
        await expect(field(page, "lap")).to_have_text("3")
        await expect(field(page, "current_lap")).to_have_text("0:00.100")

        await page.locator("#tp-live").click()
        await expect(field(page, "lap")).to_have_text("5")
        await expect(field(page, "last_lap")).to_have_text("1:32.000")
        await expect(field(page, "fuel_laps_left")).to_have_text("15.3")  # 45.75 L at 3.0 L a lap, live again
        await expect(page.locator("#shift-badge")).to_be_hidden()
        await expect(page.locator("#tp-live")).to_be_hidden()
        assert await page.evaluate("() => window.racedash.charts.marker") is None
        assert await marker_pixels(page, "fuel") == 0 and await marker_pixels(page, "laps") == 0
        tab.assert_clean()


async def test_play_from_here_replays_the_recording_and_leads_back_to_live(server, clients):
    """From a time-shifted live view to a replay of the growing recording, and back."""
    monitor, session_id = await monitor_session(server, clients)
    await monitor.call("setup_data", setup_payload(session_id))
    async with chromium() as browser:
        tab = await open_dashboard(browser, server, session_id)
        page = tab.page
        await publish(monitor, stint(session_id, 1, 4))
        await expect(field(page, "lap")).to_have_text("4")
        await expect(page.locator("#tp-play-here")).to_be_hidden()
        await scrub_to(page, 120)
        await expect(field(page, "lap")).to_have_text("2")
        await expect(page.locator("#tp-play-here")).to_be_visible()

        await page.locator("#tp-play-here").click()
        # The live id goes along in the fragment only (never to a server): the link back uses it.
        await page.wait_for_url(re.compile(r"/dashboard/(?!" + session_id + r")[0-9a-f-]{36}#live=" + session_id + "$"))
        replay_id = page.url.rsplit("/", 1)[1].split("#")[0]
        assert server.app.replays.find(replay_id).recording_id == session_id
        await expect(page.locator("#mode-badge")).to_have_text("REPLAY")
        await expect(page.locator("#tp-play")).to_be_visible()
        # The recorded session still has its publisher: the replay follows it, and leads back.
        back = page.locator("#tp-to-live")
        await expect(back).to_be_visible()
        await expect(back).to_have_attribute("href", f"/dashboard/{session_id}")
        await publish(monitor, stint(session_id, 5, 5))
        await tab.screenshot("dashboard-time-shift-replay")

        await back.click()
        await page.wait_for_url(f"{server.url}/dashboard/{session_id}")
        await expect(page.locator("#mode-badge")).to_have_text("LIVE")
        await connected(page)
        await expect(field(page, "lap")).to_have_text("5")
        await expect(page.locator("#tp-to-live")).to_be_hidden()
        tab.assert_clean()


@pytest.mark.parametrize("settings_changes", [{"recording_enabled": False}])
async def test_play_from_here_without_recordings_says_why(server_with, clients):
    monitor, session_id = await monitor_session(server_with, clients)
    async with chromium() as browser:
        tab = await open_dashboard(browser, server_with, session_id)
        page = tab.page
        await publish(monitor, stint(session_id, 1, 3))
        await expect(field(page, "lap")).to_have_text("3")
        await scrub_to(page, 100)
        await page.locator("#tp-play-here").click()
        await expect(page.locator("#tp-status")).to_contain_text("Time-shift refused")
        assert page.url == f"{server_with.url}/dashboard/{session_id}"
        await expect(page.locator("#mode-badge")).to_have_text("LIVE")
        tab.assert_clean()


async def test_phone_layout_has_no_horizontal_scroll(server, clients):
    monitor, session_id = await monitor_session(server, clients)
    await monitor.call("setup_data", setup_payload(session_id))
    await publish(monitor, stint(session_id, 1, 3))
    await monitor.call("setup_data", setup_payload(session_id, changed_setup(), seconds=200.0))
    async with chromium() as browser:
        tab = await open_dashboard(browser, server, session_id, viewport=PHONE)
        page = tab.page
        await expect(field(page, "lap")).to_have_text("3")
        # Opened after the change: the join brings both setups, so the change shows (the widest cell).
        await expect(page.locator('#setup-sheet td[data-key="VM_BRAKE_BALANCE"]')).to_have_text("55.0:45.0 → 56.0:44.0")
        await page.locator("#setup-show-all").check()  # the widest content: every setting
        await expect(page.locator('#setup-sheet td[data-key="VM_GEAR_8"]')).to_have_text("N/A")
        widths = await page.evaluate(
            "() => [document.documentElement.scrollWidth, document.body.scrollWidth, window.innerWidth]"
        )
        assert widths[0] <= widths[2] and widths[1] <= widths[2], widths
        await page.locator("#setup-show-all").uncheck()
        await tab.screenshot("dashboard-phone-full")
        await page.evaluate("() => window.scrollTo(0, 0)")
        await tab.screenshot("dashboard-phone", full_page=False)
        # Time-shifted, the timeline row holds the most controls: they wrap, not widen the page.
        await scrub_to(page, 100)
        await expect(page.locator("#tp-play-here")).to_be_visible()
        widths = await page.evaluate(
            "() => [document.documentElement.scrollWidth, document.body.scrollWidth, window.innerWidth]"
        )
        assert widths[0] <= widths[2] and widths[1] <= widths[2], widths
        await tab.screenshot("dashboard-phone-time-shift", full_page=False)
        tab.assert_clean()


# While the server is down the browser logs its failed connection attempts.
CONNECTION_REFUSED = ("WebSocket connection to", "ERR_CONNECTION_REFUSED", "Failed to load resource")


async def test_recovers_after_server_restart_and_fills_the_gap(tmp_path, clients):
    first = await ServerProcess(recordings_dir=tmp_path / "recordings").astart()
    servers = [first]
    try:
        monitor, session_id = await monitor_session(first, clients)
        await monitor.call("setup_data", setup_payload(session_id))
        async with chromium() as browser:
            tab = await open_dashboard(browser, first, session_id)
            page = tab.page
            before = await publish(monitor, stint(session_id, 1, 2))
            await expect(field(page, "lap")).to_have_text("2")

            await monitor.close()
            # A clean restart: with recordings the session resumes with its seq numbers,
            # without them the server starts counting again; the page must cope with both.
            assert await first.astop(signal.SIGTERM) == 0
            await expect(page.locator("#conn-badge")).to_have_attribute("data-state", "reconnecting")
            await expect(page.locator("#conn-badge")).to_contain_text("reconnecting")
            # Nothing on screen looks live while the server is gone: values greyed, their age shown.
            await expect(page.locator("#main-grid")).to_have_class("grid dimmed")
            await expect(page.locator("#conn-badge")).to_contain_text("old")
            await tab.screenshot("dashboard-reconnecting", full_page=False)

            # Same port, same session id: the monitor keeps publishing after the restart, and
            # the frames sent before the page is back must reach it too.
            second = await ServerProcess(recordings_dir=tmp_path / "recordings", port=first.port).astart()
            servers.append(second)
            monitor2 = Client(second.url)
            clients.append(monitor2)
            await monitor2.connect()
            during = await publish(monitor2, stint(session_id, 3, 4))
            await connected(page)
            await expect(field(page, "lap")).to_have_text("4", timeout=20_000)
            await expect(page.locator("#main-grid")).not_to_have_class("grid dimmed")
            after = await publish(monitor2, stint(session_id, 5, 5))
            await expect(field(page, "lap")).to_have_text("5")
            await handled(page, after[-1])  # the lap shows with the first of its frames: wait for the last

            frames = await page.evaluate("() => window.racedash.store.frames.map(f => [f.seq, f.telemetry.lap])")
            laps = [lap for _seq, lap in frames]
            assert laps == sorted(laps) and set(laps) == {1, 2, 3, 4, 5}
            assert len(frames) == len(before) + len(during) + len(after)
            # The setup is still shown (whether or not the new server could restore it).
            await expect(page.locator('#setup-sheet td[data-key="VM_BRAKE_BALANCE"]')).to_have_text("55.0:45.0")
            tab.assert_clean(allowed=CONNECTION_REFUSED)
            await monitor2.close()  # before its server goes
    finally:
        for srv in servers:
            await srv.astop()


async def test_simulated_car_stint_with_setup_change(server, clients):
    """The project's simulator publishes a stint; the page shows the server's laps, true to the model."""
    import asyncio
    import uuid

    from racedash.simulator import SimulatedMonitor, StintConfig, StintModel

    session_id = str(uuid.uuid4())
    model = StintModel(StintConfig(seed=11, laps=7))
    monitor = SimulatedMonitor(
        server.url, model, rate=10, speedup=150, session_id=session_id, announce=lambda _m: None
    )
    async with chromium() as browser:
        tab = await open_dashboard(browser, server, session_id)
        page = tab.page
        run = asyncio.create_task(monitor.run())
        try:
            await asyncio.wait_for(asyncio.shield(run), 60)
        finally:
            if not run.done():
                run.cancel()
                await asyncio.gather(run, return_exceptions=True)
        completed = list(model.laps)
        assert len(completed) == 7
        await expect(field(page, "driver")).not_to_have_text("—")
        await expect(field(page, "car")).to_have_text(model.car.name)
        # The driver changed a setting mid-stint: highlighted old -> new.
        await expect(page.locator("#setup-change")).to_be_visible()
        await expect(page.locator("#setup-change li.change").first).to_contain_text("→")
        await expect(page.locator("#setup-history-count")).not_to_have_text("0")
        # The page holds the server's lap rows (each lap's event follows its frame: wait for the
        # last one), and their times match the simulator's own laps.
        server_laps = server.app.race.tables(session_id)["laps"]
        await page.wait_for_function(f"() => window.racedash.race.laps.length === {len(server_laps)}")
        shown = await page.evaluate(
            "() => window.racedash.race.laps.filter(l => l.time !== null).map(l => [l.lap, l.time, l.clean])"
        )
        assert shown == [[lap["lap"], lap["time"], lap["clean"]] for lap in server_laps if lap["time"] is not None]
        truth = {lap.number: lap.lap_time for lap in completed}
        assert len(shown) >= 5 and sum(clean for _n, _t, clean in shown) >= 4
        for number, time, _clean in shown:
            assert time == pytest.approx(truth[number], abs=0.05), (number, time, truth[number])
        best = min(truth[n] for n, _t, clean in shown if clean)  # the best clean lap
        minutes, seconds = (await field(page, "best_lap").inner_text()).split(":")
        assert int(minutes) * 60 + float(seconds) == pytest.approx(best, abs=0.05)
        per_lap = await field(page, "fuel_per_lap").inner_text()
        assert per_lap.endswith(" L") and 2.0 < float(per_lap.split()[0]) < 4.5
        for corner in ("fl", "fr", "rl", "rr"):
            await expect(field(page, f"temp_{corner}")).to_have_text(re.compile(r"^\d+ °C$"))
        await tab.screenshot("dashboard-simulator")
        tab.assert_clean()
