"""How long this machine's disk takes to fsync an appended recording line (not a test).

With ``--recording-fsync always`` every group commit of a recording ends with
an fsync, in the writer's thread hop; this is what that fsync costs here.

    PYTHONPATH=$PWD python -m benchmarks.fsync_latency [--dir recordings] [--count 200] [--line-bytes 2000]

Appends ``--count`` lines of ``--line-bytes`` to a scratch file in ``--dir``
(the disk recordings go to), fsyncs after each, prints p50/p99/max in ms as one
JSON line, and removes the file.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path


def fsync_times_ms(directory: Path, count: int, line_bytes: int) -> list[float]:
    directory.mkdir(parents=True, exist_ok=True)
    line = b"x" * (line_bytes - 1) + b"\n"
    fd, name = tempfile.mkstemp(prefix=".fsync-latency-", dir=directory)
    try:
        times = []
        for _ in range(count):
            os.write(fd, line)
            start = time.perf_counter()
            os.fsync(fd)
            times.append((time.perf_counter() - start) * 1000)
        return times
    finally:
        os.close(fd)
        os.unlink(name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, default=Path("recordings"), help="a directory on the recordings' disk")
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--line-bytes", type=int, default=2000)
    args = parser.parse_args()
    times = sorted(fsync_times_ms(args.dir, args.count, args.line_bytes))
    pick = lambda q: round(times[min(len(times) - 1, int(q * len(times)))], 3)  # noqa: E731
    print(json.dumps({"dir": str(args.dir), "count": len(times), "line_bytes": args.line_bytes,
                      "fsync_ms": {"p50": pick(0.5), "p99": pick(0.99), "max": round(times[-1], 3)}}))


if __name__ == "__main__":
    main()
