"""Join a 24 h live session: time until a fresh viewer holds the whole join state, and its bytes.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_join.py [--hours 24] [--joins 50] [--behind 600,3600]

Issue 20 ("Where the viewer waits"), target: a viewer joining a 24 h live
session with charts filled (history) and the race model's lap table gets it
all within 100 ms p99, the bytes sent stated. Figures are printed, not asserted.

What a run does (one server, everything on 127.0.0.1, stops by itself):

1. A generated recording of ``--hours`` of 2 Hz telemetry (the real samples,
   laps advancing every 90 s: ~960 laps at 24 h, a ~60 KB setup every hour;
   benchmarks/replay_recordings.py) ending about now, under /tmp.
   Its summary sidecar says it was closed by a clean server stop.
2. A racedash server subprocess (benchmarks/serve.py: the production entry
   point) with that recordings directory.
3. A monitor-like publisher process (python-socketio client, websocket)
   publishes ``telemetry_update`` under the recording's session id, continuing
   its frames: the server takes the session up again from the recording
   (setups, latest telemetry, the ring, the race model rebuilt) before it
   acks the first frame. Then it publishes at 2 Hz until the end.
4. Warm-up joins (not counted: at least three, until two in a row are within
   2x of the fastest), then ``--joins`` times a fresh websocket connection (a raw
   Engine.IO/Socket.IO client that keeps every message's size and arrival time)
   sends ``join_session {session_id}``. The clock runs from the emit to the
   last message of the join state: ``setup_update`` (each setup), then
   ``telemetry_history``, the latest ``telemetry_update`` (and any frame
   published meanwhile), ``race_tables``, then the ack (racedash/history.py,
   racedash/racefeed.py, racedash/live.py). The connection is opened before
   the clock starts and closed after.
5. The same with ``last_seq`` that many frames behind the publisher's last
   acked frame (``--behind``): the gap-fill, timed to its last message (the
   ack, after the last missed frame and the race events of the missed frames).

Output: one JSON line. Per variant: ms from the emit to the last message
(p50/p99/max), to ``telemetry_history`` and to ``race_tables``; bytes received
per join (websocket message sizes, also the raw TCP bytes) and per event;
history points; laps in ``race_tables``. Also the restore time, the server's
CPU per join (the 2 Hz publishing included) and its collections and
event-loop stalls during the joins.

``--profile FILE`` records the server with py-spy (raw; summarise with
``python -m benchmarks.profile_summary FILE``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import random
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402

from benchmarks import wsclient  # noqa: E402

HOST = "127.0.0.1"


# -- a raw client that keeps every message's size and arrival time -------------------------
class CountingConnection(wsclient.SioConnection):
    """A :class:`wsclient.SioConnection` that logs ``(event, websocket message bytes, time.monotonic())``.

    Events are not decoded (a 500 KB ``race_tables`` would take the client
    milliseconds and delay the arrival time of the next message); the ones
    named in ``keep`` keep their payload for decoding after the clock stopped.
    The ack of a ``call`` is logged as event ``"ack"``. ``wire_bytes`` counts
    every byte read from the socket (websocket headers and pings included).
    """

    def __init__(self, keep: frozenset[str] = frozenset()) -> None:
        super().__init__(None)
        self.keep = keep
        self.log: list[tuple[str, int, float]] = []
        self.kept: dict[str, list[bytes]] = defaultdict(list)
        self.wire_bytes = 0
        self.on_message: Any = None  # optional callback(name, size, t)

    def data_received(self, data: bytes) -> None:
        self.wire_bytes += len(data)
        super().data_received(data)

    def _on_text(self, payload: bytes, now: float) -> None:
        t = time.monotonic()
        if payload[:3] == b'42[':
            end = payload.find(b'"', 4)
            name = payload[4:end].decode()
        elif payload[:2] == b"43":
            name = "ack"
        else:
            super()._on_text(payload, now)  # open, ping, namespace connect
            return
        self.log.append((name, len(payload), t))
        if name in self.keep:
            self.kept[name].append(payload)
        if name == "ack":
            super()._on_text(payload, now)  # resolves the call's future
        if self.on_message is not None:
            self.on_message(name, len(payload), t)

    def reset(self) -> None:
        self.log.clear()
        self.kept.clear()


def event_data(payload: bytes) -> Any:
    """The data of an encoded ``42["name", data]`` message."""
    return orjson.loads(payload[2:])[1]


async def connect_raw(factory: Callable[[], wsclient.SioConnection], host: str, port: int, timeout: float = 20) -> Any:
    """Like :func:`wsclient.connect` (websocket only, default namespace), with a connection made by ``factory``."""
    return await wsclient.open_connection(factory, host, port, timeout=timeout)


async def connect_counting(host: str, port: int, keep: frozenset[str] = frozenset(), timeout: float = 20) -> CountingConnection:
    return await connect_raw(lambda: CountingConnection(keep), host, port, timeout)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def stats(ms: list[float]) -> dict[str, float]:
    if not ms:
        return {}
    return {"p50_ms": round(pct(ms, 50), 2), "p99_ms": round(pct(ms, 99), 2), "max_ms": round(max(ms), 2)}


# -- the publisher process ------------------------------------------------------------------
def telemetry_frame(samples: list[dict], i: int, rate: float = 2.0, lap_seconds: float = 90.0) -> dict:
    """Frame ``i`` of the stream benchmarks/replay_recordings.generate() writes (so the live one continues it)."""
    t = i / rate
    telemetry = dict(samples[i % len(samples)])
    telemetry["lap"] = 1 + int(t // lap_seconds)
    telemetry["lap_time"] = t % lap_seconds
    telemetry["fuel"] = max(0.0, 75.0 - (t % 3600.0) / 60.0)
    return telemetry


def load_samples() -> list[dict]:
    from benchmarks.replay_recordings import sample_data

    lines = (sample_data() / "telemetry_update_samples.jsonl").read_text().splitlines()
    return [json.loads(line)["telemetry"] for line in lines if line.strip()]


def _publisher_process(port: int, session_id: str, first_frame: int, rate: float, pipe: Connection, seq: Any) -> None:
    asyncio.run(_publisher_main(port, session_id, first_frame, rate, pipe, seq))


async def _publisher_main(port: int, session_id: str, first_frame: int, rate: float, pipe: Connection, seq: Any) -> None:
    import socketio

    samples = load_samples()
    sio = socketio.AsyncClient()
    await sio.connect(f"http://{HOST}:{port}", transports=["websocket"], wait_timeout=20)
    i = first_frame
    started = time.monotonic()
    # The first frame takes the session up from its recording: acked once the restore
    # (setups, ring, race model rebuilt in a worker thread) is done.
    ack = await sio.call("telemetry_update", {"session_id": session_id, "telemetry": telemetry_frame(samples, i)}, timeout=600)
    assert ack.get("ok"), ack
    seq.value = ack["seq"]
    pipe.send(("live", ack["seq"], time.monotonic() - started))

    def acked(answer: dict) -> None:
        if answer.get("ok"):
            seq.value = max(seq.value, answer["seq"])

    t0 = time.monotonic()
    k = 0
    while not pipe.poll():
        k += 1
        delay = t0 + k / rate - time.monotonic()  # an absolute schedule: no drift
        if delay > 0:
            await asyncio.sleep(delay)
        i += 1
        await sio.emit("telemetry_update", {"session_id": session_id, "telemetry": telemetry_frame(samples, i)}, callback=acked)
    await sio.disconnect()
    await sio.shutdown()


# -- joins --------------------------------------------------------------------------------
JOIN_EVENTS = ("setup_update", "telemetry_history", "telemetry_update", "race_tables", "ack")


async def one_join(port: int, session_id: str, last_seq: int | None = None) -> dict:
    conn = await connect_counting(HOST, port, keep=frozenset({"telemetry_history", "race_tables"}))
    try:
        conn.reset()
        wire0 = conn.wire_bytes
        payload: dict[str, Any] = {"session_id": session_id}
        if last_seq is not None:
            payload["last_seq"] = last_seq
        began = time.monotonic()
        ack = await conn.call("join_session", payload, timeout=120)
        assert ack.get("ok"), ack
        log = list(conn.log)
        wire = conn.wire_bytes - wire0
        kept = {name: list(v) for name, v in conn.kept.items()}
    finally:
        conn.close()
    # Everything up to the ack is the join's (live frames stamped meanwhile are sent by the join too).
    upto = next(i for i, entry in enumerate(log) if entry[0] == "ack")
    state = log[: upto + 1]
    bytes_by: dict[str, int] = defaultdict(int)
    count_by: dict[str, int] = defaultdict(int)
    first_at: dict[str, float] = {}
    for name, size, t in state:
        bytes_by[name] += size
        count_by[name] += 1
        first_at.setdefault(name, t)
    frames = [t for name, _size, t in state if name in ("telemetry_update", "setup_update")]
    history = kept.get("telemetry_history")
    tables = kept.get("race_tables")
    return {
        "ms": (max(t for _n, _s, t in state) - began) * 1000,
        "history_ms": (first_at["telemetry_history"] - began) * 1000 if "telemetry_history" in first_at else None,
        "race_tables_ms": (first_at["race_tables"] - began) * 1000 if "race_tables" in first_at else None,
        "last_frame_ms": (max(frames) - began) * 1000 if frames else None,
        "bytes": sum(bytes_by.values()),
        "wire_bytes": wire,
        "bytes_by_event": dict(bytes_by),
        "count_by_event": dict(count_by),
        "history_points": len(event_data(history[0])["frames"]) if history else 0,
        "laps": len(event_data(tables[0])["laps"]) if tables else None,
        "missed": ack.get("missed"),
        "ack_seq": ack.get("seq"),
    }


def summarise(joins: list[dict]) -> dict:
    def mean(key: str) -> float | None:
        values = [j[key] for j in joins if j[key] is not None]
        return round(sum(values) / len(values), 1) if values else None

    names = sorted({name for j in joins for name in j["bytes_by_event"]}, key=lambda n: (n not in JOIN_EVENTS, JOIN_EVENTS.index(n) if n in JOIN_EVENTS else 0, n))
    return {
        "joins": len(joins),
        "to_last_message": stats([j["ms"] for j in joins]),
        "to_telemetry_history": stats([j["history_ms"] for j in joins if j["history_ms"] is not None]),
        "to_race_tables": stats([j["race_tables_ms"] for j in joins if j["race_tables_ms"] is not None]),
        "to_last_frame": stats([j["last_frame_ms"] for j in joins if j["last_frame_ms"] is not None]),
        "bytes_per_join_mean": mean("bytes"),
        "bytes_per_join_max": max(j["bytes"] for j in joins),
        "wire_bytes_per_join_mean": mean("wire_bytes"),
        "bytes_by_event_mean": {n: round(sum(j["bytes_by_event"].get(n, 0) for j in joins) / len(joins)) for n in names},
        "messages_by_event_mean": {n: round(sum(j["count_by_event"].get(n, 0) for j in joins) / len(joins), 2) for n in names},
        "history_points_mean": mean("history_points"),
        "laps_mean": mean("laps"),
        "missed_mean": mean("missed"),
    }


class Seqs:
    """The session's seqs: the recorded ones 1..recorded_last, then the live ones from first_live.

    The restored session numbers its frames from above a gap (the recording was
    not closed cleanly, as after a crash: racedash/recording/store.py), so
    "N frames behind" is counted over the frames that exist, not the numbers.
    """

    def __init__(self, recorded_last: int, first_live: int, latest: Any) -> None:
        self.recorded_last, self.first_live, self.latest = recorded_last, first_live, latest

    def behind(self, frames: int) -> int:
        current = self.latest.value
        live = current - self.first_live + 1
        if frames < live:
            return current - frames
        return max(0, self.recorded_last - (frames - live))


async def run_joins(port: int, session_id: str, n: int, seqs: Seqs, behind: int | None, rng: random.Random) -> list[dict]:
    out = []
    for _ in range(n):
        await asyncio.sleep(rng.uniform(0.05, 0.3))  # no phase lock with the 2 Hz publisher
        last_seq = None if behind is None else seqs.behind(behind)
        out.append(await one_join(port, session_id, last_seq))
    return out


async def warm_up(port: int, session_id: str, limit: int = 10) -> list[float]:
    """At least three joins, then until two in a row are within 2x of the fastest so far (first reads, caches)."""
    times: list[float] = []
    while len(times) < limit:
        times.append((await one_join(port, session_id))["ms"])
        if len(times) >= 3 and max(times[-2:]) <= 2 * min(times):
            break
    return [round(t, 1) for t in times]


def close_cleanly(path: Path) -> None:
    """Give the recording the summary sidecar of one closed by a clean server stop.

    The session resumed from it numbers its frames on from the last recorded
    seq, as after a restart (after a crash it would jump a million ahead and a
    ``last_seq`` from before the crash would get the state instead of a gap-fill).
    """
    from racedash.recording.summary import load_summary, write_sidecar

    summary = load_summary(path)
    summary.closed_cleanly = True
    write_sidecar(path, summary)


def last_recorded_seq(path: Path) -> int:
    with open(path, "rb") as f:
        f.seek(max(0, path.stat().st_size - 65536))
        return orjson.loads(f.read().splitlines()[-1])["seq"]


# -- a run --------------------------------------------------------------------------------
def run(args: argparse.Namespace) -> dict:
    from benchmarks.loadgen import ServerProcess
    from benchmarks.replay_recordings import generate

    workdir = Path(tempfile.mkdtemp(prefix="racedash-bench-join-", dir="/tmp"))
    procs: list[mp.Process] = []
    server = None
    try:
        seconds = args.hours * 3600
        started = time.perf_counter()
        # The recording ends about now: its last 30 minutes are the joiner's chart history.
        session_id, path, frames = generate(workdir / "recordings", seconds=seconds, t0=time.time() - seconds)
        close_cleanly(path)
        generate_s = time.perf_counter() - started
        settings = {"recordings_dir": str(workdir / "recordings"), "race_model": str(args.race_model).lower()}
        for item in args.set:
            name, value = item.split("=", 1)
            settings[name] = value
        server = ServerProcess("racedash", settings, profile=args.profile)
        ctx = mp.get_context("fork")
        seq = ctx.Value("q", 0)
        parent, child = ctx.Pipe()
        publisher = ctx.Process(target=_publisher_process, args=(server.port, session_id, frames, 2.0, child, seq))
        publisher.start()
        procs.append(publisher)
        if not parent.poll(600):
            raise TimeoutError("the session was not taken up within 600 s")
        _live, first_seq, restore_s = parent.recv()
        seqs = Seqs(last_recorded_seq(path), first_seq, seq)

        async def measure() -> dict:
            rng = random.Random(args.seed)
            warm = await warm_up(server.port, session_id)
            cpu0, t0 = server.cpu(), time.time()
            results: dict[str, Any] = {"state": summarise(await run_joins(server.port, session_id, args.joins, seqs, None, rng))}
            cpu1 = server.cpu()
            results["server_cpu_ms_per_state_join"] = round((cpu1 - cpu0) / args.joins * 1000, 2)
            for behind in args.behind:
                c0 = server.cpu()
                results[f"gap_fill_{behind}"] = summarise(await run_joins(server.port, session_id, args.joins, seqs, behind, rng))
                results[f"server_cpu_ms_per_gap_fill_{behind}_join"] = round((server.cpu() - c0) / args.joins * 1000, 2)
            results["window"] = (t0, time.time())
            results["warmup_ms"] = warm
            return results

        results = asyncio.run(measure())
        t0, t1 = results.pop("window")
        parent.send("stop")
        publisher.join(timeout=20)
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join()
        recording_mb = round(path.stat().st_size / 1e6, 1) if "path" in locals() and path.exists() else None
        if server is not None:
            server.stop()
            # Read (and so delete) its collection and stall logs, also when the run failed.
            window = (t0, t1) if "t1" in locals() else (0.0, 0.0)
            gc, stalls = server.gc_pauses(*window), server.loop_stalls(*window)
        shutil.rmtree(workdir, ignore_errors=True)
    return {
        "bench": "join",
        "hours": args.hours,
        "frames": frames,
        "recording_mb": recording_mb,
        "generate_s": round(generate_s, 1),
        "restore_s": round(restore_s, 2),
        "first_live_seq": first_seq,
        "race_model": args.race_model,
        **results,
        "server_gc": {k: v for k, v in gc.items() if k != "over_5ms"} | {"over_5ms": gc.get("over_5ms", [])},
        "server_loop_stalls_over_10ms": sorted(stalls, key=lambda s: -s[1])[:10],
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hours", type=float, default=24.0, help="length of the live session's recording (default 24)")
    parser.add_argument("--joins", type=int, default=50, help="measured joins per variant (default 50)")
    parser.add_argument("--behind", type=lambda s: [int(x) for x in s.split(",") if x], default=[600, 3600],
                        help="gap-fill variants: last_seq this many frames behind (default 600,3600; empty: none)")
    parser.add_argument("--race-model", type=lambda s: s.lower() in ("1", "true", "yes", "on"), default=True)
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="a racedash setting")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--profile", type=Path, default=None, help="record the server with py-spy (raw) to this file")
    args = parser.parse_args(argv)
    print(json.dumps(run(args)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
