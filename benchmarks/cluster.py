"""Issue 18's benchmark: one process against several processes on one Redis, same load, same run.

    PYTHONPATH=$PWD .venv/bin/python -m benchmarks.cluster [--duration 20 | --long] [--nodes 2] [--json FILE]

For each scenario (P sessions, V viewers per session, R Hz; by default the
issue's (10,20,50) and (50,20,2)) it runs, one after the other:

- ``single``: one racedash (``benchmarks.serve``, the production entry point), no Redis;
- ``cluster``: ``--nodes`` racedash processes (node names a, b, ...) on the Redis at
  ``--redis`` with a prefix of the run's own (its keys deleted afterwards), the same
  secret and the same recordings and state directories.

Clients connect to the processes directly, not through nginx: publisher k to
process k mod N (where round-robin handshakes put it), and the viewers of every
session alternate between processes, so each session has viewers on every
process and each of its frames must reach the others through Redis. With a
working Redis broadcast every viewer gets every frame of its session; without
one, the viewers on processes other than their publisher's get none, and the
delivered column says so. Direct connections keep nginx's CPU out of the figures
(the issue's targets count racedash and Redis) and let the benchmark's plain-ws
client (benchmarks/wsclient.py) skip TLS, which the shipped site requires.

Measured over the publishing window plus 0.5 s, as benchmarks/loadgen.py does
(it provides the publishers, the viewer bookkeeping and /proc accounting):
delivered frames/s (and the share of the frames owed), CPU per delivered frame
summed over the racedash processes, the same plus Redis's (redis-server's own
/proc/<pid>/stat, pid from INFO), latency publisher send -> viewer receive p50 /
p99 / max, and the ratios against the single process of the same run. Targets
(issue 18): CPU per delivered frame (racedash + Redis) <= 1.3x, p99 <= 2x.

The servers run without benchmarks/serve.py's loop-stall probe (this benchmark
reports no stalls): its 5 ms timer costs a process ~15 ms of CPU a second, paid
once per process, which counted against the cluster what is the benchmark's
own instrumentation.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import multiprocessing as mp
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import re
import urllib.parse
import urllib.request
from array import array
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

from benchmarks import wsclient
from benchmarks.loadgen import (
    HOST,
    ServerProcess,
    _percentile,
    _publisher_process,
    _recv,
    _Viewer,
    _wait_pipe,
    proc_cpu_seconds,
)

NODE_NAMES = "abcdefgh"
SCENARIOS = ((10, 20, 50.0), (50, 20, 2.0))  # (sessions, viewers per session, Hz): the two points


@dataclass(frozen=True)
class Scenario:
    publishers: int
    viewers: int  # per session
    rate: float

    @property
    def label(self) -> str:
        return f"({self.publishers},{self.viewers},{self.rate:g})"


# -- Redis ---------------------------------------------------------------------------------
def redis_cli(url: str, *args: str) -> str:
    cli = shutil.which("redis-cli")
    if cli is None:
        raise RuntimeError("redis-cli not found (Debian: apt-get install redis-tools)")
    return subprocess.run([cli, "-u", url, *args], capture_output=True, text=True, timeout=30, check=True).stdout


def redis_pid(url: str) -> int | None:
    """redis-server's pid when it runs on this host (its CPU is counted), else None."""
    for line in redis_cli(url, "info", "server").splitlines():
        if line.startswith("process_id:"):
            pid = int(line.split(":", 1)[1])
            host = urllib.parse.urlparse(url).hostname or "127.0.0.1"
            local = host in ("127.0.0.1", "localhost", "::1") and Path(f"/proc/{pid}/comm").exists()
            return pid if local and "redis" in Path(f"/proc/{pid}/comm").read_text() else None
    return None


def context_switches(pid: int | None) -> tuple[int, int]:
    """(voluntary, involuntary) context switches of a process's main thread so far (/proc/<pid>/status).

    Voluntary: the event loop went to sleep and was woken again (a wake-up); involuntary: it was
    preempted (on this machine mostly by the client processes its writes wake). (0, 0) when unknown.
    """
    if pid is None:
        return 0, 0
    counts: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if "ctxt_switches:" in line:
                    name, value = line.split(":")
                    counts[name] = int(value)
    except OSError:
        return 0, 0
    return counts.get("voluntary_ctxt_switches", 0), counts.get("nonvoluntary_ctxt_switches", 0)


def delete_keys(url: str, prefix: str) -> None:
    keys = redis_cli(url, "--scan", "--pattern", prefix.replace("*", r"\*") + "*").split()
    for start in range(0, len(keys), 500):
        redis_cli(url, "del", *keys[start : start + 500])


# -- viewers --------------------------------------------------------------------------------
def _viewer_process(port: int, sessions: list[str], pipe: Connection) -> None:
    gc.disable()  # client-side GC pauses would show up as server latency
    asyncio.run(_viewer_main(port, sessions, pipe))


async def _viewer_main(port: int, sessions: list[str], pipe: Connection) -> None:
    """loadgen's viewers, joined once the join is acknowledged.

    loadgen's wait for the setup, which reaches a viewer on another process than
    its publisher's only through Redis: here a missing setup shows as missing
    frames, not as a benchmark that never starts.
    """
    latencies, sent_at = array("d"), array("d")
    viewers = [_Viewer(s, latencies, sent_at) for s in sessions]
    gate = asyncio.Semaphore(64)  # the server's accept backlog is small: connect in waves

    async def open_viewer(v: _Viewer) -> None:
        async with gate:
            v.conn = await wsclient.connect(HOST, port, v.on_event, timeout=60)
            ack = await v.conn.call("join_session", {"session_id": v.session_id}, timeout=60)
            if not (isinstance(ack, dict) and ack.get("ok")):
                raise RuntimeError(f"join_session refused: {ack}")

    await asyncio.gather(*(open_viewer(v) for v in viewers))
    pipe.send("ready")
    command, _t_start = await _wait_pipe(pipe)
    assert command == "go"
    await _wait_pipe(pipe)  # "stop"
    pipe.send({
        "viewers": [(v.session_id, v.seen.tobytes()) for v in viewers],
        "latencies": latencies.tobytes(),
        "sent_at": sent_at.tobytes(),
        "setups": sum(v.joined.done() for v in viewers),  # viewers that got their session's setup
    })
    for v in viewers:
        v.conn.close()
    await asyncio.sleep(0.2)


# -- one run --------------------------------------------------------------------------------
def start_servers(mode: str, nodes: int, redis_url: str, prefix: str, directory: Path, extra: dict[str, str]) -> list[ServerProcess]:
    common = {"secret": secrets.token_urlsafe(24), "state_dir": str(directory / "state"), **extra}
    if mode == "single":
        return [ServerProcess("racedash", common, stall_probe=False)]
    shared = {**common, "recordings_dir": str(directory / "recordings"), "redis_url": redis_url, "redis_prefix": prefix}
    servers: list[ServerProcess] = []
    try:
        for name in NODE_NAMES[:nodes]:
            servers.append(ServerProcess("racedash", {**shared, "node_name": name}, stall_probe=False))
    except BaseException:
        for server in servers:
            server.stop()
        raise
    return servers


NODE_HINT = re.compile(r'data-node="([a-z0-9]+)"')


def writer_index(servers: list[ServerProcess], k: int, session_id: str) -> int | None:
    """The index of the process a session's dashboard page names (data-node), asked of process k mod n."""
    for _attempt in range(50):  # the writer's lease is taken with its first frame: wait for it
        port = servers[k % len(servers)].port
        with urllib.request.urlopen(f"http://{HOST}:{port}/dashboard/{session_id}", timeout=10) as response:
            found = NODE_HINT.search(response.read().decode())
        if found:
            return NODE_NAMES.index(found.group(1))
        time.sleep(0.1)
    return None


def run(mode: str, scenario: Scenario, duration: float, nodes: int, redis_url: str, extra: dict[str, str],
        placement: str = "split") -> dict:
    ctx = mp.get_context("fork")
    prefix = f"racedash-bench-{secrets.token_hex(4)}:"
    tmp = Path(tempfile.mkdtemp(prefix="racedash-cluster-bench-"))
    servers = start_servers(mode, nodes, redis_url, prefix, tmp, extra)
    n = len(servers)
    procs: list[mp.Process] = []
    try:
        # Publishers: k-th to process k mod n, one publisher process per racedash process.
        shares = [len(range(j, scenario.publishers, n)) for j in range(n)]
        pub_pipes = []
        for server, share in zip(servers, shares):
            parent, child = ctx.Pipe()
            p = ctx.Process(target=_publisher_process, args=(server.port, share, scenario.rate, 0, 0, child))
            p.start()
            procs.append(p)
            pub_pipes.append(parent)
        ids_per_server = [_recv(parent, 60, "session ids") for parent in pub_pipes]
        assignments: list[list[str]] = [[] for _ in servers]
        session_ids = [s for ids in ids_per_server for s in ids]
        hinted = 0
        if placement == "writer" and n > 1:
            # As the shipped nginx routes them: each session's dashboard page (fetched from any process,
            # here each in turn) names the process writing it, and its viewers connect there.
            for k, session_id in enumerate(session_ids):
                index = writer_index(servers, k, session_id)
                hinted += index is not None
                for i in range(scenario.viewers):
                    assignments[(index if index is not None else i) % n].append(session_id)
        else:
            # The i-th viewer of every session to process i mod n (each session has viewers everywhere).
            for session_id in session_ids:
                for i in range(scenario.viewers):
                    assignments[i % n].append(session_id)
        viewer_pipes = []
        t_connect = time.time()
        for server, sessions in zip(servers, assignments):
            parent, child = ctx.Pipe()
            p = ctx.Process(target=_viewer_process, args=(server.port, sessions, child))
            p.start()
            procs.append(p)
            viewer_pipes.append(parent)
        for parent in viewer_pipes:
            _recv(parent, 300, "viewer readiness")
        connect_seconds = time.time() - t_connect
        time.sleep(1.0)  # let the servers settle after the connection storm

        rpid = redis_pid(redis_url) if mode == "cluster" else None
        cpu0 = [s.cpu() for s in servers]
        rcpu0 = proc_cpu_seconds(rpid) if rpid else 0.0
        switches0 = [context_switches(s.pid) for s in servers] + [context_switches(rpid)]
        t0 = time.time()
        t_start = t0 + 0.2
        for j, parent in enumerate(pub_pipes):
            # Each publisher process staggers its own; offsetting the processes interleaves them all evenly.
            parent.send(("go", t_start + j / (scenario.publishers * scenario.rate), duration))
        for parent in viewer_pipes:
            parent.send(("go", t_start))
        sent: dict[str, int] = {}
        for parent in pub_pipes:
            sent.update(_recv(parent, duration + 60, "publisher counts"))
        time.sleep(0.5)  # frames in flight
        t1 = time.time()
        cpu = [s.cpu() - c for s, c in zip(servers, cpu0)]
        redis_cpu = proc_cpu_seconds(rpid) - rcpu0 if rpid else 0.0
        switches = [tuple(b - a for a, b in zip(before, context_switches(pid)))
                    for before, pid in zip(switches0, [s.pid for s in servers] + [rpid])]
        client_cpu = round(sum(proc_cpu_seconds(p.pid) for p in procs) / (t1 - t0), 3)
        for parent in viewer_pipes:
            parent.send("stop")
        results = [_recv(parent, 60, "viewer results") for parent in viewer_pipes]
        for parent in pub_pipes:
            parent.send("close")
    finally:
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.kill()
        for server in servers:
            server.stop()
            server.gc_pauses(0, 0)  # removes its temporary logs
            server.loop_stalls(0, 0)
        if mode == "cluster":
            delete_keys(redis_url, prefix)
        shutil.rmtree(tmp, ignore_errors=True)

    latencies: list[float] = []
    owed = received = unique_total = 0
    for res in results:
        latencies.extend(array("d", res["latencies"]))
        for session_id, seen_bytes in res["viewers"]:
            seen = array("l", seen_bytes)
            received += len(seen)
            unique_total += len(set(seen))
            owed += sent[session_id]
    latencies.sort()
    delivered = unique_total
    racedash_cpu = sum(cpu)
    per_frame = lambda seconds: round(seconds / delivered * 1e6, 2) if delivered else None  # noqa: E731
    return {
        "mode": mode,
        "scenario": scenario.label,
        "P": scenario.publishers, "V": scenario.viewers, "R": scenario.rate, "D": duration,
        "processes": n,
        "placement": placement if mode == "cluster" else None,
        "sessions_placed_by_hint": hinted if mode == "cluster" and placement == "writer" else None,
        "frames_sent": sum(sent.values()),
        "frames_owed": owed,
        "frames_delivered": delivered,
        "duplicates": received - unique_total,
        "delivered_share": round(delivered / owed, 4) if owed else None,
        "delivered_fps": round(delivered / duration, 1),
        "setups_received": sum(r["setups"] for r in results),
        "viewer_connections": scenario.publishers * scenario.viewers,
        "racedash_cpu_s": [round(c, 3) for c in cpu],
        "redis_cpu_s": round(redis_cpu, 3) if rpid else None,
        "cpu_us_per_frame": per_frame(racedash_cpu),
        "cpu_us_per_frame_with_redis": per_frame(racedash_cpu + redis_cpu),
        # Main threads' context switches over the window: wake-ups (voluntary) and preemptions, per
        # racedash process, and Redis's wake-ups. At low rates each wake-up is a fixed cost of its own.
        "wakeups": [w for w, _ in switches[:-1]],
        "preemptions": [p for _, p in switches[:-1]],
        "redis_wakeups": switches[-1][0] if rpid else None,
        "latency_ms": {
            "p50": round(_percentile(latencies, 0.50) * 1000, 3),
            "p99": round(_percentile(latencies, 0.99) * 1000, 3),
            "max": round(latencies[-1] * 1000, 3) if latencies else None,
        },
        "client_cpu_util": client_cpu,
        "connect_seconds": round(connect_seconds, 2),
        "loadavg_1m": round(os.getloadavg()[0], 2),
        "settings": extra,
    }


# -- report ---------------------------------------------------------------------------------
def _ratio(value: float | None, base: float | None) -> float | None:
    return round(value / base, 2) if value is not None and base else None


def table(rows: list[dict]) -> str:
    """Markdown: one line per run, ratios against the single process of the same scenario."""
    singles = {(r["scenario"], r.get("pair", 0)): r for r in rows if r["mode"] == "single"}
    lines = [
        "| scenario (P,V,R) | mode | delivered frames/s (share owed) | CPU µs / delivered frame: racedash (+ Redis) "
        "| latency p50 / p99 / max ms | CPU × single (≤ 1.3) | p99 × single (≤ 2) | load avg 1 min |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        base = singles.get((r["scenario"], r.get("pair", 0)))
        lat = r["latency_ms"]
        cpu_ratio = p99_ratio = "-"
        if r["mode"] != "single" and base is not None:
            c = _ratio(r["cpu_us_per_frame_with_redis"], base["cpu_us_per_frame_with_redis"])
            p = _ratio(lat["p99"], base["latency_ms"]["p99"])
            cpu_ratio = f"{c} {'met' if c is not None and c <= 1.3 else 'not met'}"
            p99_ratio = f"{p} {'met' if p is not None and p <= 2 else 'not met'}"
        mode = r["mode"] if r["mode"] == "single" else f"{r['processes']} processes + Redis" + (
            ", viewers at the writer (page hint)" if r.get("placement") == "writer" else "")
        cpu = f"{r['cpu_us_per_frame']}" + (f" ({r['cpu_us_per_frame_with_redis']})" if r["redis_cpu_s"] is not None else "")
        lines.append(
            f"| {r['scenario']} | {mode} | {r['delivered_fps']:g} ({r['delivered_share']:.0%}) | {cpu} "
            f"| {lat['p50']} / {lat['p99']} / {lat['max']} | {cpu_ratio} | {p99_ratio} | {r['loadavg_1m']} |"
        )
    pairs: dict[str, list[float]] = {}
    for r in rows:
        base = singles.get((r["scenario"], r.get("pair", 0)))
        if r["mode"] != "single" and base is not None:
            ratio = _ratio(r["cpu_us_per_frame_with_redis"], base["cpu_us_per_frame_with_redis"])
            if ratio is not None:
                pairs.setdefault(r["scenario"], []).append(ratio)
    for scenario, ratios in pairs.items():
        if len(ratios) > 1:
            lines.append("")
            lines.append(f"{scenario}: CPU × single over {len(ratios)} pairs run back to back: mean "
                         f"{sum(ratios) / len(ratios):.2f}, {min(ratios)}–{max(ratios)} (≤ 1.3)")
    short = [r for r in rows if r["delivered_share"] is not None and r["delivered_share"] < 0.999]
    if short:
        lines.append("")
        lines.append(
            "Not every frame owed was delivered in: " + ", ".join(f"{r['scenario']} {r['mode']}" for r in short)
            + ". In the cluster runs a viewer on another process than its publisher's gets frames only through Redis: "
            "CPU per delivered frame is then over fewer frames, and its ratio is not the target's."
        )
    lines.append("")
    lines.append(
        f"This machine has {os.cpu_count()} cores: with a load average above that, the processes waited for a core "
        "and the latencies measure the machine's other jobs as much as racedash."
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="One process vs several on Redis (issue 18); prints a table.")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of publishing per run (default 20)")
    parser.add_argument("--long", action="store_true", help="60 s per run")
    parser.add_argument("--nodes", type=int, default=2, help="racedash processes in the cluster runs (default 2)")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0", help="the Redis the cluster runs share")
    parser.add_argument("--scenario", action="append", metavar="P,V,R",
                        help="sessions,viewers per session,Hz (repeatable; default the issue's 10,20,50 and 50,20,2)")
    parser.add_argument("--mode", action="append", choices=["single", "cluster"], help="default: both")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="a setting for every process")
    parser.add_argument("--placement", choices=["split", "writer"], default="split",
                        help="cluster runs: each session's viewers split over every process (every frame crosses "
                             "Redis: default), or where the dashboard page's node hint sends them (its writer)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="run each scenario's modes this many times in turn (a cluster run is compared with "
                             "the single run just before it: the machine's load drifts between runs)")
    parser.add_argument("--json", type=Path, help="also append each run's JSON line to this file")
    args = parser.parse_args(argv)
    if not 2 <= args.nodes <= len(NODE_NAMES):
        parser.error(f"--nodes: 2 to {len(NODE_NAMES)}")
    duration = 60.0 if args.long else args.duration
    scenarios = [Scenario(int(p), int(v), float(r)) for p, v, r in (s.split(",") for s in args.scenario)] \
        if args.scenario else [Scenario(*s) for s in SCENARIOS]
    modes = args.mode or ["single", "cluster"]
    extra = dict(item.split("=", 1) for item in args.set)
    if "cluster" in modes:
        redis_cli(args.redis, "ping")  # fails early, with redis-cli's message, when Redis is not there
    rows = []
    for scenario in scenarios:
        for pair in range(args.repeat):
            for mode in modes:
                row = {**run(mode, scenario, duration, args.nodes, args.redis, extra, args.placement), "pair": pair}
                rows.append(row)
                line = json.dumps(row)
                print(line, flush=True)
                if args.json is not None:
                    with open(args.json, "a") as f:
                        f.write(line + "\n")
    print()
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
