"""Where an idle viewer's memory goes, and what a heartbeat leaves for the garbage collector.

    python -m benchmarks.memprofile [--viewers 500] [--top 30]
    python -m benchmarks.memprofile --heartbeat [--viewers 1000] [--set websocket_driver=false]

Runs racedash in this process, connects N raw viewers from a child process
and joins them to one session. By default, with tracemalloc on, it prints
bytes per connection by source line. With ``--heartbeat`` it freezes
everything alive, lets one heartbeat round (ping and pong on every
connection) pass with the collector off, and prints the objects created in
that round that are still alive, per connection and by type: what the young
generation gains every ping interval, and a collection has to scan.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import multiprocessing as mp
import sys
import tracemalloc
from pathlib import Path
from typing import Any

from benchmarks import wsclient
from racedash.config import Settings
from racedash.server import RacedashServer


def _viewers(port: int, session_id: str, n: int, ready) -> None:
    async def main() -> None:
        conns = []
        for _ in range(n):
            conn = await wsclient.connect("127.0.0.1", port)
            conn.emit("join_session", {"session_id": session_id})
            conns.append(conn)
        ready.put(len(conns))
        await asyncio.sleep(3600)

    asyncio.run(main())


def _settings(changes: dict[str, str]) -> Settings:
    base = Settings(host="127.0.0.1", port=0, log_level="WARNING", recordings_dir=Path("/tmp/racedash-memprofile"))
    return Settings.from_env({"RACEDASH_" + name.upper(): value for name, value in changes.items()}, base)


def _start_viewers(port: int, session_id: str, n: int) -> tuple[mp.Process, Any]:
    """A child process connecting ``n`` raw viewers to the session; its queue says when they are joined."""
    ctx = mp.get_context("fork")
    ready = ctx.Queue()
    child = ctx.Process(target=_viewers, args=(port, session_id, n, ready))
    child.start()
    return child, ready


async def heartbeat(n: int, top: int, changes: dict[str, str]) -> str:
    server = await RacedashServer(_settings(changes)).start()
    eio = server.app.sio.eio
    eio.ping_interval = 3.0  # every connection's next ping comes 3 s after its last pong
    session = server.app.registry.create()
    child, ready = _start_viewers(server.port, session.id, n)
    try:
        await asyncio.get_running_loop().run_in_executor(None, ready.get)
        await asyncio.sleep(eio.ping_interval + 1)  # the first round, started by the connects, is over
        gc.collect()
        gc.freeze()
        gc.disable()
        await asyncio.sleep(eio.ping_interval)  # one more round: every connection pinged and ponged once
        survivors = gc.get_objects()
        gc.enable()
        gc.unfreeze()
    finally:
        child.kill()
        await server.stop()
    by_type: dict[str, int] = {}
    for obj in survivors:
        name = type(obj).__qualname__
        by_type[name] = by_type.get(name, 0) + 1
    lines = [f"{len(survivors) / n:.1f} objects per connection created in one heartbeat round and still alive ({n} viewers)", ""]
    for name, count in sorted(by_type.items(), key=lambda item: -item[1])[:top]:
        lines.append(f"{count / n:7.2f}  {name}")
    return "\n".join(lines)


async def profile(n: int, top: int, changes: dict[str, str]) -> str:
    server = await RacedashServer(_settings(changes)).start()
    session = server.app.registry.create()
    await asyncio.sleep(0.2)
    gc.collect()
    tracemalloc.start(5)
    before = tracemalloc.take_snapshot()
    child, ready = _start_viewers(server.port, session.id, n)
    try:
        await asyncio.get_running_loop().run_in_executor(None, ready.get)
        await asyncio.sleep(2)
        gc.collect()
        after = tracemalloc.take_snapshot()
    finally:
        child.kill()
        await server.stop()
    stats = after.compare_to(before, "lineno")
    total = sum(s.size_diff for s in stats)
    lines = [f"{total / n:.0f} bytes of Python allocations per idle viewer ({n} viewers)", ""]
    for s in stats[:top]:
        frame = s.traceback[0]
        where = frame.filename.split("site-packages/")[-1].split("lib/python3.11/")[-1]
        lines.append(f"{s.size_diff / n:7.0f} B  {s.count_diff / n:5.1f} objects  {where}:{frame.lineno}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--viewers", type=int, default=500)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--heartbeat", action="store_true", help="objects one heartbeat round leaves alive")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="a racedash setting")
    args = parser.parse_args(argv)
    changes = dict(item.split("=", 1) for item in args.set)
    run = heartbeat if args.heartbeat else profile
    print(asyncio.run(run(args.viewers, args.top, changes)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
