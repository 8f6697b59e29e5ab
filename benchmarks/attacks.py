"""The hardening issue's attacks at full size, against a real server process; prints JSON lines.

    PYTHONPATH=$PWD .venv/bin/python -m benchmarks.attacks [--sockets 3000] [--setups 300]

- ``setup_flood``: one client sends ``--setups`` setups of ~510 KB (big strings, within the
  value cap) into its sessions, from ``--connections`` connections: the server's RSS before
  and after, and how many were accepted or refused. Then the same with ``[{}] * 170000``
  setups (the original attack), which the value cap refuses outright.
- ``socket_flood``: ``--sockets`` idle TCP connections from one address (127.0.0.2, a
  slowloris crowd; the cap per address set to 1,000 here): how many the server admitted,
  how many got 503, its open descriptors, and whether ``/healthz`` (from 127.0.0.1, the
  default exempt address) still answers, and in how long.
- ``log_flood``: a client sending 5,000 refused events (unknown names, reserved names, deep
  JSON): the bytes the server logged for them.

The server runs with the default settings except where a line says otherwise; its
log goes to a file under /tmp, whose growth is what ``log_flood`` measures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import socketio

ROOT = Path(__file__).resolve().parents[1]


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


class Server:
    def __init__(self, *flags: str, exempt: str = "") -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="racedash-attack-"))
        self.log = self.dir / "server.log"
        self.port = _free_port()
        cmd = [sys.executable, "-m", "racedash", "serve", "--host", "127.0.0.1", "--port", str(self.port),
               "--recordings-dir", str(self.dir / "recordings"), "--state-dir", str(self.dir / "state"),
               "--connection-exempt-addresses", exempt, *flags]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)),
                                     stdout=open(self.log, "wb"), stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 20
        while not self.healthy():
            if time.monotonic() > deadline:
                raise SystemExit(f"server did not start:\n{self.log.read_text()}")
            time.sleep(0.1)

    def healthy(self, timeout: float = 1.0) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/healthz", timeout=timeout) as response:
                return response.status == 200
        except OSError:
            return False

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def client(url: str) -> socketio.AsyncClient:
    sio = socketio.AsyncClient(reconnection=False)
    await sio.connect(url, transports=["websocket"], wait_timeout=10)
    return sio


async def setup_flood(server: Server, setups: int, connections: int, tiny_values: bool) -> dict:
    before = rss_mb(server.proc.pid)
    if tiny_values:
        setup = {"x": [{}] * 170_000}  # the original attack: 510 KB of JSON, ~12 MB once parsed
    else:
        setup = {"carSetup": {"garageValues": {f"K{i}": {"stringValue": "x" * 470} for i in range(1000)}}}  # ~505 KB
    clients = [await client(server.url) for _ in range(connections)]
    accepted = refused = 0
    errors: dict[str, int] = {}
    sessions = []
    for sio in clients:
        for _ in range(16):
            ack = await sio.call("request_session_id", {}, timeout=10)
            if ack.get("ok"):
                sessions.append((sio, ack["session_id"]))
    for i in range(setups):
        sio, session_id = sessions[i % len(sessions)]
        ack = await sio.call("setup_data", {"session_id": session_id, "timestamp": "2025-11-22T17:16:45.160430Z",
                                            "setup": setup}, timeout=30)
        if ack.get("ok"):
            accepted += 1
        else:
            refused += 1
            errors[ack.get("error", "?")] = errors.get(ack.get("error", "?"), 0) + 1
    after = rss_mb(server.proc.pid)
    for sio in clients:
        await sio.disconnect()
        await sio.shutdown()
    return {"bench": "setup_flood", "tiny_values": tiny_values, "setups": setups, "connections": connections,
            "sessions": len(sessions), "accepted": accepted, "refused": refused, "errors": errors,
            "rss_mb_before": round(before, 1), "rss_mb_after": round(after, 1), "rss_mb_growth": round(after - before, 1)}


def socket_flood(server: Server, count: int) -> dict:
    socks, refused = [], 0
    for _ in range(count):
        try:
            # From 127.0.0.2: another client address than the health check's (127.0.0.1, exempt).
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=5, source_address=("127.0.0.2", 0))
        except OSError:
            refused += 1
            continue
        socks.append(sock)
    time.sleep(1.0)
    answered_503 = closed = 0
    for sock in socks:
        sock.setblocking(False)
        try:
            data = sock.recv(64)
        except BlockingIOError:
            continue  # admitted, and idle
        except OSError:
            closed += 1
            continue
        if data.startswith(b"HTTP/1.1 503"):
            answered_503 += 1
        else:
            closed += 1
    fds = open_fds(server.proc.pid)
    started = time.monotonic()
    healthy = server.healthy(timeout=5)
    health_ms = (time.monotonic() - started) * 1000
    for sock in socks:
        sock.close()
    return {"bench": "socket_flood", "sockets": count, "connect_failed": refused, "answered_503": answered_503,
            "closed": closed, "admitted_idle": count - refused - answered_503 - closed, "server_fds": fds,
            "fd_limit": _fd_limit(server.proc.pid), "healthz_ok": healthy, "healthz_ms": round(health_ms, 1)}


def _fd_limit(pid: int) -> int:
    with open(f"/proc/{pid}/limits") as f:
        for line in f:
            if line.startswith("Max open files"):
                return int(line.split()[3])
    return 0


async def log_flood(server: Server, events: int) -> dict:
    size = server.log.stat().st_size
    sio = await client(server.url)
    deep = "[" * 3000 + "]" * 3000
    started = time.monotonic()
    for i in range(events):
        kind = i % 3
        if kind == 0:
            await sio.emit("no_such_event", {})
        elif kind == 1:
            await sio.eio.send('2["disconnect",{}]')
        else:
            await sio.eio.send('2["telemetry_update",' + deep + "]")
    await sio.call("join_session", {"session_id": str(uuid.uuid4())}, timeout=30)  # all handled by now
    seconds = time.monotonic() - started
    await sio.disconnect()
    await sio.shutdown()
    grown = server.log.stat().st_size - size
    return {"bench": "log_flood", "events": events, "seconds": round(seconds, 2), "log_bytes": grown,
            "log_bytes_per_second": round(grown / seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--setups", type=int, default=300)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--sockets", type=int, default=3000)
    parser.add_argument("--log-events", type=int, default=5000)
    args = parser.parse_args()

    flags = ("--events-per-second", "1000", "--event-burst", "1000")
    for run in (lambda srv: setup_flood(srv, args.setups, args.connections, tiny_values=False),
                lambda srv: setup_flood(srv, 50, 1, tiny_values=True),
                lambda srv: log_flood(srv, args.log_events)):
        server = Server(*flags)
        try:
            print(json.dumps(asyncio.run(run(server))), flush=True)
        finally:
            server.stop()
    server = Server("--connections-per-address", "1000", exempt="127.0.0.1")
    try:
        print(json.dumps(socket_flood(server, args.sockets)), flush=True)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
