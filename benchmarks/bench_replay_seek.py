"""Replay seek: time to seek to a random point of a long recording until the viewer has the state there.

    PYTHONPATH=. python benchmarks/bench_replay_seek.py --hours 1,24 --seeks 200

For each length, in a fresh process (so memory figures are its own): a
generated recording of that many hours of 2 Hz telemetry (real sample payloads,
~0.9 KB a frame, a ~60 KB setup every hour, laps advancing every 90 s; 24 h is
~172,800 frames, ~150 MB, 960 laps, written under /tmp) is replayed by a real
racedash server on loopback with a connected viewer in another process (a raw
Engine.IO/Socket.IO websocket client, benchmarks/bench_join.py
``CountingConnection``, which logs each message's size and arrival time).
Then ``--seeks`` times, to a random position (seeded), a seek, timed on the
shared monotonic clock until the viewer has received the LAST message of the
state at that point: ``replay_state``, ``setup_update``, ``telemetry_history``
(up to ``replay_history_frames`` points of the last 30 minutes),
``telemetry_update``, then ``race_tables`` (the race tables up to that point)
when the race model is on (the default; it is then the last message, else
``telemetry_update`` is). Issue 20's target: p99 <= 30 ms (printed, not asserted).

Also reported: ``seek_to_telemetry_update_received`` (the end point this
benchmark used before issue 20: the telemetry_update after telemetry_history),
the state's bytes received by the viewer (websocket message sizes, per seek and
per event), the laps in race_tables and the points in telemetry_history, the
server-side part (index lookup, read and decode in a worker thread, state handed
to Socket.IO), the first-use index build (one streamed scan) and its reuse from
the sidecar, and the process's RSS and peak RSS (VmHWM) from /proc. The
generated recording is deleted at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from racedash.config import Settings  # noqa: E402
from racedash.replay.index import sidecar_path  # noqa: E402
from racedash.server import RacedashServer  # noqa: E402
from replay_recordings import generate  # noqa: E402


def proc_status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def stats(ms: list[float]) -> dict:
    return {"p50_ms": round(pct(ms, 50), 2), "p99_ms": round(pct(ms, 99), 2), "max_ms": round(max(ms), 2)}


def stats_bytes(sizes: list[int]) -> dict:
    return {"mean": round(sum(sizes) / len(sizes)), "p50": pct(sizes, 50), "max": max(sizes)}


SNAPSHOT_EVENTS = ("replay_state", "setup_update", "telemetry_history", "telemetry_update", "race_tables")


async def viewer_main(url: str, replay_id: str, race: str) -> None:
    """The viewer process: after each seek's state, print one JSON line.

    A raw websocket client (benchmarks/bench_join.py ``CountingConnection``) that
    logs each message's size and arrival time without decoding it. A seek's state
    is ``replay_state``, ``setup_update``, ``telemetry_history``,
    ``telemetry_update`` and, when the race model is on (``race`` = "1"),
    ``race_tables``: that is its last message, else ``telemetry_update``. The
    replay sends them in one go from its one task, so nothing else comes between.
    The line: ``t`` (time.monotonic() when the last message arrived), ``t_telemetry``
    (when the telemetry_update after telemetry_history did: the old end point),
    ``bytes`` per event (websocket message sizes, from the seek's replay_state on),
    ``laps`` in race_tables, ``points`` in telemetry_history.
    """
    from urllib.parse import urlsplit

    from bench_join import connect_counting, event_data

    last = "race_tables" if race == "1" else "telemetry_update"
    address = urlsplit(url)
    conn = await connect_counting(
        address.hostname, address.port, keep=frozenset({"race_tables", "telemetry_history", "replay_state"})
    )
    stopped = asyncio.get_running_loop().create_future()
    armed = [False]
    state: dict = {"bytes": {}, "after_history": False, "t_telemetry": None}

    def on_message(name: str, size: int, t: float) -> None:
        if name == "replay_state":
            state.update(bytes={}, after_history=False, t_telemetry=None)  # a seek's state starts here
            payload = conn.kept.get("replay_state")
            if payload and b'"status":"stopped"' in payload[-1] and not stopped.done():
                stopped.set_result(None)
            conn.kept.pop("replay_state", None)
        if name in SNAPSHOT_EVENTS:
            state["bytes"][name] = state["bytes"].get(name, 0) + size
        if name == "telemetry_history":
            state["after_history"] = True
        elif name == "telemetry_update" and state["after_history"]:
            state["after_history"] = False
            state["t_telemetry"] = t
        if name == last and state["t_telemetry"] is not None and armed[0]:
            history, tables = conn.kept.get("telemetry_history"), conn.kept.get("race_tables")
            line = {
                "t": t,
                "t_telemetry": state["t_telemetry"],
                "bytes": state["bytes"],
                "points": len(event_data(history[-1])["frames"]) if history else None,
                "laps": len(event_data(tables[-1])["laps"]) if tables else None,
            }
            conn.kept.clear()
            state["t_telemetry"] = None
            print(json.dumps(line), flush=True)

    conn.on_message = on_message
    ack = await conn.call("join_session", {"session_id": replay_id}, timeout=10)
    assert ack.get("ok"), ack
    conn.kept.clear()
    armed[0] = True  # the join's own state came before its ack: it is not a seek
    print("ready", flush=True)
    await stopped
    conn.close()


async def one(hours: float, seeks: int, seed: int, recording: str | None, points: int | None, race_model: bool) -> dict:
    if recording:
        path = Path(recording)
        return await measure(hours, seeks, seed, path.name.removesuffix(".jsonl"), path, None, points, race_model)
    workdir = Path(tempfile.mkdtemp(prefix="racedash-bench-seek-", dir="/tmp"))
    try:
        recording_id, path, frames = generate(workdir, seconds=hours * 3600)
        return await measure(hours, seeks, seed, recording_id, path, frames, points, race_model)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


async def measure(
    hours: float, seeks: int, seed: int, recording_id: str, path: Path, frames: int | None, points: int | None,
    race_model: bool = True,
) -> dict:
    sidecar_path(path).unlink(missing_ok=True)
    rss_start = proc_status_kb("VmRSS")
    settings = Settings(
        host="127.0.0.1", port=0, recordings_dir=path.parent, log_level="WARNING", race_model=race_model
    )
    if points is not None:
        settings = settings.replace(replay_history_frames=points)
    async with RacedashServer(settings) as server:
        manager = server.app.replays
        started = time.perf_counter()
        replay = await manager.start(recording_id, paused=True)
        index_build = time.perf_counter() - started
        await replay.stop()
        await replay.task
        await asyncio.sleep(0)  # the manager forgets the replay (and its cached index) in a done callback
        started = time.perf_counter()
        replay = await manager.start(recording_id, paused=True)
        index_cached = time.perf_counter() - started
        rss_indexed = proc_status_kb("VmRSS")

        race = replay._race is not None  # the race model is on: a state ends with race_tables
        viewer = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--viewer", server.url, replay.id, "1" if race else "0",
            stdout=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
        )
        assert (await asyncio.wait_for(viewer.stdout.readline(), 30)).strip() == b"ready"
        rng = random.Random(seed)
        state_received, telemetry_received, handed_over, history_points = [], [], [], []
        state_bytes: list[int] = []
        bytes_by_event: dict[str, int] = {}
        laps_sent: list[int] = []
        for _ in range(seeks):
            target = rng.uniform(0, replay.duration)
            began = time.monotonic()
            await replay.seek(target)
            handed_over.append((time.monotonic() - began) * 1000)
            # The viewer reports when the state's last message arrived, and its bytes.
            got = json.loads(await asyncio.wait_for(viewer.stdout.readline(), 30))
            state_received.append((got["t"] - began) * 1000)
            telemetry_received.append((got["t_telemetry"] - began) * 1000)
            state_bytes.append(sum(got["bytes"].values()))
            for name, size in got["bytes"].items():
                bytes_by_event[name] = bytes_by_event.get(name, 0) + size
            if got["laps"] is not None:
                laps_sent.append(got["laps"])
            history_points.append(got["points"] if got["points"] is not None else len(replay._history.frames(replay._telemetry)))
        await replay.stop()
        await asyncio.wait_for(viewer.wait(), 30)
        return {
            "bench": "replay_seek",
            "hours": hours,
            "frames": frames if frames is not None else replay.index.events,
            "recording_mb": round(path.stat().st_size / 1e6, 1),
            "seeks": seeks,
            "race_model": race,
            "state_ends_with": "race_tables" if race else "telemetry_update",
            "seek_to_state_received": stats(state_received),
            "seek_to_telemetry_update_received": stats(telemetry_received),
            "seek_state_handed_over": stats(handed_over),
            "state_bytes": {**stats_bytes(state_bytes)},
            "state_bytes_by_event_mean": {
                name: round(bytes_by_event.get(name, 0) / seeks) for name in SNAPSHOT_EVENTS if name in bytes_by_event
            },
            "race_tables_laps_mean": round(sum(laps_sent) / len(laps_sent), 1) if laps_sent else None,
            "history_seconds": settings.replay_history_seconds,
            "history_points_max": settings.replay_history_frames,
            "history_points_mean": round(sum(history_points) / len(history_points), 1),
            "index_build_s": round(index_build, 3),
            "index_from_sidecar_s": round(index_cached, 4),
            "index_checkpoints": len(replay.index.cp_offsets),
            "laps": len(replay.index.laps),
            "rss_start_mb": round(rss_start / 1024, 1),
            "rss_after_index_mb": round(rss_indexed / 1024, 1),
            "rss_end_mb": round(proc_status_kb("VmRSS") / 1024, 1),
            "rss_peak_mb": round(proc_status_kb("VmHWM") / 1024, 1),
        }


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--viewer":
        asyncio.run(viewer_main(*sys.argv[2:5]))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hours", type=lambda s: [float(x) for x in s.split(",")], default=[1.0, 24.0])
    parser.add_argument("--seeks", type=int, default=200)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--recording", default=None, help="use this recording instead of generating one")
    parser.add_argument("--one", type=float, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--history-points", type=int, default=None, help="override replay_history_frames")
    parser.add_argument("--race-model", default="true", choices=["true", "false"],
                        help="the server's race_model setting; a seek's state ends with race_tables when the replay has race tables (at 6122e2d replays always do)")
    parser.add_argument("--nice", type=int, default=0, help="add to this process's nice value (negative: root)")
    args = parser.parse_args()
    if args.nice:
        os.nice(args.nice)
    if args.one is not None:
        result = asyncio.run(
            one(args.one, args.seeks, args.seed, args.recording, args.history_points, args.race_model == "true")
        )
        print(json.dumps(result), flush=True)
        return
    for hours in args.hours:
        command = [sys.executable, __file__, "--one", str(hours), "--seeks", str(args.seeks), "--seed", str(args.seed),
                   "--race-model", args.race_model]
        if args.recording:
            command += ["--recording", args.recording]
        if args.history_points is not None:
            command += ["--history-points", str(args.history_points)]
        subprocess.run(command, check=True)


if __name__ == "__main__":
    main()
