"""Publish a simulated stint through the real contract, exactly as the monitor does.

A :class:`SimulatedMonitor` is a plain python-socketio ``AsyncClient``: it asks
for a session id with ``{}`` (unless it was given one), sends its setup once,
then ``telemetry_update`` at a fixed rate, with no acknowledgements. When the
server goes away the client's own reconnection brings it back and it keeps
publishing under the same session id without asking again, like the real
monitor after a server restart. Frames produced while disconnected are lost,
as they would be with the monitor.

One additive difference: it keeps the ``publish_token`` from
``session_id_assigned`` (or ``--publish-token``) and presents it in the
Socket.IO ``auth`` of every (re)connection, so it also keeps its session in
the server's strict token mode (docs/security.md). In the default compat mode
this changes nothing.

Sending runs on an absolute schedule (``t0 + k / rate``) so the stream does not
drift; each frame advances the model by ``speedup / rate`` sim seconds.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable

import socketio

from racedash.simulator.model import SETUP, Publication, StintConfig, StintModel

log = logging.getLogger(__name__)

Announce = Callable[["SimulatedMonitor"], None]


def print_dashboard(monitor: "SimulatedMonitor") -> None:
    car = monitor.model.car
    print(f"{car.name} ({monitor.model.driver}): {monitor.dashboard_url}", flush=True)


@dataclass(frozen=True)
class SimulationOptions:
    rate: float = 2.0  # telemetry frames per second (wall clock)
    speedup: float = 1.0  # sim seconds per wall second
    laps: int | None = None  # stop after this many laps
    seed: int | None = None  # None: a fresh random seed per run
    session_id: str | None = None  # publish under this id instead of requesting one
    publish_token: str | None = None  # for a given session id in token mode

    def __post_init__(self) -> None:
        if self.rate <= 0:
            raise ValueError("rate must be positive")
        if self.speedup <= 0:
            raise ValueError("speedup must be positive")
        if self.laps is not None and self.laps < 1:
            raise ValueError("laps must be at least 1")


class SimulatedMonitor:
    """One simulated car publishing into one session."""

    def __init__(
        self,
        url: str,
        model: StintModel,
        *,
        rate: float = 2.0,
        speedup: float = 1.0,
        session_id: str | None = None,
        publish_token: str | None = None,
        announce: Announce = print_dashboard,
        reconnection_delay: float = 1.0,
        reconnection_delay_max: float = 5.0,
    ) -> None:
        self.url = url.rstrip("/")
        self.model = model
        self.rate = rate
        self.speedup = speedup
        self.session_id = session_id
        self.publish_token = publish_token
        self.dashboard_url: str | None = None
        self.announce = announce
        self.sent = 0  # telemetry frames handed to the socket
        self.dropped = 0  # frames produced while disconnected
        self.connects = 0
        self._stopping = False
        self._retry_delay = reconnection_delay
        self._retry_delay_max = reconnection_delay_max
        self._assigned = asyncio.Event()
        # The monitor's client: default reconnection, no acks. handle_sigint=False: by
        # default python-socketio takes over SIGINT and cancels every task in the loop,
        # which would stop `racedash demo` uncleanly; the runner owns the signals.
        self.sio = socketio.AsyncClient(
            reconnection=True,
            reconnection_delay=reconnection_delay,
            reconnection_delay_max=reconnection_delay_max,
            handle_sigint=False,
        )
        self.sio.on("connect", self._on_connect)
        self.sio.on("disconnect", self._on_disconnect)
        self.sio.on("session_id_assigned", self._on_assigned)
        if session_id is not None:
            self._set_session(session_id, f"{self.url}/dashboard/{session_id}")

    # -- connection -------------------------------------------------------------
    async def _on_connect(self) -> None:
        self.connects += 1
        if self.connects > 1:
            log.warning("reconnected to %s, publishing as session %s… again", self.url, self.session_id[:8])
        if self.session_id is None:
            # Only until an id is known: after a reconnect the monitor keeps its id.
            await self.sio.emit("request_session_id", {})

    async def _on_disconnect(self, reason: object = None) -> None:
        if not self._stopping:
            log.warning("lost %s (%s); reconnecting", self.url, reason)

    def _auth(self) -> dict | None:
        """Evaluated by python-socketio on every (re)connection attempt."""
        return {"publish_token": self.publish_token} if self.publish_token else None

    async def _on_assigned(self, data: dict) -> None:
        if self.session_id is None and isinstance(data, dict) and "session_id" in data:
            if isinstance(data.get("publish_token"), str):
                self.publish_token = data["publish_token"]
            self._set_session(data["session_id"], data.get("dashboard_url") or f"{self.url}/dashboard/{data['session_id']}")

    def _set_session(self, session_id: str, dashboard_url: str) -> None:
        self.session_id = session_id
        self.dashboard_url = dashboard_url
        self.announce(self)
        self._assigned.set()

    # -- publishing -----------------------------------------------------------------
    async def run(self) -> None:
        """Connect, publish until the stint ends (or the task is cancelled), disconnect."""
        try:
            await self._first_connect()
            await self._assigned.wait()
            await self._publish_all(self.model.start())
            loop = asyncio.get_running_loop()
            period = 1.0 / self.rate
            dt = self.speedup / self.rate
            t0 = loop.time()
            k = 0
            while not self.model.finished:
                k += 1
                due = t0 + k * period
                delay = due - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                elif delay < -5 * period:
                    # Far behind (a suspended laptop): restart the schedule instead of bursting.
                    t0, k = loop.time(), 0
                await self._publish_all(self.model.step(dt))
        finally:
            await self.close()

    async def _first_connect(self) -> None:
        """Connect, waiting for a server that is not up yet, as the monitor does.

        Our own loop rather than ``connect(retry=True)``: python-socketio's retry
        loop swallows task cancellation, so Ctrl-C could not stop a simulator
        that is still waiting for its server. Once connected, python-socketio's
        own reconnection takes over (``shutdown()`` stops it cleanly).
        """
        delay = self._retry_delay
        while True:
            try:
                await self.sio.connect(self.url, auth=self._auth, transports=["websocket"], wait_timeout=10)
                return
            except socketio.exceptions.ConnectionError as exc:
                log.warning("cannot reach %s yet (%s); retrying in %.1f s", self.url, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._retry_delay_max)

    async def _publish_all(self, publications: list[Publication]) -> None:
        for pub in publications:
            if pub.kind == SETUP:
                await self._emit("setup_data", {"session_id": self.session_id, **pub.payload})
            else:
                if await self._emit("telemetry_update", {"session_id": self.session_id, "telemetry": pub.payload}):
                    self.sent += 1

    async def _emit(self, event: str, payload: dict) -> bool:
        if not self.sio.connected:
            self.dropped += 1
            return False
        try:
            await self.sio.emit(event, payload)
        except socketio.exceptions.SocketIOError as exc:
            # The connection dropped between the check and the send; reconnection is under way.
            log.debug("%s not sent: %s", event, exc)
            self.dropped += 1
            return False
        return True

    def stopping(self) -> None:
        """Mark this monitor as being stopped on purpose (before its task is cancelled)."""
        self._stopping = True

    async def close(self) -> None:
        self._stopping = True
        # shutdown() also ends a reconnection loop that is waiting for the server;
        # disconnect() then releases the HTTP session of a client that never connected.
        await self.sio.shutdown()
        await self.sio.disconnect()


def _fresh_seed() -> int:
    return random.SystemRandom().randrange(1, 1_000_000)


def build_monitors(
    url: str, cars: int, options: SimulationOptions, announce: Announce = print_dashboard
) -> list[SimulatedMonitor]:
    """``cars`` independent monitors; car ``i`` uses seed ``seed + i``."""
    if cars < 1:
        raise ValueError("cars must be at least 1")
    if options.session_id is not None and cars > 1:
        raise ValueError("--session-id names one session; it cannot be used with several cars")
    base_seed = options.seed if options.seed is not None else _fresh_seed()
    start = datetime.now(timezone.utc).replace(tzinfo=None)
    monitors = []
    for i in range(cars):
        config = StintConfig(seed=base_seed + i, laps=options.laps, start=start, time_scale=options.speedup)
        monitors.append(
            SimulatedMonitor(
                url,
                StintModel(config),
                rate=options.rate,
                speedup=options.speedup,
                session_id=options.session_id,
                publish_token=options.publish_token,
                announce=announce,
            )
        )
    return monitors


class Fleet:
    """Several simulated cars publishing at once; owns their tasks."""

    def __init__(self, monitors: list[SimulatedMonitor]) -> None:
        self.monitors = monitors
        self._tasks: list[asyncio.Task] = []

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(m.run(), name=f"racedash-sim-{i}") for i, m in enumerate(self.monitors)
        ]

    @property
    def tasks(self) -> list[asyncio.Task]:
        return list(self._tasks)

    async def stop(self) -> list[BaseException]:
        """Stop every car (each disconnects cleanly); returns the errors cars failed with."""
        for monitor in self.monitors:
            monitor.stopping()
        for task in self._tasks:
            task.cancel()
        results = await asyncio.gather(*self._tasks, return_exceptions=True)
        return [r for r in results if isinstance(r, Exception)]
