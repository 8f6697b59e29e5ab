"""An engine.io queue that allocates nothing while empty (see racedash.transport)."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any


class LeanQueue:
    """The part of ``asyncio.Queue`` engine.io uses, allocating nothing while empty.

    Unbounded, FIFO. ``get()`` returns a future (awaitable like the coroutine
    it replaces); a getter cancelled by a timeout is skipped by the next put,
    so no item is ever handed to a future nobody awaits.
    """

    __slots__ = ("_items", "_getters", "_joiners", "_unfinished_tasks")

    def __init__(self, maxsize: int = 0) -> None:
        if maxsize:
            raise ValueError("LeanQueue is unbounded")
        self._items: deque[Any] | None = None
        self._getters: list[asyncio.Future[Any]] | None = None
        self._joiners: list[asyncio.Future[None]] | None = None
        # Same name and meaning as asyncio.Queue's: items put and not yet task_done().
        self._unfinished_tasks = 0

    def put_nowait(self, item: Any) -> None:
        self._unfinished_tasks += 1
        getters = self._getters
        while getters:
            getter = getters.pop(0)
            if not getters:
                self._getters = None
            if not getter.done():
                getter.set_result(item)
                return
        if self._items is None:
            self._items = deque()
        self._items.append(item)

    async def put(self, item: Any) -> None:
        self.put_nowait(item)

    def get_nowait(self) -> Any:
        items = self._items
        if not items:
            raise asyncio.QueueEmpty
        item = items.popleft()
        if not items:
            self._items = None
        return item

    def get(self) -> asyncio.Future[Any]:
        future = asyncio.get_running_loop().create_future()
        if self._items:
            future.set_result(self.get_nowait())
        else:
            if self._getters is None:
                self._getters = [future]
            else:
                self._getters = [g for g in self._getters if not g.done()] + [future]
        return future

    def task_done(self) -> None:
        if self._unfinished_tasks <= 0:
            raise ValueError("task_done() called too many times")
        self._unfinished_tasks -= 1
        if self._unfinished_tasks == 0 and self._joiners:
            joiners, self._joiners = self._joiners, None
            for joiner in joiners:
                if not joiner.done():
                    joiner.set_result(None)

    async def join(self) -> None:
        if self._unfinished_tasks == 0:
            return
        joiner = asyncio.get_running_loop().create_future()
        if self._joiners is None:
            self._joiners = []
        self._joiners.append(joiner)
        await joiner
