"""Summarise a py-spy raw (collapsed stacks) profile: top functions by self and inclusive time.

    python -m benchmarks.profile_summary results/profile.txt [--top 25]
"""

from __future__ import annotations

import argparse
import collections
import re
import sys
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def _short(frame: str) -> str:
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    path = m.group("file")
    for marker in ("site-packages/", "lib/python3.11/", "/perf/", "/racedash/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{m.group('func')} ({path})"


def summarise(path: Path, top: int = 25) -> str:
    self_time: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    idle = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        if "_find_and_load" in stack or "tune_gc" in stack:
            continue  # start-up (imports, the first full collection), not the serving we measure
        frames = [_short(f) for f in stack.split(";")]
        total += n
        if frames[-1].startswith(("select (", "poll (", "_run_once (")) and "selectors" in stack:
            idle += n
        self_time[frames[-1]] += n
        for f in set(frames):
            inclusive[f] += n
    busy = max(1, total - idle)
    lines = [f"samples after start-up: {total} (idle in the selector: {idle}, busy: {busy})", "", "self time (share of busy samples):"]
    for func, n in self_time.most_common(top):
        lines.append(f"  {100 * n / busy:5.1f}%  {func}")
    lines += ["", "inclusive time (share of busy samples):"]
    for func, n in inclusive.most_common(top):
        lines.append(f"  {100 * n / busy:5.1f}%  {func}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
    print(summarise(args.profile, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
