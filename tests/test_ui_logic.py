"""The dashboard's pure JavaScript modules (formatting, fuel/lap tracking, setup diff,
frame store, recordings sort/filter), run in the real browser they ship to."""

from __future__ import annotations

import pytest

from tests.browser import chromium
from tests.helpers import sample_setup
from tests.ui_data import changed_setup, iso

pytestmark = pytest.mark.browser


async def run(tab, module: str, body: str, arg=None):
    """Evaluates ``body`` (an expression using ``m``, the imported module, and ``arg``)."""
    return await tab.page.evaluate(
        f"async (arg) => {{ const m = await import('/static/js/{module}'); return {body}; }}", arg
    )


async def test_unknown_values_and_formats(server):
    async with chromium() as browser:
        tab = await browser.open(server.url + "/")
        got = await run(tab, "format.js", """[
            m.fmtTemp(-273.15), m.fmtTemp(85.4), m.fmtTemp(null), m.fmtTemp("hot"),
            m.fmtPressure(0), m.fmtPressure(172.4), m.fmtLapTime(-2.76), m.fmtLapTime(91.5),
            m.fmtLapTime(3599.9999), m.fmtPosition(0), m.fmtPosition(4), m.fmtGear(-1), m.fmtGear(0),
            m.fmtWear(0.875), m.fmtWear(1.7), m.fmtTemp(0, m.knownWaterTemp), m.fmtDuration(3725),
            m.fmtDuration(59), m.fmtBytes(1536), m.fmtLitres(NaN), m.fmtText("  "),
            m.classify(null, [70, 100]), m.classify(65, [70, 100]), m.classify(85, [70, 100]),
            m.classify(101, [70, 100]), m.classifyWear(0.1, [20, 40]), m.classifyWear(0.3, [20, 40]),
            m.classifyWear(0.9, [20, 40]), m.parseTimestamp("2025-11-22T17:16:45.160430Z"),
            m.parseTimestamp("yesterday")]""")
        assert got == [
            "—", "85 °C", "—", "—",
            "—", "172 kPa", "—", "1:31.500",
            "60:00.000", "—", "P4", "R", "N",
            "88 %", "—", "—", "1:02:05",
            "0:59", "1.5 KB", "—", "—",
            "unknown", "cold", "ok",
            "hot", "hot", "warm",
            "ok", 1763831805.16, None,  # Date.parse keeps milliseconds
        ]  # 3599.9999 s rounds into the minutes: "60:00.000", never "59:60.000"
        tab.assert_clean()


async def test_brake_temps_convert_from_kelvin(server):
    # The game reports brakes in Kelvin; anything that is not a positive number is unknown.
    async with chromium() as browser:
        tab = await browser.open(server.url + "/")
        got = await run(tab, "format.js", """[
            m.brakeCelsius(307.5722351074219), m.brakeCelsius(273.15), m.brakeCelsius(0),
            m.brakeCelsius(-273.15), m.brakeCelsius(null), m.brakeCelsius("307"), m.brakeCelsius(NaN),
            m.brakeCelsius(Infinity), m.fmtTemp(307.5722351074219, m.brakeCelsius),
            m.fmtTemp(1073.15, m.brakeCelsius), m.fmtTemp(0, m.brakeCelsius),
            m.classify(m.brakeCelsius(307.57), [200, 750])]""")
        assert got[0] == pytest.approx(34.42, abs=0.01)
        assert got[1] == pytest.approx(0.0, abs=1e-9)
        assert got[2:] == [None, None, None, None, None, None, "34 °C", "800 °C", "—", "cold"]
        tab.assert_clean()


def frame(t: float, lap: int, lap_time: float, fuel: float) -> dict:
    return {"t": t, "telemetry": {"lap": lap, "lap_time": lap_time, "fuel": fuel, "timestamp": iso(t)}}


async def test_fuel_per_lap_is_measured_from_lap_transitions(server):
    # 2 Hz frames; lap 1 is joined mid-lap (its fuel use unknown); laps 2 and 3 burn 3.0 and
    # 3.4 L; lap 4 has a pit stop with a refuel (excluded); lap 5 burns 3.2 L.
    frames = []
    t = 0.0
    fuel = 50.0
    lap_len = {1: 40.0, 2: 90.0, 3: 91.0, 4: 120.0, 5: 92.0}
    burn = {1: 1.0, 2: 3.0, 3: 3.4, 4: 2.0, 5: 3.2}
    for lap in range(1, 7):
        length = lap_len.get(lap, 90.0)
        steps = int(length * 2)
        for k in range(steps):
            into = 50.0 + k * 0.5 if lap == 1 else k * 0.5 + 0.2
            if lap == 4 and k == steps // 2:
                fuel += 40.0  # refuel
            frames.append(frame(t, lap, into, round(fuel, 6)))
            fuel -= burn.get(lap, 3.0) / steps
            t += 0.5
    async with chromium() as browser:
        tab = await browser.open(server.url + "/")
        got = await run(tab, "stint.js", """(() => {
            const s = new m.StintTracker();
            for (const f of arg) s.push(f);
            const est = s.fuelEstimate(30);
            return {laps: s.laps.map(l => [l.lap, l.time === null ? null : +l.time.toFixed(2),
                                           l.fuelUsed === null ? null : +l.fuelUsed.toFixed(2)]),
                    best: s.bestLap, last: s.lastLap, perLap: +s.fuelPerLap().toFixed(3),
                    lapsLeft: +est.lapsLeft.toFixed(2),
                    low: [m.isLowFuel(5, 75, 1.5, 2), m.isLowFuel(5, 75, 2.5, 2), m.isLowFuel(5, 75, null, 2),
                          m.isLowFuel(20, 75, null, 2), m.isLowFuel(-1, 75, null, 2)]};
        })()""", frames)
        # Lap 1 started before the first frame: its time is known (lap_time counts from the line,
        # and the line was crossed 0.2 s before lap 2's first frame) but its fuel use is not.
        assert got["laps"] == [
            [1, 89.8, None],
            [2, 90.0, 3.0],
            [3, 91.0, 3.4],
            [4, 120.0, None],
            [5, 92.0, 3.2],
        ]
        assert got["best"] == pytest.approx(89.8, abs=0.01) and got["last"] == pytest.approx(92.0, abs=0.01)
        assert got["perLap"] == pytest.approx((3.0 + 3.4 + 3.2) / 3, abs=0.002)
        assert got["lapsLeft"] == pytest.approx(30 / 3.2, abs=0.01)
        assert got["low"] == [True, False, True, False, False]
        tab.assert_clean()


async def test_setup_sheet_and_diff(server):
    async with chromium() as browser:
        tab = await browser.open(server.url + "/")
        got = await run(tab, "setup.js", """(() => {
            const [a, b] = arg;
            const sheet = m.setupSheet(a);
            const all = m.setupSheet(a, {showAll: true});
            const count = (s) => s.reduce((n, g) => n + g.rows.length +
                g.corners.reduce((k, c) => k + Object.keys(c.cells).length, 0), 0);
            const brakes = sheet.find(g => g.group === "Brakes");
            const tyres = sheet.find(g => g.group === "Tyres");
            return {
                groups: sheet.map(g => g.group),
                shown: count(sheet), all: count(all), entries: Object.keys(m.garageValues(a)).length,
                balance: brakes.rows.find(r => r.key === "VM_BRAKE_BALANCE"),
                pressure: tyres.corners.find(c => c.label === "Pressure"),
                labels: ["VM_TRACTIONCONTROLMAP", "VM_FRONT_3RD_SPRING", "VM_BRAKE_PRESSURE", "WM_RIDEHEIGHT-W_RL"]
                    .map(k => m.settingLabel(k, m.garageValues(a)[k])),
                diff: m.diffSetups(a, b),
                same: m.diffSetups(a, a),
                fromEmpty: m.diffSetups({}, a).length,
                junk: [m.setupSheet(null).length, m.setupSheet({carSetup: {garageValues: {x: 1, y: null}}}).length],
            };
        })()""", [sample_setup(), changed_setup()])
        assert got["groups"][:2] == ["Fuel & strategy", "Engine & electronics"] and "Brakes" in got["groups"]
        assert got["entries"] == 170  # garageValues minus the non-setting entries (gearGraph, symmetric)
        assert got["all"] == got["entries"] and got["shown"] < got["all"]  # N/A settings hidden by default
        assert got["balance"] == {"key": "VM_BRAKE_BALANCE", "label": "Brake balance", "value": "55.0:45.0"}
        assert got["pressure"]["cells"]["FL"] == {"key": "WM_PRESSURE-W_FL", "value": "135 kPa"}
        assert got["labels"] == ["TC map", "Front 3rd spring", "Max pedal force", "Ride height"]
        assert got["diff"] == [
            {"key": "VM_BRAKE_BALANCE", "label": "Brake balance", "group": "Brakes", "old": "55.0:45.0", "new": "56.0:44.0"},
            {"key": "WM_PRESSURE-W_FL", "label": "Pressure FL", "group": "Tyres", "old": "135 kPa", "new": "138 kPa"},
        ]
        assert got["same"] == [] and got["fromEmpty"] == 170
        assert got["junk"] == [0, 0]
        tab.assert_clean()


async def test_frame_store_orders_dedupes_and_rewinds(server):
    async with chromium() as browser:
        tab = await browser.open(server.url + "/")
        got = await run(tab, "store.js", """(() => {
            const tel = (s) => ({timestamp: new Date(Date.UTC(2025, 0, 1, 0, 0, s)).toISOString()});
            const live = new m.FrameStore();
            const r = [3, 4, 6, 5, 4].map(seq => live.add({seq, telemetry: tel(seq)}));
            const order = live.frames.map(f => f.seq);
            const lastSeq = live.lastSeq;
            live.newEpoch();  // the server's sequence restarted
            live.add({seq: 1, telemetry: tel(10)});
            const afterReset = [live.frames.map(f => f.seq), live.lastSeq];
            const replay = new m.FrameStore();
            const rr = [1, 2, 3, 4, 2].map(s => replay.add({telemetry: tel(s)}, {replay: true}));
            const at = [live.at(4.5 + Date.UTC(2025, 0, 1) / 1000).seq, live.at(0).seq];
            const small = new m.FrameStore(3);
            for (let s = 1; s <= 5; s++) small.add({seq: s, telemetry: tel(s)});
            return {r, order, lastSeq, afterReset, rr, replayTimes: replay.frames.length, at,
                    small: small.frames.map(f => f.seq)};
        })()""")
        assert got["r"] == ["append", "append", "append", "insert", "duplicate"]
        assert got["order"] == [3, 4, 5, 6] and got["lastSeq"] == 6
        assert got["afterReset"] == [[3, 4, 5, 6, 1], 1]
        assert got["rr"] == ["append", "append", "append", "append", "rewind"] and got["replayTimes"] == 2
        assert got["at"] == [4, 3]
        assert got["small"] == [3, 4, 5]
        tab.assert_clean()


async def test_recordings_sort_and_filter(server):
    recs = [
        {"session_id": "a", "track": "Imola", "car": "Oreca", "drivers": ["Ann", "Bo"], "first_time": 30, "duration": 100, "laps": 3, "size_bytes": 10, "live": False},
        {"session_id": "b", "track": "Spa", "car": "Porsche", "drivers": ["Cy"], "first_time": 10, "duration": None, "laps": 9, "size_bytes": 30, "live": True},
        {"session_id": "c", "track": "Le Mans", "car": "Oreca", "drivers": [], "first_time": 20, "duration": 50, "laps": 1, "size_bytes": 20, "live": False},
    ]
    async with chromium() as browser:
        tab = await browser.open(server.url + "/")
        got = await run(tab, "reclist.js", """(() => {
            const ids = (l) => l.map(r => r.session_id);
            return {
                date: ids(m.sortRecordings(arg, "first_time", true)),
                track: ids(m.sortRecordings(arg, "track", false)),
                duration: ids(m.sortRecordings(arg, "duration", false)),
                durationDesc: ids(m.sortRecordings(arg, "duration", true)),
                drivers: ids(m.sortRecordings(arg, "drivers", false)),
                oreca: ids(arg.filter(r => m.matchesFilter(r, " oreca ", "all"))),
                cy: ids(arg.filter(r => m.matchesFilter(r, "CY", "all"))),
                live: ids(arg.filter(r => m.matchesFilter(r, "", "live"))),
                ended: ids(arg.filter(r => m.matchesFilter(r, "oreca", "ended"))),
            };
        })()""", recs)
        assert got["date"] == ["a", "c", "b"]
        assert got["track"] == ["a", "c", "b"]
        assert got["duration"] == ["c", "a", "b"] and got["durationDesc"] == ["a", "c", "b"]  # missing last
        assert got["drivers"] == ["c", "a", "b"]
        assert got["oreca"] == ["a", "c"] and got["cy"] == ["b"]
        assert got["live"] == ["b"] and got["ended"] == ["a", "c"]
        tab.assert_clean()
