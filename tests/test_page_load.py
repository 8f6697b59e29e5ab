"""Opening a dashboard: the state the page carries, the socket's gap-only join, static caching.

The page of a live session carries what a join would send (racedash/pagestate.py) and shows
it before its socket connects; the join then asks only for what came after (``last_seq``).
Real server, real monitor-like client, real Chromium. Timings are the benchmark's
(benchmarks/page_load.py); these tests pin behaviour.
"""

from __future__ import annotations

import gzip
import json
import re
import uuid
from pathlib import Path

import pytest
from playwright.async_api import expect
from tornado.httpclient import AsyncHTTPClient

from racedash.inlinecss import InlineStylesheet
from racedash.pagestate import DashboardState
from racedash.sessions import SessionRegistry
from tests.browser import chromium
from tests.helpers import Client
from tests.test_ui_dashboard import monitor_session, publish
from tests.ui_data import changed_setup, setup_payload, stint

STATE_URL = re.compile(r'<link rel="preload" href="(/dashboard/[0-9a-f-]+/state)" as="fetch" crossorigin="anonymous">')
HOSTILE = "</script><script>alert(1)</script>\u2028<!--"


@pytest.fixture
def settings(settings):
    # stint() frames are ~22 s of monitor time apart: a wider gap lets the race model time its laps.
    return settings.replace(race_gap_seconds=60.0)


async def fetch(server, path: str, **kwargs):
    client = AsyncHTTPClient()
    try:
        return await client.fetch(server.url + path, raise_error=False, **kwargs)
    finally:
        client.close()


async def page_state(server, body: str) -> dict | None:
    """The state the page asks for while it is parsed (its preload link); None when it asks for none."""
    found = STATE_URL.search(body)
    if found is None:
        return None
    response = await fetch(server, found.group(1))
    assert response.code == 200 and response.headers["Content-Type"] == "application/json; charset=utf-8"
    return json.loads(response.body)


def hostile_setup() -> dict:
    setup = changed_setup()
    setup["carSetup"]["garageValues"]["VM_BRAKE_BALANCE"]["stringValue"] = HOSTILE
    return setup


# --- what the page carries ------------------------------------------------------------------


async def test_unknown_session_page_asks_for_no_state_and_takes_nothing_up(server):
    session_id = str(uuid.uuid4())
    response = await fetch(server, f"/dashboard/{session_id}")
    assert response.code == 200
    assert await page_state(server, response.body.decode()) is None
    assert 'data-state-url' not in response.body.decode()
    assert (await fetch(server, f"/dashboard/{session_id}/state")).code == 404
    assert (await fetch(server, "/dashboard/not-an-id/state")).code == 404
    assert server.app.registry.get(session_id) is None  # only a join takes an id up
    assert await DashboardState(SessionRegistry()).build(session_id) is None


async def test_the_state_the_page_asks_for_is_what_a_join_sends(server, clients):
    monitor, session_id = await monitor_session(server, clients)
    await monitor.call("setup_data", setup_payload(session_id))
    await publish(monitor, stint(session_id, 1, 3))
    await monitor.call("setup_data", setup_payload(session_id, hostile_setup(), seconds=125.0))
    seqs = await publish(monitor, stint(session_id, 4, 4))

    response = await fetch(server, f"/dashboard/{session_id}")
    body = response.body.decode()
    state = await page_state(server, body)
    assert state is not None and state["seq"] == seqs[-1]
    # The page itself carries no history: half an hour in, that was ~350 KB before its first frame.
    assert "telemetry_history" not in body and len(body) < 64_000

    viewer = Client(server.url)
    clients.append(viewer)
    await viewer.connect()
    ack = await viewer.call("join_session", {"session_id": session_id})
    assert ack["seq"] == state["seq"]
    await viewer.wait_for("race_tables")
    assert state["setups"] == viewer.events["setup_update"]
    assert state["history"] == viewer.events["telemetry_history"][0]
    assert state["telemetry"] == viewer.events["telemetry_update"][-1]
    assert state["race_tables"] == viewer.events["race_tables"][0]
    assert len(state["race_tables"]["laps"]) == 3

    # The setup value stays data: it is in the state, never in the page.
    assert state["setups"][-1]["setup"]["carSetup"]["garageValues"]["VM_BRAKE_BALANCE"]["stringValue"] == HOSTILE
    assert "alert(1)" not in body


async def test_the_page_is_as_secret_as_its_url(server, clients):
    monitor, session_id = await monitor_session(server, clients)
    await publish(monitor, stint(session_id, 1, 1))
    response = await fetch(server, f"/dashboard/{session_id}")
    assert await page_state(server, response.body.decode()) is not None
    for response in (response, await fetch(server, f"/dashboard/{session_id}/state")):
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["Referrer-Policy"] == "no-referrer"
        assert response.headers["Content-Security-Policy"].startswith("default-src 'self'; script-src 'self';")


# --- static files ---------------------------------------------------------------------------


async def test_versioned_static_files_are_cached_for_good_and_compressed(server):
    # The dashboard carries app.css written in (the next test); the other pages link it.
    body = (await fetch(server, f"/dashboard/{uuid.uuid4()}")).body.decode() + (await fetch(server, "/")).body.decode()
    versioned = re.findall(r'/static/[^"?\s]+\?v=[0-9a-f]+', body)  # in src, href and boot.js's data-*
    assert {url.split("?")[0] for url in versioned} >= {
        "/static/js/dashboard.js", "/static/css/app.css", "/static/vendor/socket.io-client/socket.io.min.js",
        "/static/vendor/uplot/uPlot.iife.min.js", "/static/vendor/uplot/uPlot.min.css",
    }
    for url in versioned:
        response = await fetch(server, url, decompress_response=False, headers={"Accept-Encoding": "gzip"})
        assert response.code == 200, url
        assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable", url
        assert response.headers["Content-Encoding"] == "gzip", url
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        path = url.split("?")[0].removeprefix("/static/")
        assert gzip.decompress(response.body) == (server_static(server) / path).read_bytes()


async def test_the_dashboard_carries_its_stylesheet_so_its_first_frame_waits_for_one_response(server):
    body = (await fetch(server, f"/dashboard/{uuid.uuid4()}")).body.decode()
    head = body[:body.index("<body")]
    assert 'rel="stylesheet"' not in head
    written = re.search(r"<style>(.*?)</style>", head, re.S).group(1)
    assert written == (server_static(server) / "css" / "app.css").read_text(encoding="utf-8")


@pytest.mark.parametrize("text", ["p { color: red }</STYLE><script>x()</script>", ".x { background: url(a.png) }"])
def test_a_stylesheet_that_cannot_be_written_into_a_page_stops_the_start(tmp_path, text):
    sheet = tmp_path / "bad.css"
    sheet.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match="cannot be written into a page"):
        InlineStylesheet(sheet)


async def test_unversioned_or_stale_static_urls_are_revalidated(server):
    # A module's own imports (`import "./format.js"`) carry no version; neither may outlive a deploy.
    for url in ("/static/js/format.js", "/static/js/format.js?v=0123456789abcdef"):
        response = await fetch(server, url)
        assert response.code == 200
        assert response.headers["Cache-Control"] == "no-cache", url
        etag = response.headers["Etag"]
        again = await fetch(server, url, headers={"If-None-Match": etag})
        assert again.code == 304


async def test_every_module_the_page_imports_is_fetched_at_once(server):
    # boot.js preloads the module and every URL in data-imports together: import() alone would find them
    # a level at a time.
    body = (await fetch(server, f"/dashboard/{uuid.uuid4()}")).body.decode()
    boot = re.search(r'<script async src="/static/js/boot\.js\?v=[0-9a-f]+"([^>]*)>', body).group(1)
    listed = re.search(r'data-module="([^"]*)"', boot).group(1) + " " + re.search(r'data-imports="([^"]*)"', boot).group(1)
    preloaded = set(re.findall(r'/static/js/([a-z]+\.js)(?:\?v=[0-9a-f]+)?', listed))
    static = server_static(server) / "js"
    wanted, todo = {"dashboard.js"}, ["dashboard.js"]
    while todo:
        for name in re.findall(r'^import [^;]*? from "\./([a-z]+\.js)";', (static / todo.pop()).read_text(), re.M | re.S):
            if name not in wanted:
                wanted.add(name)
                todo.append(name)
    assert preloaded == wanted


def server_static(server) -> Path:
    return Path(server.app.web.settings["static_path"])


# --- in the browser -------------------------------------------------------------------------


# Runs before the page's scripts: the page's Socket.IO client (window.io) makes its sockets without
# connecting them until the test releases the gate, and logs what they receive and send.
SOCKET_GATE = r"""
(open) => {
  const gate = window.__gate = { open, sockets: [], received: [], sent: [] };
  let real = null;
  const gated = (...args) => {
    const options = args.length && typeof args[args.length - 1] === "object" ? args.pop() : {};
    const socket = real(...args, { ...options, autoConnect: gate.open });
    socket.onAny((event, payload) => gate.received.push([event, payload && payload.seq]));
    socket.onAnyOutgoing((event, payload) => gate.sent.push([event, payload]));
    gate.sockets.push(socket);
    return socket;
  };
  Object.defineProperty(window, "io", { configurable: true, get: () => real && gated, set: (value) => { real = value; } });
  gate.release = () => {
    gate.open = true;
    for (const socket of gate.sockets) socket.connect();
  };
}
"""


async def open_gated(browser, url: str, open_socket: bool = False):
    """The page at ``url`` in a fresh context, its socket held unless ``open_socket``; also its errors and dialogs."""
    context = await browser.browser.new_context(service_workers="block")
    await context.add_init_script(f"({SOCKET_GATE})({json.dumps(open_socket)})")
    page = await context.new_page()
    page.set_default_timeout(10_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
    page.on("console", lambda m: errors.append(f"console.{m.type}: {m.text}") if m.type in ("error", "assert") else None)
    dialogs: list[str] = []
    page.on("dialog", lambda d: dialogs.append(d.message))
    await page.goto(url)
    return page, errors, dialogs


async def gate_log(page, name: str) -> list:
    return await page.evaluate("(name) => window.__gate[name]", name)


def field(page, name: str):
    return page.locator(f'[data-field="{name}"]')


@pytest.mark.browser
async def test_the_page_shows_its_state_without_the_socket_then_joins_for_the_gap_only(server, clients):
    monitor, session_id = await monitor_session(server, clients)
    await monitor.call("setup_data", setup_payload(session_id))
    await monitor.call("setup_data", setup_payload(session_id, hostile_setup(), seconds=125.0))
    frames = stint(session_id, 1, 4)
    seqs = await publish(monitor, frames[:-3])
    async with chromium() as browser:
        page, errors, dialogs = await open_gated(browser, f"{server.url}/dashboard/{session_id}")
        # Everything the page carries is on screen with no connection at all.
        await expect(field(page, "lap")).to_have_text("4")
        await expect(field(page, "speed")).to_have_text("200 km/h")
        await expect(field(page, "last_lap")).to_have_text("1:31.500")  # the server's lap rows
        await expect(page.locator("#setup-history-count")).to_have_text("1")
        changed = page.locator('#setup-sheet td[data-key="VM_BRAKE_BALANCE"] .new')
        await expect(changed).to_have_count(1)
        assert await changed.evaluate("(el) => el.textContent") == HOSTILE
        assert await page.evaluate("() => window.racedash.store.length") == len(seqs)  # the history too
        await page.wait_for_function("() => window.racedash.charts.fuel.data[0].length > 1")
        await expect(page.locator("#conn-badge")).to_have_attribute("data-state", "connecting")
        assert await page.evaluate("() => window.__gate.sockets.length") == 1
        assert await gate_log(page, "sent") == []

        # Frames published meanwhile come through the join, each once.
        missed = await publish(monitor, frames[-3:])
        await page.evaluate("() => window.__gate.release()")
        await expect(page.locator("#conn-badge")).to_have_attribute("data-state", "connected")
        await page.wait_for_function("(seq) => window.racedash.store.lastSeq === seq", arg=missed[-1])
        await expect(field(page, "speed")).to_have_text("203 km/h")
        assert await gate_log(page, "sent") == [["join_session", {"session_id": session_id, "last_seq": seqs[-1]}]]
        received = await gate_log(page, "received")
        assert received == [["telemetry_update", seq] for seq in missed]  # no history, tables or frame again
        store_seqs = await page.evaluate("() => window.racedash.store.frames.map((f) => f.seq)")
        assert store_seqs == sorted(set(store_seqs)) and store_seqs[-3:] == missed
        assert dialogs == [] and errors == []
        await page.context.close()


@pytest.mark.browser
async def test_a_state_request_that_fails_leaves_the_page_to_join_for_everything(server, clients):
    # The network drops the state request: the values written in the page stay, the join brings the rest.
    monitor, session_id = await monitor_session(server, clients)
    await monitor.call("setup_data", setup_payload(session_id))
    seqs = await publish(monitor, stint(session_id, 1, 3))
    async with chromium() as browser:
        context = await browser.browser.new_context(service_workers="block")
        await context.add_init_script(f"({SOCKET_GATE})(true)")
        await context.route(re.compile(r".*/dashboard/[0-9a-f-]+/state$"), lambda route: route.abort())
        page = await context.new_page()
        await page.goto(f"{server.url}/dashboard/{session_id}")
        await expect(field(page, "lap")).to_have_text("3")
        await expect(page.locator("#conn-badge")).to_have_attribute("data-state", "connected")
        sent = await gate_log(page, "sent")
        assert sent == [["join_session", {"session_id": session_id}]]  # no last_seq: it has no state
        await page.wait_for_function("(n) => window.racedash.store.length === n", arg=len(seqs))
        await page.wait_for_function("() => Boolean(window.racedash.state.setup)")  # the join's setup_update
        await context.close()


@pytest.mark.browser
async def test_unknown_session_page_still_waits_for_its_monitor(server):
    async with chromium() as browser:
        page, errors, _ = await open_gated(browser, f"{server.url}/dashboard/{uuid.uuid4()}", open_socket=True)
        await expect(page.locator("#conn-badge")).to_have_text("No such session yet — waiting for its monitor")
        sent = await gate_log(page, "sent")
        assert [event for event, _ in sent] == ["join_session"] and "last_seq" not in sent[0][1]
        await expect(field(page, "speed")).to_have_text("—")
        assert errors == []
        await page.context.close()


@pytest.mark.browser
async def test_the_browser_times_the_first_live_value_it_paints(server, clients):
    # benchmarks/page_load.py times a load by this entry alone, with nothing of its own in the page.
    monitor, session_id = await monitor_session(server, clients)
    await monitor.call("setup_data", setup_payload(session_id))
    await publish(monitor, stint(session_id, 1, 2))
    async with chromium() as browser:
        opened = await browser.open(f"{server.url}/dashboard/{session_id}")
        entry = await opened.page.evaluate("""() => new Promise((resolve) => {
            new PerformanceObserver((list) => {
              const found = list.getEntries().find((e) => e.identifier === "speed");
              if (found) resolve({ field: found.element && found.element.dataset.field, at: found.renderTime || found.startTime,
                                   since: performance.timeOrigin });
            }).observe({ type: "element", buffered: true });
            setTimeout(() => resolve(null), 5000);
        })""")
        assert entry is not None and entry["field"] == "speed" and entry["at"] > 0
        await expect(field(opened.page, "speed")).not_to_have_text("—")
        opened.assert_clean()
        await opened.page.context.close()


# When boot.js put in each script it runs, and when the browser presented the first frame.
SCRIPT_TIMES = """
(() => {
  window.__scripts = [];
  new MutationObserver((records) => {
    for (const record of records) for (const node of record.addedNodes)
      if (node.tagName === "SCRIPT" && node.src && !node.src.includes("/boot.js")) window.__scripts.push(performance.now());
  }).observe(document, { subtree: true, childList: true });
})();
"""


@pytest.mark.browser
async def test_the_scripts_start_once_the_first_frame_is_on_screen(server, clients):
    # Started earlier, they competed with that frame's rasterisation (docs/ui.md, "Page load").
    monitor, session_id = await monitor_session(server, clients)
    await publish(monitor, stint(session_id, 1, 2))
    async with chromium() as browser:
        context = await browser.browser.new_context(service_workers="block")
        await context.add_init_script(SCRIPT_TIMES)
        page = await context.new_page()
        await page.goto(f"{server.url}/dashboard/{session_id}")
        await expect(page.locator("#conn-badge")).to_have_attribute("data-state", "connected")
        first_paint = await page.evaluate(
            "() => performance.getEntriesByType('paint').find((e) => e.name === 'first-contentful-paint').startTime")
        started = await page.evaluate("() => window.__scripts")
        assert len(started) >= 2  # Socket.IO's client and uPlot, then the module
        assert min(started) >= first_paint, (started, first_paint)
        await context.close()
