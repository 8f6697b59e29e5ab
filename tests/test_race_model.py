"""The race model, pure: fed the simulator's stream, checked against the simulator's ground truth."""

from __future__ import annotations

import copy

import pytest

from racedash.race import RaceModel, tables_until
from racedash.race.alerts import AlertOptions
from racedash.race.model import RaceOptions
from racedash.race.setupdiff import changed_settings, shown_values
from racedash.race.strategy import strategy
from racedash.race.units import brake_temp_c, monitor_time, pressure_kpa, tyre_temp_c
from racedash.simulator.model import SETUP, StintConfig, run_stint
from tests.helpers import sample_setup, sample_telemetry_payloads


def simulated(seed: int = 7, laps: int = 22, speedup: float = 1.0, rate: float = 2.0):
    """A stint as the publisher sends it at ``speedup`` (timestamps advance sim time / speedup)."""
    model, published = run_stint(StintConfig(seed=seed, laps=laps, time_scale=speedup), dt=speedup / rate)
    frames = [(p.kind, p.payload if p.kind == SETUP else {"telemetry": p.payload}) for p in published]
    return model, frames


def feed_all(frames, options: RaceOptions | None = None, skip=lambda i: False) -> RaceModel:
    race = RaceModel(options)
    for seq, (kind, payload) in enumerate(frames, 1):
        if not skip(seq):
            race.feed(seq, kind, payload)
    return race


def truth_setup_changes(frames) -> list[list[str]]:
    setups = [shown_values(p["setup"]) for kind, p in frames if kind == SETUP]
    return [[c["key"] for c in changed_settings(a, b)] for a, b in zip(setups, setups[1:])]


@pytest.mark.parametrize("speedup", [1, 10, 100])
def test_laps_fuel_and_stops_match_the_simulators_truth(speedup):
    sim, frames = simulated(speedup=speedup)
    race = feed_all(frames)
    truth = {lap.number: lap for lap in sim.laps}
    complete = [row for row in race.laps if not row["incomplete"]]
    assert len(complete) >= 20
    for row in complete:
        assert row["time"] == pytest.approx(truth[row["lap"]].lap_time, abs=0.05), row["lap"]
    # Every stop, nothing else, on its lap; the in-lap before it, the out-lap with it.
    stops = {lap.number: lap for lap in sim.laps if lap.stopped}
    assert [s["lap"] for s in race.pit_stops] == sorted(stops)
    for stop in race.pit_stops:
        assert stop["fuel_added"] == pytest.approx(stops[stop["lap"]].refuel_l, rel=0.05)
        assert stop["tyres_changed"] == stops[stop["lap"]].new_tyres
        assert stop["driver_change"]["to"] == truth[stop["lap"]].driver
    listed = {row["lap"] for row in race.laps}
    in_laps = {row["lap"] for row in race.laps if row["in_lap"]}
    assert in_laps == {lap.number for lap in sim.laps if lap.pit_in} & listed
    assert {row["lap"] for row in race.laps if row["pit_lap"]} == set(stops) & listed
    # Driver and setup changes: exactly the simulator's.
    assert [(c["lap"], c["to"]) for c in race.driver_changes] == [(n, truth[n].driver) for n in sorted(stops)]
    assert [[c["key"] for c in change["changes"]] for change in race.setup_changes] == truth_setup_changes(frames)
    assert all(row["driver"] == truth[row["lap"]].driver for row in complete)


@pytest.mark.parametrize("speedup", [1, 10, 100])
def test_fuel_per_lap_and_laps_left_within_tolerance(speedup):
    sim, frames = simulated(speedup=speedup)
    race = feed_all(frames)
    clean = [row for row in race.laps if row["clean"]][-5:]
    assert len(clean) >= 3
    truth = {lap.number: lap for lap in sim.laps}
    true_per_lap = sum(truth[r["lap"]].fuel_start - truth[r["lap"]].fuel_end for r in clean) / len(clean)
    plan = race.strategy()
    assert plan["fuel_per_lap"] == pytest.approx(true_per_lap, rel=0.02)
    fuel = frames[-1][1]["telemetry"]["fuel"]
    assert plan["laps_left"] == pytest.approx(fuel / true_per_lap, abs=0.5)
    assert plan["time_left"] == pytest.approx(plan["laps_left"] * plan["pace"], rel=0.01)


def test_a_silent_publisher_makes_the_laps_it_spans_incomplete():
    sim, frames = simulated()
    # 30 s of silence in the middle of lap 5 (monitor time runs on, the game too).
    start = next(i for i, (k, p) in enumerate(frames, 1) if k != SETUP and p["telemetry"]["lap"] == 5 and p["telemetry"]["lap_time"] > 40)
    silent = set(range(start, start + 60))
    race = feed_all(frames, skip=lambda seq: seq in silent)
    lap5 = next(row for row in race.laps if row["lap"] == 5)
    assert lap5["incomplete"] and not lap5["clean"]
    assert all(not row["clean"] for row in race.laps if row["incomplete"])
    best = min(row["time"] for row in race.laps if row["clean"])
    assert best == pytest.approx(min(lap.lap_time for lap in sim.laps if lap.number != 5 and not (lap.stopped or lap.pit_in or lap.number == 1)), abs=0.05)


def test_an_outage_across_the_line_leaves_no_false_best_lap():
    sim, frames = simulated()
    # The server is down from the middle of lap 6 to the middle of lap 7.
    first = next(i for i, (k, p) in enumerate(frames, 1) if k != SETUP and p["telemetry"]["lap"] == 6 and p["telemetry"]["lap_time"] > 50)
    last = next(i for i, (k, p) in enumerate(frames, 1) if k != SETUP and p["telemetry"]["lap"] == 7 and p["telemetry"]["lap_time"] > 30)
    race = feed_all(frames, skip=lambda seq: first <= seq < last)
    rows = {row["lap"]: row for row in race.laps}
    assert rows[6]["incomplete"] and rows[7]["incomplete"]
    truth = {lap.number: lap for lap in sim.laps}
    for row in race.laps:
        if row["clean"]:
            assert row["time"] == pytest.approx(truth[row["lap"]].lap_time, abs=0.05)


def test_laps_skipped_entirely_are_listed_incomplete():
    _, frames = simulated()
    first = next(i for i, (k, p) in enumerate(frames, 1) if k != SETUP and p["telemetry"]["lap"] == 4)
    last = next(i for i, (k, p) in enumerate(frames, 1) if k != SETUP and p["telemetry"]["lap"] == 7)
    race = feed_all(frames, skip=lambda seq: first - 3 <= seq < last + 12)  # back 6 s into lap 7
    numbers = [row["lap"] for row in race.laps]
    assert numbers == sorted(set(numbers)) and set(range(1, numbers[-1] + 1)) == set(numbers)
    assert all(row["incomplete"] for row in race.laps if 3 <= row["lap"] <= 7)


def test_the_same_stream_gives_the_same_tables_and_tables_until_is_a_prefix():
    _, frames = simulated(laps=12)
    full = feed_all(frames).tables()
    assert feed_all(frames).tables() == full
    middle = len(frames) // 2
    partial = feed_all(frames[:middle]).tables()
    cut = tables_until(full, middle)
    for name in ("pit_stops", "driver_changes", "setup_changes", "alerts"):
        assert cut[name] == partial[name]
    assert [r["lap"] for r in cut["laps"]] == [r["lap"] for r in partial["laps"]]


def test_frames_fed_twice_are_counted_once():
    _, frames = simulated(laps=6)
    race = feed_all(frames)
    before = race.tables()
    for seq, (kind, payload) in enumerate(frames, 1):
        assert race.feed(seq, kind, payload) == []
    assert race.tables() == before


def test_real_samples_units_and_sentinels():
    payloads = sample_telemetry_payloads()
    telemetry = payloads[0]["telemetry"]
    assert brake_temp_c(telemetry["brake_temps"]["fl"]) == pytest.approx(34.42, abs=0.01)
    assert tyre_temp_c(telemetry["tire_temps"]["fl"]) is None  # -273.15: unknown
    assert pressure_kpa(telemetry["tire_pressures"]["fl"]) is None  # 0 in the garage
    assert monitor_time(telemetry["timestamp"]) == pytest.approx(1763831805.16043)
    # The parked car: no lap, no stop, no alert, no nonsense.
    race = RaceModel()
    race.feed(1, "setup", {"timestamp": telemetry["timestamp"], "setup": sample_setup()})
    for seq, payload in enumerate(payloads, 2):
        assert race.feed(seq, "telemetry", payload) == []
    tables = race.tables()
    assert tables["laps"] == [] and tables["pit_stops"] == [] and tables["alerts"] == []
    assert tables["car_state"] == "garage"


def test_setup_change_names_exactly_the_changed_settings():
    setup = sample_setup()
    changed = copy.deepcopy(setup)
    balance = changed["carSetup"]["garageValues"]["VM_BRAKE_BALANCE"]
    old = balance["stringValue"]
    balance["stringValue"], balance["value"] = "52.5:47.5", balance["value"] + 1
    race = RaceModel()
    race.feed(1, "setup", {"timestamp": "2025-11-22T17:16:45.160430Z", "setup": setup})
    assert race.feed(2, "setup", {"timestamp": "2025-11-22T17:16:46.160430Z", "setup": {}}) == []  # API gave nothing
    [event] = race.feed(3, "setup", {"timestamp": "2025-11-22T17:16:47.160430Z", "setup": changed})
    assert event["event"] == "setup_change"
    assert event["changes"] == [{"key": "VM_BRAKE_BALANCE", "old": old, "new": "52.5:47.5"}]


def test_alerts_fire_once_each():
    _, frames = simulated(laps=22)
    # Limits the simulated car crosses: tyres peak at ~95 °C, front brakes at ~600 °C in braking zones.
    options = RaceOptions(alerts=AlertOptions(tyre_temp_max_c=93.0, brake_temp_max_c=500.0, over_seconds=3.0))
    race = feed_all(frames, options)
    fuel = [a for a in race.alerts if a["kind"] == "fuel_window"]
    stops = [s["lap"] for s in race.pit_stops]
    assert len(fuel) == len(stops)  # once per stint, before each stop
    for alert, stop_lap in zip(fuel, stops):
        assert alert["lap"] <= stop_lap - 3  # early enough to call the box, not at 2 laps left
    hot = [a for a in race.alerts if a["kind"] in ("tyre_hot", "brake_hot")]
    assert hot and all(a["value"] > (93.0 if a["kind"] == "tyre_hot" else 500.0) for a in hot)
    # Once per excursion, and a braking zone's brief spike (under 3 s) is not one: a handful in 22 laps.
    assert len(hot) <= 10
    assert len({(a["kind"], a["corner"], a["seq"]) for a in hot}) == len(hot)


def test_pressure_loss_alert():
    _, frames = simulated(laps=6)
    frames = copy.deepcopy(frames)
    telemetry = [p["telemetry"] for k, p in frames if k != SETUP]
    lap4 = [t for t in telemetry if t["lap"] == 4]
    for t in lap4[len(lap4) // 2:]:
        t["tire_pressures"]["rr"] -= 60.0  # a puncture
    race = feed_all(frames)
    losses = [a for a in race.alerts if a["kind"] == "pressure_loss"]
    assert [(a["corner"], a["lap"], a["severity"]) for a in losses] == [("rr", 4, "critical")]


def test_strategy_arithmetic():
    plan = strategy(per_lap=3.0, lap_pace=100.0, clean=5, fuel=30.0, lap=10, lap_time=50.0, reserve_laps=0.3,
                    target_laps=12)
    assert plan["laps_left"] == 10.0 and plan["time_left"] == 1000.0
    # 0.5 of lap 10 done + 10 laps of fuel - 0.3 reserve = 10.2 laps from lap 10's start: laps 10..19.
    assert plan["box_by_lap"] == 19
    assert plan["fuel_to_target"] == 6.0
    unknown = strategy(per_lap=None, lap_pace=None, clean=0, fuel=30.0, lap=1, lap_time=5.0, reserve_laps=0.3)
    assert unknown["laps_left"] is None and unknown["box_by_lap"] is None
    by_time = strategy(per_lap=3.0, lap_pace=100.0, clean=5, fuel=30.0, lap=10, lap_time=None, reserve_laps=0.0,
                       target_seconds=1450.0)
    assert by_time["fuel_to_target"] == 15.0  # 15 laps cover 1,450 s
