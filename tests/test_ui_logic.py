"""The dashboard's pure JavaScript modules (formatting, the server's race tables, setup diff,
frame store, recordings sort/filter), run in the real browser they ship to."""

from __future__ import annotations

import pytest

from tests.browser import chromium
from tests.helpers import sample_setup
from tests.ui_data import changed_setup

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


def lap_row(lap: int, time: float | None, seq: int, end_t: float | None, **flags) -> dict:
    """A lap row as the server's race model sends it (racedash/race/model.py), trimmed to what the page reads."""
    row = {"lap": lap, "time": time, "fuel_used": 3.0 if time else None, "in_lap": False, "out_lap": False,
           "pit_lap": False, "incomplete": time is None, "stint": 1, "start_t": None, "end_t": end_t, "seq": seq}
    row.update(flags)
    row["clean"] = not (row["incomplete"] or row["in_lap"] or row["out_lap"] or row["pit_lap"]) and time is not None
    return row


async def test_race_tables_keep_and_merge_the_servers_rows(server):
    # The page keeps what the server worked out: no lap or fuel arithmetic of its own.
    tables = {
        "session_id": "s", "seq": 12,
        "laps": [lap_row(1, 95.2, 4, 1000.0, out_lap=True), lap_row(2, 91.0, 8, 1091.0), lap_row(3, 90.2, 12, 1181.2)],
        "stints": [{"stint": 1, "best_lap": 90.2}], "pit_stops": [], "driver_changes": [], "setup_changes": [],
        "alerts": [{"kind": "brake_hot", "corner": "rl", "seq": 3, "t": 990.0, "severity": "warning"}],
        "strategy": {"fuel": 40.0, "fuel_per_lap": 3.0, "pace": 90.6, "laps_left": 13.33, "time_left": 1208.0, "box_by_lap": 15},
        "car_state": "on_track",
    }
    in_lap = lap_row(4, 89.9, 16, 1271.1)
    async with chromium() as browser:
        tab = await browser.open(server.url + "/")
        got = await run(tab, "race.js", """(() => {
            const [tables, inLap] = arg;
            const r = new m.RaceTables();
            const seen = (label) => ({label, laps: r.laps.map(l => [l.lap, l.seq, l.clean]), last: r.lastLap, best: r.bestLap});
            const out = [];
            r.replace(tables);
            out.push(seen("tables"));
            // The join's tables and the room's event for the same frame: listed once.
            r.apply("lap_completed", {session_id: "s", seq: 12, t: 1181.2, lap: tables.laps[2]});
            out.push(seen("duplicate"));
            r.apply("lap_completed", {session_id: "s", seq: 16, t: 1271.1, lap: inLap});
            out.push(seen("lap 4"));
            // The stop shows lap 4 was the in-lap: the server sends it amended; it leaves the best.
            r.apply("pit_stop", {session_id: "s", seq: 20, number: 1, lap: 5, entry_lap: 4, fuel_added: 30,
                                 amended_laps: [{...inLap, in_lap: true, clean: false}]});
            out.push(seen("pit stop"));
            // A gap: the lap before it cannot be timed, the lap inside it is listed with it.
            r.apply("lap_completed", {seq: 30, lap: {...inLap, lap: 5, time: null, clean: false, incomplete: true, seq: 30, end_t: 1400}});
            r.apply("lap_completed", {seq: 30, lap: {...inLap, lap: 6, time: null, clean: false, incomplete: true, seq: 30, end_t: null}});
            out.push(seen("gap"));
            // An event from before the newest row (a rejoin's missed events) goes in stream order.
            r.apply("driver_change", {seq: 25, t: 1300, lap: 5, from: "A", to: "B"});
            r.apply("driver_change", {seq: 25, t: 1300, lap: 5, from: "A", to: "B"});
            r.apply("alert", {...tables.alerts[0]});
            r.apply("setup_change", {seq: 14, t: 1200, lap: 4, changes: [{key: "k", old: "1", new: "2"}]});
            r.apply("setup_change", {seq: 10, t: 1100, lap: 3, changes: [{key: "j", old: "1", new: "2"}]});
            const setupOrder = r.setupChanges.map(c => c.seq);
            const junk = [r.apply("lap_completed", {seq: 31, lap: null}), r.apply("nonsense", {seq: 1}), r.apply("alert", null)];
            const strategy = [r.strategy.fuel_per_lap, r.summary];
            r.noteFrame({car_state: "in_pit", stint: 2, fuel_per_lap: 3.1, laps_left: null, time_left: null, box_by_lap: null});
            const live = r.summary;
            const until = [1090, 1091, 1300, 1400, 5000].map(t => m.lapsUntil(r.laps, t).map(l => l.lap));
            const starts = m.lapStarts(r.laps);
            const counts = [r.pitStops.length, r.driverChanges.length, r.alerts.length, r.setupChanges.length, r.stints.length];
            // A seek (or a fresh join) replaces everything.
            r.replace({seq: 8, laps: tables.laps.slice(0, 2), strategy: {fuel_per_lap: 3.2}, car_state: null});
            out.push(seen("replaced"));
            return {out, junk, strategy, live, until, starts, counts, setupOrder, afterReplace: [r.pitStops.length, r.alerts.length, r.summary],
                    badges: ["in_pit", "pit_lane", "on_track", "garage", null].map(m.carStateBadge),
                    low: [m.isLowFuel(5, 75, 1.5, 2), m.isLowFuel(5, 75, 2.5, 2), m.isLowFuel(5, 75, null, 2),
                          m.isLowFuel(20, 75, null, 2), m.isLowFuel(-1, 75, null, 2)]};
        })()""", [tables, in_lap])
        out = {entry.pop("label"): entry for entry in got["out"]}
        # Best is the best clean lap: the out-lap's 95.2 s never counts, nor (once known) the in-lap.
        assert out["tables"] == {"laps": [[1, 4, False], [2, 8, True], [3, 12, True]], "last": 90.2, "best": 90.2}
        assert out["duplicate"] == out["tables"]
        assert out["lap 4"]["best"] == 89.9 and out["lap 4"]["last"] == 89.9
        assert out["pit stop"] == {"laps": [[1, 4, False], [2, 8, True], [3, 12, True], [4, 16, False]], "last": 89.9, "best": 90.2}
        assert out["gap"]["laps"][-2:] == [[5, 30, False], [6, 30, False]] and out["gap"]["last"] is None
        assert out["replaced"] == {"laps": [[1, 4, False], [2, 8, True]], "last": 91.0, "best": 91.0}
        assert got["junk"] == [False, False, False]
        assert got["strategy"] == [3.0, {"car_state": "on_track", "stint": None, "fuel_per_lap": 3.0, "laps_left": 13.33,
                                         "time_left": 1208.0, "box_by_lap": 15}]
        assert got["live"] == {"car_state": "in_pit", "stint": 2, "fuel_per_lap": 3.1, "laps_left": None, "time_left": None,
                               "box_by_lap": None}
        # As of a moment: the rows that had ended by then (lap 6, inside the gap, comes with lap 5).
        assert got["until"] == [[1], [1, 2], [1, 2, 3, 4], [1, 2, 3, 4, 5, 6], [1, 2, 3, 4, 5, 6]]
        assert got["starts"] == [{"lap": 2, "t": 1000.0}, {"lap": 3, "t": 1091.0}, {"lap": 4, "t": 1181.2},
                                 {"lap": 5, "t": 1271.1}, {"lap": 7, "t": 1400}]  # 1400 ended laps 5 and 6
        assert got["counts"] == [1, 1, 1, 2, 1]  # the duplicates merged into the rows they repeat
        assert got["setupOrder"] == [10, 14]  # an older event goes before a newer one
        assert got["afterReplace"] == [0, 0, {"car_state": None, "stint": None, "fuel_per_lap": 3.2, "laps_left": None,
                                              "time_left": None, "box_by_lap": None}]
        assert got["badges"] == ["IN PIT", "PIT LANE", None, None, None]
        assert got["low"] == [True, False, True, False, False]
        tab.assert_clean()


async def test_lap_chart_plots_the_servers_clean_laps_and_marks_pit_laps(server):
    laps = [
        lap_row(1, 95.2, 4, 1000.0, out_lap=True),
        lap_row(2, 91.0, 8, 1091.0),
        lap_row(3, 97.5, 12, 1188.5, in_lap=True, pit_lap=True),
        lap_row(4, None, 20, None),  # inside a data gap: no time
        lap_row(5, 88.0, 20, 1300.0, incomplete=True),  # start not seen: never plotted
        lap_row(6, 90.4, 24, 1390.4),
        lap_row(1, 92.0, 30, 1500.0),  # a new game session: lap numbers start again
        lap_row(2, 91.5, 34, 1591.5),
    ]
    async with chromium() as browser:
        tab = await browser.open(server.url + "/")
        got = await run(tab, "charts.js", "[m.lapSeries(arg.slice(0, 6)), m.lapSeries(arg), m.lapSeries([])]", laps)
        assert got[0] == [[1, 2, 3, 6], [None, 91.0, None, 90.4], [95.2, None, 97.5, None]]
        assert got[1] == [[1, 2], [92.0, 91.5], [None, None]]
        assert got[2] == [[], [], []]
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
