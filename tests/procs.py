"""Run racedash as a real subprocess, the way a user does, and wait until it answers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """``python -m racedash serve`` on a free loopback port."""

    def __init__(self, *args: str, port: int | None = None, env: dict[str, str] | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = ["serve", "--host", "127.0.0.1", "--port", str(self.port), *args]
        self.env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 15) -> "ServerProcess":
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "racedash", *self.args],
            env=self.env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.proc.stdout.read()}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.05)
        self.kill()
        raise TimeoutError("server did not answer /healthz")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> tuple[int, str]:
        assert self.proc is not None
        self.proc.send_signal(sig)
        output, _ = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, output

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate(timeout=15)


def close_sync_client(client) -> None:
    """Disconnect a sync python-socketio client and release its sockets.

    The library leaves the websocket open when the server dropped the
    connection first, and keeps the polling transport's requests session.
    """
    client.disconnect()
    if client.eio.ws is not None:
        client.eio.ws.shutdown()
    if client.eio.http is not None:
        client.eio.http.close()
