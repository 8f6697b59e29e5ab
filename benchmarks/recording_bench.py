"""Recording benchmark (not a test): throughput with recording on vs off, and loss after kill -9.

Run from the checkout root:

    PYTHONPATH=$PWD python benchmarks/recording_bench.py [--duration 10] [--publishers 2] [--window 32]

Part 1 starts a server process with recording on, then one with recording off
(same run, same load): publisher processes send ~1 KB telemetry frames as fast
as the server acknowledges them (at most ``--window`` in flight each) while a
viewer process counts the broadcasts. It prints acknowledged frames/s,
delivered frames/s and the server's CPU time per 1000 frames (from
/proc/<pid>/stat).

Part 2 starts a server with recording on, publishes under load and sends
SIGKILL to the server mid-stream. It then compares the frames the server had
acknowledged with the frames in the recording: the difference is what the
crash lost (bounded by one flush window, --recording-flush-seconds).

Everything listens on 127.0.0.1 on a free port and stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from racedash.recording.format import decode_event  # noqa: E402

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def telemetry_frame(lap: int) -> dict:
    """A frame shaped like the monitor's (about 1 KB on the wire)."""
    corners = lambda base: {"fl": base + 0.13, "fr": base + 0.71, "rl": base - 0.42, "rr": base + 0.05}  # noqa: E731
    return {
        "timestamp": "2025-11-22T17:16:45.160430Z", "lap": lap, "position": 7, "lap_time": 83.123456789,
        "fuel": 61.82734, "fuel_capacity": 110.0, "tire_pressures": corners(171.3), "tire_temps": corners(86.2),
        "tire_wear": corners(0.973), "brake_temps": corners(412.9), "engine_water_temp": 91.4, "track_temp": 31.2,
        "ambient_temp": 22.8, "speed": 243.71, "gear": 5, "rpm": 8123.4, "player_name": "Benchmark Driver",
        "car_name": "Porsche 963 LMDh", "track_name": "Autodromo Enzo e Dino Ferrari", "session_type": "RACE",
        "padding": "x" * 300,
    }


# -- server process ------------------------------------------------------------------
class Server:
    def __init__(self, recordings: Path, *args: str) -> None:
        env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "racedash", "serve", "--host", "127.0.0.1", "--port", "0",
             "--recordings-dir", str(recordings), "--log-level", "WARNING",
             # A load test is not abuse: lift the per-connection event rate limit.
             "--events-per-second", "1000000", "--event-burst", "1000000", *args],
            env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )
        line = self.process.stdout.readline().decode()
        if "serving on" not in line:
            raise RuntimeError(f"server did not start: {line!r}")
        self.url = line.strip().rsplit(" ", 1)[1]
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(self.url + "/healthz", timeout=1).read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(30)
        self.process.stdout.close()

    def kill9(self) -> None:
        self.process.kill()
        self.process.wait(10)
        self.process.stdout.close()


# -- client processes ------------------------------------------------------------------
async def _publisher(url: str, session_id: str | None, duration: float, window: int, results, go=None) -> None:
    import socketio

    sio = socketio.AsyncClient(reconnection=False)
    await sio.connect(url, transports=["websocket"], wait_timeout=10)
    if session_id is None:
        session_id = (await sio.call("request_session_id", {}))["session_id"]
    results.put(("session", session_id))
    slots = asyncio.Semaphore(window)
    state = {"acked": 0, "max_seq": 0, "sent": 0, "ack_times": {}}

    def on_ack(ack: dict) -> None:
        if ack.get("ok"):
            state["acked"] += 1
            state["max_seq"] = max(state["max_seq"], ack["seq"])
            state["ack_times"][ack["seq"]] = time.time()
        slots.release()

    frame = {"session_id": session_id, "telemetry": telemetry_frame(1)}
    if go is not None:
        await asyncio.to_thread(go.wait)
    end = time.monotonic() + duration
    try:
        while time.monotonic() < end and sio.connected:
            try:
                await asyncio.wait_for(slots.acquire(), 2)
            except asyncio.TimeoutError:
                break  # the server is gone (kill -9)
            frame["telemetry"]["lap"] = state["sent"] // 100
            await sio.emit("telemetry_update", frame, callback=on_ack)
            state["sent"] += 1
    except Exception as exc:  # noqa: BLE001 - the server may vanish mid-emit in the kill -9 part
        state["error"] = repr(exc)
    results.put(("publisher", state))
    try:
        await sio.disconnect()
    finally:
        await sio.shutdown()


class RawSocket:
    """A minimal Socket.IO (EIO 4, websocket) client: pre-encoded frames cost the sender
    almost nothing, so the server, not the Python client, is what the benchmark saturates."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.next_id = 0
        self.acks: dict[int, asyncio.Future] = {}
        self.events = 0
        self.reader = asyncio.create_task(self._read())

    @classmethod
    async def connect(cls, http, url: str) -> "RawSocket":
        ws = await http.ws_connect(url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket",
                                   max_msg_size=0)
        opened = await ws.receive_str()
        assert opened.startswith("0"), opened
        await ws.send_str("40")
        connected = await ws.receive_str()
        assert connected.startswith("40"), connected
        return cls(ws)

    async def _read(self) -> None:
        async for msg in self.ws:
            data = msg.data
            if not isinstance(data, str):
                continue
            if data == "2":
                await self.ws.send_str("3")
            elif data.startswith("43"):
                body = data[2:]
                split = body.index("[")
                future = self.acks.pop(int(body[:split]), None)
                if future is not None and not future.done():
                    future.set_result(json.loads(body[split:])[0])
            elif data.startswith('42["telemetry_update"'):
                self.events += 1

    async def call(self, event: str, payload: dict, timeout: float = 120) -> dict:
        self.next_id += 1
        future = asyncio.get_running_loop().create_future()
        self.acks[self.next_id] = future
        await self.ws.send_str(f"42{self.next_id}" + json.dumps([event, payload]))
        return await asyncio.wait_for(future, timeout)

    async def close(self) -> None:
        await self.ws.close()
        self.reader.cancel()
        await asyncio.gather(self.reader, return_exceptions=True)


async def _burst_publisher(url: str, duration: float, results, go) -> None:
    """Like the real monitor: no acks, just telemetry as fast as the server takes it; one
    final call whose ack (in order behind every frame) says how many frames it accepted."""
    import aiohttp

    async with aiohttp.ClientSession() as http:
        sock = await RawSocket.connect(http, url)
        session_id = (await sock.call("request_session_id", {}))["session_id"]
        results.put(("session", session_id))
        frame = {"session_id": session_id, "telemetry": telemetry_frame(1)}
        packet = "42" + json.dumps(["telemetry_update", frame])
        await asyncio.to_thread(go.wait)
        end = time.monotonic() + duration
        while time.monotonic() < end:
            for _ in range(50):
                await sock.ws.send_str(packet)
        ack = await sock.call("telemetry_update", frame)
        results.put(("publisher", {"session_id": session_id, "accepted": ack["seq"], "done": time.time()}))
        await sock.close()


async def _raw_viewer(url: str, session_id: str, stop, results) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as http:
        sock = await RawSocket.connect(http, url)
        await sock.call("join_session", {"session_id": session_id})
        results.put(("viewer-ready", None))
        await asyncio.to_thread(stop.wait)
        results.put(("viewer", {"frames": sock.events}))
        await sock.close()


def run_raw_viewer(*args) -> None:
    asyncio.run(_raw_viewer(*args))


def run_publisher(*args) -> None:
    asyncio.run(_publisher(*args))


def run_burst_publisher(*args) -> None:
    asyncio.run(_burst_publisher(*args))


def expect(results, kind: str, timeout: float = 60):
    got, value = results.get(timeout=timeout)
    if got != kind:
        raise RuntimeError(f"expected {kind}, got {got}")
    return value


# -- part 1 ------------------------------------------------------------------------------
def throughput(recording: bool, duration: float, publishers: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(Path(tmp), "--recording-enabled", "true" if recording else "false")
        ctx = multiprocessing.get_context("spawn")
        results, go, stop = ctx.Queue(), ctx.Event(), ctx.Event()
        try:
            # One session per publisher; a viewer watches the first. All start together on `go`.
            procs = [ctx.Process(target=run_burst_publisher, args=(server.url, duration, results, go))
                     for _ in range(publishers)]
            for proc in procs:
                proc.start()
            sessions = [expect(results, "session") for _ in procs]
            viewer = ctx.Process(target=run_raw_viewer, args=(server.url, sessions[0], stop, results))
            viewer.start()
            expect(results, "viewer-ready")
            cpu_before, started = server.cpu_seconds(), time.time()
            go.set()
            states = [expect(results, "publisher", duration + 180) for _ in procs]
            cpu, wall = server.cpu_seconds() - cpu_before, max(s["done"] for s in states) - started
            time.sleep(0.5)  # let the last broadcasts reach the viewer
            stop.set()
            viewer_frames = expect(results, "viewer")["frames"]
            for proc in procs + [viewer]:
                proc.join(30)
        finally:
            server.stop()
    accepted = sum(s["accepted"] for s in states)
    cpu_ms = 1000 * cpu / max(accepted, 1)
    return {
        "recording": recording,
        "publishers": publishers,
        "seconds": round(wall, 2),
        "accepted_frames_per_s": round(accepted / wall),
        "viewer_received": viewer_frames,
        "viewer_expected": next(s["accepted"] for s in states if s["session_id"] == sessions[0]),
        "server_cpu_ms_per_frame": round(cpu_ms, 4),
        "server_cpu_utilisation": round(cpu / wall, 2),
        "capacity_frames_per_s_at_one_core": round(1000 / cpu_ms) if cpu_ms else None,
    }


# -- part 2 ------------------------------------------------------------------------------
def kill9_loss(run_for: float, window: int, flush: float) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        recordings = Path(tmp)
        server = Server(recordings, "--recording-flush-seconds", str(flush))
        ctx = multiprocessing.get_context("spawn")
        results = ctx.Queue()
        proc = ctx.Process(target=run_publisher, args=(server.url, None, run_for + 30, window, results))
        proc.start()
        session_id = expect(results, "session")
        time.sleep(run_for)
        server.kill9()
        state = expect(results, "publisher")
        proc.join(30)
        path = recordings / f"{session_id}.jsonl"
        with open(path, "rb") as f:
            lines = f.read().splitlines(keepends=True)
        seqs = [e.seq for e in (decode_event(line) for line in lines[1:]) if e is not None]
        torn = sum(1 for line in lines if not line.endswith(b"\n"))
    acked_max = state["max_seq"]
    on_disk = set(seqs)
    lost = [seq for seq in range(1, acked_max + 1) if seq not in on_disk]
    rate = state["acked"] / run_for
    times = state["ack_times"]
    last_kept = max((seq for seq in seqs if seq in times), default=None)
    # The acknowledgement times of the last frame kept and the last frame acknowledged:
    # the span of time whose acknowledged frames the crash took.
    window = times[acked_max] - times[last_kept] if lost and last_kept is not None else 0.0
    return {
        "flush_seconds": flush,
        "acked_frames": state["acked"],
        "frames_on_disk": len(seqs),
        "acked_but_lost": len(lost),
        "lost_window_ms": round(1000 * window, 1),
        "torn_lines": torn,
        "publish_rate_per_s": round(rate),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=8.0, help="seconds of load per throughput run")
    parser.add_argument("--publishers", type=int, default=2, help="publisher processes (one session each)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="on/off pairs, alternated (this machine is noisy); 0 runs only the kill -9 part")
    parser.add_argument("--window", type=int, default=64, help="kill -9 part: unacknowledged frames in flight")
    parser.add_argument("--kill-after", type=float, default=5.0, help="seconds of load before kill -9")
    parser.add_argument("--kill-runs", type=int, default=3)
    parser.add_argument("--flush-seconds", type=float, default=0.25, help="kill -9 part: the server's flush window")
    args = parser.parse_args()

    print(f"# machine: {os.cpu_count()} CPUs, python {sys.version.split()[0]}")
    runs: dict[bool, list[dict]] = {True: [], False: []}
    for _ in range(max(args.repeat, 0)):
        for recording in (True, False):
            result = throughput(recording, args.duration, args.publishers)
            runs[recording].append(result)
            print(json.dumps({"part": "throughput", **result}))

    if args.repeat > 0:
        print_summary(runs)
    for _ in range(args.kill_runs):
        print(json.dumps({"part": "kill9", **kill9_loss(args.kill_after, args.window, args.flush_seconds)}))


def print_summary(runs: dict[bool, list[dict]]) -> None:
    def median(recording: bool, key: str) -> float:
        return statistics.median(r[key] for r in runs[recording])

    print(json.dumps({
        "part": "throughput-summary",
        "median_accepted_frames_per_s": {"on": median(True, "accepted_frames_per_s"),
                                         "off": median(False, "accepted_frames_per_s")},
        "median_server_cpu_ms_per_frame": {"on": median(True, "server_cpu_ms_per_frame"),
                                           "off": median(False, "server_cpu_ms_per_frame")},
        "cpu_per_frame_on_vs_off": round(median(True, "server_cpu_ms_per_frame")
                                         / median(False, "server_cpu_ms_per_frame"), 3),
    }))


if __name__ == "__main__":
    main()
