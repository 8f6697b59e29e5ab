"""Helpers for the recording tests: payloads, reading recordings back, a server subprocess."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from racedash.recording.format import Header, decode_event, encode_event, encode_header
from tests.helpers import sample_setup, sample_telemetry_payloads

REPO = Path(__file__).resolve().parents[1]


def telemetry(session_id: str, lap: int = 1, **fields: Any) -> dict:
    frame = dict(sample_telemetry_payloads()[0]["telemetry"])
    frame.update(lap=lap, **fields)
    return {"session_id": session_id, "telemetry": frame}


def setup_payload(session_id: str, **setup_changes: Any) -> dict:
    setup = sample_setup()
    setup.update(setup_changes)
    return {"session_id": session_id, "timestamp": "2025-11-22T17:16:45.160430Z", "setup": setup}


def read_lines(path: Path) -> list[bytes]:
    with open(path, "rb") as f:
        return f.read().splitlines(keepends=True)


def recorded_events(path: Path) -> list:
    """Every decodable event of a recording (what every reader sees)."""
    if not path.exists():
        return []
    return [e for e in (decode_event(line) for line in read_lines(path)[1:]) if e is not None]


def recorded_seqs(path: Path) -> list[int]:
    return [e.seq for e in recorded_events(path)]


def write_recording(path: Path, session_id: str, frames: int, *, t0: float = 1_700_000_000.0, step: float = 0.5,
                    setup_every: int = 0, torn_tail: bytes = b"", lap_every: int = 100) -> None:
    """A recording made with the format module (as the writer makes them), for listing/restore tests."""
    base = sample_telemetry_payloads()[0]["telemetry"]
    with open(path, "wb") as f:
        f.write(encode_header(Header(session_id=session_id, created=t0, racedash_version="test")))
        f.write(encode_event(t0, 1, "setup", setup_payload(session_id)))
        for seq in range(2, frames + 2):
            if setup_every and seq % setup_every == 0:
                f.write(encode_event(t0 + seq * step, seq, "setup", setup_payload(session_id, marker=seq)))
                continue
            frame = dict(base, lap=seq // lap_every + 1)
            f.write(encode_event(t0 + seq * step, seq, "telemetry", {"session_id": session_id, "telemetry": frame}))
        f.write(torn_tail)


def http_get(url: str, timeout: float = 5.0, token: str | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


async def fetch(url: str, token: str | None = None) -> tuple[int, dict[str, str], bytes]:
    return await asyncio.to_thread(http_get, url, 5.0, token)


async def api(srv, path: str) -> tuple[int, dict[str, str], bytes]:
    """GET a recordings API path of an in-process server with its team token (the API is team-only)."""
    return await fetch(srv.url + path, token=srv.app.access.token)


class ServerProcess:
    """``python -m racedash serve`` in a subprocess, for restarts and kill -9."""

    def __init__(self, recordings_dir: Path, port: int = 0, *extra_args: str, log_path: Path | None = None) -> None:
        self.recordings_dir = recordings_dir
        self.port = port
        self.extra_args = extra_args
        self.log_path = log_path or recordings_dir.parent / "server.log"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, timeout: float = 20.0) -> "ServerProcess":
        env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
        env.pop("COV_CORE_SOURCE", None)
        args = [
            sys.executable, "-m", "racedash", "serve", "--host", "127.0.0.1", "--port", str(self.port),
            "--recordings-dir", str(self.recordings_dir), *self.extra_args,
        ]
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(args, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=log)
        log.close()
        line = await asyncio.wait_for(asyncio.to_thread(self.process.stdout.readline), timeout)
        if b"serving on" not in line:
            raise AssertionError(f"server did not start: {line!r}; see {self.log_path}")
        self.port = int(line.strip().rsplit(b":", 1)[1])
        deadline = time.monotonic() + timeout
        while not await asyncio.to_thread(self._healthy):
            if time.monotonic() > deadline:
                raise AssertionError(f"/healthz did not answer; see {self.log_path}")
            await asyncio.sleep(0.05)
        return self

    def _healthy(self) -> bool:
        try:
            return http_get(self.url + "/healthz", timeout=1)[0] == 200
        except OSError:
            return False

    def kill9(self) -> None:
        assert self.process is not None
        self.process.kill()  # SIGKILL: no shutdown code runs
        self.process.wait(10)
        self.process.stdout.close()

    def terminate(self, timeout: float = 20.0) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout)
        self.process.stdout.close()
        return code

    def ensure_stopped(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.kill9()
