"""The application factory: everything a running racedash holds, built from Settings.

No module in racedash creates a server or mutable state at import time; every
test builds its own application with :func:`make_app`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

import socketio
import tornado.web

from racedash import paths
from racedash.accesslog import make_log_function
from racedash.api import api_routes, team_only
from racedash.auth import LoginThrottle, TeamAccess
from racedash.broadcast import Broadcaster
from racedash.deadline import STEP_SECONDS, within
from racedash.cluster import Cluster, client_manager, make_cluster
from racedash.config import Settings, SettingsError
from racedash.fanout import make_broadcaster
from racedash.history import HistoryOptions, SessionHistory
from racedash.inlinecss import InlineStylesheet
from racedash.keys import derive, load_or_create_secret
from racedash.limits import ConnectionLimits
from racedash.live import LiveNamespace
from racedash.logbudget import RefusalLog
from racedash.metrics import Metrics, StateCollector, metrics_routes
from racedash.packets import FastJsonPacket
from racedash.pagestate import DashboardState
from racedash.race import RaceOptions
from racedash.racefeed import RaceFeed, race_options
from racedash.recording.recorder import Recorder
from racedash.recording.retention import Retention, RetentionPolicy
from racedash.recording.store import RecordingStore
from racedash.recording.writer import WriterOptions
from racedash.replay.events import ReplayEvents
from racedash.replay.handlers import replay_routes
from racedash.replay.index import keep_sidecar_current
from racedash.replay.manager import ReplayManager
from racedash.replay.player import ReplayOptions
from racedash.rights import PublishRights
from racedash.sessions import SessionRegistry
from racedash.socketserver import GuardedServer
from racedash.teams import MonitorTeams, SqliteTeamBackend, TeamDirectory, db_path
from racedash.teamview import team_routes
from racedash.transport import WebSocketHook, socketio_handler
from racedash.validation import Validators
from racedash.web import (
    DashboardHandler,
    DashboardStateHandler,
    HealthHandler,
    LivenessHandler,
    LoginHandler,
    NotFoundHandler,
    ReadinessHandler,
    RecordingsPageHandler,
    ServerStatus,
    StaticHandler,
    StatusPageHandler,
    ui_config,
)

log = logging.getLogger(__name__)


@dataclass
class Racedash:
    """One racedash application: the HTTP app, the Socket.IO server and the state they share."""

    settings: Settings
    web: tornado.web.Application
    sio: socketio.AsyncServer
    registry: SessionRegistry
    broadcaster: Broadcaster
    status: ServerStatus
    access: TeamAccess
    rights: PublishRights
    transport: WebSocketHook | None = None
    replays: ReplayManager | None = None
    race: RaceFeed | None = None
    limits: ConnectionLimits | None = None
    tasks: set[asyncio.Task] = field(default_factory=set)
    # --- recordings (None when recording is off) ---
    store: RecordingStore | None = None
    recorder: Recorder | None = None
    retention: Retention | None = None
    metrics: Metrics | None = None
    cluster: Cluster | None = None  # several processes on Redis (None: this process alone)

    def start_background(self) -> None:
        """Start the periodic jobs; call once the event loop runs."""
        self._own(asyncio.create_task(self._reap_idle_sessions(), name="racedash-reaper"))
        if self.race is not None:
            self._own(asyncio.create_task(self._watch_stale_sessions(), name="racedash-stale-watch"))
        if self.recorder is not None:
            self.recorder.check_directory()
            self._own(asyncio.create_task(self.recorder.watch_directory(2.0), name="racedash-recordings-watch"))
        if self.retention is not None and self.retention.policy.enabled:
            self._own(asyncio.create_task(self._apply_retention(), name="racedash-retention"))
        if self.replays is not None:
            self.replays.start_background()
        if self.metrics is not None:
            self._own(asyncio.create_task(self.metrics.watch_event_loop(), name="racedash-loop-lag"))
        if self.cluster is not None:
            self.cluster.start()

    def _own(self, task: asyncio.Task) -> None:
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _reap_idle_sessions(self) -> None:
        interval = max(0.05, min(30.0, self.settings.session_idle_seconds / 4))
        while True:
            await asyncio.sleep(interval)
            for session in self.registry.idle_sessions(self.settings.session_idle_seconds, time.monotonic()):
                if not session.viewer_sids:
                    self.registry.end(session.id)
                    if self.limits is not None:
                        self.limits.session_ended(session.id)
                    if self.race is not None:
                        self.race.forget(session.id)
                    if self.recorder is not None:
                        await self.recorder.close_session(session.id, ended=True)

    async def _watch_stale_sessions(self) -> None:
        assert self.race is not None
        interval = max(0.05, min(1.0, self.settings.alert_stale_seconds / 4))
        while True:
            await asyncio.sleep(interval)
            await self.race.check_stale(self.registry, time.monotonic())

    async def _apply_retention(self) -> None:
        assert self.retention is not None
        while True:
            try:
                await self.retention.run_once()
            except Exception:  # noqa: BLE001 - a failed pass must not end retention for good
                log.exception("retention pass failed")
            await asyncio.sleep(self.settings.retention_check_seconds)

    async def close(self, step_seconds: float = STEP_SECONDS) -> None:
        """Disconnect every client and stop background work; every step but the recordings' within ``step_seconds``."""
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await within(step_seconds, "background tasks", asyncio.gather(*self.tasks, return_exceptions=True))
        if self.replays is not None:
            await within(step_seconds, "replays", self.replays.close())
        if self.race is not None:
            await within(step_seconds, "race model states", self.race.close())
        await within(step_seconds, "socket.io", self.sio.shutdown())
        if self.transport is not None:
            await within(step_seconds, "websocket transport", self.transport.close())
        if self.recorder is not None:
            await self.recorder.close()  # each recording within its own close_timeout
        if self.cluster is not None:
            await within(step_seconds, "cluster", self.cluster.close(self.sio))


def exempt_addresses(settings: Settings) -> frozenset[str]:
    """Addresses the per-address caps leave alone (loopback by default: local tools, a local proxy)."""
    return frozenset(a.strip() for a in settings.connection_exempt_addresses.split(",") if a.strip())


def _cors_origins(settings: Settings) -> list[str] | None:
    origins = [o.strip() for o in settings.cors_origins.split(",") if o.strip()]
    # None lets engine.io accept only the server's own origin.
    return origins or None


def make_app(settings: Settings) -> Racedash:
    refusals = RefusalLog(logging.getLogger("racedash.refused"))
    sio = GuardedServer(
        refusals=refusals,
        node_name=settings.node_name,  # sids "<node_name>.…": the load balancer's routing key
        async_mode="tornado",
        max_http_buffer_size=settings.max_message_bytes,
        cors_allowed_origins=_cors_origins(settings),
        logger=False,
        engineio_logger=False,
        serializer=FastJsonPacket,
        client_manager=client_manager(settings.redis_url, settings.redis_prefix),
    )
    secret = load_or_create_secret(settings.secret, settings.state_dir, settings.recordings_dir)
    teams = TeamDirectory(SqliteTeamBackend(db_path(settings.state_dir)))  # none until `racedash team add`
    rights = PublishRights(derive(secret, "publish-token"), settings.publish_auth, settings.compat_takeover_seconds,
                           teams=MonitorTeams(teams, required=settings.require_team))
    access = TeamAccess(settings.team_token, derive(secret, "team-cookie"), teams)
    store = RecordingStore(settings.recordings_dir)
    recorder = _make_recorder(settings, store) if settings.recording_enabled else None
    transport = WebSocketHook(sio.eio, nodelay=settings.tcp_nodelay, driven=settings.websocket_driver)
    broadcaster = make_broadcaster(sio, transport, settings)
    cluster = make_cluster(settings, broadcaster)
    if cluster is not None:
        broadcaster = cluster.broadcaster  # every room emit also reaches the other processes' viewers
    race = None
    if settings.race_model:
        race = RaceFeed(
            race_options(settings),
            broadcaster,
            settings.recordings_dir if recorder is not None else None,
            stale_seconds=settings.alert_stale_seconds,
            state_frames=settings.race_state_frames,
            flush=recorder.flush if recorder is not None else None,
            keep_current=keep_sidecar_current if settings.replay_index_sidecar else None,
        )
    recording_hooks = {}
    if recorder is not None:
        store.live_summaries = recorder.live_summaries
        # A new recording's header names its session's team (set before its first frame).
        recorder.team_of = lambda session_id: getattr(registry.get(session_id), "team", None)
        recording_hooks = {"sink": recorder, "restore": _resume_with_race(recorder, race)}
    if cluster is not None:
        # Taken up from the recording, then completed with the frames only Redis has yet.
        recording_hooks["restore"] = cluster.restorer(recording_hooks.get("restore", _restore_nothing))
    registry = SessionRegistry(
        token_for=rights.token_for,
        ring_size=settings.ring_frames,
        ring_max_bytes=settings.ring_max_bytes,
        setup_history_bytes=settings.setup_history_bytes,
        max_sessions=settings.max_live_sessions,
        **recording_hooks,
    )
    status = ServerStatus(registry)
    if cluster is not None:
        status.redis_up = cluster.up
        cluster.bind(registry, race, recorder, disconnect=sio.disconnect, stale_seconds=settings.ui_stale_seconds)
    if recorder is not None:
        recorder.problems = status.problems  # disk trouble shows on /healthz and the status page
        status.recordings_dir = settings.recordings_dir  # /healthz/ready: recordings must be writable
    history = SessionHistory(
        HistoryOptions(
            window_seconds=settings.history_seconds,
            max_points=settings.history_max_points,
            max_catch_up=settings.catch_up_max_frames,
        ),
        store=store if recorder is not None else None,
        flush=recorder.flush if recorder is not None else SessionHistory.no_flush,
    )
    retention = Retention(
        store,
        RetentionPolicy(
            max_age_seconds=settings.retention_max_age_days * 86400,
            max_total_bytes=int(settings.retention_max_total_mb * 1024 * 1024),
        ),
        is_live=lambda session_id: registry.get(session_id) is not None
        or (recorder is not None and recorder.is_live(session_id)),
    )
    limits = ConnectionLimits(
        events_per_second=settings.events_per_second,
        event_burst=settings.event_burst,
        sessions_per_connection=settings.sessions_per_connection,
        sessions_per_address=settings.sessions_per_address,
        exempt_addresses=exempt_addresses(settings),
        joins_per_second=settings.joins_per_second,
        join_burst=settings.join_burst,
    )
    replays = make_replays(settings, broadcaster, registry, race_options(settings))
    metrics = _make_metrics(status, broadcaster, replays, recorder)
    replay_events = ReplayEvents(replays, sio, access=access, max_viewers=settings.viewers_per_session,
                                 owner_of=store.team_of)
    if cluster is not None:
        cluster.bind_replays(replays, sio, replay_events)
    sio.register_namespace(
        LiveNamespace(
            registry=registry,
            broadcaster=broadcaster,
            validators=Validators(max_values=settings.max_payload_values),
            rights=rights,
            limits=limits,
            viewers_per_session=settings.viewers_per_session,
            max_setup_bytes=settings.max_setup_bytes,
            public_url=settings.public_url,
            history=history,
            extension=replay_events,
            race=race,
            refusals=refusals,
            metrics=metrics,
            cluster=cluster,
        )
    )
    deps = {"status": status}
    page_state = DashboardState(registry, history, race)
    web = tornado.web.Application(
        [
            (r"/", StatusPageHandler, {**deps, "access": access}),
            (r"/healthz", HealthHandler, deps),
            (r"/healthz/live", LivenessHandler),
            (r"/healthz/ready", ReadinessHandler, deps),
            (
                r"/login",
                LoginHandler,
                {
                    "access": access,
                    "throttle": LoginThrottle(limit=settings.login_failures_per_minute),
                    "secure_cookies": settings.public_url.startswith("https://"),
                },
            ),
            (r"/dashboard/([^/]+)/state", DashboardStateHandler, {"page_state": page_state}),
            (r"/dashboard/([^/]+)", DashboardHandler, {
                "ui_config": ui_config(settings), "page_state": page_state,
                "stylesheet": InlineStylesheet(paths.static_dir() / "css" / "app.css"),
                # The routing hint needs names the load balancer knows (node_name): none without.
                "writer_node": cluster.writer_node if cluster is not None and settings.node_name else None,
            }),
            (r"/recordings", RecordingsPageHandler, {"access": access}),
            *team_routes(registry, race, access, settings.ui_stale_seconds, cluster),
            *api_routes(store, access=team_only(access), race_options=race_options(settings),
                        publisher_connected=lambda session_id: _is_live(registry, session_id)),
            *replay_routes(replays, access, settings.public_url, owner_of=store.team_of,
                           elsewhere=cluster.replays if cluster is not None else None),
            *metrics_routes(metrics, access.admin_only(), public=settings.metrics_public),
            (r"/socket.io/", socketio_handler(sio, _cors_origins(settings), one_read=transport.driven)),
        ],
        template_path=str(paths.templates_dir()),
        static_path=str(paths.static_dir()),
        static_handler_class=StaticHandler,
        default_handler_class=NotFoundHandler,
        websocket_max_message_size=settings.max_message_bytes,
        compress_response=True,
        cookie_secret=access.cookie_secret,
        xsrf_cookies=True,
        log_function=make_log_function(settings.access_log or settings.log_level.upper() == "DEBUG"),
    )
    return Racedash(
        settings=settings,
        web=web,
        sio=sio,
        registry=registry,
        broadcaster=broadcaster,
        transport=transport,
        status=status,
        access=access,
        rights=rights,
        store=store,
        recorder=recorder,
        retention=retention,
        replays=replays,
        race=race,
        limits=limits,
        metrics=metrics,
        cluster=cluster,
    )


def _make_metrics(
    status: ServerStatus, broadcaster: Broadcaster, replays: ReplayManager, recorder: Recorder | None
) -> Metrics:
    """This app's own Prometheus registry (never the global one: tests build many apps)."""
    return Metrics(
        StateCollector(
            live_sessions=lambda: len(status.registry),
            viewers=status.registry.viewer_count,
            replays=lambda: len(replays),
            fanout_stats=getattr(broadcaster, "stats", None),
            problems=lambda: len(status.problems),
            recorder=recorder,
            replay_seeks=replays.seek_totals,
        )
    )


async def _restore_nothing(session_id: str) -> None:
    return None


def _resume_with_race(recorder: Recorder, race: RaceFeed | None):
    """The registry's restore hook: the recording's state, then its race model rebuilt from it."""

    async def restore(session_id: str):
        restored = await recorder.restore(session_id)  # flushes what this process still had queued
        if restored is not None and race is not None:
            await race.restore(session_id)
        return restored

    return restore


def _make_recorder(settings: Settings, store: RecordingStore) -> Recorder:
    try:
        options = _writer_options(settings)
    except ValueError as exc:
        raise SettingsError(str(exc)) from None
    return Recorder(store, options, ring_size=settings.ring_frames)


def _writer_options(settings: Settings) -> WriterOptions:
    return WriterOptions(
        flush_seconds=settings.recording_flush_seconds,
        fsync=settings.recording_fsync,
        fsync_seconds=settings.recording_fsync_seconds,
        retry_seconds=settings.recording_retry_seconds,
        max_pending_bytes=int(settings.recording_max_pending_mb * 1024 * 1024),
        summary_seconds=settings.recording_summary_seconds,
        spill_dir=settings.state_dir / "unwritten",
        idle_close_seconds=settings.recording_idle_close_seconds,
    )


def make_replays(
    settings: Settings, broadcaster: Broadcaster, registry: SessionRegistry, race: RaceOptions | None = None
) -> ReplayManager:
    return ReplayManager(
        race_options=race or RaceOptions(),
        recordings_dir=settings.recordings_dir,
        broadcaster=broadcaster,
        options=ReplayOptions(
            history_seconds=settings.replay_history_seconds,
            history_frames=settings.replay_history_frames,
            state_interval=settings.replay_state_interval,
            follow_interval=settings.replay_follow_interval,
        ),
        max_replays=settings.replay_max_concurrent,
        idle_seconds=settings.replay_idle_seconds,
        use_sidecar=settings.replay_index_sidecar,
        is_live=lambda recording_id: _is_live(registry, recording_id),
    )


def _is_live(registry: SessionRegistry, session_id: str) -> bool:
    """A recording whose session has a publisher here is still growing: replays follow it."""
    session = registry.get(session_id)
    return session is not None and session.publisher_sid is not None
