"""Per-connection limits: event rate (token bucket) and how many sessions one connection may hold.

Exceeding a limit refuses that one event with ``limit_exceeded`` and a message
naming the limit; the connection and everybody else carry on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

from racedash.errors import LimitExceeded


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up."""

    __slots__ = ("rate", "burst", "_tokens", "_last", "_clock")

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._clock = clock
        self._last = clock()

    def take(self) -> bool:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


@dataclass
class _Connection:
    bucket: TokenBucket
    sessions: set[str] = field(default_factory=set)


class ConnectionLimits:
    def __init__(
        self,
        *,
        events_per_second: float,
        event_burst: float,
        sessions_per_connection: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.events_per_second = events_per_second
        self.event_burst = event_burst
        self.sessions_per_connection = sessions_per_connection
        self._clock = clock
        self._connections: dict[str, _Connection] = {}

    def _of(self, sid: str) -> _Connection:
        conn = self._connections.get(sid)
        if conn is None:
            conn = _Connection(TokenBucket(self.events_per_second, self.event_burst, self._clock))
            self._connections[sid] = conn
        return conn

    def check_event(self, sid: str) -> None:
        if not self._of(sid).bucket.take():
            raise LimitExceeded(
                f"more than {self.events_per_second:g} events per second from this connection; event dropped"
            )

    def check_new_session(self, sid: str, session_id: str) -> None:
        """Count a session this connection publishes into; refuse one over the limit."""
        sessions = self._of(sid).sessions
        if session_id in sessions:
            return
        if len(sessions) >= self.sessions_per_connection:
            raise LimitExceeded(f"a connection may publish at most {self.sessions_per_connection} sessions")
        sessions.add(session_id)

    def forget(self, sid: str) -> None:
        self._connections.pop(sid, None)
