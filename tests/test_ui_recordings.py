"""The recordings page and the replay view in a real browser.

They drive the recordings REST API and the replay engine through the real UI.
"""

from __future__ import annotations

import uuid

import orjson
import pytest
from playwright.async_api import expect


from tests.browser import PHONE, chromium
from tests.helpers import Client
from tests.ui_data import changed_setup, iso, setup_payload, stint

pytestmark = pytest.mark.browser


@pytest.fixture
def settings(settings):
    # stint() sends 4 frames a lap, ~22 s of monitor time apart; the race model takes frames more
    # than race_gap_seconds (default 5 s) apart for a data gap and never times the laps spanning
    # one. A wider gap lets these coarse test streams be timed as the dense real ones are.
    return settings.replace(race_gap_seconds=60.0)


def login_url(server) -> str:
    """The team login link the server prints; it leads on to the recordings page."""
    return f"{server.url}/login?token={server.app.access.token}&next=/recordings"


async def publish_session(server, clients, *, track: str, driver: str, laps: int) -> str:
    monitor = Client(server.url)
    clients.append(monitor)
    await monitor.connect()
    session_id = (await monitor.call("request_session_id", {}))["session_id"]
    await monitor.call("setup_data", setup_payload(session_id))
    for frame in stint(session_id, 1, laps):
        frame["telemetry"].update(track_name=track, player_name=driver)
        assert (await monitor.call("telemetry_update", frame))["ok"]
    return session_id


async def test_recordings_list_shows_recordings_made_in_the_test(server, clients):
    imola = await publish_session(server, clients, track="Autodromo Enzo e Dino Ferrari", driver="Dean Davids", laps=3)
    spa = await publish_session(server, clients, track="Spa-Francorchamps", driver="Ann Other", laps=2)
    async with chromium() as browser:
        tab = await browser.open(login_url(server))
        page = tab.page
        rows = page.locator("#rec-body tr")
        await expect(rows).to_have_count(2)
        api = orjson.loads((await (await page.request.get(f"{server.url}/api/recordings")).body()))
        listed = {r["session_id"]: r for r in api["recordings"]}
        assert set(listed) == {imola, spa}

        row = page.locator(f'#rec-body tr[data-session-id="{imola}"]')
        await expect(row.locator('td[data-label="Track"]')).to_have_text("Autodromo Enzo e Dino Ferrari")
        await expect(row.locator('td[data-label="Car"]')).to_have_text("DKR Engineering #3:ELMS25")
        await expect(row.locator('td[data-label="Drivers"]')).to_have_text("Dean Davids")
        await expect(row.locator('td[data-label="Laps"]')).to_have_text(str(listed[imola]["laps"]))
        assert listed[imola]["laps"] == 3
        await expect(row.locator('td[data-label="Status"]')).to_have_text("LIVE")
        await expect(row.locator('td[data-label="Size"]')).not_to_have_text("—")

        # Filter and sort.
        await page.locator("#rec-filter").fill("ann")
        await expect(rows).to_have_count(1)
        await expect(rows.first).to_have_attribute("data-session-id", spa)
        await page.locator("#rec-filter").fill("")
        await page.locator('button[data-sort="track"]').click()
        await expect(rows.first).to_have_attribute("data-session-id", imola)
        await expect(page.locator('th:has(button[data-sort="track"])')).to_have_attribute("aria-sort", "ascending")
        await page.locator('button[data-sort="track"]').click()
        await expect(rows.first).to_have_attribute("data-session-id", spa)
        await page.locator("#rec-status").select_option("ended")
        await expect(rows).to_have_count(0)
        await page.locator("#rec-status").select_option("live")
        await expect(rows).to_have_count(2)

        # Download is the recording itself: a header line, then the frames.
        href = await row.locator("a", has_text="Download").get_attribute("href")
        assert href == f"/api/recordings/{imola}.jsonl"
        response = await page.request.get(server.url + href)
        lines = (await response.body()).splitlines()
        assert response.status == 200 and orjson.loads(lines[0])["session_id"] == imola
        assert len(lines) == 1 + 1 + 3 * 4  # header, setup, 3 laps of 4 frames
        await tab.screenshot("recordings-laptop")
        tab.assert_clean()

        phone = await browser.open(login_url(server), viewport=PHONE)
        await expect(phone.page.locator("#rec-body tr")).to_have_count(2)
        # On a phone the table is cards without headers: the Sort select sorts instead.
        phone_rows = phone.page.locator("#rec-body tr")
        await phone.page.locator("#rec-sort").select_option("track:asc")
        await expect(phone_rows.first).to_have_attribute("data-session-id", imola)
        await phone.page.locator("#rec-sort").select_option("first_time:desc")
        await expect(phone_rows.first).to_have_attribute("data-session-id", spa)
        await phone.page.locator("#rec-sort").select_option("laps:desc")
        await expect(phone_rows.first).to_have_attribute("data-session-id", imola)
        await phone.page.locator("#rec-sort").select_option("track:asc")
        await phone.page.locator("#rec-filter").fill("spa")
        await expect(phone_rows).to_have_count(1)
        await phone.page.locator("#rec-filter").fill("")
        widths = await phone.page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
        assert widths[0] <= widths[1], widths
        await phone.screenshot("recordings-phone")
        phone.assert_clean()


LAP_SECONDS = 20.0
RATE = 2.0


def write_recording(directory, laps: int = 6) -> str:
    """A 2 Hz recording of ``laps`` 20-second laps with a setup change on lap 4, in the
    recorder's format (receive times spread as in a real stint, which publishing in a
    test cannot do)."""
    from racedash.recording.format import Header, encode_event, encode_header

    session_id = str(uuid.uuid4())
    t0 = 1_763_830_000.0
    directory.mkdir(parents=True, exist_ok=True)
    lines = [encode_header(Header(session_id=session_id, created=t0, racedash_version="test"))]
    seq = 1
    lines.append(encode_event(t0, seq, "setup", setup_payload(session_id)))
    per_lap = int(LAP_SECONDS * RATE)
    frames = stint(session_id, 1, laps, per_lap=per_lap)
    for i, frame in enumerate(frames):
        t = t0 + 0.5 + i / RATE
        frame["telemetry"].update(lap_time=(i % per_lap) / RATE + 0.1, timestamp=iso(i / RATE + 0.1))
        if i == 3 * per_lap + 4:
            seq += 1
            lines.append(encode_event(t - 0.1, seq, "setup", setup_payload(session_id, changed_setup(), seconds=t - t0)))
        seq += 1
        lines.append(encode_event(t, seq, "telemetry", frame))
    (directory / f"{session_id}.jsonl").write_bytes(b"".join(lines))
    return session_id


def field(page, name: str):
    return page.locator(f'[data-field="{name}"]')


async def test_replay_controls_change_what_is_shown(server, settings, clients):
    recording = write_recording(settings.recordings_dir)
    async with chromium() as browser:
        tab = await browser.open(login_url(server))
        page = tab.page
        row = page.locator(f'#rec-body tr[data-session-id="{recording}"]')
        await expect(row.locator('td[data-label="Laps"]')).to_have_text("6")
        await row.locator("button", has_text="Replay").click()
        await page.wait_for_url(f"{server.url}/dashboard/*")
        replay_url = page.url
        assert recording not in replay_url  # the replay room has its own id

        await expect(page.locator("#mode-badge")).to_have_text("REPLAY")
        await expect(page.locator("#tp-play")).to_be_visible()
        await expect(page.locator("#tp-play")).to_have_attribute("data-state", "playing")
        await expect(page.locator("#tp-markers .marker")).to_have_count(6)
        await expect(field(page, "driver")).to_have_text("Dean Davids")
        await expect(page.locator("#tp-time")).to_contain_text("/ 2:00")

        # Pause: the position stops.
        await page.locator("#tp-play").click()
        await expect(page.locator("#tp-play")).to_have_attribute("data-state", "paused")
        await expect(page.locator("#tp-play")).to_have_text("Play")

        # Everyone in the room sees the same thing: a second viewer joins paused at that point.
        other = await browser.open(replay_url)
        await expect(other.page.locator("#tp-play")).to_have_attribute("data-state", "paused")
        await expect(field(other.page, "lap")).to_have_text(await field(page, "lap").inner_text())

        # Seek to a lap: both viewers jump there; the charts hold the history before it.
        await page.locator("#tp-lap").select_option("4")
        await expect(field(page, "lap")).to_have_text("4")
        await expect(field(other.page, "lap")).to_have_text("4")
        await expect(page.locator("#tp-time")).to_contain_text("1:00 / 2:00")
        # The replay's race_tables as of the seek: the laps before it, from the server's model.
        await expect(field(page, "best_lap")).to_have_text("0:20.000")
        await expect(field(page, "fuel_per_lap")).to_have_text("3.00 L")
        laps_before = await page.evaluate("() => window.racedash.race.laps.map(l => l.lap)")
        assert laps_before == [1, 2, 3]

        # Speed: 16× from lap 4 reaches the end within a few seconds, setup change included.
        await page.locator("#tp-speed").select_option("16")
        await expect(other.page.locator("#tp-speed")).to_have_value("16")
        await page.locator("#tp-play").click()
        await expect(field(page, "lap")).to_have_text("6", timeout=15_000)
        await expect(page.locator("#tp-time")).to_contain_text("ended", timeout=15_000)
        await expect(page.locator('#setup-sheet td[data-key="VM_BRAKE_BALANCE"]')).to_have_text("55.0:45.0 → 56.0:44.0")
        await expect(field(other.page, "lap")).to_have_text("6")
        await tab.screenshot("replay-laptop")

        # Scrub back to the start of the recording: lap 1 again, and no bogus setup change.
        await page.evaluate(
            """() => { const s = document.getElementById('tp-scrub');
                       s.value = '5'; s.dispatchEvent(new Event('input'));
                       s.dispatchEvent(new Event('change')); }"""
        )
        await expect(field(page, "lap")).to_have_text("1")
        await expect(field(other.page, "lap")).to_have_text("1")
        await expect(page.locator("#tp-play")).to_have_attribute("data-state", "paused")
        tab.assert_clean()
        other.assert_clean()


async def test_join_fills_charts_from_history(server, clients):
    session_id = await publish_session(server, clients, track="Autodromo Enzo e Dino Ferrari", driver="Dean Davids", laps=4)
    async with chromium() as browser:
        tab = await browser.open(f"{server.url}/dashboard/{session_id}")
        page = tab.page
        await expect(field(page, "lap")).to_have_text("4")
        # Joined after the fact, yet the server's lap times, fuel per lap and charts are there at once.
        await expect(field(page, "best_lap")).to_have_text("1:30.500")
        await expect(field(page, "fuel_per_lap")).to_have_text("3.00 L")
        # Those values came with the page (pagefields.py); the script takes over once it has connected.
        await expect(page.locator("#conn-badge")).to_have_attribute("data-state", "connected")
        got = await page.evaluate(
            "() => [window.racedash.store.length, window.racedash.race.laps.map(l => l.lap)]"
        )
        assert got == [16, [1, 2, 3]]
        await expect(page.locator("#tp-markers .marker")).to_have_count(3)
        tab.assert_clean()
