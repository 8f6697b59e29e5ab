"""Run racedash as a real subprocess, the way a user does: restarts, signals, kill -9."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
READY = re.compile(r"serving on (http://\S+)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """``python -m racedash serve`` on a loopback port (0: the server picks one).

    Its output is read by a thread from start to exit, so the child never blocks
    on a full pipe and a failing test can show it. The blocking methods have
    ``a``-prefixed async twins for tests whose clients share the test's loop:
    those clients must keep running while the server starts or shuts down.
    """

    def __init__(
        self, *args: str, recordings_dir: Path | None = None, port: int = 0, env: dict[str, str] | None = None
    ) -> None:
        self._port = port
        where = []
        if recordings_dir is not None:
            # The state (the server secret) beside the recordings: a restart in the test keeps it.
            where = ["--recordings-dir", str(recordings_dir), "--state-dir", str(Path(recordings_dir).parent / "state")]
        self.command = ["serve", "--host", "127.0.0.1", "--port", str(port), *where, *args]
        self.env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1", **(env or {})}
        self.url = ""
        self.process: subprocess.Popen | None = None
        self._lines: list[str] = []
        self._ready = threading.Event()
        self._reader: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1]) if self.url else self._port

    @property
    def output(self) -> str:
        """Everything the server printed so far (stdout and stderr)."""
        return "".join(self._lines)

    def start(self, timeout: float = 20) -> "ServerProcess":
        self.process = subprocess.Popen(
            [sys.executable, "-m", "racedash", *self.command],
            env=self.env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._reader = threading.Thread(target=self._read_output, name="server-output", daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout
        if not self._ready.wait(timeout) or not self.url:
            self.kill9()
            raise RuntimeError(f"server did not start:\n{self.output}")
        while not self._healthy():
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.kill9()
                raise RuntimeError(f"server did not answer /healthz:\n{self.output}")
            time.sleep(0.05)
        return self

    def _read_output(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.append(line)
            match = READY.search(line) if not self.url else None
            if match:
                self.url = match.group(1)
                self._ready.set()
        self._ready.set()  # exited: start() stops waiting

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/healthz", timeout=1) as response:
                return response.status == 200
        except OSError:
            return False

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        """Signal the server and wait for its exit code; a server already gone gives its code."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill9()
                raise AssertionError(f"server did not exit within {timeout} s of signal {sig}:\n{self.output}")
        self._join_reader()
        return self.process.returncode

    def kill9(self) -> None:
        """SIGKILL: no shutdown code runs, as in a crash."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._join_reader()

    def _join_reader(self) -> None:
        if self._reader is not None:
            self._reader.join(10)
        if self.process is not None and self.process.stdout is not None:
            self.process.stdout.close()  # the pipe's end, once the server is gone and its output read

    async def astart(self, timeout: float = 20) -> "ServerProcess":
        return await asyncio.to_thread(self.start, timeout)

    async def astop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        return await asyncio.to_thread(self.stop, sig, timeout)


def close_sync_client(client) -> None:
    """Disconnect a sync python-socketio client and release its sockets.

    The library leaves the websocket open when the server dropped the
    connection first, and keeps the polling transport's requests session.
    """
    # A client still trying to reconnect (its server was killed) would go on in a thread of
    # its own, calling random() in the test process for ever: stop that too.
    client.reconnection = False
    client.shutdown()
    if client.eio.state == "connected":  # its namespace was gone already: the transport is not
        client.disconnect()
    if client.eio.ws is not None:
        client.eio.ws.shutdown()
    if client.eio.http is not None:
        client.eio.http.close()
