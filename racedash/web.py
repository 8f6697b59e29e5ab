"""HTTP handlers: pages and JSON endpoints. Dependencies arrive via initialize()."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

import orjson
import tornado.escape
import tornado.web

from racedash import __version__
from racedash.config import Settings, SettingsError
from racedash.auth import COOKIE_DAYS, COOKIE_NAME, LoginThrottle, Principal, TeamAccess, same_origin_path
from racedash.errors import InvalidSessionId, RacedashError
from racedash.ids import parse_session_id
from racedash.inlinecss import InlineStylesheet
from racedash.pagefields import BLANK_VIEW, PREFS_COOKIE, DisplayPrefs, first_view
from racedash.pagestate import DashboardState
from racedash.sessions import SessionRegistry
from racedash.socketserver import NODE_NAME


class ServerStatus:
    """What the status page and /healthz report; never a session id."""

    def __init__(self, registry: SessionRegistry, clock=time.time) -> None:
        self.registry = registry
        self.started = clock()
        self._clock = clock
        self.problems: dict[str, str] = {}
        self.gate = None  # the server's ConnectionGate, once it listens
        self.recordings_dir: Path | None = None  # set when recording is on: it must stay writable
        self.draining = False  # set on SIGTERM: load balancers stop sending new clients here
        # Several processes: whether Redis is reachable. Down is degraded, not unready: every
        # process still serves its own publishers and viewers, so none is taken out of rotation.
        self.redis_up: Callable[[], bool] | None = None

    def ready(self) -> bool:
        """Fit for new clients: not draining, no reported problem, the recordings directory writable."""
        if self.draining or self.problems:
            return False
        if self.recordings_dir is None:
            return True
        return self.recordings_dir.is_dir() and os.access(self.recordings_dir, os.W_OK | os.X_OK)

    def snapshot(self) -> dict[str, Any]:
        redis = None if self.redis_up is None else ("up" if self.redis_up() else "down")
        return {
            "status": "degraded" if self.problems or redis == "down" else "ok",
            "redis": redis,
            "live": True,
            "ready": self.ready(),
            "version": __version__,
            "uptime_seconds": round(self._clock() - self.started, 1),
            "live_sessions": len(self.registry),
            "viewers": self.registry.viewer_count(),
            "problems": sorted(self.problems.values()),
            "connections": self.gate.total if self.gate is not None else None,
        }


# Pages load only this server's scripts, styles and sockets, and nobody may frame them (clickjacking).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


class BaseHandler(tornado.web.RequestHandler):
    def set_default_headers(self) -> None:
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("X-Frame-Options", "DENY")
        self.set_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)

    def write_json(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(orjson.dumps(data))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        message = exc.message if isinstance(exc, RacedashError) else self._reason
        if self.request.path.startswith(("/api/", "/healthz")):
            code = exc.code if isinstance(exc, RacedashError) else f"http_{status_code}"
            self.write_json({"ok": False, "error": code, "message": message}, status_code)
            return
        self.render("error.html", status_code=status_code, message=message)

    def _handle_request_exception(self, e: BaseException) -> None:
        # Typed errors become their own status instead of a logged 500.
        if isinstance(e, RacedashError) and not self._finished:
            self.send_error(e.http_status, exc_info=(type(e), e, e.__traceback__))
            return
        super()._handle_request_exception(e)


class NotFoundHandler(BaseHandler):
    def prepare(self) -> None:
        raise tornado.web.HTTPError(404)


class StatusPageHandler(BaseHandler):
    def initialize(self, status: ServerStatus, access: TeamAccess) -> None:
        self.status = status
        self.access = access

    def get(self) -> None:
        self.render("status.html", status=self.status.snapshot(), team=self.access.is_team_request(self))


class HealthHandler(BaseHandler):
    def initialize(self, status: ServerStatus) -> None:
        self.status = status

    def get(self) -> None:
        snapshot = self.status.snapshot()
        self.write_json(snapshot)


class LivenessHandler(BaseHandler):
    """``/healthz/live`` for load balancers and systemd: 200 while the process answers at all."""

    def get(self) -> None:
        self.write_json({"live": True})


class ReadinessHandler(BaseHandler):
    """``/healthz/ready``: 200 when this process should get new clients, else 503 with the reasons."""

    def initialize(self, status: ServerStatus) -> None:
        self.status = status

    def get(self) -> None:
        ready = self.status.ready()
        reasons = sorted(self.status.problems.values())
        if self.status.draining:
            reasons.append("shutting down")
        elif not ready and not reasons:
            reasons.append("the recordings directory is not writable")
        self.write_json({"ready": ready, "problems": reasons}, 200 if ready else 503)


def _window(settings: Settings, name: str) -> list[float]:
    raw = getattr(settings, name)
    try:
        low, high = (float(part) for part in raw.split(":"))
    except ValueError:
        raise SettingsError(f"invalid value {raw!r} for {name} (expected LOW:HIGH)") from None
    if low > high:
        raise SettingsError(f"invalid value {raw!r} for {name} (LOW is above HIGH)")
    return [low, high]


def ui_config(settings: Settings) -> dict[str, Any]:
    """What the dashboard's scripts are told about thresholds (rendered into the page)."""
    return {
        "tyre_temp": _window(settings, "ui_tyre_temp_window"),
        "tyre_pressure": _window(settings, "ui_tyre_pressure_window"),
        "brake_temp": _window(settings, "ui_brake_temp_window"),
        "water_temp": _window(settings, "ui_water_temp_window"),
        "tyre_wear": _window(settings, "ui_tyre_wear_window"),
        "low_fuel_laps": settings.ui_low_fuel_laps,
        "stale_seconds": settings.ui_stale_seconds,
    }


def secret_session_page(handler: tornado.web.RequestHandler, raw_id: str) -> str:
    """The session id of a dashboard URL (404 when it is none), with the headers of a response that
    is as secret as that URL: never cached, never named in a Referer."""
    try:
        session_id = parse_session_id(raw_id)
    except InvalidSessionId:
        raise tornado.web.HTTPError(404, reason="No such dashboard") from None
    handler.set_header("Referrer-Policy", "no-referrer")  # the URL is the session's secret
    handler.set_header("Cache-Control", "no-store")  # and so is the state it shows
    return session_id


class DashboardHandler(BaseHandler):
    """A session's dashboard (or a replay room's: same page). A live session's page is written with
    its latest values and asks for the rest of its state while it is parsed (DashboardStateHandler),
    shown before the socket connects; the page is as secret as its URL: never cached, never named
    in a Referer."""

    def initialize(self, stylesheet: InlineStylesheet, ui_config: dict[str, Any] | None = None,
                   page_state: DashboardState | None = None,
                   writer_node: Callable[[str], Awaitable[str | None]] | None = None) -> None:
        self.ui_config = ui_config or {}
        # Written into the page: its first frame then waits for one response (racedash.inlinecss).
        self.stylesheet = stylesheet
        self.page_state = page_state
        # Several processes: names the process that writes the session (racedash.cluster.node).
        self.writer_node = writer_node

    async def get(self, raw_id: str) -> None:
        session_id = secret_session_page(self, raw_id)
        node = await self.writer_node(session_id) if self.writer_node is not None else None
        if node is not None and not NODE_NAME.fullmatch(node):
            node = None  # not a name the load balancer routes on
        # Without the history: the page needs only the latest values (the state request brings the rest).
        # Read before the next await: the race model's rows in ``state`` are live lists.
        state = await self.page_state.build(session_id, with_history=False) if self.page_state is not None else None
        prefs = DisplayPrefs.from_cookie(self.get_cookie(PREFS_COOKIE))
        view = first_view(state, self.ui_config, prefs) if state is not None else None
        state_url = f"/dashboard/{session_id}/state" if state is not None else None
        self.render("dashboard.html", session_id=session_id, mode="live", ui_config=self.ui_config, state_url=state_url,
                    view=view or BLANK_VIEW, prefs=prefs, node=node,
                    inline_css=self.stylesheet.text)


class DashboardStateHandler(BaseHandler):
    """What a join without ``last_seq`` sends, as of one ``seq`` (racedash.pagestate): the dashboard
    page asks for it while it is parsed. As secret as the page: never cached, never in a Referer."""

    def initialize(self, page_state: DashboardState) -> None:
        self.page_state = page_state

    async def get(self, raw_id: str) -> None:
        session_id = secret_session_page(self, raw_id)
        state = await self.page_state.build(session_id)
        body = DashboardState.encode(session_id, state)  # before the next await (live lists)
        if body is None:
            raise tornado.web.HTTPError(404, reason="No state here: join for it")
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(body)


class StaticHandler(tornado.web.StaticFileHandler):
    """Static files. A URL with the file's current version (``static_url``'s ``?v=``) is cached for a
    year and never revalidated; any other (a stale ``v``, or a module's own ``import "./x.js"``) is
    revalidated on every use (ETag), so a browser never runs one version's module with another's."""

    CACHE_MAX_AGE = 86400 * 365  # Tornado's Expires header says the same
    LONG_CACHE = f"public, max-age={CACHE_MAX_AGE}, immutable"

    def _versioned(self) -> bool:
        version = self.get_query_argument("v", None)
        return version is not None and version == self.get_version(self.settings, self.path)

    def get_cache_time(self, path: str, modified: Any, mime_type: str) -> int:
        return self.CACHE_MAX_AGE if self._versioned() else 0

    def set_extra_headers(self, path: str) -> None:
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Cache-Control", self.LONG_CACHE if self._versioned() else "no-cache")




class LoginHandler(BaseHandler):
    """Exchanges the team token for a signed cookie (GET with ?token= from the printed URL, or the form)."""

    def initialize(self, access: TeamAccess, throttle: LoginThrottle, secure_cookies: bool = False) -> None:
        self.access = access
        self.throttle = throttle
        self.secure_cookies = secure_cookies

    def get(self) -> None:
        token = self.get_query_argument("token", None)
        if token is None:
            self.render("login.html", error=None, next_url=self._next_url())
        else:
            self._login(token)

    def post(self) -> None:
        self._login(self.get_body_argument("token", ""))

    def _login(self, token: str) -> None:
        address = self.request.remote_ip or ""
        if self.throttle.blocked(address):
            self.set_status(429)
            self.render("login.html", error="Too many failed attempts: wait a minute.", next_url=self._next_url())
            return
        principal = self.access.login(token)  # the admin token, or a team's login token
        if principal is None:
            self.throttle.failed(address)
            self.set_status(403)
            self.render("login.html", error="That team token is not valid.", next_url=self._next_url())
            return
        self.set_signed_cookie(
            COOKIE_NAME,
            self.access.cookie_for(principal),
            expires_days=COOKIE_DAYS,
            httponly=True,
            samesite="Lax",
            secure=self.secure_cookies or self.request.protocol == "https",
        )
        self.redirect(self._next_url())

    def _next_url(self) -> str:
        return same_origin_path(self.get_argument("next", None), "/recordings")


class TeamHandler(BaseHandler):
    """Base for everything that needs team access (recordings, downloads, replays, deletions)."""

    def initialize(self, access: TeamAccess, **deps: Any) -> None:
        self.access = access
        for name, value in deps.items():
            setattr(self, name, value)

    principal: Principal  # who is logged in: what they may see (racedash.auth)

    def prepare(self) -> None:
        principal = self.access.principal(self)
        if principal is not None:
            self.principal = principal
            return
        if self.request.path.startswith("/api/"):
            raise tornado.web.HTTPError(401, reason="Team login required")
        self.redirect(f"/login?next={tornado.escape.url_escape(self.request.uri)}")

    def check_xsrf_cookie(self) -> None:
        # A bearer token is not sent by browsers on their own, so it cannot be forged cross-site.
        header = self.request.headers.get("Authorization", "")
        if header.startswith("Bearer ") and self.access.is_token(header[len("Bearer "):]):
            return
        super().check_xsrf_cookie()


class RecordingsPageHandler(TeamHandler):
    """The recordings list (team only); its rows come from GET /api/recordings in the page's script."""

    def get(self) -> None:
        self.render("recordings.html", scope=self.access.scope_label(self.principal))
