"""What a dashboard page carries inline: the session's state as a join would send it.

A dashboard that had to connect its socket and join before it showed anything
waited for the page, its scripts, the websocket's handshake, Socket.IO's
connect and the join, one after the other. The page now carries the state a
join without ``last_seq`` sends (racedash.history, racedash.racefeed): every
setup, the ``telemetry_history``, the latest ``telemetry_update`` and the race
tables, all as of one ``seq``. The page shows them at once and then joins with
``last_seq`` set to that ``seq``, so the socket brings only what came after it
(docs/ui.md, "Page load").

The state goes into the page inside ``<script type="application/json">``:
:func:`script_json` escapes what could end that element early or confuse a
parser (``<``, ``>``, ``&``, U+2028, U+2029), so a setup value such as
``</script><script>…`` stays text.
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

# Escapes for text inside a <script> element: JSON's own \u escapes, valid in its strings
# (outside them JSON has none of these characters).
_SCRIPT_ESCAPES = (
    (b"<", b"\\u003c"),
    (b">", b"\\u003e"),
    (b"&", b"\\u0026"),
    ("\u2028".encode(), b"\\u2028"),
    ("\u2029".encode(), b"\\u2029"),
)


def script_json(value: Any) -> str:
    """``value`` as JSON that is safe as the text of an HTML ``<script>`` element."""
    data = orjson.dumps(value)
    for raw, escaped in _SCRIPT_ESCAPES:
        data = data.replace(raw, escaped)
    return data.decode()


class DashboardState:
    """Builds the inline state of a live session's dashboard page (None: the page joins as before)."""

    def __init__(
        self,
        registry: SessionRegistry,
        history: SessionHistory | None = None,
        race: RaceFeed | None = None,
    ) -> None:
        self.registry = registry
        self.history = history
        self.race = race

    async def build(self, session_id: str) -> dict[str, Any] | None:
        """The state of a live session, as of its last frame; None when it has none here.

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
        if self.history is not None and telemetry is not None:
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
    def encode(session_id: str, state: dict[str, Any] | None) -> str | None:
        """``state`` (from :meth:`build`) as a ``<script>`` element's text; None when there is none or it
        cannot be encoded."""
        if state is None:
            return None
        try:
            return script_json(state)
        except orjson.JSONEncodeError as exc:
            # e.g. an integer beyond 64 bits in a payload: the page joins without it, as before.
            log.warning("dashboard state of session %s… not inlined: %s", session_id[:8], exc)
            return None
