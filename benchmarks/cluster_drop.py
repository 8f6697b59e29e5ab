"""CPU a process spends on a room message it has no viewer of (issue 18 target: <= 5 µs).

    PYTHONPATH=. .venv/bin/python -m benchmarks.cluster_drop [--frames 200000] [--rate 20000] [--redis URL]

A publisher process sends ``--frames`` real-sized telemetry messages (~1.2 KB,
as the live path publishes them) on per-room channels, pipelined; this
process holds the subscription and no room has a viewer here. Reported: this
process's CPU time (user + sys, from os.times) per frame received and
dropped, for racedash's subscriber (hiredis, racedash.cluster.subscriber) and
for redis-py's asyncio PubSub reading the same stream (what a subscriber built
on redis-py's PubSub would pay), one after the other.

Since a session's frames have channels of their own (``<prefix>f:<id>``,
subscribed to only by the processes following the session), a process is sent
no frame of a session it does not follow: what this measures is the pattern
subscription's drop, which room events (race events, replay frames, messages
to clients of other processes) still go through. The messages are frame-sized,
as before, so the figure stays comparable.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import secrets
import time

import redis
from redis import asyncio as aioredis

from racedash.cluster.subscriber import RoomSubscriber
from racedash.wire import event_message

ROOMS = 50


def _message() -> bytes:
    from tests.helpers import sample_telemetry_payloads

    payload = sample_telemetry_payloads()[0]
    return b"origin00\ntelemetry_update\n" + event_message("telemetry_update", {**payload, "seq": 1})


def _publish(url: str, prefix: str, frames: int, rate: float) -> None:
    """``frames`` messages at ``rate`` a second, 500 to a pipeline (paced: a subscriber slower than the
    rate would be disconnected by Redis once its output buffer limit is reached)."""
    client = redis.Redis.from_url(url)
    message = _message()
    channels = [f"{prefix}room:{secrets.token_hex(16)}".encode() for _ in range(ROOMS)]
    sent = 0
    began = time.perf_counter()
    while sent < frames:
        pipe = client.pipeline(transaction=False)
        for i in range(min(500, frames - sent)):
            pipe.publish(channels[(sent + i) % ROOMS], message)
        pipe.execute()
        sent += 500
        ahead = sent / rate - (time.perf_counter() - began)
        if ahead > 0:
            time.sleep(ahead)
    client.close()


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


async def _racedash(url: str, prefix: str, frames: int, rate: float) -> dict:
    subscriber = RoomSubscriber(url, prefix, has_room=lambda room: False, deliver=lambda room, data: None)
    task = asyncio.create_task(subscriber.run())
    await subscriber.subscribed.wait()
    publisher = mp.Process(target=_publish, args=(url, prefix, frames, rate))
    began_cpu, began = _cpu(), time.perf_counter()
    publisher.start()
    while subscriber.stats.received < frames:
        await asyncio.sleep(0.01)
    cpu, wall = _cpu() - began_cpu, time.perf_counter() - began
    publisher.join()
    task.cancel()
    subscriber.close()
    return {"subscriber": "racedash (hiredis)", "frames": subscriber.stats.received,
            "dropped": subscriber.stats.dropped, "cpu_us_per_frame": round(cpu / frames * 1e6, 2),
            "frames_per_s": round(frames / wall)}


async def _redis_py(url: str, prefix: str, frames: int, rate: float) -> dict:
    client = aioredis.Redis.from_url(url)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    await pubsub.psubscribe(f"{prefix}room:*")
    cut = len(f"{prefix}room:")
    publisher = mp.Process(target=_publish, args=(url, prefix, frames, rate))
    received = dropped = 0
    began_cpu, began = _cpu(), time.perf_counter()
    publisher.start()
    while received < frames:
        message = await pubsub.get_message(timeout=1.0)
        if message is None:
            continue
        received += 1
        if message["channel"][cut:].decode() not in ():
            dropped += 1
    cpu, wall = _cpu() - began_cpu, time.perf_counter() - began
    publisher.join()
    await pubsub.aclose()
    await client.aclose()
    return {"subscriber": "redis-py asyncio PubSub", "frames": received, "dropped": dropped,
            "cpu_us_per_frame": round(cpu / frames * 1e6, 2), "frames_per_s": round(frames / wall)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200_000)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--rate", type=float, default=20_000.0, help="frames published per second")
    args = parser.parse_args()
    for run in (_racedash, _redis_py):
        prefix = f"racedash-bench-{secrets.token_hex(4)}:"
        print(json.dumps({"bench": "cluster_drop", **asyncio.run(run(args.redis, prefix, args.frames, args.rate))}), flush=True)


if __name__ == "__main__":
    main()
