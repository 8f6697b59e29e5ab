"""Replay seek: time to seek to a random point of a long recording and emit the state there.

    PYTHONPATH=. python benchmarks/bench_replay_seek.py --hours 1,24 --seeks 200

For each length, in a fresh process (so memory figures are its own): a
generated recording of that many hours of 2 Hz telemetry (real sample payloads,
~0.9 KB a frame, a ~60 KB setup every hour; 24 h is ~172,800 frames, ~150 MB,
written under /tmp) is replayed by a real racedash server on loopback with a
connected viewer (a python-socketio client). Then ``--seeks`` times, to a
random position (seeded), a seek, timed until the viewer process has
received the whole state at that point (``replay_state``, ``setup_update``,
``telemetry_history`` with up to ``replay_history_frames`` points of the last
30 minutes, ``telemetry_update``), on the shared monotonic clock. Also
reported: the server-side part (index lookup, read and decode in a worker
thread, state handed to Socket.IO), the
first-use index build (one streamed scan) and its reuse from the sidecar, and
the process's RSS and peak RSS (VmHWM) from /proc.
Targets: seek <= 50 ms; memory independent of the recording's size.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
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


async def viewer_main(url: str, replay_id: str) -> None:
    """The viewer process: after each telemetry_history, print when the next telemetry_update arrived."""
    import socketio

    sio = socketio.AsyncClient()
    stopped = asyncio.Event()
    after_history = [False]

    @sio.on("telemetry_history")
    async def on_history(data: dict) -> None:
        after_history[0] = True

    @sio.on("telemetry_update")
    async def on_telemetry(data: dict) -> None:
        if after_history[0]:
            after_history[0] = False
            print(repr(time.monotonic()), flush=True)

    @sio.on("replay_state")
    async def on_state(data: dict) -> None:
        if data["status"] == "stopped":
            stopped.set()

    await sio.connect(url, transports=["websocket"], wait_timeout=10)
    await sio.call("join_session", {"session_id": replay_id}, timeout=10)
    after_history[0] = False  # the join's own state is not a seek
    print("ready", flush=True)
    await stopped.wait()
    await sio.disconnect()
    await sio.shutdown()


async def one(hours: float, seeks: int, seed: int, recording: str | None, points: int | None) -> dict:
    if recording:
        path = Path(recording)
        recording_id = path.name.removesuffix(".jsonl")
        frames = None
    else:
        workdir = Path(tempfile.mkdtemp(prefix="racedash-bench-seek-", dir="/tmp"))
        recording_id, path, frames = generate(workdir, seconds=hours * 3600)
    sidecar_path(path).unlink(missing_ok=True)
    rss_start = proc_status_kb("VmRSS")
    settings = Settings(host="127.0.0.1", port=0, recordings_dir=path.parent, log_level="WARNING")
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

        viewer = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--viewer", server.url, replay.id,
            stdout=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
        )
        assert (await asyncio.wait_for(viewer.stdout.readline(), 30)).strip() == b"ready"
        rng = random.Random(seed)
        state_received, handed_over, history_points = [], [], []
        for _ in range(seeks):
            target = rng.uniform(0, replay.duration)
            began = time.monotonic()
            await replay.seek(target)
            handed_over.append((time.monotonic() - began) * 1000)
            # The viewer reports when the state's last event (telemetry_update) arrived.
            line = await asyncio.wait_for(viewer.stdout.readline(), 30)
            state_received.append((float(line) - began) * 1000)
            history_points.append(len(replay._history.frames(replay._telemetry)))
        await replay.stop()
        await asyncio.wait_for(viewer.wait(), 30)
        return {
            "bench": "replay_seek",
            "hours": hours,
            "frames": frames if frames is not None else replay.index.events,
            "recording_mb": round(path.stat().st_size / 1e6, 1),
            "seeks": seeks,
            "seek_to_state_received": stats(state_received),
            "seek_state_handed_over": stats(handed_over),
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
        asyncio.run(viewer_main(*sys.argv[2:4]))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hours", type=lambda s: [float(x) for x in s.split(",")], default=[1.0, 24.0])
    parser.add_argument("--seeks", type=int, default=200)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--recording", default=None, help="use this recording instead of generating one")
    parser.add_argument("--one", type=float, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--history-points", type=int, default=None, help="override replay_history_frames")
    parser.add_argument("--nice", type=int, default=0, help="add to this process's nice value (negative: root)")
    args = parser.parse_args()
    if args.nice:
        os.nice(args.nice)
    if args.one is not None:
        result = asyncio.run(one(args.one, args.seeks, args.seed, args.recording, args.history_points))
        print(json.dumps(result), flush=True)
        return
    for hours in args.hours:
        command = [sys.executable, __file__, "--one", str(hours), "--seeks", str(args.seeks), "--seed", str(args.seed)]
        if args.recording:
            command += ["--recording", args.recording]
        if args.history_points is not None:
            command += ["--history-points", str(args.history_points)]
        subprocess.run(command, check=True)


if __name__ == "__main__":
    main()
