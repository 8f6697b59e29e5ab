"""A public broadcast of one session to 1,000 viewers: server CPU per delivered frame, live and in replay.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_replay_broadcast.py [--viewers 1000] [--rate 10] [--duration 20]

Issue 20 ("Where the viewer waits"), target: a 1,000-viewer public broadcast of
one session in replay costs the same server CPU per delivery as live. Figures
are printed, not asserted.

One racedash server subprocess (benchmarks/serve.py: the production entry
point; its CPU is read from /proc/<pid>/stat like benchmarks/loadgen.py does),
on 127.0.0.1, recording on, race model on:

(a) live: a monitor-like publisher process (benchmarks/wsclient.py) publishes
    one session (a ~40 KB setup, then the real sample telemetry, ~0.9 KB, laps
    advancing) at ``--rate`` Hz for 1 + ``--duration`` + 1 s; ``--viewers``
    viewers (raw websocket clients that count messages without decoding them,
    spread over ``--viewer-procs`` processes) joined it before it started.
(b) replay: the recording of (a), once its publisher left, replayed at 1x (so
    the same frame rate) into a room the same number of fresh viewers joined
    while it was paused (REST ``POST /api/recordings/<id>/replay``, then
    ``play``, with the team token), from just before its first telemetry frame.

Each is measured over the same ``--duration`` s window, 1 s after the first
frame: the server's CPU (utime + stime), the ``telemetry_update`` frames the
viewers received (deliveries) and every message they received (a replay also
sends ``replay_state`` every second). Output: one JSON line, with
``cpu_us_per_delivered_frame`` for each, ``ratio_replay_to_live`` and the
per-message figures, the collections and event-loop stalls in each window,
and the machine's load (other jobs share it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
import time
import urllib.request
from datetime import datetime, timezone
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import wsclient  # noqa: E402
from benchmarks.bench_join import connect_raw, load_samples, telemetry_frame  # noqa: E402
from benchmarks.loadgen import HOST, ServerProcess, _wait_pipe, cpu_pressure_avg10, proc_cpu_seconds, setup_payload  # noqa: E402

TEAM_TOKEN = "bench-replay-broadcast-team-token"
WARM = 1.0  # s from the first frame to the window
TAIL = 1.0  # s of frames after the window


# -- viewers ------------------------------------------------------------------------------
class CountingViewer(wsclient.SioConnection):
    """Counts what it receives; decodes only acks (a few µs per message)."""

    frames = messages = received_bytes = 0

    def _on_text(self, payload: bytes, now: float) -> None:
        if payload[:3] == b'42[':
            self.messages += 1
            self.received_bytes += len(payload)
            if payload[4:21] == b'telemetry_update"':
                self.frames += 1
        else:
            super()._on_text(payload, now)  # acks, open, ping, namespace connect


def _viewer_process(port: int, room: str, n: int, pipe: Connection) -> None:
    gc.disable()  # client-side collections would show up as server delays
    asyncio.run(_viewer_main(port, room, n, pipe))


async def _viewer_main(port: int, room: str, n: int, pipe: Connection) -> None:
    gate = asyncio.Semaphore(64)  # the server's accept backlog is small: connect in waves
    viewers: list[CountingViewer] = []

    async def open_viewer() -> None:
        async with gate:
            conn = await connect_raw(lambda: CountingViewer(None), HOST, port, timeout=60)
            viewers.append(conn)
            ack = await conn.call("join_session", {"session_id": room}, timeout=60)
            assert ack.get("ok"), ack

    await asyncio.gather(*(open_viewer() for _ in range(n)))
    pipe.send("ready")
    while True:
        command = await _wait_pipe(pipe)
        if command == "mark":
            pipe.send((sum(v.frames for v in viewers), sum(v.messages for v in viewers), sum(v.received_bytes for v in viewers)))
        else:  # "close"
            break
    for v in viewers:
        v.close()
    await asyncio.sleep(0.2)


class Viewers:
    """``n`` viewers of ``room`` over ``procs`` processes."""

    def __init__(self, port: int, room: str, n: int, procs: int) -> None:
        ctx = mp.get_context("fork")
        self.pipes: list[Connection] = []
        self.procs: list[mp.Process] = []
        for i in range(procs):
            parent, child = ctx.Pipe()
            share = n // procs + (1 if i < n % procs else 0)
            p = ctx.Process(target=_viewer_process, args=(port, room, share, child))
            p.start()
            self.pipes.append(parent)
            self.procs.append(p)
        for parent in self.pipes:
            if not parent.poll(300):
                raise TimeoutError("viewers did not join within 300 s")
            assert parent.recv() == "ready"

    def mark(self) -> tuple[int, int, int]:
        for parent in self.pipes:
            parent.send("mark")
        totals = [parent.recv() for parent in self.pipes]
        return tuple(sum(t[i] for t in totals) for i in range(3))  # type: ignore[return-value]

    def cpu(self) -> float:
        return sum(proc_cpu_seconds(p.pid) for p in self.procs)

    def close(self) -> None:
        for parent in self.pipes:
            with contextlib.suppress(OSError):
                parent.send("close")
        for p in self.procs:
            p.join(timeout=20)
            if p.is_alive():
                p.kill()
                p.join()


# -- the publisher --------------------------------------------------------------------------
def _publisher_process(port: int, rate: float, pipe: Connection) -> None:
    asyncio.run(_publisher_main(port, rate, pipe))


async def _publisher_main(port: int, rate: float, pipe: Connection) -> None:
    samples = load_samples()
    assigned: asyncio.Future = asyncio.get_running_loop().create_future()

    def on_event(name: str, data: Any, now: float) -> None:
        if name == "session_id_assigned" and not assigned.done():
            assigned.set_result(data["session_id"])

    conn = await wsclient.connect(HOST, port, on_event)
    conn.emit("request_session_id", {})  # like the monitor: no ack, wait for the event
    session_id = await asyncio.wait_for(assigned, 20)
    setup_at = time.time()
    await conn.call("setup_data", {"session_id": session_id, "timestamp": _now_iso(), "setup": setup_payload()})
    pipe.send((session_id, setup_at))
    command, t_start, seconds = await _wait_pipe(pipe)
    assert command == "go"
    frames = int(seconds * rate)
    for i in range(frames):
        delay = t_start + i / rate - time.time()  # an absolute schedule: no drift
        if delay > 0:
            await asyncio.sleep(delay)
        telemetry = telemetry_frame(samples, i, rate)
        telemetry["timestamp"] = _now_iso()
        conn.emit("telemetry_update", {"session_id": session_id, "telemetry": telemetry})
    await conn.call("telemetry_update", {"session_id": session_id, "telemetry": telemetry})  # all arrived
    pipe.send(frames + 1)
    await _wait_pipe(pipe)  # "close"
    conn.close()
    await asyncio.sleep(0.2)


def _now_iso() -> str:
    return datetime.now(timezone.utc).replace(tzinfo=None).isoformat() + "Z"


# -- REST -----------------------------------------------------------------------------------
def api(port: int, path: str, body: dict | None = None) -> dict:
    request = urllib.request.Request(
        f"http://{HOST}:{port}{path}",
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {TEAM_TOKEN}", "Content-Type": "application/json"},
        method="GET" if body is None else "POST",
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())


# -- one window -----------------------------------------------------------------------------
def measure_window(server: ServerProcess, viewers: Viewers, first_frame_at: float, duration: float) -> dict:
    time.sleep(max(0.0, first_frame_at + WARM - time.time()))
    cpu0, v_cpu0, t0 = server.cpu(), viewers.cpu(), time.time()
    f0, m0, b0 = viewers.mark()
    time.sleep(max(0.0, t0 + duration - time.time()))
    cpu1, v_cpu1, t1 = server.cpu(), viewers.cpu(), time.time()
    f1, m1, b1 = viewers.mark()
    cpu, frames, messages, seconds = cpu1 - cpu0, f1 - f0, m1 - m0, t1 - t0
    return {
        "window": (t0, t1),
        "seconds": round(seconds, 2),
        "delivered_frames": frames,
        "delivered_frames_per_s": round(frames / seconds, 1),
        "delivered_messages_per_s": round(messages / seconds, 1),
        "received_kb_per_s": round((b1 - b0) / seconds / 1024, 1),
        "server_cpu_s": round(cpu, 3),
        "server_cpu_util": round(cpu / seconds, 3),
        "cpu_us_per_delivered_frame": round(cpu / frames * 1e6, 2) if frames else None,
        "cpu_us_per_delivered_message": round(cpu / messages * 1e6, 2) if messages else None,
        "viewer_procs_cpu_util": round((v_cpu1 - v_cpu0) / seconds, 3),
        "cpu_pressure_avg10": cpu_pressure_avg10(),
    }


def run(args: argparse.Namespace) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="racedash-bench-broadcast-", dir="/tmp"))
    settings = {
        "recordings_dir": str(workdir / "recordings"),
        "team_token": TEAM_TOKEN,
        "replay_idle_seconds": "600",
    }
    for item in args.set:
        name, value = item.split("=", 1)
        settings[name] = value
    server = ServerProcess("racedash", settings, profile=args.profile)
    ctx = mp.get_context("fork")
    publisher = None
    viewers: Viewers | None = None
    out: dict[str, Any] = {"bench": "replay_broadcast", "viewers": args.viewers, "rate_hz": args.rate,
                           "duration_s": args.duration}
    try:
        # (a) live
        pub_pipe, child = ctx.Pipe()
        publisher = ctx.Process(target=_publisher_process, args=(server.port, args.rate, child))
        publisher.start()
        if not pub_pipe.poll(60):
            raise TimeoutError("no session id from the publisher")
        session_id, setup_at = pub_pipe.recv()
        viewers = Viewers(server.port, session_id, args.viewers, args.viewer_procs)
        time.sleep(1.0)  # let the server settle after the joins
        first = time.time() + 0.3
        pub_pipe.send(("go", first, WARM + args.duration + TAIL))
        live = measure_window(server, viewers, first, args.duration)
        if not pub_pipe.poll(60):
            raise TimeoutError("the publisher did not finish")
        out["frames_published"] = pub_pipe.recv()
        viewers.close()
        viewers = None
        pub_pipe.send("close")  # the session loses its publisher: its recording stops growing
        publisher.join(timeout=20)
        time.sleep(1.5)  # the recording's last lines reach the file (flush window 250 ms)

        # (b) replay of (a)'s recording at 1x
        # Paused just before the first telemetry frame (the setup came earlier, before the viewers joined).
        position = max(0.0, first - setup_at - 0.05)
        started = api(server.port, f"/api/recordings/{session_id}/replay", {"paused": True, "speed": 1.0, "time": position})
        replay_id = started["replay_id"]
        out["replay_duration_s"] = started["state"]["duration"]
        viewers = Viewers(server.port, replay_id, args.viewers, args.viewer_procs)
        time.sleep(1.0)
        api(server.port, f"/api/replays/{replay_id}/control", {"action": "play"})
        first = time.time()
        replay = measure_window(server, viewers, first, args.duration)
        api(server.port, f"/api/replays/{replay_id}/control", {"action": "stop"})
        viewers.close()
        viewers = None
    finally:
        if viewers is not None:
            viewers.close()
        if publisher is not None and publisher.is_alive():
            publisher.kill()
            publisher.join()
        server.stop()
        gc_log = _read_log(server.gc_log)
        stall_log = _read_log(server.stall_log)
        shutil.rmtree(workdir, ignore_errors=True)
    for name, result in (("live", live), ("replay", replay)):
        t0, t1 = result.pop("window")
        result["server_gc_collections"] = sum(1 for p in gc_log if t0 <= p[0] <= t1)
        result["server_gc_max_ms"] = round(max((p[2] * 1000 for p in gc_log if t0 <= p[0] <= t1), default=0.0), 1)
        result["server_loop_stalls_over_10ms"] = sum(1 for s in stall_log if t0 <= s[0] <= t1)
        out[name] = result
    if live["cpu_us_per_delivered_frame"] and replay["cpu_us_per_delivered_frame"]:
        out["ratio_replay_to_live"] = round(replay["cpu_us_per_delivered_frame"] / live["cpu_us_per_delivered_frame"], 2)
        out["ratio_replay_to_live_per_message"] = round(
            replay["cpu_us_per_delivered_message"] / live["cpu_us_per_delivered_message"], 2
        )
    out["expected_frames_per_window"] = int(args.viewers * args.rate * args.duration)
    out["loadavg_1m"] = round(os.getloadavg()[0], 2)
    return out


def _read_log(path: str) -> list:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return []
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--viewers", type=int, default=1000, help="viewers of the session, then of its replay (default 1000)")
    parser.add_argument("--viewer-procs", type=int, default=2, help="processes the viewers are spread over (default 2)")
    parser.add_argument("--rate", type=float, default=10.0, help="frames per second, live and so in replay (default 10)")
    parser.add_argument("--duration", type=float, default=20.0, help="measured seconds of each (default 20)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="a racedash setting")
    parser.add_argument("--profile", type=Path, default=None, help="record the server with py-spy (raw) to this file")
    args = parser.parse_args(argv)
    print(json.dumps(run(args)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
