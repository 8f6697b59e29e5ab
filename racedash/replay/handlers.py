"""The replay REST endpoints (docs/protocol.md, "Replay"). Errors become JSON with their status.

They need team access (docs/security.md): the team cookie (with the XSRF
token on POSTs) or ``Authorization: Bearer <team token>``. A team may replay
and control only its own recordings: another team's answers 404 as a missing
one does.
"""

from __future__ import annotations

from typing import Any

import orjson

from racedash.errors import InvalidPayload, InvalidSessionId
from racedash.ids import parse_session_id
from racedash.replay.errors import UnknownReplay
from racedash.replay.events import (
    OwnerOf,
    ReplayValidators,
    apply_control,
    check_speed,
    dashboard_url,
    may_replay,
    no_owner,
    unknown_recording,
)
from racedash.replay.manager import ReplayManager
from racedash.replay.player import Replay
from racedash.auth import TeamAccess
from racedash.web import TeamHandler


class ReplayApiHandler(TeamHandler):
    manager: ReplayManager
    validators: ReplayValidators
    public_url: str
    owner_of: OwnerOf

    def base_url(self) -> str:
        return self.public_url.rstrip("/") or f"{self.request.protocol}://{self.request.host}"

    def json_body(self) -> Any:
        """The request's JSON body; an empty body is an empty object."""
        if not self.request.body.strip():
            return {}
        try:
            return orjson.loads(self.request.body)
        except orjson.JSONDecodeError:
            raise InvalidPayload("the request body is not JSON") from None

    async def replay_of_mine(self, replay_id: str) -> Replay:
        """The running replay, if it replays a recording this login may see; else 404 as for none."""
        replay = self.manager.get(replay_id)
        if not await may_replay(self.principal, replay.recording_id, self.owner_of):
            raise UnknownReplay(f"no replay {replay.id}")
        return replay


class ReplayStartHandler(ReplayApiHandler):
    """POST /api/recordings/<id>/replay  {paused?, time?, speed?} -> {ok, replay_id, dashboard_url, state}"""

    async def post(self, recording_id: str) -> None:
        body = self.json_body()
        if not isinstance(body, dict):
            raise InvalidPayload("the request body must be a JSON object")
        payload = self.validators.replay_start({**body, "recording_id": recording_id})
        if not await may_replay(self.principal, payload["recording_id"], self.owner_of):
            raise unknown_recording(payload["recording_id"])
        replay = await self.manager.start(
            payload["recording_id"],
            paused=payload.get("paused", False),
            position=payload.get("time"),
            speed=check_speed(payload.get("speed")),
        )
        self.write_json(
            {
                "ok": True,
                "replay_id": replay.id,
                "dashboard_url": dashboard_url(self.base_url(), replay.id),
                "state": replay.state(),
            },
            201,
        )


class ReplayControlHandler(ReplayApiHandler):
    """POST /api/replays/<replay_id>/control  {action, time?, lap?, speed?} -> {ok, state}"""

    async def post(self, replay_id: str) -> None:
        payload = self.validators.control_body(self.json_body())
        try:
            replay = await self.replay_of_mine(replay_id)
        except UnknownReplay:
            if (answer := await self._control_elsewhere(replay_id, payload)) is None:
                raise
            self.write_json(answer, 200 if answer.get("ok") else ANSWER_STATUS.get(answer.get("error"), 400))
            return
        self.write_json({"ok": True, "state": await apply_control(replay, payload)})

    async def _control_elsewhere(self, replay_id: str, payload: dict) -> dict | None:
        """Several processes: the replay may run in another one, which answers (racedash.cluster.replays)."""
        if self.elsewhere is None:
            return None
        try:
            canonical = parse_session_id(replay_id)
        except InvalidSessionId:
            return None
        listed = await self.elsewhere.owner(canonical)
        if listed is None or not await may_replay(self.principal, listed.get("recording_id"), self.owner_of):
            return None
        return await self.elsewhere.control(None, canonical, payload)


class ReplayStateHandler(ReplayApiHandler):
    """GET /api/replays/<replay_id> -> {ok, state}"""

    async def get(self, replay_id: str) -> None:
        replay = await self.replay_of_mine(replay_id)
        self.write_json({"ok": True, "state": {**replay.state(), "viewers": len(replay.viewers)}})


# The HTTP status of an error another process's replay answered with (the rest: 400).
ANSWER_STATUS = {"unknown_lap": 404, "unknown_replay": 404, "replay_stopped": 410}


def replay_routes(manager: ReplayManager, access: TeamAccess, public_url: str = "",
                  owner_of: OwnerOf = no_owner, elsewhere: Any = None) -> list[tuple[str, type, dict]]:
    """``elsewhere``: racedash.cluster.replays.ReplayDirectory when several processes run."""
    deps = {"access": access, "manager": manager, "validators": ReplayValidators(), "public_url": public_url,
            "owner_of": owner_of, "elsewhere": elsewhere}
    return [
        (r"/api/recordings/([^/]+)/replay", ReplayStartHandler, deps),
        (r"/api/replays/([^/]+)/control", ReplayControlHandler, deps),
        (r"/api/replays/([^/]+)", ReplayStateHandler, deps),
    ]
