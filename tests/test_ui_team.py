"""The team view, the multi-car page and the recordings list's new columns in a real browser.

Three simulated cars publish through real clients as monitors do; the pages must list
them, follow them as they complete laps, and log no console errors.
"""

from __future__ import annotations

import re

import orjson
import pytest
from playwright.async_api import expect

from racedash.simulator.model import SETUP, StintConfig, run_stint
from tests.browser import PHONE, chromium
from tests.helpers import Client

pytestmark = pytest.mark.browser


@pytest.fixture
def settings(settings):
    # Stints are published as fast as the client sends them: far above the per-connection event rate.
    return settings.replace(events_per_second=100_000.0, event_burst=100_000.0)


class SimulatedCar:
    """One simulated stint (dt 2 s of sim time: timestamps as a real monitor's), published in parts."""

    def __init__(self, server, seed: int, laps: int = 5) -> None:
        self.server = server
        self.sim, self.published = run_stint(StintConfig(seed=seed, laps=laps), dt=2.0)
        self.sent = 0
        self.monitor = Client(server.url)
        self.session_id = ""

    async def start(self, clients) -> "SimulatedCar":
        clients.append(self.monitor)
        await self.monitor.connect()
        self.session_id = (await self.monitor.call("request_session_id", {}))["session_id"]
        return self

    @property
    def driver(self) -> str:
        return self.last_telemetry["player_name"]

    @property
    def last_telemetry(self) -> dict:
        return [p.payload for p in self.published[: self.sent] if p.kind != SETUP][-1]

    async def drive_to_lap(self, lap: int) -> None:
        """Publish up to (and including) the first frame of ``lap``: the lap before it is completed."""
        while self.sent < len(self.published):
            pub = self.published[self.sent]
            self.sent += 1
            if pub.kind == SETUP:
                body = {"session_id": self.session_id, "timestamp": pub.payload["timestamp"], "setup": pub.payload["setup"]}
                assert (await self.monitor.call("setup_data", body))["ok"]
                continue
            assert (await self.monitor.call("telemetry_update", {"session_id": self.session_id, "telemetry": pub.payload}))["ok"]
            if pub.payload["lap"] >= lap:
                return


def login(server, next_path: str) -> str:
    return f"{server.url}/login?token={server.app.access.token}&next={next_path}"


async def three_cars(server, clients) -> list[SimulatedCar]:
    cars = [await SimulatedCar(server, seed).start(clients) for seed in (3, 8, 13)]
    for car in cars:
        await car.drive_to_lap(3)
    return cars


async def test_team_view_lists_three_cars_and_follows_a_lap(server, clients):
    cars = await three_cars(server, clients)
    async with chromium() as browser:
        tab = await browser.open(login(server, "/team"))
        page = tab.page
        await expect(page).to_have_url(re.compile(r"/team$"))
        rows = page.locator("#team-body tr")
        await expect(rows).to_have_count(3)
        for car in cars:
            row = page.locator(f'#team-body tr[data-session-id="{car.session_id}"]')
            await expect(row.locator('td[data-label="Driver"]')).to_have_text(car.driver)
            await expect(row.locator('td[data-label="Lap"]')).to_have_text("3")
            await expect(row.locator('td[data-label="State"]')).to_have_text("on track")
            await expect(row.locator('td[data-label="Last lap"]')).to_have_text(re.compile(r"^\d:\d\d\.\d{3}$"))
            assert await row.locator("a").get_attribute("href") == f"/dashboard/{car.session_id}"

        # The first car completes lap 3: its row follows within a poll or two.
        first = page.locator(f'#team-body tr[data-session-id="{cars[0].session_id}"]')
        last_before = await first.locator('td[data-label="Last lap"]').text_content()
        await cars[0].drive_to_lap(4)
        await expect(first.locator('td[data-label="Lap"]')).to_have_text("4")
        await expect(first.locator('td[data-label="Last lap"]')).not_to_have_text(last_before)
        await tab.screenshot("team-laptop")

        phone = await browser.open(login(server, "/team"), viewport=PHONE)
        await expect(phone.page.locator("#team-body tr")).to_have_count(3)
        widths = await phone.page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
        assert widths[0] <= widths[1], widths
        await phone.screenshot("team-phone")
        phone.assert_clean()

        # Compare: 2 to 4 ticked cars open side by side.
        compare = page.locator("#compare")
        await expect(compare).to_be_disabled()
        for car in cars:
            await page.locator(f'#team-body tr[data-session-id="{car.session_id}"] input.pick').check()
        await page.wait_for_timeout(2300)  # a poll re-renders the rows: the ticks must survive it
        await expect(page.locator("#team-body input.pick:checked")).to_have_count(3)
        await expect(compare).to_be_enabled()
        await compare.click()
        await expect(page).to_have_url(re.compile(r"/cars\?ids="))
        tab.assert_clean()


async def test_cars_page_shows_three_cards_and_updates(server, clients):
    cars = await three_cars(server, clients)
    ids = ",".join(car.session_id for car in cars)
    async with chromium() as browser:
        tab = await browser.open(login(server, f"/cars?ids={ids}"))
        page = tab.page
        cards = page.locator(".car-card")
        await expect(cards).to_have_count(3)
        for car in cars:
            card = page.locator(f'.car-card[data-session-id="{car.session_id}"]')
            await expect(card.locator('[data-field="driver"]')).to_have_text(car.driver)
            await expect(card.locator('[data-field="lap"]')).to_have_text("3")
            await expect(card.locator('[data-field="last_lap"]')).to_have_text(re.compile(r"^\d:\d\d\.\d{3}$"))
            await expect(card.locator('[data-field="fuel"]')).not_to_have_text("—")
            await expect(card.locator('[data-field="tyre_fl"]')).to_have_text(re.compile(r"°C"))
            await expect(card.locator('[data-field="connection"]')).to_have_attribute("data-state", "connected")

        # Live updates: the second car completes lap 3, then its monitor disconnects.
        card = page.locator(f'.car-card[data-session-id="{cars[1].session_id}"]')
        await cars[1].drive_to_lap(4)
        await expect(card.locator('[data-field="lap"]')).to_have_text("4")
        fuel = cars[1].last_telemetry["fuel"]
        await expect(card.locator('[data-field="fuel"]')).to_have_text(re.compile(rf"^{fuel:.1f} "))
        # The laps-left figure is the server's (the race model's strategy), not worked out here.
        laps_left = server.app.race.tables(cars[1].session_id)["strategy"]["laps_left"]
        if laps_left is not None:
            await expect(card.locator('[data-field="laps_left"]')).to_have_text(f"{laps_left:.1f}")
        await tab.screenshot("cars-laptop")
        await cars[1].monitor.close()
        await expect(card.locator('[data-field="connection"]')).to_have_text("monitor gone")

        phone = await browser.open(login(server, f"/cars?ids={ids}"), viewport=PHONE)
        await expect(phone.page.locator(".car-card")).to_have_count(3)
        await expect(phone.page.locator('.car-card [data-field="lap"]').first).to_have_text("3")
        boxes = await phone.page.locator(".car-card").evaluate_all("els => els.map(e => e.getBoundingClientRect().x)")
        assert len(set(round(x) for x in boxes)) == 1, boxes  # stacked, not side by side
        widths = await phone.page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
        assert widths[0] <= widths[1], widths
        await phone.screenshot("cars-phone")
        phone.assert_clean()
        tab.assert_clean()


async def test_recordings_rows_tell_sessions_apart(server, clients):
    cars = [await SimulatedCar(server, seed, laps=4).start(clients) for seed in (3, 8)]
    for car in cars:
        await car.drive_to_lap(99)  # the whole stint
    # The first stint ends and its race tables get built (as a lap export or a replay builds them).
    ended = cars[0]
    await ended.monitor.close()
    await server.app.recorder.close_session(ended.session_id, ended=True)
    server.app.registry.end(ended.session_id)
    async with chromium() as browser:
        tab = await browser.open(login(server, "/recordings"))
        page = tab.page
        rows = page.locator("#rec-body tr")
        await expect(rows).to_have_count(2)
        row = page.locator(f'#rec-body tr[data-session-id="{ended.session_id}"]')
        await expect(row.locator('td[data-label="ID"]')).to_have_text(ended.session_id[:8])
        await expect(row.locator('td[data-label="Drivers"]')).to_have_text(ended.driver)
        await expect(row.locator('td[data-label="Laps"]')).to_have_text("4")
        await expect(row.locator('td[data-label="Duration"]')).not_to_have_text("—")
        await expect(row.locator('td[data-label="Best lap"]')).to_have_text("—")  # no tables built yet: blank
        await expect(row.locator('td[data-label="Status"]')).to_have_text("ended")
        other = page.locator(f'#rec-body tr[data-session-id="{cars[1].session_id}"]')
        await expect(other.locator('td[data-label="Status"]')).to_have_text("LIVE")

        # The per-lap CSV button downloads the laps; the list then knows the best lap.
        async with page.expect_download() as info:
            await row.locator("a", has_text="Laps CSV").click()
        download = await info.value
        assert download.suggested_filename == f"{ended.session_id}-laps.csv"
        csv = (await download.path()).read_bytes()
        assert csv.startswith(b"lap,") and len(csv.splitlines()) >= 4
        laps = orjson.loads((await (await page.request.get(f"{server.url}/api/recordings/{ended.session_id}/laps.json")).body()))["laps"]
        best = min(lap["time"] for lap in laps if lap["clean"])
        await page.reload()
        minutes, seconds = divmod(round(best, 3), 60)
        await expect(row.locator('td[data-label="Best lap"]')).to_have_text(f"{int(minutes)}:{seconds:06.3f}")

        # A monitor gone while its recording is still open is not LIVE.
        await cars[1].monitor.close()
        await page.reload()
        await expect(other.locator('td[data-label="Status"]')).to_have_text("no monitor")
        await tab.screenshot("recordings-team-fields")
        tab.assert_clean()
