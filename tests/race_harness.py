"""The race model's accuracy harness: the simulator is the oracle.

A simulated stint is published through a real server as the monitor would
(timestamps advancing sim time / speedup, so ``--speedup`` streams are
reproduced exactly, only faster than wall time), and what viewers get from
the server (``race_tables``, the race events) is checked against the
simulator's own record of every lap. The checks are the race-model issue's:
lap times within 0.05 s, fuel per lap within 2 % after three clean laps, laps
left within half a lap, every pit stop, driver change and setup change found
and nothing else, no lap spanning a gap in a best or an average.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from racedash.race.setupdiff import changed_settings, shown_values
from racedash.simulator.model import SETUP, StintConfig, StintModel, run_stint


@dataclass
class Stream:
    """A simulated stint as wire payloads, with the simulator that made it."""

    sim: StintModel
    messages: list[tuple[str, dict]]  # (event, payload without session_id)

    def payload(self, index: int, session_id: str) -> tuple[str, dict]:
        event, body = self.messages[index]
        return event, {"session_id": session_id, **body}

    def lap_of(self, index: int) -> int | None:
        event, body = self.messages[index]
        return body["telemetry"]["lap"] if event == "telemetry_update" else None

    def index_where(self, lap: int, lap_time_over: float) -> int:
        for i, (event, body) in enumerate(self.messages):
            if event == "telemetry_update" and body["telemetry"]["lap"] == lap and body["telemetry"]["lap_time"] > lap_time_over:
                return i
        raise ValueError(f"no frame in lap {lap} past {lap_time_over} s")

    def seconds_between(self, first: int, last: int) -> float:
        """Monitor time from message ``first`` to ``last`` (telemetry timestamps)."""
        from racedash.race.units import monitor_time

        def t(i: int) -> float:
            event, body = self.messages[i]
            stamp = body["telemetry"]["timestamp"] if event == "telemetry_update" else body["timestamp"]
            return monitor_time(stamp)

        return t(last) - t(first)


def simulated_stream(*, seed: int = 11, laps: int = 22, speedup: float = 1.0, rate: float = 2.0) -> Stream:
    sim, published = run_stint(StintConfig(seed=seed, laps=laps, time_scale=speedup), dt=speedup / rate)
    messages = []
    for pub in published:
        if pub.kind == SETUP:
            messages.append(("setup_data", {"timestamp": pub.payload["timestamp"], "setup": pub.payload["setup"]}))
        else:
            messages.append(("telemetry_update", {"telemetry": pub.payload}))
    return Stream(sim, messages)


def laps_from_events(tables: dict, events: list[tuple[str, dict]]) -> list[dict]:
    """The lap rows a viewer holds: its race_tables, then lap_completed and pit_stop amendments."""
    rows = {row["lap"]: row for row in tables["laps"]}
    for event, data in events:
        if event == "lap_completed":
            rows[data["lap"]["lap"]] = data["lap"]
        elif event == "pit_stop":
            for row in data.get("amended_laps", []):
                rows[row["lap"]] = row
    return [rows[n] for n in sorted(rows)]


def check_against_truth(stream: Stream, tables: dict, *, fuel_now: float | None = None, skipped: set[int] = frozenset()) -> dict:
    """Assert the issue's accuracy targets; returns the measured errors for the record."""
    sim = stream.sim
    truth = {lap.number: lap for lap in sim.laps}
    laps = tables["laps"]
    complete = [row for row in laps if not row["incomplete"] and row["time"] is not None]
    time_errors = [abs(row["time"] - truth[row["lap"]].lap_time) for row in complete]
    assert time_errors and max(time_errors) <= 0.05, max(time_errors)

    # Laps that lost data are never clean, so never in a best or an average.
    for row in laps:
        if row["incomplete"]:
            assert not row["clean"]
    best = min(row["time"] for row in laps if row["clean"])
    assert best == pytest.approx(min(truth[row["lap"]].lap_time for row in laps if row["clean"]), abs=0.05)

    listed = {row["lap"] for row in laps}
    true_stops = sorted(n for n, lap in truth.items() if lap.stopped and n in listed | {max(listed) + 1})
    found = [stop["lap"] for stop in tables["pit_stops"]]
    assert found == true_stops, (found, true_stops)
    true_drivers = [(n, truth[n].driver) for n in true_stops]
    found_drivers = [(c["lap"], c["to"]) for c in tables["driver_changes"]]
    assert found_drivers == true_drivers, (found_drivers, true_drivers)

    setups = [shown_values(body["setup"]) for event, body in stream.messages if event == "setup_data"]
    true_changes = [[c["key"] for c in changed_settings(a, b)] for a, b in zip(setups, setups[1:])]
    assert [[c["key"] for c in change["changes"]] for change in tables["setup_changes"]] == true_changes

    measured = {"laps": len(laps), "complete": len(complete), "max_lap_time_error": max(time_errors)}
    clean = [row for row in laps if row["clean"]][-5:]
    if len(clean) >= 3 and fuel_now is not None:
        true_per_lap = sum(truth[r["lap"]].fuel_start - truth[r["lap"]].fuel_end for r in clean) / len(clean)
        strategy = tables["strategy"]
        assert strategy["fuel_per_lap"] == pytest.approx(true_per_lap, rel=0.02)
        assert strategy["laps_left"] == pytest.approx(fuel_now / true_per_lap, abs=0.5)
        measured["fuel_per_lap_error"] = abs(strategy["fuel_per_lap"] - true_per_lap) / true_per_lap
        measured["laps_left_error"] = abs(strategy["laps_left"] - fuel_now / true_per_lap)
    for lap in skipped:
        row = next((r for r in laps if r["lap"] == lap), None)
        assert row is None or row["incomplete"], lap
    return measured
