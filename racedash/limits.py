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
    joins: TokenBucket
    sessions: set[str] = field(default_factory=set)
    address: str | None = None


class ConnectionLimits:
    def __init__(
        self,
        *,
        events_per_second: float,
        event_burst: float,
        sessions_per_connection: int,
        sessions_per_address: int = 0,
        exempt_addresses: frozenset[str] = frozenset(),
        joins_per_second: float = 2.0,
        join_burst: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.events_per_second = events_per_second
        self.event_burst = event_burst
        self.sessions_per_connection = sessions_per_connection
        # Live sessions published from one client address, over all its connections: reconnecting
        # does not reset it; a session counts until it ends (session_ended).
        self.sessions_per_address = sessions_per_address
        self.exempt_addresses = exempt_addresses
        # A join may read and send thousands of frames: far fewer of them than of other events.
        self.joins_per_second = joins_per_second
        self.join_burst = join_burst
        self._clock = clock
        self._connections: dict[str, _Connection] = {}
        self._by_address: dict[str, set[str]] = {}
        self._address_of: dict[str, str] = {}

    def _of(self, sid: str) -> _Connection:
        conn = self._connections.get(sid)
        if conn is None:
            conn = _Connection(
                TokenBucket(self.events_per_second, self.event_burst, self._clock),
                TokenBucket(self.joins_per_second, self.join_burst, self._clock),
            )
            self._connections[sid] = conn
        return conn

    def check_event(self, sid: str) -> None:
        if not self._of(sid).bucket.take():
            raise LimitExceeded(
                f"more than {self.events_per_second:g} events per second from this connection; event dropped"
            )

    def check_join(self, sid: str) -> None:
        if not self._of(sid).joins.take():
            raise LimitExceeded(f"more than {self.joins_per_second:g} joins per second from this connection")

    def bind(self, sid: str, address: str | None) -> None:
        """The client address of a new connection (engine.io's REMOTE_ADDR)."""
        if address and address not in self.exempt_addresses:
            self._of(sid).address = address

    def check_new_session(self, sid: str, session_id: str) -> None:
        """Count a session this connection publishes into; refuse one over a limit."""
        conn = self._of(sid)
        sessions = conn.sessions
        if session_id in sessions:
            return
        if len(sessions) >= self.sessions_per_connection:
            raise LimitExceeded(f"a connection may publish at most {self.sessions_per_connection} sessions")
        if self.sessions_per_address and conn.address is not None:
            owned = self._by_address.setdefault(conn.address, set())
            if session_id not in owned and len(owned) >= self.sessions_per_address:
                raise LimitExceeded(f"one address may publish at most {self.sessions_per_address} live sessions")
            owned.add(session_id)
            self._address_of[session_id] = conn.address
        sessions.add(session_id)

    def session_ended(self, session_id: str) -> None:
        address = self._address_of.pop(session_id, None)
        if address is not None:
            owned = self._by_address.get(address)
            if owned is not None:
                owned.discard(session_id)
                if not owned:
                    del self._by_address[address]

    def forget(self, sid: str) -> None:
        self._connections.pop(sid, None)
