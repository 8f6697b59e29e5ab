"""Load generator: P monitor-like publishers, V viewers per session, for D seconds.

Processes: the server under test (a subprocess on 127.0.0.1, free port), one
publisher process and one or more viewer processes, so the client side does
not bottleneck on the server's core. The driver (this process) only
orchestrates and reads the server's CPU time and RSS from /proc/<pid>/stat and
/proc/<pid>/status.

One run prints one JSON line:

    python -m benchmarks.loadgen --server racedash -P 10 -V 20 -R 50 -D 8
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import multiprocessing as mp
import os
import signal
import socket
import subprocess
import tempfile
import sys
import time
from array import array
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import orjson

from benchmarks import wsclient

HOST = "127.0.0.1"
ROOT = Path(__file__).resolve().parents[1]
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


# -- payloads ----------------------------------------------------------------------
def telemetry_template() -> dict:
    """A ~1 KB telemetry object shaped like the monitor's (fields from CONTRACT.md)."""
    corners = lambda v: {"fl": v, "fr": v + 0.37, "rl": v - 1.21, "rr": v + 2.05}  # noqa: E731
    return {
        "timestamp": "2025-11-22T17:16:45.160430Z",
        "lap": 12,
        "position": 4,
        "lap_time": 63.27418375015259,
        "fuel": 41.83019256591797,
        "fuel_capacity": 75.0,
        "tire_pressures": corners(172.40155029296875),
        "tire_temps": corners(88.95361328125),
        "tire_wear": corners(0.8712345361709595),
        "brake_temps": corners(507.5722351074219),
        "engine_water_temp": 91.42851257324219,
        "track_temp": 40.30604368550149,
        "ambient_temp": 28.903763440860246,
        "speed": 231.05647184069577,
        "gear": 5,
        "rpm": 8123.4521484375,
        "player_name": "Dean Davids",
        "car_name": "DKR Engineering #3:ELMS25",
        "track_name": "Autodromo Enzo e Dino Ferrari",
        "session_type": "Race",
        "distance_driven": 51234.87109375,
        "throttle": 0.9812345, "brake": 0.0, "steering": -0.0231,
    }


def setup_payload() -> dict:
    """A setup shaped like the game's garage overview (~40 KB)."""
    values = {}
    for i in range(220):
        key = f"VM_SETTING_{i:03d}"
        values[key] = {
            "key": key, "stringValue": f"{i * 0.25:.2f} unit", "value": i, "minValue": 0,
            "maxValue": 400, "available": True, "name": f"Setting number {i}",
        }
    return {"carSetup": {"garageValues": values}, "name": "benchmark"}


# -- /proc accounting ----------------------------------------------------------------
def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of the whole process (all threads), from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_runqueue_wait_seconds(pid: int) -> float:
    """Time the server's main thread was runnable but waiting for a CPU (/proc/<pid>/schedstat)."""
    with open(f"/proc/{pid}/schedstat") as f:
        return int(f.read().split()[1]) / 1e9


def cpu_pressure_avg10() -> float | None:
    """Share of the last 10 s in which some task waited for a CPU, machine-wide (PSI)."""
    try:
        with open("/proc/pressure/cpu") as f:
            return float(f.readline().split()[1].split("=")[1])
    except (OSError, IndexError, ValueError):
        return None


def proc_status_kb(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def _renice(nice: int) -> None:
    """Give the server under test priority over the load generators and other jobs, if allowed."""
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, 0, nice)


# -- server subprocess -------------------------------------------------------------
class ServerProcess:
    def __init__(
        self, kind: str, settings: dict[str, str] | None = None, profile: Path | None = None, nice: int = 0,
        stall_probe: bool = True,
    ) -> None:
        cmd = [sys.executable, "-m", "benchmarks.serve", kind]
        for name, value in (settings or {}).items():
            cmd += ["--set", f"{name}={value}"]
        self.profile = profile
        if profile is not None:
            pyspy = Path(sys.executable).with_name("py-spy")
            cmd = [str(pyspy), "record", "-r", "200", "-f", "raw", "-o", str(profile), "--", *cmd]
        self.gc_log = tempfile.NamedTemporaryFile(prefix="racedash-gc-", suffix=".json", delete=False).name
        self.stall_log = tempfile.NamedTemporaryFile(prefix="racedash-stalls-", suffix=".json", delete=False).name
        env = dict(os.environ, PYTHONPATH=str(ROOT), BENCH_GC_LOG=self.gc_log, BENCH_STALL_LOG=self.stall_log,
                   BENCH_STALL_PROBE="1" if stall_probe else "0")
        # The server's log goes to a file: shutdown with clients still attached is noisy.
        log_dir = ROOT / "benchmarks" / "results"
        log_dir.mkdir(exist_ok=True)
        self.log = open(log_dir / f"server-{kind}.log", "a")
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=self.log, env=env, cwd=ROOT, text=True,
            preexec_fn=(lambda: _renice(nice)) if nice else None,
        )
        line = self.proc.stdout.readline()
        while line and not line.startswith("READY "):  # py-spy talks on stdout first
            line = self.proc.stdout.readline()
        if not line.startswith("READY "):
            self.proc.kill()
            raise RuntimeError(f"server did not start: {line!r}")
        self.port = int(line.split()[1])
        self.pid = self._server_pid()

    def _server_pid(self) -> int:
        if self.profile is None:
            return self.proc.pid
        # py-spy runs the server as its child: account the server, not py-spy.
        with open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children") as f:
            return int(f.read().split()[0])

    def cpu(self) -> float:
        return proc_cpu_seconds(self.pid)

    def rss_kb(self) -> int:
        return proc_status_kb(self.pid, "VmRSS")

    def gc_pauses(self, t0: float, t1: float) -> dict:
        """Collections in the server between t0 and t1 (epoch): count and pause per generation."""
        try:
            with open(self.gc_log) as f:
                pauses = [p for p in json.load(f) if t0 <= p[0] <= t1]
        except (OSError, ValueError):
            return {}
        finally:
            with contextlib.suppress(OSError):
                os.unlink(self.gc_log)
        out = {}
        for gen in (0, 1, 2):
            ms = [p[2] * 1000 for p in pauses if p[1] == gen]
            cpu_ms = [p[3] * 1000 for p in pauses if p[1] == gen]
            out[f"gen{gen}"] = {
                "count": len(ms), "max_ms": round(max(ms), 2) if ms else 0, "total_ms": round(sum(ms), 1),
                "max_cpu_ms": round(max(cpu_ms), 2) if cpu_ms else 0,
            }
        # The long ones: [time in the window s, generation, wall ms, CPU ms].
        out["over_5ms"] = [[round(t - t0, 2), gen, round(s * 1000, 1), round(c * 1000, 1)] for t, gen, s, c in pauses if s > 0.005]
        return out

    def loop_stalls(self, t0: float, t1: float) -> list[list[float]]:
        """The event loop's late returns over 10 ms between t0 and t1: [s into the window, ms late, process CPU ms]."""
        try:
            with open(self.stall_log) as f:
                stalls = [s for s in json.load(f) if t0 <= s[0] <= t1]
        except (OSError, ValueError):
            return []
        finally:
            with contextlib.suppress(OSError):
                os.unlink(self.stall_log)
        return [[round(t - t0, 2), round(late * 1000, 1), round(cpu * 1000, 1)] for t, late, cpu in stalls]

    def stop(self) -> None:
        try:
            os.kill(self.pid, signal.SIGTERM)
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        except ProcessLookupError:
            self.proc.wait()
        finally:
            self.log.close()


# -- publisher process ---------------------------------------------------------------
def _publisher_process(port: int, n_publishers: int, rate: float, prefill: int, padding: int, pipe: Connection) -> None:
    asyncio.run(_publisher_main(port, n_publishers, rate, prefill, padding, pipe))


async def _wait_pipe(pipe: Connection) -> Any:
    loop = asyncio.get_running_loop()
    ready = loop.create_future()
    loop.add_reader(pipe.fileno(), lambda: ready.done() or ready.set_result(None))
    try:
        await ready
    finally:
        loop.remove_reader(pipe.fileno())
    return pipe.recv()


async def _publisher_main(
    port: int, n_publishers: int, rate: float, prefill: int, padding: int, pipe: Connection
) -> None:
    conns: list[wsclient.SioConnection] = []
    ids: list[str] = []
    setup = setup_payload()
    for _ in range(n_publishers):
        assigned: asyncio.Future = asyncio.get_running_loop().create_future()

        def on_event(name: str, data: Any, now: float, fut: asyncio.Future = assigned) -> None:
            if name == "session_id_assigned" and not fut.done():
                fut.set_result(data["session_id"])

        conn = await wsclient.connect(HOST, port, on_event)
        conn.emit("request_session_id", {})  # like the monitor: no ack, wait for the event
        session_id = await asyncio.wait_for(assigned, 10)
        conn.emit("setup_data", {"session_id": session_id, "timestamp": "2025-11-22T17:16:45.160430Z", "setup": setup})
        conns.append(conn)
        ids.append(session_id)
    if prefill:
        # Fill the server's per-session history before measuring memory: its growth is not a viewer's cost.
        filler = telemetry_template()
        if padding:
            filler["padding"] = "x" * padding
        for conn, session_id in zip(conns, ids):
            for k in range(prefill):
                conn.emit("telemetry_update", {"session_id": session_id, "telemetry": dict(filler, lap=k)})
                if k % 50 == 0:
                    await asyncio.sleep(0.01)
        await asyncio.sleep(1.0)
    pipe.send(ids)
    command, t_start, duration = await _wait_pipe(pipe)
    assert command == "go"
    template = telemetry_template()
    if padding:
        template["padding"] = "x" * padding  # extra fields are kept and relayed, like any other
    sent = [0] * n_publishers

    async def publish(i: int) -> None:
        conn, session_id = conns[i], ids[i]
        telemetry = dict(template)
        payload = {"session_id": session_id, "telemetry": telemetry}
        # Stagger: real monitors are not synchronised, and a benchmark that fires
        # every publisher in the same millisecond measures the burst, not the server.
        phase = i / (n_publishers * rate)
        k = 0
        while True:
            t = t_start + phase + k / rate
            if t >= t_start + duration:
                break
            delay = t - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            k += 1
            telemetry["n"] = k
            telemetry["send_ts"] = time.time()
            conn.emit_raw(orjson.dumps(["telemetry_update", payload]))
            sent[i] = k

    await asyncio.gather(*(publish(i) for i in range(n_publishers)))
    pipe.send(dict(zip(ids, sent)))
    await _wait_pipe(pipe)  # "close"
    for conn in conns:
        conn.close()


# -- viewer process ------------------------------------------------------------------
@dataclass
class SlowSpec:
    """One extra viewer that stops reading: after ``after`` s, for ``seconds`` s."""

    after: float
    seconds: float
    rcvbuf: int = 4096
    rcvbuf_after: int = 1 << 20  # its network is back: a normal receive window again
    # A control run: the same viewer and load, but it keeps reading. The server's RSS also moves
    # for reasons of its own (the history ring and the recording churn the heap); what the
    # slow viewer costs is the growth of the paused run minus the control's.
    control: bool = False


def _viewer_process(port: int, sessions: list[str], slow: SlowSpec | None, deflate: bool, pipe: Connection) -> None:
    gc.disable()  # client-side GC pauses would show up as server latency
    asyncio.run(_viewer_main(port, sessions, slow, deflate, pipe))


class _Viewer:
    __slots__ = ("session_id", "seen", "latencies", "sent_at", "joined", "conn", "after_resume", "resumed", "paused_at")

    def __init__(self, session_id: str, latencies: array, sent_at: array) -> None:
        self.session_id = session_id
        self.seen = array("l")
        self.latencies = latencies
        self.sent_at = sent_at
        self.joined: asyncio.Future = asyncio.get_running_loop().create_future()
        self.conn: wsclient.SioConnection | None = None
        self.after_resume = array("l")
        self.resumed = False
        self.paused_at = 0.0

    def on_event(self, name: str, data: Any, now: float) -> None:
        if name == "telemetry_update":
            telemetry = data["telemetry"]
            if "send_ts" in telemetry:
                self.seen.append(telemetry["n"])
                self.latencies.append(now - telemetry["send_ts"])
                self.sent_at.append(telemetry["send_ts"])
                if self.resumed:
                    self.after_resume.append(telemetry["n"])
        elif name == "setup_update" and not self.joined.done():
            self.joined.set_result(None)


async def _viewer_main(port: int, sessions: list[str], slow: SlowSpec | None, deflate: bool, pipe: Connection) -> None:
    latencies = array("d")
    sent_at = array("d")  # each latency's frame, by its send time
    viewers = [_Viewer(s, latencies, sent_at) for s in sessions]
    slow_viewer = _Viewer(sessions[0], array("d"), array("d")) if slow else None
    gate = asyncio.Semaphore(64)  # the server's accept backlog is small: connect in waves

    async def open_viewer(v: _Viewer, rcvbuf: int | None = None) -> None:
        async with gate:
            v.conn = await wsclient.connect(HOST, port, v.on_event, rcvbuf=rcvbuf, timeout=60, deflate=deflate)
            v.conn.emit("join_session", {"session_id": v.session_id})
            await asyncio.wait_for(v.joined, 60)

    await asyncio.gather(*(open_viewer(v) for v in viewers))
    if slow_viewer is not None:
        await open_viewer(slow_viewer, rcvbuf=slow.rcvbuf)
    pipe.send("ready")
    command, t_start = await _wait_pipe(pipe)
    assert command == "go"
    pause_task = None
    if slow_viewer is not None:
        async def pause_then_resume() -> None:
            await asyncio.sleep(max(0.0, t_start + slow.after - time.time()))
            slow_viewer.paused_at = time.time()
            if not slow.control:
                slow_viewer.conn.pause()
            await asyncio.sleep(slow.seconds)
            slow_viewer.resumed = True
            sock = slow_viewer.conn.transport.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, slow.rcvbuf_after)
            slow_viewer.conn.resume()

        pause_task = asyncio.create_task(pause_then_resume())
    await _wait_pipe(pipe)  # "stop"
    if pause_task is not None:
        pause_task.cancel()
    result = {
        "viewers": [(v.session_id, v.seen.tobytes()) for v in viewers],
        "latencies": latencies.tobytes(),
        "sent_at": sent_at.tobytes(),
        "slow": None,
    }
    if slow_viewer is not None:
        result["slow"] = {
            "session_id": slow_viewer.session_id,
            "seen": slow_viewer.seen.tobytes(),
            "after_resume": slow_viewer.after_resume.tobytes(),
            "resumed": slow_viewer.resumed,
            # The server closed it (a pause longer than engine.io's ping interval + timeout does that).
            "closed_after_s": (
                round(slow_viewer.conn.closed_at - slow_viewer.paused_at, 1) if slow_viewer.conn.closed_at else None
            ),
        }
    pipe.send(result)
    for v in viewers + ([slow_viewer] if slow_viewer else []):
        v.conn.close()
    await asyncio.sleep(0.2)


# -- one run --------------------------------------------------------------------------
@dataclass
class Point:
    publishers: int
    viewers: int  # per session
    rate: float
    duration: float
    viewer_procs: int = 1
    slow: SlowSpec | None = None
    label: str = ""
    prefill: int = 0  # frames each publisher sends before viewers join (fills the history ring)
    padding: int = 0  # extra bytes per telemetry frame
    deflate: bool = False  # viewers negotiate permessage-deflate, as browsers do


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


def _recv(pipe: Connection, timeout: float, what: str) -> Any:
    if not pipe.poll(timeout):
        raise TimeoutError(f"no {what} within {timeout} s")
    return pipe.recv()


def run_point(
    server_kind: str,
    point: Point,
    settings: dict[str, str] | None = None,
    variant: str = "",
    profile: Path | None = None,
    nice: int = 0,
) -> dict:
    ctx = mp.get_context("fork")
    server = ServerProcess(server_kind, settings, profile, nice)
    procs: list[mp.Process] = []
    try:
        rss_start = server.rss_kb()
        pub_pipe, pub_child = ctx.Pipe()
        pub = ctx.Process(target=_publisher_process, args=(server.port, point.publishers, point.rate, point.prefill, point.padding, pub_child))
        pub.start()
        procs.append(pub)
        ids = _recv(pub_pipe, 60, "session ids")
        rss_before_viewers = server.rss_kb()

        # Spread the viewers over processes, each process taking whole sessions' shares.
        assignments: list[list[str]] = [[] for _ in range(point.viewer_procs)]
        k = 0
        for session_id in ids:
            for _ in range(point.viewers):
                assignments[k % point.viewer_procs].append(session_id)
                k += 1
        viewer_pipes = []
        t_connect = time.time()
        for i, sessions in enumerate(assignments):
            parent, child = ctx.Pipe()
            slow = point.slow if i == 0 else None
            p = ctx.Process(target=_viewer_process, args=(server.port, sessions, slow, point.deflate, child))
            p.start()
            procs.append(p)
            viewer_pipes.append(parent)
        for parent in viewer_pipes:
            _recv(parent, 300, "viewer readiness")
        connect_seconds = time.time() - t_connect
        time.sleep(1.0)  # let the server settle after the connection storm
        rss_idle = server.rss_kb()

        cpu0, t0 = server.cpu(), time.time()
        wait0 = proc_runqueue_wait_seconds(server.pid)
        t_start = t0 + 0.2
        pub_pipe.send(("go", t_start, point.duration))
        for parent in viewer_pipes:
            parent.send(("go", t_start))
        rss_samples = []
        while not pub_pipe.poll(0.25):
            rss_samples.append(server.rss_kb())
        sent: dict[str, int] = pub_pipe.recv()
        time.sleep(0.5)  # frames in flight
        cpu1, t1 = server.cpu(), time.time()
        wait1 = proc_runqueue_wait_seconds(server.pid)
        pressure = cpu_pressure_avg10()
        load1 = os.getloadavg()[0]
        client_cpu = {
            "publisher": round(proc_cpu_seconds(pub.pid) / (t1 - t0), 3),
            "viewers": [round(proc_cpu_seconds(p.pid) / (t1 - t0), 3) for p in procs[1:]],
        }
        rss_end = server.rss_kb()
        hwm = proc_status_kb(server.pid, "VmHWM")
        results = []
        for parent in viewer_pipes:
            parent.send("stop")
        for parent in viewer_pipes:
            results.append(_recv(parent, 60, "viewer results"))
        pub_pipe.send("close")
    finally:
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.kill()
        server.stop()
    gc_pauses = server.gc_pauses(t0, t1)
    stalls = server.loop_stalls(t0, t1)

    latencies: list[float] = []
    worst_per_frame: dict[float, float] = {}
    losses, dups, received = [], [], 0
    for res in results:
        latencies.extend(array("d", res["latencies"]))
        for sent_ts, latency in zip(array("d", res["sent_at"]), array("d", res["latencies"])):
            if latency > worst_per_frame.get(sent_ts, 0.0):
                worst_per_frame[sent_ts] = latency
        for session_id, seen_bytes in res["viewers"]:
            seen = array("l", seen_bytes)
            unique = len(set(seen))
            received += len(seen)
            losses.append(sent[session_id] - unique)
            dups.append(len(seen) - unique)
    latencies.sort()
    delivered = received - sum(dups)
    cpu = cpu1 - cpu0
    out: dict[str, Any] = {
        "server": server_kind,
        "variant": variant or server_kind,
        "label": point.label,
        "P": point.publishers,
        "V": point.viewers,
        "R": point.rate,
        "D": point.duration,
        "viewer_connections": point.publishers * point.viewers,
        "deflate": point.deflate,
        "frames_sent": sum(sent.values()),
        "frames_delivered": delivered,
        "delivered_fps": round(delivered / point.duration, 1),
        "latency_ms": {
            "p50": round(_percentile(latencies, 0.50) * 1000, 3),
            "p99": round(_percentile(latencies, 0.99) * 1000, 3),
            "max": round(latencies[-1] * 1000, 3) if latencies else None,
            # The five slowest frames: [seconds into the run it was sent, worst latency in ms],
            # to set beside the GC log and engine.io's heartbeat rounds (every 25 s).
            "slowest": [
                [round(sent_ts - t0, 2), round(latency * 1000, 1)]
                for sent_ts, latency in sorted(worst_per_frame.items(), key=lambda item: -item[1])[:5]
            ],
        },
        "loss": {"total": sum(losses), "max_per_viewer": max(losses) if losses else 0},
        "duplicates": {"total": sum(dups), "max_per_viewer": max(dups) if dups else 0},
        "server_cpu_s": round(cpu, 3),
        "server_cpu_util": round(cpu / (t1 - t0), 3),
        "cpu_us_per_frame": round(cpu / delivered * 1e6, 2) if delivered else None,
        # Noise from outside: time the server waited for a CPU, machine-wide CPU pressure and load.
        "server_runqueue_wait_s": round(wait1 - wait0, 3),
        "cpu_pressure_avg10": pressure,
        "loadavg_1m": round(load1, 2),
        # Whole-life CPU of the client processes over the window: shows whether the clients kept up.
        "client_cpu_util": client_cpu,
        "server_gc": gc_pauses,
        # The event loop's stalls over 10 ms, worst first (at most 10): [s into the run, ms late, CPU ms].
        "loop_stalls": {"count": len(stalls), "worst": sorted(stalls, key=lambda s: -s[1])[:10]},
        "rss_mb": {
            "start": round(rss_start / 1024, 1),
            "before_viewers": round(rss_before_viewers / 1024, 1),
            "idle_with_viewers": round(rss_idle / 1024, 1),
            "end": round(rss_end / 1024, 1),
            "peak": round(hwm / 1024, 1),
        },
        "rss_kb_per_idle_viewer": round((rss_idle - rss_before_viewers) / max(1, point.publishers * point.viewers), 2),
        "connect_seconds": round(connect_seconds, 2),
        "settings": settings or {},
        "server_nice": nice,
    }
    slow_result = next((r["slow"] for r in results if r["slow"]), None)
    if slow_result is not None and point.slow is not None:
        seen = array("l", slow_result["seen"])
        after = array("l", slow_result["after_resume"])
        # RSS growth while the slow viewer was not reading, against the start of the pause.
        i0 = int(point.slow.after / 0.25)
        i1 = int((point.slow.after + point.slow.seconds) / 0.25)
        window = rss_samples[i0 : i1 + 1] or rss_samples
        sid = slow_result["session_id"]
        out["slow_consumer"] = {
            "control": point.slow.control,
            "paused_seconds": point.slow.seconds,
            "frame_bytes": len(orjson.dumps(dict(telemetry_template(), padding="x" * point.padding, n=0, send_ts=0.0))),
            "rcvbuf": point.slow.rcvbuf,
            "rss_growth_mb_while_paused": round((max(window) - window[0]) / 1024, 2),
            "frames_sent": sent[sid],
            "frames_received": len(seen),
            "frames_after_resume": len(after),
            "first_after_resume": after[0] if after else None,
            "last_received": seen[-1] if seen else None,
            "caught_up": bool(after) and after[-1] == sent[sid],
            "disconnected_after_s": slow_result["closed_after_s"],
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run one load point and print one JSON line.")
    parser.add_argument("--server", choices=["racedash", "baseline"], default="racedash")
    parser.add_argument("-P", type=int, default=1)
    parser.add_argument("-V", type=int, default=1)
    parser.add_argument("-R", type=float, default=2)
    parser.add_argument("-D", type=float, default=8)
    parser.add_argument("--viewer-procs", type=int, default=1)
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--slow-after", type=float)
    parser.add_argument("--slow-seconds", type=float, default=60)
    parser.add_argument("--nice", type=int, default=0, help="scheduling priority of the server (negative: higher)")
    parser.add_argument("--padding", type=int, default=0, help="extra bytes per telemetry frame")
    parser.add_argument("--prefill", type=int, default=0, help="frames per publisher before viewers join")
    parser.add_argument("--deflate", action="store_true", help="viewers negotiate permessage-deflate, as browsers do")
    parser.add_argument("--profile", type=Path, help="record the server with py-spy (raw format) to this file")
    args = parser.parse_args(argv)
    slow = SlowSpec(args.slow_after, args.slow_seconds) if args.slow_after is not None else None
    point = Point(args.P, args.V, args.R, args.D, args.viewer_procs, slow, prefill=args.prefill, padding=args.padding, deflate=args.deflate)
    settings = dict(item.split("=", 1) for item in args.set)
    print(json.dumps(run_point(args.server, point, settings, profile=args.profile, nice=args.nice)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
