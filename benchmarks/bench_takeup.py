"""What taking up a long session costs the process's other sessions while it happens.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_takeup.py [--hours 24] [--rate 20] [--takeups 3]

A session that is not in a process's memory is taken up from its recording
when its monitor or a viewer comes to that process: after a restart, after a
handover to another process (issue 18), or for a viewer on a process that
does not follow it yet. Taking it up rebuilds its race model from the whole
recording (~170,000 frames at 24 h). While that runs, the process's other
live sessions must go on: this benchmark measures how long their viewers saw
no frame.

What a run does (one server, everything on 127.0.0.1, stops by itself):

1. ``--takeups`` generated recordings of ``--hours`` of 2 Hz telemetry
   (benchmarks/replay_recordings.py), closed cleanly, under /tmp. Beside each,
   the race model state its writer would have saved (racedash.racefeed: every
   ``race_state_frames``, 600, frames), as of ``--state-behind`` frames before
   its end (default 300, half of that on average); ``--state-behind -1``: no
   state, as before racedash saved them (the whole recording is read).
2. A racedash server subprocess (benchmarks/serve.py) with that directory.
3. Another live session: a publisher process (python-socketio client,
   websocket) at ``--rate`` Hz, and a viewer (raw websocket client) of it.
4. For each recording in turn, after 3 s of steady frames: a raw connection
   joins it (``join_session``), which takes it up; the clock runs from the
   emit to the join's ack. Then 3 s more.

Output: one JSON line. Per take-up: its ms; the live session's longest gap
between two frames at its viewer during the take-up, and the frames late by
more than 100 ms (a gap over 100 ms at 20 Hz). The same gaps in the quiet
seconds before the first take-up are the baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
import time
import uuid
from multiprocessing.connection import Connection
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_join import HOST, close_cleanly, connect_counting, load_samples, telemetry_frame  # noqa: E402


def _publisher_process(port: int, session_id: str, rate: float, pipe: Connection) -> None:
    asyncio.run(_publisher_main(port, session_id, rate, pipe))


async def _publisher_main(port: int, session_id: str, rate: float, pipe: Connection) -> None:
    import socketio

    samples = load_samples()
    sio = socketio.AsyncClient()
    await sio.connect(f"http://{HOST}:{port}", transports=["websocket"], wait_timeout=20)
    ack = await sio.call("telemetry_update", {"session_id": session_id, "telemetry": telemetry_frame(samples, 0, rate)})
    assert ack.get("ok"), ack
    pipe.send("live")
    t0 = time.monotonic()
    k = 0
    while not pipe.poll():
        k += 1
        delay = t0 + k / rate - time.monotonic()  # an absolute schedule: a late frame does not delay the next
        if delay > 0:
            await asyncio.sleep(delay)
        await sio.emit("telemetry_update", {"session_id": session_id, "telemetry": telemetry_frame(samples, k, rate)})
    await sio.disconnect()
    await sio.shutdown()


def gaps_ms(arrivals: list[float], start: float, end: float) -> list[float]:
    """Gaps between consecutive frames at the viewer that end within [start, end]."""
    return [(b - a) * 1000 for a, b in zip(arrivals, arrivals[1:]) if start <= b <= end]


def gap_stats(gaps: list[float], rate: float) -> dict:
    late = [g for g in gaps if g > 1000 / rate + 100]
    return {"max_gap_ms": round(max(gaps), 1) if gaps else None, "gaps_over_100ms_late": len(late), "frames": len(gaps)}


def save_state(path: Path, behind: int) -> None:
    """The race model state a live writer saves (racedash.racefeed), as of ``behind`` frames before the end."""
    import orjson

    from racedash.config import Settings
    from racedash.race import RaceModel
    from racedash.race.checkpoint import model_state
    from racedash.racefeed import race_options
    from racedash.recording.files import open_regular
    from racedash.recording.format import decode_header
    from racedash.recording.race import save_model_state
    from racedash.recording.reader import good_end, iter_events

    options = race_options(Settings())
    model = RaceModel(options)
    with open_regular(path) as f:
        decode_header(f.readline())
        events = [event for _, event in iter_events(f, f.tell(), good_end(f))]
    for event in events[: len(events) - behind]:
        model.feed(event.seq, event.kind, event.data, event.t)
    save_model_state(path, options, orjson.dumps(model_state(model)))


def run(args: argparse.Namespace) -> dict:
    from benchmarks.loadgen import ServerProcess
    from benchmarks.replay_recordings import generate

    workdir = Path(tempfile.mkdtemp(prefix="racedash-bench-takeup-", dir="/tmp"))
    server = None
    publisher = None
    try:
        seconds = args.hours * 3600
        recordings = []
        for _ in range(args.takeups):
            session_id, path, frames = generate(workdir / "recordings", seconds=seconds, t0=time.time() - seconds)
            close_cleanly(path)
            if args.state_behind >= 0:
                save_state(path, args.state_behind)
            recordings.append(session_id)
        settings = {"recordings_dir": str(workdir / "recordings")}
        for item in args.set:
            name, value = item.split("=", 1)
            settings[name] = value
        server = ServerProcess("racedash", settings)
        live_id = str(uuid.uuid4())
        ctx = mp.get_context("fork")
        parent, child = ctx.Pipe()
        publisher = ctx.Process(target=_publisher_process, args=(server.port, live_id, args.rate, child))
        publisher.start()
        if not parent.poll(60):
            raise TimeoutError("the live session did not start")
        parent.recv()

        async def measure() -> dict:
            viewer = await connect_counting(HOST, server.port)
            arrivals: list[float] = []
            viewer.on_message = lambda name, size, t: arrivals.append(t) if name == "telemetry_update" else None
            ack = await viewer.call("join_session", {"session_id": live_id})
            assert ack.get("ok"), ack
            quiet_from = time.monotonic()
            await asyncio.sleep(3)
            baseline = gap_stats(gaps_ms(arrivals, quiet_from, time.monotonic()), args.rate)
            takeups = []
            for session_id in recordings:
                joiner = await connect_counting(HOST, server.port)
                cpu0 = server.cpu()
                began = time.monotonic()
                joined = await joiner.call("join_session", {"session_id": session_id}, timeout=600)
                done = time.monotonic()
                assert joined.get("ok"), joined
                cpu = server.cpu() - cpu0
                joiner.close()
                await asyncio.sleep(0.5)  # a frame due just before the ack arrives after it
                takeups.append({"ms": round((done - began) * 1000, 1), "server_cpu_ms": round(cpu * 1000),
                                **gap_stats(gaps_ms(arrivals, began, done + 0.5), args.rate)})
                await asyncio.sleep(2.5)
            viewer.close()
            return {"baseline": baseline, "takeups": takeups}

        results = asyncio.run(measure())
        parent.send("stop")
        publisher.join(timeout=20)
    finally:
        if publisher is not None and publisher.is_alive():
            publisher.kill()
            publisher.join()
        if server is not None:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return {
        "bench": "takeup",
        "hours": args.hours,
        "frames_per_recording": frames,
        "rate_hz": args.rate,
        "state_behind": args.state_behind,
        **results,
        "settings": settings,
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hours", type=float, default=24.0, help="length of each recording taken up (default 24)")
    parser.add_argument("--rate", type=float, default=20.0, help="the other live session's rate, Hz (default 20)")
    parser.add_argument("--takeups", type=int, default=3, help="recordings taken up one after another (default 3)")
    parser.add_argument("--state-behind", type=int, default=300,
                        help="frames between the saved race model state and the recording's end (-1: no state)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="a racedash setting")
    args = parser.parse_args(argv)
    print(json.dumps(run(args)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
