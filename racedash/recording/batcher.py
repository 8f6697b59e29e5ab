"""One thread hop per flush window for the commits of all live recordings.

Each recording's writer group-commits its queued lines once per flush window,
and a commit is blocking work (write, maybe fsync, maybe the sidecar) that runs
in a worker thread. With one hop per writer per commit, N live sessions at
2 Hz cost 2N hops a second: each hop is a future, an executor submission, a
thread wake-up and a loop wake-up, and the pool's threads compete with the
event loop for the GIL. The :class:`CommitBatcher` ticks once per window: the
commits handed to it since the last tick are prepared on the loop at the tick
(so they take every line queued until then), run one after the other in ONE
executor call, and each writer gets its own result. A commit that raises is
caught on its own: the others in the same hop are still run and resolved.

The window bound is kept: a commit handed over when no tick happened for a
window runs at once, otherwise at the next tick (at most one window later).
A tick does not wait for the previous tick's hop to return, so a slow commit
delays only the writers in its own hop (each writer has at most one commit
in flight, so a file is still used by one thread at a time).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable, TypeVar

import aiofiles.os

log = logging.getLogger(__name__)

T = TypeVar("T")

# A commit, prepared on the loop at the tick: the blocking call to run in the hop.
Prepare = Callable[[], Callable[[], Any]]


async def in_thread(work: Callable[..., T], *args: Any) -> T:
    """Run one blocking call in aiofiles' executor: one thread round trip."""
    return await aiofiles.os.wrap(work)(*args)


def run_all(works: list[Callable[[], Any]]) -> list[tuple[bool, Any]]:
    """The hop: every commit in turn, each one's result or exception kept apart."""
    outcomes: list[tuple[bool, Any]] = []
    for work in works:
        try:
            outcomes.append((True, work()))
        except Exception as exc:  # noqa: BLE001 - handed to that commit's writer
            outcomes.append((False, exc))
    return outcomes


class CommitBatcher:
    """Runs the commits handed to it in one thread hop per ``window`` seconds."""

    def __init__(self, window: float) -> None:
        self.window = window
        self.hops = 0  # executor calls made (ticks that had something to run)
        self._due: list[tuple[Prepare, asyncio.Future[Any]]] = []
        self._task: asyncio.Task[None] | None = None
        self._next_tick = float("-inf")  # loop time before which no tick starts
        self._hops: set[asyncio.Future[Any]] = set()  # in flight (kept referenced)

    async def commit(self, prepare: Prepare) -> Any:
        """Run ``prepare()`` on the loop at the next tick, then what it returns in that tick's hop.

        Returns what that call returned, or raises what it (or ``prepare``)
        raised. Cancelling the caller before the tick drops the commit.
        """
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._due.append((prepare, future))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._ticks(), name="recording-commits")
        return await future

    async def _ticks(self) -> None:
        loop = asyncio.get_running_loop()
        while self._due:
            delay = self._next_tick - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
                continue
            self._tick()

    def _tick(self) -> None:
        self._next_tick = asyncio.get_running_loop().time() + self.window
        due, self._due = self._due, []
        works: list[Callable[[], Any]] = []
        futures: list[asyncio.Future[Any]] = []
        for prepare, future in due:
            if future.done():  # its writer was cancelled (close timed out)
                continue
            try:
                works.append(prepare())
            except Exception as exc:  # noqa: BLE001 - that writer's own failure
                future.set_exception(exc)
                continue
            futures.append(future)
        if not works:
            return
        self.hops += 1
        hop = asyncio.ensure_future(in_thread(run_all, works))
        self._hops.add(hop)
        hop.add_done_callback(lambda done: self._resolve(done, futures))

    def _resolve(self, hop: asyncio.Future[list[tuple[bool, Any]]], futures: list[asyncio.Future[Any]]) -> None:
        self._hops.discard(hop)
        if hop.cancelled() or hop.exception() is not None:
            # The hop itself failed (e.g. the executor is shut down): every commit in it did.
            error = None if hop.cancelled() else hop.exception()
            log.error("recording commits could not be run: %r", error or "cancelled")
            for future in futures:
                if future.done():
                    continue
                if error is None:
                    future.cancel()
                else:
                    future.set_exception(error)
            return
        for future, (ok, value) in zip(futures, hop.result()):
            if future.done():
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)
