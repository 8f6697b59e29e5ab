"""Replay timing, pure: an absolute schedule from recording positions to clock times.

A frame recorded at ``t_i`` is due at ``start + (t_i - t_0) / speed``. The
schedule is never a chain of sleeps (they drift): every due time is computed
from one anchor, and pause, seek and speed changes move the anchor instead of
accumulating error. Positions are seconds since the recording's first event.

The clock is injected (:class:`Clock`), so the player's scheduling is tested
with a manual clock and measured with the real one.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Callable, Protocol

MIN_SPEED = 0.25
MAX_SPEED = 16.0


class Timer(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    """Monotonic seconds plus a one-shot timer at an absolute time."""

    def now(self) -> float: ...

    def call_at(self, when: float, callback: Callable[[], None]) -> Timer: ...


class LoopClock:
    """The event loop's monotonic clock (``loop.time()``, i.e. ``time.monotonic``)."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._loop or asyncio.get_running_loop()

    def now(self) -> float:
        return self.loop.time()

    def call_at(self, when: float, callback: Callable[[], None]) -> Timer:
        return self.loop.call_at(when, callback)


def valid_speed(speed: object) -> bool:
    return (
        isinstance(speed, (int, float))
        and not isinstance(speed, bool)
        and MIN_SPEED <= float(speed) <= MAX_SPEED
    )


@dataclass(slots=True)
class Schedule:
    """Maps recording positions to clock times through one anchor.

    While playing, position ``p`` is due at ``anchor_time + (p - anchor_position) / speed``.
    Every control re-anchors at the current position, so the schedule after a
    pause, seek or speed change is again one absolute formula.
    """

    anchor_time: float
    anchor_position: float = 0.0
    speed: float = 1.0
    paused: bool = False

    def position(self, now: float) -> float:
        if self.paused:
            return self.anchor_position
        return self.anchor_position + (now - self.anchor_time) * self.speed

    def due(self, position: float) -> float:
        """Clock time at which ``position`` is reached (meaningless while paused)."""
        return self.anchor_time + (position - self.anchor_position) / self.speed

    def pause(self, now: float) -> None:
        if not self.paused:
            self.anchor_position = self.position(now)
            self.anchor_time = now
            self.paused = True

    def resume(self, now: float) -> None:
        if self.paused:
            self.anchor_time = now
            self.paused = False

    def seek(self, position: float, now: float) -> None:
        self.anchor_position = position
        self.anchor_time = now

    def set_speed(self, speed: float, now: float) -> None:
        if not valid_speed(speed):
            raise ValueError(f"speed must be between {MIN_SPEED} and {MAX_SPEED}")
        self.anchor_position = self.position(now)
        self.anchor_time = now
        self.speed = float(speed)
