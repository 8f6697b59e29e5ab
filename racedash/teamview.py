"""The team's view of every live car: one row per live session, and the pages that show them.

:func:`live_sessions` assembles the rows from the registry (the latest
telemetry, the publisher's connection) and the race model (laps, strategy, car
state); it is plain and synchronous, so tests call it directly. The handlers
only check team access and hand its result on. Session ids are the viewers'
secret (docs/security.md): everything here is team-only and never cached. On a
server hosting several teams each login sees only its own team's sessions (an
admin every one): another team's session is left out as if it did not exist.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Iterable

import tornado.web

from racedash.auth import ADMIN, Principal, TeamAccess
from racedash.errors import InvalidSessionId
from racedash.ids import parse_session_id
from racedash.racefeed import RaceFeed
from racedash.sessions import Session, SessionRegistry
from racedash.web import TeamHandler

# What each car_state of the race model reads as on the team's pages.
CAR_STATE_LABELS = {"on_track": "on track", "in_pit": "IN PIT", "pit_lane": "PIT LANE", "garage": "garage"}
MIN_CARS, MAX_CARS = 2, 4  # what fits side by side on a laptop


def last_lap_time(laps: list[dict[str, Any]]) -> float | None:
    """The time of the last lap the model listed (None when it could not time it: a data gap)."""
    time = laps[-1].get("time") if laps else None
    return time if isinstance(time, (int, float)) and time > 0 else None


def best_lap_time(stints: Iterable[dict[str, Any]]) -> float | None:
    """The best clean lap: the stints' bests already leave out in-, out-, pit and incomplete laps."""
    bests = [s["best_lap"] for s in stints if isinstance(s.get("best_lap"), (int, float))]
    return min(bests) if bests else None


def state_label(car_state: str | None, *, publisher_connected: bool, silent_seconds: float,
                stale_seconds: float) -> str:
    """One line the team reads first: is the monitor there, is its data fresh, where is the car."""
    if not publisher_connected:
        return "monitor gone"
    if silent_seconds >= stale_seconds:
        return f"no data for {silent_seconds:.0f} s"
    return CAR_STATE_LABELS.get(car_state or "", "unknown")


def session_row(session: Session, race: RaceFeed | None, now_monotonic: float, stale_seconds: float) -> dict[str, Any]:
    telemetry = session.telemetry.payload.get("telemetry") if session.telemetry is not None else None
    telemetry = telemetry if isinstance(telemetry, dict) else {}
    tables = race.tables(session.id) if race is not None else None
    laps = tables["laps"] if tables else []
    strategy = tables["strategy"] if tables else {}
    car_state = tables["car_state"] if tables else None
    silent = max(0.0, now_monotonic - session.last_publish_monotonic)
    connected = session.publisher_sid is not None
    return {
        "session_id": session.id,
        "dashboard_url": f"/dashboard/{session.id}",
        "driver": telemetry.get("player_name"),
        "car": telemetry.get("car_name"),
        "track": telemetry.get("track_name"),
        "lap": telemetry.get("lap"),
        "position": telemetry.get("position"),
        "fuel": telemetry.get("fuel"),
        "laps_left": strategy.get("laps_left"),
        "last_lap": last_lap_time(laps),
        "best_lap": best_lap_time(tables["stints"]) if tables else None,
        "laps_timed": len(laps),
        "car_state": car_state,
        "publisher_connected": connected,
        "silent_seconds": round(silent, 1),
        "stale": connected and silent >= stale_seconds,
        "state": state_label(car_state, publisher_connected=connected, silent_seconds=silent,
                             stale_seconds=stale_seconds),
        "team": session.team,
        "created": session.created,
    }


def live_sessions(registry: SessionRegistry, race: RaceFeed | None, now_monotonic: float,
                  stale_seconds: float = 5.0, viewer: Principal = ADMIN,
                  written_elsewhere: Callable[[str], bool] = lambda session_id: False) -> list[dict[str, Any]]:
    """Every live session ``viewer`` may see, a row each, oldest first (rows keep their place while the page polls).

    ``written_elsewhere``: sessions this process only follows for its viewers (racedash.cluster):
    their row comes from the process that writes them.
    """
    sessions = sorted((s for s in registry if viewer.sees(s.team) and not written_elsewhere(s.id)),
                      key=lambda s: (s.created, s.id))
    return [session_row(s, race, now_monotonic, stale_seconds) for s in sessions]


def merged(rows: list[dict[str, Any]], others: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """This process's rows and other processes' (racedash.cluster.livelist), oldest first, one per session."""
    mine = {row["session_id"] for row in rows}
    every = rows + [row for row in others if row["session_id"] not in mine]
    return sorted(every, key=lambda row: (row.get("created") or 0, row["session_id"]))


def parse_car_ids(raw: str) -> list[str]:
    """The 2 to 4 distinct, well-formed session ids of ``/cars?ids=a,b``; InvalidSessionId otherwise."""
    ids = [part.strip() for part in raw.split(",") if part.strip()]
    parsed = list(dict.fromkeys(parse_session_id(i) for i in ids))
    if not MIN_CARS <= len(parsed) <= MAX_CARS:
        raise InvalidSessionId(f"choose {MIN_CARS} to {MAX_CARS} different sessions")
    return parsed


class _SecretPage(TeamHandler):
    """Pages and answers that carry session ids: never cached, never leaked in a Referer."""

    def set_default_headers(self) -> None:
        super().set_default_headers()
        self.set_header("Cache-Control", "no-store")
        self.set_header("Referrer-Policy", "no-referrer")


class TeamViewHandler(_SecretPage):
    def get(self) -> None:
        self.render("team.html", scope=self.access.scope_label(self.principal))


class LiveSessionsHandler(_SecretPage):
    """GET /api/live: the team view's rows (polled by the page)."""

    async def get(self) -> None:
        rows = live_sessions(self.registry, self.race, time.monotonic(), self.stale_seconds, self.principal,
                             self.cluster.written_elsewhere if self.cluster is not None else _nowhere)
        if self.cluster is not None:
            rows = merged(rows, await self.cluster.live.rows(self.principal))
        self.write_json({"ok": True, "sessions": rows})


class CarsPageHandler(_SecretPage):
    """GET /cars?ids=a,b[,c,d]: cards side by side; the page joins each session over Socket.IO."""

    async def get(self) -> None:
        try:
            ids = parse_car_ids(self.get_query_argument("ids", ""))
        except InvalidSessionId as exc:
            raise tornado.web.HTTPError(400, reason=exc.message) from None
        # Joining an unknown id would take it up as a new session: only live ones are joined.
        # Another team's session is shown as not live, as an unknown id is: never confirmed.
        elsewhere = set()
        if self.cluster is not None:
            elsewhere = {row["session_id"] for row in await self.cluster.live.rows(self.principal)}
        cars = [{"session_id": i, "live": i in elsewhere or self._visible(i)} for i in ids]
        self.render("cars.html", cars=cars, stale_seconds=self.stale_seconds)

    def _visible(self, session_id: str) -> bool:
        session = self.registry.get(session_id)
        return session is not None and self.principal.sees(session.team)


def _nowhere(session_id: str) -> bool:
    return False


def team_routes(registry: SessionRegistry, race: RaceFeed | None, access: TeamAccess,
                stale_seconds: float, cluster: Any = None) -> list[tuple]:
    """``cluster``: racedash.cluster.Cluster when several processes run (their sessions are listed too)."""
    deps = {"access": access, "registry": registry, "race": race, "stale_seconds": stale_seconds, "cluster": cluster}
    return [
        (r"/team", TeamViewHandler, deps),
        (r"/cars", CarsPageHandler, deps),
        (r"/api/live", LiveSessionsHandler, deps),
    ]
