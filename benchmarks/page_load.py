"""Opening a dashboard: navigation to the first live value on screen, in headless Chromium.

    PYTHONPATH=$PWD .venv/bin/python -m benchmarks.page_load [--runs 30] [--warmup 10] [--speedup 1] [--checkout DIR]

Starts ``racedash demo`` (a real server and one simulated car, as a subprocess on
127.0.0.1 with a free port and recordings in a temporary directory), lets the car
publish for ``--warmup`` seconds, then opens the car's dashboard ``--runs`` times, each
time in a fresh browser context (empty cache, no cookies) of one Debian Chromium
(``/usr/bin/chromium`` or ``RACEDASH_CHROMIUM``; never ``playwright install``).

Per load, measured in the page (``performance.now()``: milliseconds since navigation
started) by a script injected before the page's own:

- ``on_screen_ms``: when the speed field's first value is on screen. When the value comes with
  the markup (the server writes it in), the browser's own time for the frame that first showed it
  (Element Timing's ``renderTime``, set on the field before its first paint: the frame's
  presentation, later than its paint). Otherwise, when a script set it: the frame after that (a
  message posted from the next animation frame callback is handled once that frame's style,
  layout and paint are done; it can wait behind other tasks). Both are also given apart:
  ``element_timing_ms`` and ``painted_probe_ms``. ``value_set_ms``: when the value was in the
  document (parsed, or set by a script); ``value_in_markup``: which.
- ``responses``: HTTP responses of the load (navigation and resource timing entries,
  taken 1 s after the first value), and how many of them ended before the first value.
- ``http_rounds``: the longest chain of HTTP requests before the first value, each
  started only after the previous one's response had ended (the page, then its module,
  then the modules it imports, ...).
- ``socket_sent``: messages the page's websocket sent before the first value (Engine.IO
  and Socket.IO: connect, join_session), and whether the websocket had opened by then;
  each is a round trip the first value waited for when it came over the socket.
- bytes: ``transfer`` (on the wire: headers and compressed bodies), ``encoded`` (bodies
  as sent) and ``decoded`` (bodies as used), all responses of the load; plus the bytes
  the websocket received before the first value.

Prints one JSON line per load (``--verbose``), then a summary line: p50/p90/max of the
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
PROBE = r"""
(() => {
  const probe = window.__probe = { firstValue: null, painted: null, text: null, inMarkup: null, rendered: null, ws: [] };
  let seen = false;
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
      channel.port1.onmessage = () => { probe.painted = performance.now(); };
      requestAnimationFrame(() => channel.port2.postMessage(null));
    }
  };
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      if (entry.identifier === "speed" && probe.rendered === null) probe.rendered = entry.renderTime || entry.startTime;
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
"""

COLLECT = r"""
() => {
  const nav = performance.getEntriesByType("navigation");
  const res = performance.getEntriesByType("resource");
  const pick = (e) => ({ name: e.name, start: e.startTime, end: e.responseEnd, transfer: e.transferSize,
                         encoded: e.encodedBodySize, decoded: e.decodedBodySize });
  return { probe: window.__probe, entries: [...nav, ...res].map(pick) };
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


def summarise_load(data: dict[str, Any]) -> dict[str, Any]:
    probe = data["probe"]
    first = probe["firstValue"]
    entries = data["entries"]
    before = [e for e in entries if e["end"] <= first]
    ws = probe["ws"]
    return {
        "value_set_ms": round(first, 1),
        # The browser's own paint time of the value when it came with the markup (Element Timing); else
        # the frame after a script set it (the probe's message, which may wait behind other tasks).
        "on_screen_ms": round(probe["rendered"] if probe["inMarkup"] and probe["rendered"] else probe["painted"], 1),
        "painted_probe_ms": round(probe["painted"], 1) if probe["painted"] is not None else None,
        "element_timing_ms": round(probe["rendered"], 1) if probe["rendered"] else None,
        "value_in_markup": bool(probe["inMarkup"]),
        "value": probe["text"],
        "responses": len(entries),
        "responses_before_value": len(before),
        "http_rounds": http_rounds(before),
        "socket_sent": sum(1 for m in ws if m["dir"] == "out" and m["t"] <= first),
        "socket_open_before_value": any(m["dir"] == "open" and m["t"] <= first for m in ws),
        "socket_bytes_before_value": sum(m["bytes"] for m in ws if m["dir"] == "in" and m["t"] <= first),
        "transfer_bytes": sum(e["transfer"] for e in entries),
        "encoded_bytes": sum(e["encoded"] for e in entries),
        "decoded_bytes": sum(e["decoded"] for e in entries),
        "html_transfer_bytes": entries[0]["transfer"] if entries else 0,
        "html_decoded_bytes": entries[0]["decoded"] if entries else 0,
    }


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


async def load_once(browser, url: str, settle: float) -> dict[str, Any]:
    context = await browser.new_context(viewport={"width": 1280, "height": 900}, service_workers="block")
    try:
        await context.add_init_script(PROBE)
        page = await context.new_page()
        await page.goto(url, wait_until="commit")
        await page.wait_for_function("() => window.__probe && window.__probe.painted !== null", timeout=15_000)
        await asyncio.sleep(settle)  # let the rest of the load finish: every response is counted
        return summarise_load(await page.evaluate(COLLECT))
    finally:
        await context.close()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return round(ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo), 1)


def summary(loads: list[dict[str, Any]]) -> dict[str, Any]:
    first = [load["value_set_ms"] for load in loads]
    painted = [load["on_screen_ms"] for load in loads]
    probe = [load["painted_probe_ms"] for load in loads if load["painted_probe_ms"] is not None]

    def median(name: str) -> float:
        return statistics.median(load[name] for load in loads)

    return {
        "bench": "page_load",
        "runs": len(loads),
        "on_screen_ms": {"p50": percentile(painted, 50), "p90": percentile(painted, 90), "max": max(painted), "min": min(painted)},
        "value_set_ms": {"p50": percentile(first, 50), "p90": percentile(first, 90), "max": max(first)},
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
    with tempfile.TemporaryDirectory(prefix="racedash-page-load-") as tmp:
        proc, url = await start_demo(Path(tmp), args.speedup, Path(args.checkout).resolve())
        try:
            await asyncio.sleep(args.warmup)  # a stint with some history, as a viewer finds it
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
                try:
                    for _ in range(args.discard):  # the first loads warm the browser and the server
                        await load_once(browser, url, args.settle)
                    loads = []
                    for _ in range(args.runs):
                        load = await load_once(browser, url, args.settle)
                        loads.append(load)
                        if args.verbose:
                            print(json.dumps(load), flush=True)
                finally:
                    await browser.close()
        finally:
            proc.terminate()
            await asyncio.wait_for(proc.wait(), 20)
    print(json.dumps({**summary(loads), "checkout": args.checkout, "warmup_s": args.warmup, "speedup": args.speedup,
                      "when": time.strftime("%Y-%m-%d %H:%M:%S")}))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=30, help="page loads measured [default 30]")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds the car publishes before the first load [default 10]")
    parser.add_argument("--speedup", type=float, default=1.0, help="the simulated car's race seconds per real second [default 1]")
    parser.add_argument("--discard", type=int, default=2, help="loads run first and not counted [default 2]")
    parser.add_argument("--settle", type=float, default=1.0, help="seconds after the first value before counting responses [default 1]")
    parser.add_argument("--verbose", action="store_true", help="print every load's figures")
    parser.add_argument("--checkout", default=str(REPO),
                        help="the racedash tree to serve, e.g. an earlier commit's (git archive) to compare [default: this one]")
    asyncio.run(main(parser.parse_args()))
