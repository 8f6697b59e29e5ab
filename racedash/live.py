"""The live Socket.IO events: thin handlers over the session registry.

Every event is answered with an ack (``{"ok": true, ...}`` or
``{"ok": false, "error": code, "message": ...}``); a client that did not ask
for one (the real monitor) simply never sees it. Errors are translated here,
once, in :meth:`LiveNamespace.trigger_event`: no exception escapes to
python-socketio, so one bad client never costs another anything.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Mapping, Protocol

import socketio


from racedash.broadcast import Broadcaster
from racedash.ids import new_session_id
from racedash.errors import InternalError, InvalidPayload, LimitExceeded, RacedashError
from racedash.history import HistoryOptions, SessionHistory
from racedash.limits import ConnectionLimits
from racedash.logbudget import RefusalLog
from racedash.metrics import MetricsHooks, NoMetrics
from racedash.rights import PublishRights
from racedash.racefeed import RaceFeed
from racedash.sessions import SETUP, TELEMETRY, Frame, Session, SessionRegistry
from racedash.validation import Validators, recordable_payload
from racedash.wire import EVENT_OF_KIND, frame_message

if TYPE_CHECKING:
    from racedash.cluster import Cluster

log = logging.getLogger(__name__)

Handler = Callable[[str, Any], Awaitable[dict]]
HistorySource = Callable[[Session, int], Awaitable["list[Frame] | None"]]


class RoomExtension(Protocol):
    """Rooms served by another engine under ids shaped like session ids (replays).

    ``join``/``leave`` return None for an id that is not theirs, and the live
    session handling goes on; ``handlers`` adds the extension's own events.
    """

    handlers: Mapping[str, Handler]

    def bind(self, namespace: "LiveNamespace") -> None: ...

    async def join(self, sid: str, room_id: str, payload: dict) -> dict | None: ...

    async def leave(self, sid: str, room_id: str) -> dict | None: ...

    async def disconnect(self, sid: str) -> None: ...


class LiveNamespace(socketio.AsyncNamespace):
    def __init__(
        self,
        *,
        registry: SessionRegistry,
        broadcaster: Broadcaster,
        validators: Validators,
        rights: PublishRights,
        limits: ConnectionLimits,
        viewers_per_session: int = 2000,
        max_setup_bytes: int = 524_288,
        public_url: str = "",
        history: SessionHistory | None = None,
        namespace: str = "/",
        extension: RoomExtension | None = None,
        race: RaceFeed | None = None,
        refusals: RefusalLog | None = None,
        metrics: "MetricsHooks | None" = None,
        cluster: "Cluster | None" = None,
    ) -> None:
        super().__init__(namespace)
        self.metrics = metrics or NoMetrics()
        self.cluster = cluster  # several processes on Redis: who writes a session, and its frames to the others
        self.registry = registry
        self.race = race
        self.refusals = refusals or RefusalLog(log)
        self.history = history or SessionHistory(HistoryOptions())
        self.broadcaster = broadcaster
        self.validators = validators
        self.rights = rights
        self.limits = limits
        self.viewers_per_session = viewers_per_session
        self.max_setup_bytes = max_setup_bytes
        self.public_url = public_url.rstrip("/")
        self._base_urls: dict[str, str] = {}
        self._auth_tokens: dict[str, str] = {}
        self._handlers: dict[str, Handler] = {
            "request_session_id": self.request_session_id,
            "setup_data": self.setup_data,
            "telemetry_update": self.telemetry_update,
            "join_session": self.join_session,
            "leave_session": self.leave_session,
            "race_strategy": self.race_strategy,
        }
        self.extension = extension
        if extension is not None:
            self._handlers.update({k: v for k, v in extension.handlers.items() if k not in self._handlers})
            extension.bind(self)

    # -- dispatch -------------------------------------------------------------
    async def trigger_event(self, event: str, *args: Any) -> Any:
        if event == "connect":
            return self.on_connect(*args[:3])
        if event == "disconnect":
            return await self.on_disconnect(args[0])
        sid, payloads = args[0], args[1:]
        handler = self._handlers.get(event)
        try:
            self.limits.check_event(sid)
            if handler is None:
                raise RacedashError(f"unknown event {event!r}", code="unknown_event")
            if len(payloads) > 1:
                raise InvalidPayload(f"{event} takes one payload object, got {len(payloads)} arguments")
            return await handler(sid, payloads[0] if payloads else None)
        except RacedashError as exc:
            self.metrics.on_refusal(exc.code)
            self.refusals.refused(sid, exc.code, "%s from %s refused: %s: %s", str(event)[:40], sid, exc.code, exc.message)
            return exc.to_ack()
        except Exception:  # noqa: BLE001 - a bug must cost one error ack, never the connection
            self.metrics.on_refusal("internal_error")
            self.refusals.refused(sid, "internal_error", "%s from %s failed", str(event)[:40], sid, exc_info=True)
            return InternalError("the server failed to handle this event").to_ack()

    def on_connect(self, sid: str, environ: dict, auth: Any = None) -> None:
        self.limits.bind(sid, environ.get("REMOTE_ADDR"))
        # The team key a monitor's server URL may carry (?team=KEY) arrives in the handshake's query.
        self.rights.bind(sid, environ.get("REMOTE_ADDR"), environ.get("QUERY_STRING"))
        host = environ.get("HTTP_HOST")
        scheme = environ.get("wsgi.url_scheme", "http")
        self._base_urls[sid] = self.public_url or (f"{scheme}://{host}" if host else "")
        # A monitor may prove it is a session's publisher once, at connect time.
        if isinstance(auth, dict) and isinstance(auth.get("publish_token"), str):
            self._auth_tokens[sid] = auth["publish_token"]

    def base_url(self, sid: str) -> str:
        """The server's base URL as this client reached it (for dashboard links)."""
        return self._base_urls.get(sid, self.public_url)

    async def on_disconnect(self, sid: str) -> None:
        self._base_urls.pop(sid, None)
        self._auth_tokens.pop(sid, None)
        self.limits.forget(sid)
        self.refusals.forget(sid)
        self.rights.forget(sid)
        if self.extension is not None:
            await self.extension.disconnect(sid)
        for session in self.registry.forget_connection(sid):
            log.info("publisher of session %s disconnected", session.id[:8])
            if self.race is not None:
                await self.race.publisher_gone(session.id)
            if self.cluster is not None:
                await self.cluster.publisher_gone(session)

    # -- monitor events -------------------------------------------------------
    async def request_session_id(self, sid: str, payload: Any) -> dict:
        if payload is not None and not isinstance(payload, dict):
            raise InvalidPayload("request_session_id payload must be an object or absent")
        team = self.rights.team_for_new_session(sid)
        session_id = new_session_id()
        self.limits.check_new_session(sid, session_id)
        session = self.registry.create(publisher_sid=sid, session_id=session_id)
        session.team = team
        self.rights.claimed(session, sid)
        assigned = {
            "session_id": session.id,
            "dashboard_url": f"{self._base_urls.get(sid, self.public_url)}/dashboard/{session.id}",
            "publish_token": session.publish_token,
        }
        await self.broadcaster.to_client(sid, "session_id_assigned", assigned)
        return {"ok": True, **assigned}

    async def setup_data(self, sid: str, payload: Any) -> dict:
        return await self._publish(sid, SETUP, self.validators.setup_data(payload), self.max_setup_bytes)

    async def telemetry_update(self, sid: str, payload: Any) -> dict:
        return await self._publish(sid, TELEMETRY, self.validators.telemetry_update(payload))

    async def _publish(self, sid: str, kind: str, payload: dict, max_bytes: int | None = None) -> dict:
        # Never recorded: whoever can read a recording must not be able to publish.
        self.rights.check_team_key(sid)  # a bad or missing team key: refused before any work
        token = payload.pop("publish_token", None) or self._auth_tokens.get(sid)
        data_json, tail_at = recordable_payload(kind, payload)
        if max_bytes is not None and len(data_json) > max_bytes:
            raise LimitExceeded(f"{kind} larger than {max_bytes} bytes")
        session_id = self.validators.session_id_of(payload)
        self.limits.check_new_session(sid, session_id)
        session = await self.registry.take_up(session_id)
        self.rights.check(session, sid, token)
        if session.publisher_sid != sid:
            self.rights.claimed(session, sid)
        if self.cluster is not None:
            await self.cluster.claim(session)  # one writer per session: this process, from now on
        frame = self.registry.publish(session, kind, payload, sid, data_json, tail_at)
        self.metrics.on_frame(kind)
        race_events = self.race.feed(session, frame, payload) if self.race is not None else []
        # Additive on telemetry: the race model's strategy as of this frame.
        race = self.race.frame_summary(session.id) if kind == TELEMETRY and self.race is not None else None
        message = frame_message(session.id, frame, race)
        if self.cluster is not None:
            await self.cluster.publish_frame(session, frame, message)  # acknowledged once Redis has it too
        else:
            await self.broadcaster.room_message(session.id, EVENT_OF_KIND[kind], message)
        if race_events:
            await self.race.announce(session.id, race_events)  # type: ignore[union-attr]
        return {"ok": True, "seq": frame.seq}

    # -- dashboard events -----------------------------------------------------
    async def join_session(self, sid: str, payload: Any) -> dict:
        payload = self.validators.join_session(payload)
        session_id = self.validators.session_id_of(payload)
        self.limits.check_join(sid)
        if self.extension is not None and (ack := await self.extension.join(sid, session_id, payload)) is not None:
            self.rights.mark_viewer(sid)
            return ack
        session = await self.registry.take_up(session_id)
        if sid not in session.viewer_sids and len(session.viewer_sids) >= self.viewers_per_session:
            raise LimitExceeded(f"this session already has {self.viewers_per_session} viewers")
        self.rights.mark_viewer(sid)
        last_seq = payload.get("last_seq")
        joined = await self.history.join(
            session,
            last_seq,
            send=lambda event, message: self.broadcaster.client_message(sid, event, message),
            enter=lambda: self.enter_room(sid, session.id),
        )
        if self.race is not None:
            await self.race.send_on_join(session.id, sid, last_seq if joined.missed is not None else None, joined.seq)
        self.registry.add_viewer(session, sid)
        ack = {
            "ok": True,
            "session_id": session.id,
            "seq": joined.seq,
            "has_setup": session.setup is not None,
            "has_telemetry": session.telemetry is not None,
        }
        if last_seq is not None:
            # Additive: how many missed frames were sent, or null when the state was sent instead.
            ack["missed"] = joined.missed
        return ack

    async def race_strategy(self, sid: str, payload: Any) -> dict:
        """The strategy toward a target the engineer types (laps, or seconds of racing left), as of now.

        Viewing rights (the session id) are enough: it is what the room already shows, aimed at a target.
        """
        payload = self.validators.race_strategy(payload)
        session_id = self.validators.session_id_of(payload)
        if self.race is None or self.registry.get(session_id) is None:
            raise RacedashError("no live session with this id on this server", code="unknown_session")
        strategy = self.race.model(session_id).strategy(
            target_laps=payload.get("target_laps"), target_seconds=payload.get("target_seconds")
        )
        return {"ok": True, "session_id": session_id, "strategy": strategy}

    async def leave_session(self, sid: str, payload: Any) -> dict:
        payload = self.validators.join_session(payload)
        session_id = self.validators.session_id_of(payload)
        if self.extension is not None and (ack := await self.extension.leave(sid, session_id)) is not None:
            return ack
        await self.leave_room(sid, session_id)
        session = self.registry.get(session_id)
        if session is not None:
            session.viewer_sids.discard(sid)
        return {"ok": True}
