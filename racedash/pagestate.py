"""A dashboard's state as a join would send it, for the page to show before its socket joins.

A dashboard that had to connect its socket and join before it showed anything
waited for the page, its scripts, the websocket's handshake, Socket.IO's
connect and the join, one after the other. The page is written with the
session's latest values in its fields (racedash.pagefields) and asks for the
rest of what a join without ``last_seq`` sends (racedash.history,
racedash.racefeed) with one request it starts while it is parsed:
``GET /dashboard/<id>/state`` returns every setup, the ``telemetry_history``,
the latest ``telemetry_update`` and the race tables, all as of one ``seq``. The
page's script shows them at once and then joins with ``last_seq`` set to that
``seq``, so the socket brings only what came after it (docs/ui.md, "Page load").

Until 2026-12-07 that state was written into the page itself. Half an hour into
a session it made the page ~350 KB (the history), built before the first byte
went out and parsed before the first frame: the first value was on screen
~50 ms later than on a new session's page.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson

from racedash.history import SessionHistory
from racedash.race import tables_until
from racedash.racefeed import RaceFeed
from racedash.sessions import SessionRegistry, frame_event

log = logging.getLogger(__name__)


class DashboardState:
    """Builds a live session's dashboard state (None: the page joins as before)."""

    def __init__(
        self,
        registry: SessionRegistry,
        history: SessionHistory | None = None,
        race: RaceFeed | None = None,
    ) -> None:
        self.registry = registry
        self.history = history
        self.race = race

    async def build(self, session_id: str, with_history: bool = True) -> dict[str, Any] | None:
        """The state of a live session, as of its last frame; None when it has none here.

        ``with_history=False`` leaves out ``telemetry_history`` (up to ``history_max_points``
        frames, ~350 KB half an hour into a session): what the page itself needs to write its first
        values, without suspending.

        Never takes a session up: a page request must not create one (a join does).
        The last ``seq``, the setups and the latest telemetry are read without
        suspending; the history (which may be read from the recording) and the race
        tables are cut at that ``seq``. The tables are the race model's own lists:
        encode the result before the next ``await`` (:meth:`encode`, as the page handler does).
        """
        session = self.registry.get(session_id)
        if session is None:
            return None
        upto = session.next_seq - 1
        setups = [frame for frame in session.setups if frame.seq <= upto]
        telemetry = session.telemetry
        if upto <= 0 or (telemetry is None and not setups):
            return None
        state: dict[str, Any] = {
            "session_id": session_id,
            "seq": upto,
            "setups": [frame_event(session_id, frame)[1] for frame in setups],
            "history": None,
            "telemetry": frame_event(session_id, telemetry)[1] if telemetry is not None else None,
            "race_tables": None,
        }
        if with_history and self.history is not None and telemetry is not None:
            history = await self.history.history_payload(session, upto)
            if history["frames"]:
                state["history"] = history
        # After the last suspension, as a join sends them after its frames: the model's rows are
        # live lists, so encode the result before the next await.
        state["race_tables"] = self._race_tables(session_id, upto)
        return state

    def _race_tables(self, session_id: str, upto: int) -> dict[str, Any] | None:
        """``race_tables`` as a join at ``upto`` is sent it (RaceFeed.send_on_join)."""
        if self.race is None:
            return None
        tables = self.race.tables(session_id)
        if tables is None:
            return None
        if upto < tables["seq"]:
            tables = tables_until(tables, upto, options=self.race.options)
        return {"session_id": session_id, **tables}

    @staticmethod
    def encode(session_id: str, state: dict[str, Any] | None) -> bytes | None:
        """``state`` (from :meth:`build`) as JSON; None when there is none or it cannot be encoded."""
        if state is None:
            return None
        try:
            return orjson.dumps(state)
        except orjson.JSONEncodeError as exc:
            # e.g. an integer beyond 64 bits in a payload: the page joins without it, as before.
            log.warning("dashboard state of session %s… not sent: %s", session_id[:8], exc)
            return None
