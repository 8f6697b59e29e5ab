"""Which team a monitor publishes for: the ``team`` key in its server URL's query string.

The unmodified monitor cannot send anything new, but python-socketio's client
keeps the query string of the URL it is given on every request it makes, so a
monitor configured with ``http://host:5000/?team=KEY`` sends ``team=KEY`` in the
Socket.IO handshake (``QUERY_STRING`` of the connect environ). The key is read
once per connection. It is checked again (one dict lookup) whenever the
connection starts publishing a session, so a rotated or removed key cannot
start new sessions even on a connection made before the rotation; sessions
already published keep their team.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from racedash.errors import NotPublisher, RacedashError
from racedash.sessions import Session
from racedash.teams.directory import TeamDirectory
from racedash.teams.model import MAX_SECRET

QUERY_KEY = "team"


class UnknownTeam(RacedashError):
    """The monitor's team key is not (or no longer) a team's publish key."""

    code = "unknown_team"
    http_status = 403


class TeamKeyRequired(RacedashError):
    """``--require-team``: a monitor must name its team (``?team=KEY`` in its server URL)."""

    code = "team_key_required"
    http_status = 403


_NO_KEY = ""  # the connection's URL carried no team key
_BAD_KEY = None  # it carried one that is no team's (or several, or an oversized one)


def key_in_query(query_string: str | None) -> str | None:
    """The team key of a handshake's query string: "" for none, None for a malformed one."""
    if not query_string:
        return _NO_KEY
    values = parse_qs(query_string, keep_blank_values=True).get(QUERY_KEY)
    if not values:
        return _NO_KEY
    if len(set(values)) != 1 or not values[0] or len(values[0]) > MAX_SECRET:
        return _BAD_KEY
    return values[0]


class MonitorTeams:
    """Per connection: the publish key it came with, and the team a session it publishes belongs to."""

    def __init__(self, directory: TeamDirectory | None, *, required: bool = False) -> None:
        self.directory = directory
        self.required = required
        self._keys: dict[str, str | None] = {}  # sid -> key ("" none, None malformed); absent: none

    def bind(self, sid: str, query_string: str | None) -> None:
        key = key_in_query(query_string)
        if key != _NO_KEY:
            self._keys[sid] = key

    def forget(self, sid: str) -> None:
        self._keys.pop(sid, None)

    def check_connection(self, sid: str) -> None:
        """Refuse, before any work, a connection that can never publish (cheap: no lookup)."""
        key = self._keys.get(sid, _NO_KEY)
        if key is _BAD_KEY:
            raise UnknownTeam("the team key in this monitor's server URL (?team=…) is not valid on this server")
        if key == _NO_KEY and self.required:
            raise TeamKeyRequired(
                "this server publishes only for teams: add your team's key to the monitor's server URL "
                "(http://host:port/?team=KEY, printed by `racedash team add`)"
            )

    def team_of(self, sid: str) -> str | None:
        """The team id this connection publishes for now (None: no team, admin only)."""
        self.check_connection(sid)
        key = self._keys.get(sid, _NO_KEY)
        if key == _NO_KEY:
            return None
        record = self.directory.by_publish_key(key) if self.directory is not None else None
        if record is None:
            self._keys[sid] = _BAD_KEY  # refused from now on without another lookup
            raise UnknownTeam(
                "the team key in this monitor's server URL (?team=…) is not valid on this server "
                "(mistyped, rotated or removed: `racedash team add` / `team rotate` print the current one)"
            )
        return record.id

    def claim(self, session: Session, sid: str) -> None:
        """``sid`` is about to publish ``session``: the session's team is its first publisher's, then fixed."""
        team = self.team_of(sid)
        if session.team == team:
            return
        if session.team is None and session.next_seq == 1:
            session.team = team  # nothing published or recorded yet (e.g. a viewer joined it first)
            return
        raise NotPublisher("this session belongs to another team")
