"""Opening a dashboard: navigation to the first live value on screen, in headless Chromium.

    PYTHONPATH=$PWD .venv/bin/python -m benchmarks.page_load [--runs 30] [--warmup 10] [--speedup 1] [--measure element|script] [--checkout DIR] [--against DIR]

Starts ``racedash demo`` (a real server and one simulated car, as a subprocess on
127.0.0.1 with a free port and recordings in a temporary directory), lets the car
publish for ``--warmup`` seconds, then opens the car's dashboard ``--runs`` times, each
time in a fresh browser context (empty cache, no cookies) of one Debian Chromium
(``/usr/bin/chromium`` or ``RACEDASH_CHROMIUM``; never ``playwright install``).

Two ways of timing a load (``--measure``):

- ``element`` (the default): nothing of the benchmark's runs in the page while it loads. The
  page marks its speed field for Element Timing (``elementtiming="speed"``), so the browser
  itself records when that value was first on screen (``renderTime``: the presentation of the
  frame that showed it). The benchmark waits ``--settle`` seconds, then reads the browser's
  buffered entries. The page's websocket is timed from Chromium's own network events (the
  DevTools protocol, on the browser's clock, set against the page's navigation request).
- ``script``: a script injected before the page's own marks the first value and logs the
  websocket's messages from inside the page, and says so on the console when the value is on
  screen. It also gives when the value entered the document (``value_set_ms``), and it times a
  value set by a script; but it costs the page's first frame ~10 ms here (the page's
  JavaScript context is made before the HTML is parsed instead of after the first frame).
  Until 2026-12-07 this mode also polled the page from Playwright every animation frame while it
  loaded (``wait_for_function``), which put ~15-25 ms more on the measured load.

Per load:

- ``on_screen_ms``: when the speed field's first value is on screen, in ms since navigation
  started. ``script`` mode: when the value comes with the markup, the browser's own time for
  the frame that first showed it (Element Timing, the attribute set by the script before the
  first paint); otherwise, when a script set it: the frame after that (a message posted from
  the next animation frame callback is handled once that frame's style, layout and paint are
  done; it can wait behind other tasks). Both are also given apart: ``element_timing_ms`` and
  ``painted_probe_ms``. ``value_set_ms``: when the value was in the document (parsed, or set by
  a script); ``value_in_markup``: which (``script`` mode only).
- ``first_paint_ms``: the browser's first contentful paint (Paint Timing), both modes.
- ``responses``: HTTP responses of the load (navigation and resource timing entries,
  taken ``--settle`` s after navigation), and how many of them ended before the first value.
- ``http_rounds``: the longest chain of HTTP requests the first value waited for, each
  started only after the previous one's response had ended: among the page and the responses
  that block its rendering (Resource Timing's ``renderBlockingStatus``: its stylesheet, a
  module it imports, ...) that ended before the value.
- ``socket_sent``: messages the page's websocket sent before the first value (Engine.IO
  and Socket.IO: connect, join_session), and whether the websocket had opened by then;
  each is a round trip the first value waited for when it came over the socket.
- bytes: ``transfer`` (on the wire: headers and compressed bodies), ``encoded`` (bodies
  as sent) and ``decoded`` (bodies as used), all responses of the load; plus the bytes
  the websocket received before the first value.

``--against DIR`` serves a second tree at the same time (its own demo and car) and alternates
the two trees' loads one by one in the same browser: runs of 30 loads minutes apart differ by up
to 50 ms on a 2-core machine, so two trees compare best load by load. Both demos' cars share the
cores, so each tree's figures are then higher than alone.

Prints one JSON line per load (``--verbose``), then a summary line per tree: p50/p90/max of the
value on screen (and of its setting), medians of the rest.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from playwright.async_api import async_playwright

from tests.browser import CHROMIUM_ARGS  # the browser the UI tests drive, started the same way

REPO = Path(__file__).resolve().parents[1]
DASHBOARD = re.compile(r"(http://127\.0\.0\.1:\d+)/dashboard/([0-9a-f-]{36})")

# Runs in every page before its own scripts. Marks the first value of the speed field and
# logs what the page's websockets send and receive, on the page's own clock.
DONE = "racedash-page-load: measured"
PROBE = r"""
(() => {
  const DONE = "__DONE__";
  const probe = window.__probe = { firstValue: null, painted: null, text: null, inMarkup: null, rendered: null, ws: [] };
  let seen = false;
  // Said on the console, which the benchmark listens to: polling the page from outside while it
  // loads (Playwright's wait_for_function) would run in the very frames being timed.
  const done = () => {
    if (probe.painted !== null && (probe.rendered !== null || !probe.inMarkup)) console.debug(DONE);
  };
  const check = () => {
    if (probe.firstValue !== null) return;
    const el = document.querySelector('[data-field="speed"]');
    const firstLook = el !== null && !seen;
    if (firstLook) {
      seen = true;
      // Element Timing: the browser reports when it first painted this element's text. Set
      // before that paint (mutation callbacks run before the next rendering), it times the value
      // when the value came with the markup; a value set later by a script is timed below.
      el.setAttribute("elementtiming", "speed");
    }
    const text = el ? el.textContent.trim() : "";
    if (text && text !== "\u2014") {
      probe.firstValue = performance.now();
      probe.text = text;
      probe.inMarkup = firstLook; // the value was there when the element first appeared
      // The next frame's rendering (style, layout, paint) runs right after its animation frame
      // callbacks; a message posted from one is handled once that is done.
      const channel = new MessageChannel();
      channel.port1.onmessage = () => { probe.painted = performance.now(); done(); };
      requestAnimationFrame(() => channel.port2.postMessage(null));
    }
  };
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      if (entry.identifier === "speed" && probe.rendered === null) {
        probe.rendered = entry.renderTime || entry.startTime;
        done();
      }
    }
  }).observe({ type: "element", buffered: true });
  new MutationObserver(check).observe(document, { subtree: true, childList: true, characterData: true });
  const Native = window.WebSocket;
  const log = (dir, data) => probe.ws.push({ t: performance.now(), dir, bytes: typeof data === "string" ? data.length : (data && data.byteLength) || 0 });
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      log("connect", null);
      this.addEventListener("open", () => log("open", null));
      this.addEventListener("message", (e) => log("in", e.data));
    }
    send(data) {
      log("out", data);
      super.send(data);
    }
  };
})();
""".replace("__DONE__", DONE)

COLLECT = r"""
async () => {
  const nav = performance.getEntriesByType("navigation");
  const res = performance.getEntriesByType("resource");
  const pick = (e) => ({ name: e.name, start: e.startTime, end: e.responseEnd, transfer: e.transferSize,
                         encoded: e.encodedBodySize, decoded: e.decodedBodySize,
                         blocking: e.entryType === "navigation" || e.renderBlockingStatus === "blocking" });
  const paint = performance.getEntriesByType("paint").find((e) => e.name === "first-contentful-paint");
  // Element Timing entries are only handed to an observer (buffered: those from before it).
  const element = await new Promise((resolve) => {
    const observer = new PerformanceObserver((list) => {
      const entry = list.getEntries().find((e) => e.identifier === "speed");
      if (entry) { observer.disconnect(); resolve(entry.renderTime || entry.startTime); }
    });
    observer.observe({ type: "element", buffered: true });
    setTimeout(() => resolve(null), 2000);
  });
  return { probe: window.__probe || null, element, firstPaint: paint ? paint.startTime : null,
           fetchStart: nav.length ? nav[0].fetchStart : 0, entries: [...nav, ...res].map(pick) };
}
"""


def http_rounds(entries: list[dict[str, Any]]) -> int:
    """The longest chain of requests each started after the previous one's response ended."""
    depth: dict[int, int] = {}
    order = sorted(range(len(entries)), key=lambda i: entries[i]["start"])
    for i in order:
        before = [depth[j] for j in order if j in depth and entries[j]["end"] <= entries[i]["start"]]
        depth[i] = 1 + max(before, default=0)
    return max(depth.values(), default=0)


def summarise_load(data: dict[str, Any], sockets: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """One load's figures. ``sockets``: the websocket's events from Chromium's network events
    (``element`` mode), on the page's clock; in ``script`` mode the probe logged them itself."""
    probe = data["probe"]
    entries = data["entries"]
    if probe is not None:
        value_at = probe["firstValue"]
        # The browser's own paint time of the value when it came with the markup (Element Timing); else
        # the frame after a script set it (the probe's message, which may wait behind other tasks).
        on_screen = probe["rendered"] if probe["inMarkup"] and probe["rendered"] else probe["painted"]
        ws = probe["ws"]
        figures = {
            "value_set_ms": round(value_at, 1),
            "painted_probe_ms": round(probe["painted"], 1) if probe["painted"] is not None else None,
            "element_timing_ms": round(probe["rendered"], 1) if probe["rendered"] else None,
            "value_in_markup": bool(probe["inMarkup"]),
            "value": probe["text"],
        }
    else:
        on_screen = value_at = data["element"]
        ws = sockets or []
        figures = {"value_set_ms": None, "painted_probe_ms": None, "element_timing_ms": round(on_screen, 1),
                   "value_in_markup": True}
    before = [e for e in entries if e["end"] <= value_at]
    return {
        **figures,
        "on_screen_ms": round(on_screen, 1),
        "first_paint_ms": round(data["firstPaint"], 1) if data["firstPaint"] is not None else None,
        "responses": len(entries),
        "responses_before_value": len(before),
        # The chain the first frame had to wait for: the page and what blocks its rendering (its
        # stylesheet). Counting every response that ended before the value would also count the
        # scripts boot.js fetches once the frame is painted but before the browser presents it.
        "http_rounds": http_rounds([e for e in before if e["blocking"]]),
        "socket_sent": sum(1 for m in ws if m["dir"] == "out" and m["t"] <= value_at),
        "socket_open_before_value": any(m["dir"] == "open" and m["t"] <= value_at for m in ws),
        "socket_bytes_before_value": sum(m["bytes"] for m in ws if m["dir"] == "in" and m["t"] <= value_at),
        "transfer_bytes": sum(e["transfer"] for e in entries),
        "encoded_bytes": sum(e["encoded"] for e in entries),
        "decoded_bytes": sum(e["decoded"] for e in entries),
        "html_transfer_bytes": entries[0]["transfer"] if entries else 0,
        "html_decoded_bytes": entries[0]["decoded"] if entries else 0,
    }


class SocketLog:
    """The page's websocket events as Chromium's network layer saw them (DevTools protocol).

    Their timestamps are the browser's monotonic clock in seconds; the document's request
    (``Network.requestWillBeSent``) on the same clock is taken as the navigation's fetch start.
    """

    def __init__(self) -> None:
        self.document_sent: float | None = None
        self.events: list[tuple[float, str, int]] = []

    async def attach(self, context, page) -> None:
        cdp = await context.new_cdp_session(page)
        cdp.on("Network.requestWillBeSent", self._request)
        cdp.on("Network.webSocketHandshakeResponseReceived", lambda e: self.events.append((e["timestamp"], "open", 0)))
        cdp.on("Network.webSocketFrameSent", lambda e: self.events.append((e["timestamp"], "out", 0)))
        cdp.on("Network.webSocketFrameReceived",
               lambda e: self.events.append((e["timestamp"], "in", len(e["response"].get("payloadData", "")))))
        await cdp.send("Network.enable")

    def _request(self, event: dict[str, Any]) -> None:
        if event.get("type") == "Document" and self.document_sent is None:
            self.document_sent = event["timestamp"]

    def on_page_clock(self, fetch_start: float) -> list[dict[str, Any]]:
        if self.document_sent is None:
            return []
        return [{"t": fetch_start + (ts - self.document_sent) * 1000, "dir": kind, "bytes": size}
                for ts, kind, size in self.events]


async def start_demo(workdir: Path, speedup: float, checkout: Path = REPO) -> tuple[asyncio.subprocess.Process, str]:
    """``racedash demo`` of ``checkout`` on a free loopback port; returns the process and the dashboard URL."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "racedash", "demo", "--host", "127.0.0.1", "--port", "0", "--seed", "1",
        "--speedup", str(speedup), "--recordings-dir", str(workdir / "recordings"), "--state-dir", str(workdir / "state"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=workdir,
        env={**os.environ, "PYTHONPATH": str(checkout), "PYTHONUNBUFFERED": "1"},
    )
    lines = []
    assert proc.stdout is not None
    while True:
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        if not line:
            raise RuntimeError("racedash demo exited early:\n" + "".join(lines))
        lines.append(line)
        found = DASHBOARD.search(line)
        if found:
            asyncio.get_running_loop().create_task(_drain(proc.stdout))
            return proc, found.group(0)


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.readline():
        pass


async def load_once(browser, url: str, settle: float, measure: str) -> dict[str, Any]:
    context = await browser.new_context(viewport={"width": 1280, "height": 900}, service_workers="block")
    try:
        page = await context.new_page()
        if measure == "script":
            await context.add_init_script(PROBE)
            async with page.expect_console_message(lambda m: m.text == DONE, timeout=15_000):
                await page.goto(url, wait_until="commit")
            await asyncio.sleep(settle)  # let the rest of the load finish: every response is counted
            return summarise_load(await page.evaluate(COLLECT))
        sockets = SocketLog()
        await sockets.attach(context, page)
        await page.goto(url, wait_until="commit")
        await asyncio.sleep(settle)  # nothing of ours touches the page until the load is over
        data = await page.evaluate(COLLECT)
        if data["element"] is None:
            raise RuntimeError("the speed field was never painted (no Element Timing entry): is the page the dashboard's?")
        return summarise_load(data, sockets.on_page_clock(data["fetchStart"]))
    finally:
        await context.close()


async def value_in_markup(url: str) -> str:
    """The speed field's value as the server writes it into the page ("\u2014" before any telemetry)."""
    reader, writer = await asyncio.open_connection(*re.match(r"http://([^:/]+):(\d+)", url).groups())
    path = url.split("/", 3)[3]
    writer.write(f"GET /{path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode())
    body = (await reader.read()).decode("utf-8", "replace")
    writer.close()
    found = re.search(r'data-field="speed"[^>]*>([^<]*)<', body)
    return found.group(1).strip() if found else ""


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return round(ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo), 1)


def summary(loads: list[dict[str, Any]]) -> dict[str, Any]:
    first = [load["value_set_ms"] for load in loads if load["value_set_ms"] is not None]
    painted = [load["on_screen_ms"] for load in loads]
    first_paint = [load["first_paint_ms"] for load in loads if load["first_paint_ms"] is not None]
    probe = [load["painted_probe_ms"] for load in loads if load["painted_probe_ms"] is not None]

    def median(name: str) -> float:
        return statistics.median(load[name] for load in loads)

    return {
        "bench": "page_load",
        "runs": len(loads),
        "on_screen_ms": {"p50": percentile(painted, 50), "p90": percentile(painted, 90), "max": max(painted), "min": min(painted)},
        "value_set_ms": {"p50": percentile(first, 50), "p90": percentile(first, 90), "max": max(first)} if first else None,
        "first_paint_ms": {"p50": percentile(first_paint, 50), "p90": percentile(first_paint, 90)} if first_paint else None,
        "painted_probe_ms": {"p50": percentile(probe, 50), "p90": percentile(probe, 90)} if probe else None,
        "responses": median("responses"),
        "responses_before_value": median("responses_before_value"),
        "http_rounds_before_value": median("http_rounds"),
        "socket_messages_sent_before_value": median("socket_sent"),
        "socket_open_before_value": sum(load["socket_open_before_value"] for load in loads),
        "transfer_kib": round(median("transfer_bytes") / 1024, 1),
        "encoded_kib": round(median("encoded_bytes") / 1024, 1),
        "decoded_kib": round(median("decoded_bytes") / 1024, 1),
        "html_transfer_kib": round(median("html_transfer_bytes") / 1024, 1),
        "html_decoded_kib": round(median("html_decoded_bytes") / 1024, 1),
        "socket_kib_before_value": round(median("socket_bytes_before_value") / 1024, 1),
    }


async def main(args: argparse.Namespace) -> None:
    chromium = os.environ.get("RACEDASH_CHROMIUM", "/usr/bin/chromium")
    trees = [Path(args.checkout).resolve()] + ([Path(args.against).resolve()] if args.against else [])
    with tempfile.TemporaryDirectory(prefix="racedash-page-load-") as tmp:
        demos = []
        try:
            for index, tree in enumerate(trees):
                home = Path(tmp) / str(index)
                home.mkdir()
                demos.append(await start_demo(home, args.speedup, tree))
            await asyncio.sleep(args.warmup)  # a stint with some history, as a viewer finds it
            for _, url in demos:
                if args.measure == "element" and await value_in_markup(url) in ("", "\u2014"):
                    raise SystemExit("the page carries no speed value to time (no telemetry yet, or a tree from before "
                                     "elementtiming): use --measure script")
            loads: list[list[dict[str, Any]]] = [[] for _ in demos]
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
                try:
                    for _ in range(args.discard):  # the first loads warm the browser and the servers
                        for _, url in demos:
                            await load_once(browser, url, args.settle, args.measure)
                    # With --against, the trees' loads alternate one by one: the machine's drift, tens
                    # of ms within minutes here, then falls on both alike.
                    for _ in range(args.runs):
                        for index, (_, url) in enumerate(demos):
                            load = await load_once(browser, url, args.settle, args.measure)
                            loads[index].append(load)
                            if args.verbose:
                                print(json.dumps({"checkout": str(trees[index]), **load}), flush=True)
                finally:
                    await browser.close()
        finally:
            for proc, _ in demos:
                proc.terminate()
                await asyncio.wait_for(proc.wait(), 20)
    for tree, tree_loads in zip(trees, loads):
        print(json.dumps({**summary(tree_loads), "measure": args.measure, "checkout": str(tree),
                          "alternated_with": [str(other) for other in trees if other != tree],
                          "warmup_s": args.warmup, "speedup": args.speedup, "when": time.strftime("%Y-%m-%d %H:%M:%S")}))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=30, help="page loads measured [default 30]")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds the car publishes before the first load [default 10]")
    parser.add_argument("--speedup", type=float, default=1.0, help="the simulated car's race seconds per real second [default 1]")
    parser.add_argument("--discard", type=int, default=2, help="loads run first and not counted [default 2]")
    parser.add_argument("--settle", type=float, default=1.0,
                        help="seconds after navigation (element) or the first value (script) before reading the load's entries [default 1]")
    parser.add_argument("--measure", choices=("element", "script"), default="element",
                        help="element: nothing of the benchmark's in the page, the browser's Element Timing of the field the "
                             "page marks; script: a probe injected into the page (also times a value a script sets) [default element]")
    parser.add_argument("--verbose", action="store_true", help="print every load's figures")
    parser.add_argument("--checkout", default=str(REPO),
                        help="the racedash tree to serve, e.g. an earlier commit's (git archive) to compare [default: this one]")
    parser.add_argument("--against", default=None,
                        help="a second tree, served at the same time: the two trees' loads alternate one by one, and "
                             "a summary line is printed for each [default: none]")
    asyncio.run(main(parser.parse_args()))
