"""What one wake-up of an idle asyncio process costs on this machine: the floor under every frame.

    PYTHONPATH=. .venv/bin/python benchmarks/wakeup_cost.py [--messages 2000] [--interval 0.002]

A child process runs an asyncio loop that sleeps in epoll until a byte arrives on a
socketpair, reads it and sleeps again; the parent writes one byte every ``--interval``
seconds. Printed: the child's CPU per wake-up (user + system), its voluntary context
switches, and the same for a child that is sent everything at once (no sleeping between).
At 2 Hz a racedash process sleeps between most frames, so each event of a frame that
arrives on its own (a monitor's frame, Redis's reply to the frame's append) pays this much
before any of racedash's own work: it is the machine's, and it differs between machines.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import socket
import time


def child(sock: socket.socket, messages: int, report: socket.socket) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        received = 0

        def readable() -> None:
            nonlocal received
            received += len(sock.recv(65536))
            if received >= messages and not done.done():
                done.set_result(None)

        loop.add_reader(sock.fileno(), readable)
        await done

    before = resource.getrusage(resource.RUSAGE_SELF)
    asyncio.run(main())
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    report.send(json.dumps({"cpu_s": cpu, "voluntary_switches": after.ru_nvcsw - before.ru_nvcsw}).encode())


def measure(messages: int, interval: float) -> dict:
    ours, theirs = socket.socketpair()
    report_r, report_w = socket.socketpair()
    pid = os.fork()
    if pid == 0:
        child(theirs, messages, report_w)
        os._exit(0)
    for _ in range(messages):
        if interval:
            time.sleep(interval)
        ours.send(b"x")
    result = json.loads(report_r.recv(4096))
    os.waitpid(pid, 0)
    return {"interval_s": interval, "messages": messages, "cpu_us_per_message": round(result["cpu_s"] / messages * 1e6, 1),
            "voluntary_switches": result["voluntary_switches"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--interval", type=float, default=0.002, help="seconds between the parent's writes")
    args = parser.parse_args()
    print(json.dumps({"bench": "wakeup_cost", "sleeping": measure(args.messages, args.interval),
                      "busy": measure(args.messages, 0.0), "loadavg_1m": os.getloadavg()[0]}))


if __name__ == "__main__":
    main()
