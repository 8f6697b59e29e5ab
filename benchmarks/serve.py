"""Run a server under test on 127.0.0.1 with a free port; print ``READY <port>``; stop on SIGTERM.

    python -m benchmarks.serve racedash [--set NAME=VALUE ...]
    python -m benchmarks.serve baseline
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import json
import logging
import os
import resource
import signal
import sys
import tempfile
import time
from pathlib import Path

import tornado.httpserver
import tornado.netutil


class GcPauses:
    """Records every collection (start time, generation, duration) via gc.callbacks."""

    def __init__(self) -> None:
        # (end time, generation, wall seconds, this thread's CPU seconds): a wall time well above
        # the CPU time means the server waited for a core during the collection.
        self.pauses: list[tuple[float, int, float, float]] = []
        self._start = self._start_cpu = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._start, self._start_cpu = time.perf_counter(), time.thread_time()
        else:
            self.pauses.append(
                (time.time(), info["generation"], time.perf_counter() - self._start, time.thread_time() - self._start_cpu)
            )

    def dump(self, path: str) -> None:
        with open(path, "w") as f:
            json.dump(self.pauses, f)


class LoopStalls:
    """Records when the event loop came back late: how late, and how much CPU the process used meanwhile.

    A 5 ms sleep that returns more than 10 ms late means nothing else could run
    on the loop either. CPU time close to the delay: the process was busy (a
    long callback, a collection); far below it: it waited for a core.
    """

    def __init__(self, interval: float = 0.005, threshold: float = 0.010) -> None:
        self.interval, self.threshold = interval, threshold
        # (end time, seconds late, process CPU seconds over the same span)
        self.stalls: list[tuple[float, float, float]] = []

    async def run(self) -> None:
        while True:
            start, start_cpu = time.perf_counter(), time.process_time()
            await asyncio.sleep(self.interval)
            late = time.perf_counter() - start - self.interval
            if late > self.threshold:
                self.stalls.append((time.time(), late, time.process_time() - start_cpu))

    def start(self) -> None:
        # Off for benchmarks that report no stalls (BENCH_STALL_PROBE=0): its 200 wake-ups a second
        # cost a process ~15 ms of CPU a second, which would count once per process.
        if os.environ.get("BENCH_STALL_PROBE", "1") != "0":
            asyncio.get_running_loop().create_task(self.run(), name="bench-loop-stalls")

    def dump(self, path: str) -> None:
        with open(path, "w") as f:
            json.dump(self.stalls, f)


def raise_fd_limit() -> None:
    """5,000 viewers need more descriptors than the usual soft limit of 1,024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def _wait_for_sigterm() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()


async def run_baseline(stalls: LoopStalls) -> None:
    from benchmarks.baseline_relay import make_relay

    stalls.start()
    app, sio = make_relay()
    sockets = tornado.netutil.bind_sockets(0, "127.0.0.1", backlog=1024)
    http = tornado.httpserver.HTTPServer(app)
    http.add_sockets(sockets)
    print(f"READY {sockets[0].getsockname()[1]}", flush=True)
    await _wait_for_sigterm()
    http.stop()
    await sio.shutdown()


async def run_racedash(overrides: dict[str, str], stalls: LoopStalls) -> None:
    from racedash.config import Settings, _coerce
    from racedash.server import serve

    fields = {f.name: f for f in dataclasses.fields(Settings)}
    with tempfile.TemporaryDirectory(prefix="racedash-bench-") as tmp:
        changes = {name: _coerce(fields[name], raw) for name, raw in overrides.items()}
        base = {"host": "127.0.0.1", "port": 0, "recordings_dir": Path(tmp), "log_level": "WARNING"}
        settings = Settings(**{**base, **changes})
        logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        # The production entry point: same start-up, GC tuning and SIGTERM handling.
        def ready(server) -> None:
            stalls.start()
            print(f"READY {server.port}", flush=True)

        await serve(settings, on_ready=ready)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["racedash", "baseline"])
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="a racedash setting")
    args = parser.parse_args(argv)
    raise_fd_limit()
    pauses, stalls = GcPauses(), LoopStalls()
    if args.kind == "baseline":
        asyncio.run(run_baseline(stalls))
    else:
        overrides = dict(item.split("=", 1) for item in args.set)
        asyncio.run(run_racedash(overrides, stalls))
    if os.environ.get("BENCH_GC_LOG"):
        pauses.dump(os.environ["BENCH_GC_LOG"])
    if os.environ.get("BENCH_STALL_LOG"):
        stalls.dump(os.environ["BENCH_STALL_LOG"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
