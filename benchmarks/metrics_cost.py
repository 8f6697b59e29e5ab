"""What the metrics cost on the hot path: one ``on_frame`` per accepted frame.

    PYTHONPATH=$PWD .venv/bin/python -m benchmarks.metrics_cost [--calls 1000000]

Prints one JSON line: CPU nanoseconds per ``Metrics.on_frame`` call, and that cost as
a share of the server's CPU per ingested frame at (10 sessions, 20 viewers, 50 Hz),
taken from a loadgen run given with ``--cpu-us-per-delivered`` (the CPU per delivered
frame that ``benchmarks.loadgen`` prints; each ingested frame is delivered to 20
viewers there). The frame counter is the only per-frame metric; everything else is
read when /metrics is scraped.
"""

from __future__ import annotations

import argparse
import json
import time

from racedash.metrics import Metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--cpu-us-per-delivered", type=float, default=None,
                        help="loadgen's cpu_us_per_frame at -P 10 -V 20 -R 50 on this machine")
    args = parser.parse_args()
    metrics = Metrics(process=False)
    on_frame = metrics.on_frame
    start = time.process_time()
    for _ in range(args.calls):
        on_frame("telemetry")
    ns = (time.process_time() - start) / args.calls * 1e9
    result = {"bench": "metrics_cost", "calls": args.calls, "ns_per_frame": round(ns, 1)}
    if args.cpu_us_per_delivered:
        per_ingested_us = args.cpu_us_per_delivered * 20
        result["share_of_server_cpu_per_frame"] = round(ns / 1000 / per_ingested_us, 5)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
