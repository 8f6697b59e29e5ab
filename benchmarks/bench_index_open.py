"""The first time-shift or replay of a long live session: opening its seek index.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_index_open.py [--hours 24] [--behind 600] [--repeat 3]

A replay or a time-shift needs the recording's seek index (racedash.replay.index): one
streamed pass over the whole file the first time, or its sidecar ``<id>.index.json``
extended by the lines written since. The process writing a live recording brings that
sidecar up to date every ``race_state_frames`` frames (default 600: 5 min at 2 Hz), so the
first open of a live session finds it at most that many frames behind.

Generates a recording of ``--hours`` of 2 Hz telemetry (benchmarks/replay_recordings.py,
real sample payloads; 24 h is ~172,800 frames, ~150 MB, under /tmp), then times
``open_index`` (what the replay manager runs in its worker thread), ``--repeat`` times each:

- ``no_sidecar``: nobody kept it (as before the writer did);
- ``sidecar_behind``: the sidecar as the writer leaves it, ``--behind`` frames short of the end;
- ``sidecar_current``: the sidecar covers the whole file.

Prints one JSON line. The recording is deleted at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from racedash.replay.index import open_index, sidecar_path  # noqa: E402
from replay_recordings import generate  # noqa: E402


def offset_before_last_lines(path: Path, lines: int) -> int:
    """The byte offset where the file's last ``lines`` lines begin (the file ends with a newline)."""
    data = path.read_bytes()
    end = len(data) - 1  # the last line's newline
    for _ in range(lines):
        end = data.rfind(b"\n", 0, end)
    return end + 1


def sidecar_behind(path: Path, behind: int) -> bytes:
    """The sidecar an index of the file without its last ``behind`` lines writes."""
    with tempfile.TemporaryDirectory(prefix="racedash-bench-index-", dir=path.parent) as tmp:
        copy = Path(tmp) / path.name
        shutil.copyfile(path, copy)
        os.truncate(copy, offset_before_last_lines(path, behind))
        open_index(copy)
        return sidecar_path(copy).read_bytes()


def timed_open(path: Path, sidecar: bytes | None) -> tuple[float, int]:
    if sidecar is None:
        sidecar_path(path).unlink(missing_ok=True)
    else:
        sidecar_path(path).write_bytes(sidecar)
    started = time.perf_counter()
    index = open_index(path)
    return (time.perf_counter() - started) * 1000, index.events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--behind", type=int, default=600, help="frames the writer's sidecar lags [default 600]")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="racedash-bench-index-", dir="/tmp"))
    try:
        _, path, frames = generate(workdir, seconds=args.hours * 3600)
        behind = sidecar_behind(path, args.behind)
        open_index(path)
        current = sidecar_path(path).read_bytes()
        results: dict[str, list[float]] = {"no_sidecar": [], "sidecar_behind": [], "sidecar_current": []}
        events = set()
        for _ in range(args.repeat):  # interleaved: the page cache and the machine's load alike for all three
            for name, sidecar in (("no_sidecar", None), ("sidecar_behind", behind), ("sidecar_current", current)):
                ms, count = timed_open(path, sidecar)
                results[name].append(round(ms, 1))
                events.add(count)
        assert len(events) == 1, f"the three ways indexed different numbers of events: {events}"
        print(json.dumps({
            "bench": "index_open", "hours": args.hours, "frames": frames, "recording_mb": round(path.stat().st_size / 1e6, 1),
            "behind_frames": args.behind, "sidecar_kb": round(len(current) / 1024, 1),
            **{f"{name}_ms": values for name, values in results.items()},
            "when": time.strftime("%Y-%m-%d %H:%M:%S"),
        }), flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
