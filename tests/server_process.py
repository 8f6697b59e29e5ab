"""A racedash server in a child process, for tests that restart or kill it."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
READY = re.compile(rb"serving on (http://\S+)")


class ServerProcess:
    def __init__(self, recordings_dir: Path, port: int = 0) -> None:
        self.recordings_dir = recordings_dir
        self.port = port
        self.url = ""
        self.proc: asyncio.subprocess.Process | None = None
        self._drain: asyncio.Task | None = None

    async def start(self, timeout: float = 15) -> "ServerProcess":
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "racedash", "serve",
            "--host", "127.0.0.1", "--port", str(self.port),
            "--recordings-dir", str(self.recordings_dir), "--log-level", "WARNING",
            cwd=str(ROOT), env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )
        output = b""

        async def ready() -> str:
            nonlocal output
            while True:
                line = await self.proc.stdout.readline()
                if not line:
                    raise RuntimeError(f"server exited before it was ready:\n{output.decode(errors='replace')}")
                output += line
                match = READY.search(line)
                if match:
                    return match.group(1).decode()

        self.url = await asyncio.wait_for(ready(), timeout)
        self.port = int(self.url.rsplit(":", 1)[1])
        # Keep reading its output so that the child never blocks on a full pipe.
        self._drain = asyncio.create_task(self._read_rest())
        return self

    async def _read_rest(self) -> None:
        assert self.proc is not None
        while await self.proc.stdout.readline():
            pass

    async def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        if self.proc is None or self.proc.returncode is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(sig)
        try:
            code = await asyncio.wait_for(self.proc.wait(), timeout)
        except asyncio.TimeoutError:
            self.proc.kill()
            code = await self.proc.wait()
        if self._drain is not None:
            await self._drain
        return code
