"""Log lines about bad input, bounded: a client cannot fill the disk by sending garbage.

A refusal is logged at most once per client and kind per ``interval``; the
next line says how many were folded into it. All clients together get at most
``max_lines_per_second``; what goes over is counted and said in one line when
logging resumes. The table is bounded too (``max_entries`` clients, oldest dropped).
Bound: one line per client and kind each 10 s, and at most 20 lines a second
overall (docs/security.md, "Log volume").
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from typing import Callable


class RefusalLog:
    def __init__(
        self,
        logger: logging.Logger,
        *,
        interval: float = 10.0,
        max_lines_per_second: int = 20,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.interval = interval
        self.max_lines_per_second = max_lines_per_second
        self.max_entries = max_entries
        self._clock = clock
        self._clients: OrderedDict[str, dict[str, list[float]]] = OrderedDict()  # client -> kind -> [at, folded]
        self._second = 0
        self._lines_this_second = 0
        self._over_budget = 0

    def refused(self, client: str, kind: str, message: str, *args: object, exc_info: bool = False) -> bool:
        """Log ``message % args`` unless this client's ``kind`` was logged lately; True when it was logged."""
        now = self._clock()
        kinds = self._clients.get(client)
        entry = kinds.get(kind) if kinds is not None else None
        if entry is not None and now - entry[0] < self.interval:
            entry[1] += 1
            return False
        folded = int(entry[1]) if entry is not None else 0
        if not self._budget(now):
            return False
        if kinds is None:
            kinds = self._clients[client] = {}
            while len(self._clients) > self.max_entries:
                self._clients.popitem(last=False)
        kinds[kind] = [now, 0]
        suffix = f" (and {folded} more like it in the last {self.interval:.0f} s)" if folded else ""
        self.logger.warning(message + suffix, *args, exc_info=exc_info)
        return True

    def _budget(self, now: float) -> bool:
        second = int(now)
        if second != self._second:
            self._second, self._lines_this_second = second, 0
            if self._over_budget:
                over, self._over_budget = self._over_budget, 0
                self._lines_this_second += 1
                self.logger.warning("%d refusal log lines were dropped (more than %d a second)", over, self.max_lines_per_second)
        if self._lines_this_second >= self.max_lines_per_second:
            self._over_budget += 1
            return False
        self._lines_this_second += 1
        return True

    def forget(self, client: str) -> None:
        self._clients.pop(client, None)
