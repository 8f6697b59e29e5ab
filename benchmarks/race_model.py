"""The race model's cost and accuracy: CPU per frame, the 24 h table build, errors per scenario.

    PYTHONPATH=$PWD .venv/bin/python -m benchmarks.race_model [--hours 24]

Prints JSON lines:
- ``feed``: microseconds of CPU per frame fed to the model (a simulated 2 Hz stint).
- ``build``: building the tables of an N-hour simulated recording (2 Hz, written to /tmp)
  from the file with no sidecar (one scan), then again from the fresh sidecar.
- ``accuracy``: per scenario (speedup 1, 10, 100; a 30 s silence; an outage across the
  line), the largest lap-time error on complete laps, the fuel-per-lap error after the
  last five clean laps and the laps-left error, against the simulator's own record.

The server-side overhead of the model is measured with the load generator, model on
vs off (see benchmarks/README.md, "Race model").
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
import uuid
from pathlib import Path

from racedash.race import RaceModel, RaceOptions
from racedash.recording.format import Header, encode_event, encode_header
from racedash.recording.race import load_tables, race_sidecar_path
from racedash.simulator.model import SETUP, StintConfig, StintModel, run_stint


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def stream(laps: int, speedup: float = 1.0, seed: int = 7) -> tuple[StintModel, list[tuple[str, dict]]]:
    sim, published = run_stint(StintConfig(seed=seed, laps=laps, time_scale=speedup), dt=speedup / 2.0)
    return sim, [(p.kind, p.payload if p.kind == SETUP else {"telemetry": p.payload}) for p in published]


def feed_cost(laps: int) -> dict:
    _, frames = stream(laps)
    model = RaceModel()
    start = cpu()
    for seq, (kind, payload) in enumerate(frames, 1):
        model.feed(seq, kind, payload)
    spent = cpu() - start
    return {"bench": "feed", "frames": len(frames), "laps": len(model.laps), "us_per_frame": round(spent / len(frames) * 1e6, 2)}


def build_cost(hours: float) -> dict:
    laps = int(hours * 3600 / 100) + 1
    sim, frames = stream(laps)
    directory = Path(tempfile.mkdtemp(prefix="racedash-race-bench-"))
    session_id = str(uuid.uuid4())
    path = directory / f"{session_id}.jsonl"
    t0 = 1_763_820_000.0
    with open(path, "wb", buffering=1 << 20) as f:
        f.write(encode_header(Header(session_id=session_id, created=t0, racedash_version="bench")))
        for seq, (kind, payload) in enumerate(frames, 1):
            f.write(encode_event(t0 + seq * 0.5, seq, kind, {"session_id": session_id, **payload}))
    options = RaceOptions()
    wall, spent = time.perf_counter(), cpu()
    tables = load_tables(path, options)
    scan_wall, scan_cpu = time.perf_counter() - wall, cpu() - spent
    wall = time.perf_counter()
    cached = load_tables(path, options)
    sidecar_wall = time.perf_counter() - wall
    assert cached == json.loads(json.dumps(tables))
    return {
        "bench": "build", "hours": hours, "frames": len(frames), "laps": len(tables["laps"]),
        "recording_mb": round(path.stat().st_size / 1e6, 1), "sidecar_kb": round(race_sidecar_path(path).stat().st_size / 1e3, 1),
        "scan_s": round(scan_wall, 2), "scan_cpu_s": round(scan_cpu, 2), "from_sidecar_ms": round(sidecar_wall * 1e3, 1),
    }


def errors(sim: StintModel, model: RaceModel, fuel_now: float) -> dict:
    truth = {lap.number: lap for lap in sim.laps}
    complete = [r for r in model.laps if not r["incomplete"] and r["time"] is not None]
    clean = [r for r in model.laps if r["clean"]][-5:]
    true_per_lap = sum(truth[r["lap"]].fuel_start - truth[r["lap"]].fuel_end for r in clean) / len(clean)
    plan = model.strategy()
    return {
        "laps": len(model.laps), "complete": len(complete),
        "max_lap_time_error_s": round(max(abs(r["time"] - truth[r["lap"]].lap_time) for r in complete), 4),
        "fuel_per_lap_error_pct": round(abs(plan["fuel_per_lap"] - true_per_lap) / true_per_lap * 100, 3),
        "laps_left_error": round(abs(plan["laps_left"] - fuel_now / true_per_lap), 3),
        "pit_stops_found": [s["lap"] for s in model.pit_stops],
        "pit_stops_true": [n for n, lap in truth.items() if lap.stopped],
    }


def accuracy() -> list[dict]:
    results = []
    for name, speedup, drop in [("1x", 1, None), ("10x", 10, None), ("100x", 100, None),
                                ("silent 30 s", 1, ("silence", 5)), ("outage across the line", 1, ("line", 6))]:
        sim, frames = stream(22, speedup)
        skip: set[int] = set()
        if drop is not None:
            kind, lap = drop
            stamps = [(i, p["telemetry"]) for i, (k, p) in enumerate(frames) if k != SETUP]
            if kind == "silence":
                start = next(i for i, t in stamps if t["lap"] == lap and t["lap_time"] > 30)
                skip = set(range(start, start + 60))  # 60 frames at 2 Hz: 30 s
            else:
                start = next(i for i, t in stamps if t["lap"] == lap and t["lap_time"] > 80)
                end = next(i for i, t in stamps if t["lap"] == lap + 1 and t["lap_time"] > 20)
                skip = set(range(start, end))
        model = RaceModel()
        for seq, (kind, payload) in enumerate(frames, 1):
            if seq - 1 not in skip:
                model.feed(seq, kind, payload)
        results.append({"bench": "accuracy", "scenario": name, **errors(sim, model, frames[-1][1]["telemetry"]["fuel"])})
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hours", type=float, default=24.0, help="length of the recording whose tables are built")
    args = parser.parse_args()
    print(json.dumps(feed_cost(60)), flush=True)
    for line in accuracy():
        print(json.dumps(line), flush=True)
    print(json.dumps(build_cost(args.hours)), flush=True)


if __name__ == "__main__":
    main()
