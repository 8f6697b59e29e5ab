"""Where an idle viewer's memory goes: tracemalloc diff per connection, grouped by allocation site.

    python -m benchmarks.memprofile [--viewers 500] [--top 30]

Runs racedash in this process with tracemalloc on, connects N raw viewers
from a child process, joins them to one session and prints bytes per
connection by source line.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import multiprocessing as mp
import sys
import tracemalloc
from pathlib import Path

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


async def profile(n: int, top: int) -> str:
    server = await RacedashServer(Settings(host="127.0.0.1", port=0, log_level="WARNING", recordings_dir=Path("/tmp/racedash-memprofile"))).start()
    session = server.app.registry.create()
    await asyncio.sleep(0.2)
    gc.collect()
    tracemalloc.start(5)
    before = tracemalloc.take_snapshot()
    ctx = mp.get_context("fork")
    ready = ctx.Queue()
    child = ctx.Process(target=_viewers, args=(server.port, session.id, n, ready))
    child.start()
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
    args = parser.parse_args(argv)
    print(asyncio.run(profile(args.viewers, args.top)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
