"""Teams as tenants of one server (docs/security.md, "Several teams on one server")."""

from racedash.teams.directory import TeamAdmin, TeamDirectory
from racedash.teams.model import Credentials, TeamBackend, TeamError, TeamRecord, TeamStoreError, is_team_id
from racedash.teams.monitors import MonitorTeams, TeamKeyRequired, UnknownTeam
from racedash.teams.sqlite import SqliteTeamBackend, db_path

__all__ = [
    "Credentials",
    "MonitorTeams",
    "SqliteTeamBackend",
    "TeamAdmin",
    "TeamBackend",
    "TeamDirectory",
    "TeamError",
    "TeamKeyRequired",
    "TeamRecord",
    "TeamStoreError",
    "UnknownTeam",
    "db_path",
    "is_team_id",
]
