"""What ``racedash simulate`` and ``racedash demo`` run: cars, a server, and a clean stop.

Both run until their work is done or SIGINT/SIGTERM arrives, then stop the
simulated cars first (they disconnect like a monitor that is closed) and the
server last, so nothing is left running and the exit is clean.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import Callable, Iterator

from racedash.config import Settings
from racedash.server import RacedashServer
from racedash.simulator.publisher import Announce, Fleet, SimulationOptions, build_monitors, print_dashboard

log = logging.getLogger(__name__)


@contextlib.contextmanager
def stop_on_signals(stop: asyncio.Event) -> Iterator[None]:
    """Set ``stop`` on SIGINT or SIGTERM while the block runs."""
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    for signum in signals:
        loop.add_signal_handler(signum, stop.set)
    try:
        yield
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)


async def _run_until(fleet: Fleet, stop: asyncio.Event) -> None:
    """Run the fleet until every car is done, one fails, or ``stop`` is set; then stop it."""
    fleet.start()
    stopper = asyncio.create_task(stop.wait(), name="racedash-sim-stop")
    pending: set[asyncio.Future] = set(fleet.tasks)
    try:
        while pending:
            done, pending = await asyncio.wait(pending | {stopper}, return_when=asyncio.FIRST_COMPLETED)
            pending.discard(stopper)
            if stopper in done or any(not t.cancelled() and t.exception() is not None for t in done):
                break
    finally:
        stopper.cancel()
        await asyncio.gather(stopper, return_exceptions=True)
        errors = await fleet.stop()
    if errors and not stop.is_set():
        raise errors[0]


async def simulate(
    url: str,
    options: SimulationOptions,
    *,
    cars: int = 1,
    stop: asyncio.Event | None = None,
    announce: Announce = print_dashboard,
) -> None:
    """Publish ``cars`` simulated stints into the server at ``url``."""
    fleet = Fleet(build_monitors(url, cars, options, announce))
    stop = stop or asyncio.Event()
    with stop_on_signals(stop):
        await _run_until(fleet, stop)


async def demo(
    settings: Settings,
    options: SimulationOptions,
    *,
    cars: int = 1,
    stop: asyncio.Event | None = None,
    on_ready: Callable[[RacedashServer], None] | None = None,
    announce: Announce = print_dashboard,
) -> None:
    """A racedash server and simulated cars publishing into it, in one process."""
    stop = stop or asyncio.Event()
    with stop_on_signals(stop):
        async with RacedashServer(settings) as server:
            if on_ready is not None:
                on_ready(server)
            await _run_until(Fleet(build_monitors(server.url, cars, options, announce)), stop)
            if not stop.is_set():
                # The cars finished their laps: keep serving the dashboards until Ctrl-C.
                await stop.wait()
            log.info("demo stopping")
