"""The live sessions of every process, for the team view (``/api/live``, ``/team``, ``/cars``).

Each process lists the sessions it writes (racedash.teamview rows) in one Redis
hash, ``<prefix>live``, refreshed with its leases; a process asked for the
list adds the other processes' rows to its own. A row not refreshed for three
rounds is from a process that died and is left out (and cleared); a session
that ended is deleted by its process.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from redis import asyncio as aioredis
from redis.exceptions import RedisError

from racedash.auth import Principal


class LiveList:
    def __init__(self, redis: aioredis.Redis, prefix: str, node: str, refresh_seconds: float) -> None:
        self._redis = redis
        self.key = f"{prefix}live"
        self.node = node
        self.max_age = 3 * refresh_seconds
        self._listed: set[str] = set()

    async def publish(self, rows: list[dict[str, Any]], now: float | None = None) -> None:
        """This process's rows, replacing the ones it listed before."""
        now = time.time() if now is None else now
        listed = {row["session_id"]: orjson.dumps({**row, "node": self.node, "at": now}) for row in rows}
        gone = self._listed - set(listed)
        async with self._redis.pipeline(transaction=False) as pipe:
            if listed:
                pipe.hset(self.key, mapping=listed)
            if gone:
                pipe.hdel(self.key, *gone)
            await pipe.execute()
        self._listed = set(listed)

    async def rows(self, viewer: Principal, now: float | None = None) -> list[dict[str, Any]]:
        """The other processes' fresh rows ``viewer`` may see (none while Redis is away)."""
        now = time.time() if now is None else now
        try:
            listed = await self._redis.hgetall(self.key)
        except (RedisError, OSError):
            return []
        rows, stale = [], []
        for session_id, raw in listed.items():
            row = orjson.loads(raw)
            if now - row.get("at", 0) > self.max_age:
                stale.append(session_id)
                continue
            node = row.pop("node", None)
            row.pop("at", None)
            if node != self.node and viewer.sees(row.get("team")):
                rows.append(row)
        if stale:
            try:
                await self._redis.hdel(self.key, *stale)
            except (RedisError, OSError):
                pass
        return rows
