"""The replay Socket.IO events, plugged into the live namespace as its room extension.

``replay_start``, ``replay_control`` and ``timeshift_start`` are thin: they
validate, call the :class:`ReplayManager` and return an ack (errors are
translated to error acks by the live namespace's dispatcher). Joining a replay
uses the ordinary ``join_session`` with the replay id: the live namespace asks
:meth:`ReplayEvents.join` first.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Mapping

import socketio

from racedash.auth import ADMIN, Principal, TeamAccess
from racedash.errors import InvalidPayload, InvalidSessionId, LimitExceeded
from racedash.ids import parse_session_id
from racedash.replay.errors import InvalidControl, TeamAccessRequired, UnknownRecording, UnknownReplay
from racedash.replay.manager import ReplayManager
from racedash.replay.player import ACTIONS, Replay
from racedash.replay.timing import MAX_SPEED, MIN_SPEED
from racedash.validation import PayloadValidator

if TYPE_CHECKING:
    from racedash.cluster.replays import ReplayDirectory
    from racedash.live import Handler, LiveNamespace

_NUMBER = {"type": "number"}

REPLAY_START_SCHEMA: dict = {
    "type": "object",
    "required": ["recording_id"],
    "properties": {
        "recording_id": {"type": "string"},
        "paused": {"type": "boolean"},
        "time": _NUMBER,
        "speed": _NUMBER,
    },
}

REPLAY_CONTROL_SCHEMA: dict = {
    "type": "object",
    "required": ["replay_id", "action"],
    "properties": {
        "replay_id": {"type": "string"},
        "action": {"enum": sorted(ACTIONS)},
        "time": _NUMBER,
        "lap": {"type": "integer"},
        "speed": _NUMBER,
    },
}

# The REST control body: the same, the replay id being in the URL.
CONTROL_BODY_SCHEMA: dict = {
    **REPLAY_CONTROL_SCHEMA,
    "required": ["action"],
}

TIMESHIFT_START_SCHEMA: dict = {
    "type": "object",
    "required": ["session_id"],
    "properties": {
        "session_id": {"type": "string"},
        "time": _NUMBER,
        "back": _NUMBER,
        "speed": _NUMBER,
        "paused": {"type": "boolean"},
    },
}

# Where a time-shift starts when the viewer gives no time: this far behind live.
DEFAULT_TIMESHIFT_BACK = 60.0


class ReplayValidators:
    def __init__(self) -> None:
        self.replay_start = PayloadValidator(REPLAY_START_SCHEMA, "replay_start")
        self.replay_control = PayloadValidator(REPLAY_CONTROL_SCHEMA, "replay_control")
        self.control_body = PayloadValidator(CONTROL_BODY_SCHEMA, "replay control")
        self.timeshift_start = PayloadValidator(TIMESHIFT_START_SCHEMA, "timeshift_start")


def check_speed(speed: Any) -> float:
    if speed is None:
        return 1.0
    if not (MIN_SPEED <= speed <= MAX_SPEED):
        raise InvalidControl(f"speed must be between {MIN_SPEED} and {MAX_SPEED}")
    return float(speed)


async def apply_control(replay: Replay, payload: dict) -> dict:
    """A validated control payload applied to a replay; the new state."""
    return await replay.control(
        payload["action"], time=payload.get("time"), lap=payload.get("lap"), speed=payload.get("speed")
    )


def dashboard_url(base_url: str, replay_id: str) -> str:
    return f"{base_url}/dashboard/{replay_id}"


# The team a recording belongs to (RecordingStore.team_of): None for none, or a missing one.
OwnerOf = Callable[[str], Awaitable["str | None"]]


async def no_owner(recording_id: str) -> str | None:
    return None


async def may_replay(principal: Principal, recording_id: object, owner_of: OwnerOf) -> bool:
    """Whether this login may replay the recording: the admin any, a team its own.

    A malformed id is not judged here: the manager refuses it as it does for everyone.
    """
    if principal.admin:
        return True
    try:
        canonical = parse_session_id(recording_id)
    except InvalidSessionId:
        return True
    return principal.sees(await owner_of(canonical))


def unknown_recording(recording_id: object) -> UnknownRecording:
    """What replaying another team's recording answers: word for word what a missing one does
    (racedash.replay.reader), so the answer never confirms that it exists."""
    return UnknownRecording(f"no recording {parse_session_id(recording_id)}")


class ReplayEvents:
    """The live namespace's room extension for replays (see racedash.live.RoomExtension)."""

    def __init__(
        self,
        manager: ReplayManager,
        sio: socketio.AsyncServer,
        *,
        access: TeamAccess | None = None,
        max_viewers: int = 2000,
        namespace: str = "/",
        owner_of: OwnerOf = no_owner,
    ) -> None:
        self.manager = manager
        self._owner_of = owner_of
        self.validators = ReplayValidators()
        self.max_viewers = max_viewers
        self._access = access
        self._sio = sio
        self._namespace = namespace
        self._live: "LiveNamespace | None" = None
        self.elsewhere: "ReplayDirectory | None" = None  # several processes: replays other processes run
        self.handlers: Mapping[str, "Handler"] = {
            "replay_start": self.replay_start,
            "replay_control": self.replay_control,
            "timeshift_start": self.timeshift_start,
        }

    def bind(self, namespace: "LiveNamespace") -> None:
        self._live = namespace

    def _base_url(self, sid: str) -> str:
        return self._live.base_url(sid) if self._live is not None else ""

    async def _enter_room(self, sid: str, room: str) -> None:
        await self._sio.enter_room(sid, room, namespace=self._namespace)

    def _principal(self, sid: str) -> Principal | None:
        """Who this connection logged in as: the team cookie on the Socket.IO handshake (None: nobody)."""
        if self._access is None:
            return ADMIN
        environ = self._sio.get_environ(sid, namespace=self._namespace) or {}
        return self._access.principal_of_environ(environ)

    def _check_team(self, sid: str) -> Principal:
        """Replaying a recording needs team access."""
        principal = self._principal(sid)
        if principal is None:
            raise TeamAccessRequired("replaying a recording needs team access: log in at /login first")
        return principal

    # -- events -----------------------------------------------------------------
    async def replay_start(self, sid: str, payload: Any) -> dict:
        payload = self.validators.replay_start(payload)
        principal = self._check_team(sid)
        if not await may_replay(principal, payload["recording_id"], self._owner_of):
            raise unknown_recording(payload["recording_id"])
        replay = await self.manager.start(
            payload["recording_id"],
            paused=payload.get("paused", False),
            position=payload.get("time"),
            speed=check_speed(payload.get("speed")),
        )
        return {
            "ok": True,
            "replay_id": replay.id,
            "dashboard_url": dashboard_url(self._base_url(sid), replay.id),
            "state": replay.state(),
        }

    async def replay_control(self, sid: str, payload: Any) -> dict:
        payload = self.validators.replay_control(payload)
        try:
            replay = self.manager.get(payload["replay_id"])
        except UnknownReplay:
            if self.elsewhere is not None:
                replay_id = parse_session_id(payload["replay_id"])
                if (answer := await self.elsewhere.control(sid, replay_id, payload)) is not None:
                    return answer  # run by another process, which answered
            raise
        return {"ok": True, "state": await apply_control(replay, payload)}

    async def timeshift_start(self, sid: str, payload: Any) -> dict:
        """Replay a live session's growing recording from an earlier point.

        Like viewing, this needs only the session's id (its secret): viewers
        of a live session may look back at it without team access. Another
        team's login is such a viewer too, and its session's finished
        recording is, to it, no recording at all.
        """
        payload = self.validators.timeshift_start(payload)
        session_id = payload["session_id"]
        principal = self._principal(sid)
        team = principal is not None and await may_replay(principal, session_id, self._owner_of)
        if not team and not self.manager.is_live(session_id):
            if principal is not None:
                raise unknown_recording(session_id)
            # Time-shift is for a live session; a finished recording is the team's to replay.
            raise TeamAccessRequired("time-shift of a session with no live publisher needs team access")
        replay = await self.manager.start(
            session_id, paused=True, speed=check_speed(payload.get("speed")), anonymous=not team
        )
        if "time" in payload:
            position = payload["time"]
        else:
            back = payload.get("back", DEFAULT_TIMESHIFT_BACK)
            if not math.isfinite(back) or back < 0:
                raise InvalidPayload("timeshift_start: back must be a positive number of seconds")
            position = replay.duration - back
        await replay.seek(position)
        if not payload.get("paused", False):
            await replay.play()
        return {
            "ok": True,
            "replay_id": replay.id,
            "dashboard_url": dashboard_url(self._base_url(sid), replay.id),
            "session_id": replay.recording_id,  # the caller's own: it sent it
            "state": replay.state(),
        }

    # -- rooms ------------------------------------------------------------------
    async def join(self, sid: str, room_id: str, payload: dict) -> dict | None:
        replay = self.manager.find(room_id)
        if replay is None:
            # Perhaps run by another process of this deployment: it sends the state, and frames follow.
            return await self.elsewhere.join(sid, room_id) if self.elsewhere is not None else None
        if sid not in replay.viewers and len(replay.viewers) >= self.max_viewers:
            raise LimitExceeded(f"this replay already has {self.max_viewers} viewers")
        # A replay always sends its full state on join: last_seq (recorded seqs) does not apply.
        state = await replay.join(sid, self._enter_room)
        self.manager.viewer_joined(replay)
        return {"ok": True, "session_id": replay.id, "replay": True, "state": state}

    async def leave(self, sid: str, room_id: str) -> dict | None:
        replay = self.manager.find(room_id)
        if replay is None:
            if self.elsewhere is not None and self.elsewhere.leave(sid, room_id):
                await self._sio.leave_room(sid, room_id, namespace=self._namespace)
                return {"ok": True}
            return None
        await self._sio.leave_room(sid, room_id, namespace=self._namespace)
        self.manager.viewer_left(replay, sid)
        return {"ok": True}

    async def disconnect(self, sid: str) -> None:
        self.manager.forget_connection(sid)
        if self.elsewhere is not None:
            self.elsewhere.forget_connection(sid)
