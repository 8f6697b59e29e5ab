"""Shutdown steps with a deadline each: one that hangs is logged and left behind, and the stop goes on.

A stop must reach the recordings' close whatever else is stuck (a client's
connection that never finishes, a component that never returns): the whole
drain has its bound (``drain_seconds``), but a step that used all of it
would leave every recording unclosed. So each step but the recordings'
(which have their own per-file deadline) gets ``seconds``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Awaitable

log = logging.getLogger(__name__)

# Each step takes milliseconds when nothing is stuck.
STEP_SECONDS = 2.0
STACK_FRAMES = 8  # of a stuck step, logged


async def within(seconds: float, what: str, step: Awaitable[object]) -> bool:
    """Await ``step`` for at most ``seconds`` (then it is cancelled); False, and an error logged, if it did not finish.

    The error names where the step was waiting (its innermost frames), to find what hung.
    """
    task = asyncio.ensure_future(step)
    done, _ = await asyncio.wait({task}, timeout=seconds)
    if done:
        task.result()  # its exception, if any, is the caller's
        return True
    where = " < ".join(f"{frame.f_code.co_name} ({frame.f_code.co_filename.rsplit('/', 1)[-1]}:{frame.f_lineno})"
                       for frame in reversed(task.get_stack(limit=STACK_FRAMES)))
    log.error("shutdown: %s did not finish within %.1f s (waiting in %s); going on without it", what, seconds, where)
    task.cancel()
    return False
