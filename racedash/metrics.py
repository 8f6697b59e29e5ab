"""Prometheus metrics: one registry per application, scraped at ``GET /metrics`` (team access).

Why a registry per app and not prometheus_client's global one: every test
builds its own application, and a global registry would refuse the second
app's metrics (duplicate names) or mix two apps' numbers.

Hot-path cost: :meth:`Metrics.on_frame` and :meth:`Metrics.on_refusal` are a
dict lookup of a cached labelled child and its ``inc()``. Everything else
(sessions, viewers, replays, fan-out and recording figures) is read from the
application's own state only when Prometheus scrapes, by :class:`StateCollector`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable, Iterable, Protocol

import tornado.web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from racedash.auth import TeamAccess
from racedash.web import BaseHandler

log = logging.getLogger(__name__)

# How often the event loop is sampled: a 0.5 s sleep that wakes late measures the loop's backlog.
LOOP_LAG_INTERVAL = 0.5
LOOP_LAG_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class MetricsHooks(Protocol):
    """What racedash.live calls: once per accepted frame, once per refused event."""

    def on_frame(self, event: str) -> None: ...

    def on_refusal(self, code: str) -> None: ...


class NoMetrics:
    """What the publish path calls when no metrics are kept (a bare LiveNamespace in a test)."""

    def on_frame(self, event: str) -> None:
        pass

    def on_refusal(self, code: str) -> None:
        pass


class Metrics:
    """The application's registry and metric objects, with the hooks the live path calls."""

    def __init__(self, state: "StateCollector | None" = None, *, process: bool = True) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        if process:
            # CPU seconds, RSS, open/max descriptors, start time (Linux /proc; empty elsewhere).
            ProcessCollector(registry=self.registry)
        if state is not None:
            self.registry.register(state)
        self.frames = Counter(
            "racedash_frames_in", "frames accepted from publishers, by event", ["event"], registry=self.registry
        )
        self.refusals = Counter(
            "racedash_refusals", "events refused (an error ack), by error code", ["code"], registry=self.registry
        )
        self.loop_lag = Gauge(
            "racedash_event_loop_lag_seconds",
            f"how late the last {LOOP_LAG_INTERVAL} s sleep on the event loop woke up",
            registry=self.registry,
        )
        self.loop_lag_histogram = Histogram(
            "racedash_event_loop_lag_observed_seconds",
            "distribution of the event-loop lag samples",
            buckets=LOOP_LAG_BUCKETS,
            registry=self.registry,
        )
        # Labelled children cached: labels() validates and locks, too much per frame.
        self._frame_children: dict[str, Any] = {}
        self._refusal_children: dict[str, Any] = {}

    # -- hooks (the publish and refusal paths) ----------------------------------------
    def on_frame(self, event: str) -> None:
        child = self._frame_children.get(event)
        if child is None:
            child = self._frame_children[event] = self.frames.labels(event=event)
        child.inc()

    def on_refusal(self, code: str) -> None:
        child = self._refusal_children.get(code)
        if child is None:
            child = self._refusal_children[code] = self.refusals.labels(code=code)
        child.inc()

    # -- event-loop lag ---------------------------------------------------------------------
    async def watch_event_loop(self, interval: float = LOOP_LAG_INTERVAL) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await asyncio.sleep(interval)
            lag = max(0.0, loop.time() - started - interval)
            self.loop_lag.set(lag)
            self.loop_lag_histogram.observe(lag)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class StateCollector(Collector):
    """Figures the application already keeps, read at scrape time (nothing added to the hot path)."""

    def __init__(
        self,
        *,
        live_sessions: Callable[[], int],
        viewers: Callable[[], int],
        replays: Callable[[], int] | None = None,
        fanout_stats: Any = None,
        problems: Callable[[], int] | None = None,
        recorder: Any = None,
        replay_seeks: Callable[[], tuple[int, float]] | None = None,
    ) -> None:
        self.live_sessions = live_sessions
        self.viewers = viewers
        self.replays = replays
        self.fanout_stats = fanout_stats
        self.problems = problems
        self.recorder = recorder
        self.replay_seeks = replay_seeks

    def collect(self) -> Iterable[Metric]:
        yield GaugeMetricFamily("racedash_live_sessions", "live sessions held by this process", value=self.live_sessions())
        yield GaugeMetricFamily("racedash_viewers", "viewers joined to live sessions", value=self.viewers())
        if self.replays is not None:
            yield GaugeMetricFamily("racedash_replays", "replays running", value=self.replays())
        if self.fanout_stats is not None:
            yield from self._fanout()
        if self.problems is not None:
            yield GaugeMetricFamily(
                "racedash_problems", "problems reported on /healthz (disk trouble); 0 when healthy", value=self.problems()
            )
        if self.recorder is not None:
            recordings, pending = self.recorder.backlog()
            yield GaugeMetricFamily("racedash_recordings_open", "recordings being written", value=recordings)
            yield GaugeMetricFamily(
                "racedash_recording_backlog_bytes", "encoded frames queued for the disk, not yet written", value=pending
            )
            fsyncs, seconds = self.recorder.fsync_totals()
            yield CounterMetricFamily("racedash_recording_fsyncs", "fsyncs of recordings", value=fsyncs)
            yield CounterMetricFamily("racedash_recording_fsync_seconds", "time spent in those fsyncs", value=seconds)
        if self.replay_seeks is not None:
            seeks, seconds = self.replay_seeks()
            yield CounterMetricFamily("racedash_replay_seeks", "replay seeks", value=seeks)
            yield CounterMetricFamily(
                "racedash_replay_seek_seconds", "time from a seek until its state was handed to the room", value=seconds
            )

    def _fanout(self) -> Iterable[Metric]:
        stats = self.fanout_stats
        deliveries = CounterMetricFamily(
            "racedash_fanout_deliveries", "room frames handed to viewers, by path (fast fan-out)", labels=["path"]
        )
        deliveries.add_metric(["direct"], stats.direct)
        deliveries.add_metric(["engineio"], stats.fallback)
        yield deliveries
        yield CounterMetricFamily(
            "racedash_fanout_conflated", "frames a lagging viewer skipped (a newer one replaced them)", value=stats.conflated
        )
        yield CounterMetricFamily(
            "racedash_fanout_slow_disconnects", "lagging viewers disconnected", value=stats.disconnected
        )
        yield CounterMetricFamily("racedash_fanout_bytes_out", "bytes of room frames handed to viewers", value=stats.bytes_out)


class MetricsHandler(BaseHandler):
    """``GET /metrics``: the Prometheus text format. Team token or cookie, unless made public."""

    def initialize(self, metrics: Metrics, access: TeamAccess, public: bool = False) -> None:
        self.metrics = metrics
        self.access = access
        self.public = public

    def get(self) -> None:
        if not self.public and not self.access.is_team_request(self):
            self.set_status(401)
            self.set_header("WWW-Authenticate", 'Bearer realm="racedash"')
            self.set_header("Content-Type", "text/plain; charset=utf-8")
            self.finish("team token required (Authorization: Bearer <team token>)\n")
            return
        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.set_header("Cache-Control", "no-store")
        self.finish(self.metrics.exposition())


def metrics_routes(metrics: Metrics, access: TeamAccess, public: bool) -> list[tornado.web.URLSpec | tuple]:
    return [(r"/metrics", MetricsHandler, {"metrics": metrics, "access": access, "public": public})]
