"""Generated recordings for the replay benchmarks (not a benchmark itself).

Frames are the real sample telemetry from ``tests/data`` (cycled, with
lap, lap time and fuel advanced so laps and seeks are meaningful) and the real
~60 KB setup, written with the recording format module. Files go under /tmp.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from racedash.recording.format import Header, encode_event_json, encode_header
from racedash.wire import payload_json


def sample_data() -> Path:
    """The real monitor samples kept with the test suite (tests/data/README.md)."""
    return Path(__file__).resolve().parents[1] / "tests" / "data"


def line(t: float, seq: int, kind: str, data: dict) -> bytes:
    """A recording line as racedash's recorder writes it today (the payload laid out, "at" given)."""
    return encode_event_json(t, seq, kind, *payload_json(kind, data))


def generate(
    directory: Path,
    *,
    seconds: float,
    rate: float = 2.0,
    lap_seconds: float = 90.0,
    setup_every_seconds: float = 3600.0,
    t0: float = 1_763_831_805.0,
) -> tuple[str, Path, int]:
    """A recording of ``seconds`` of telemetry at ``rate`` Hz; returns (id, path, frames)."""
    data = sample_data()
    setup = json.loads((data / "car_setup_overview.json").read_text())
    samples = [json.loads(line)["telemetry"] for line in (data / "telemetry_update_samples.jsonl").read_text().splitlines() if line.strip()]
    session_id = str(uuid.uuid4())
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{session_id}.jsonl"
    frames = int(seconds * rate)
    seq = 0
    with open(path, "wb", buffering=1 << 20) as f:
        f.write(encode_header(Header(session_id=session_id, created=t0, racedash_version="bench")))
        next_setup = 0.0
        for i in range(frames):
            t = i / rate
            if t >= next_setup:
                seq += 1
                f.write(line(t0 + t, seq, "setup", {"session_id": session_id, "timestamp": "2025-11-22T17:16:45.160430Z", "setup": setup}))
                next_setup += setup_every_seconds
            telemetry = dict(samples[i % len(samples)])
            telemetry["lap"] = 1 + int(t // lap_seconds)
            telemetry["lap_time"] = t % lap_seconds
            telemetry["fuel"] = max(0.0, 75.0 - (t % 3600.0) / 60.0)
            seq += 1
            f.write(line(t0 + t, seq, "telemetry", {"session_id": session_id, "telemetry": telemetry}))
    return session_id, path, frames
