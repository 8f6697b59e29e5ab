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
import tornado.websocket

from racedash import paths
from racedash.auth import TeamAccess
from racedash.broadcast import Broadcaster
from racedash.config import Settings
from racedash.fanout import make_broadcaster
from racedash.keys import derive, load_or_create_secret
from racedash.limits import ConnectionLimits
from racedash.live import LiveNamespace
from racedash.rights import PublishRights
from racedash.sessions import SessionRegistry
from racedash.validation import Validators
from racedash.web import (
    DashboardHandler,
    HealthHandler,
    LoginHandler,
    NotFoundHandler,
    ServerStatus,
    StatusPageHandler,
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
    tasks: set[asyncio.Task] = field(default_factory=set)

    def start_background(self) -> None:
        """Start the periodic jobs; call once the event loop runs."""
        self._own(asyncio.create_task(self._reap_idle_sessions(), name="racedash-reaper"))

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

    async def close(self) -> None:
        """Disconnect every client and stop background work."""
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.sio.shutdown()


def _cors_origins(settings: Settings) -> list[str] | None:
    origins = [o.strip() for o in settings.cors_origins.split(",") if o.strip()]
    # None lets engine.io accept only the server's own origin.
    return origins or None


def make_app(settings: Settings) -> Racedash:
    sio = socketio.AsyncServer(
        async_mode="tornado",
        max_http_buffer_size=settings.max_message_bytes,
        cors_allowed_origins=_cors_origins(settings),
        logger=False,
        engineio_logger=False,
    )
    secret = load_or_create_secret(settings.secret, settings.recordings_dir)
    rights = PublishRights(derive(secret, "publish-token"), settings.publish_auth)
    access = TeamAccess(settings.team_token, derive(secret, "team-cookie"))
    registry = SessionRegistry(token_for=rights.token_for)
    broadcaster = make_broadcaster(sio, settings)
    status = ServerStatus(registry)
    limits = ConnectionLimits(
        events_per_second=settings.events_per_second,
        event_burst=settings.event_burst,
        sessions_per_connection=settings.sessions_per_connection,
    )
    sio.register_namespace(
        LiveNamespace(
            registry=registry,
            broadcaster=broadcaster,
            validators=Validators(),
            rights=rights,
            limits=limits,
            viewers_per_session=settings.viewers_per_session,
            max_setup_bytes=settings.max_setup_bytes,
            public_url=settings.public_url,
        )
    )
    deps = {"status": status}
    web = tornado.web.Application(
        [
            (r"/", StatusPageHandler, deps),
            (r"/healthz", HealthHandler, deps),
            (r"/login", LoginHandler, {"access": access}),
            (r"/dashboard/([^/]+)", DashboardHandler),
            (r"/socket.io/", _socketio_handler(sio, _cors_origins(settings))),
        ],
        template_path=str(paths.templates_dir()),
        static_path=str(paths.static_dir()),
        default_handler_class=NotFoundHandler,
        websocket_max_message_size=settings.max_message_bytes,
        compress_response=True,
        cookie_secret=access.cookie_secret,
        xsrf_cookies=True,
    )
    return Racedash(
        settings=settings,
        web=web,
        sio=sio,
        registry=registry,
        broadcaster=broadcaster,
        status=status,
        access=access,
        rights=rights,
    )


def _socketio_handler(sio: socketio.AsyncServer, origins: list[str] | None) -> type:
    base = socketio.get_tornado_handler(sio)

    class SocketIOHandler(base):  # type: ignore[misc, valid-type]
        def check_origin(self, origin: str) -> bool:
            # engine.io's Tornado driver accepts any origin on the WebSocket
            # handshake when none are configured and refuses only after the
            # upgrade, leaving the client hanging: refuse at the handshake.
            if origins is not None:
                return origin in origins
            return tornado.websocket.WebSocketHandler.check_origin(self, origin)

        def check_xsrf_cookie(self) -> None:
            # Engine.IO's polling POSTs carry no XSRF token; CSRF does not
            # apply: they act only on the session the handshake opened, and
            # cross-origin handshakes are refused by the CORS setting.
            return None

    return SocketIOHandler
