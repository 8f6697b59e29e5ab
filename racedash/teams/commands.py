"""What ``racedash team add / list / rotate / remove`` print (the CLI only parses and calls these)."""

from __future__ import annotations

import shlex
import socket
import time
from urllib.parse import quote

from racedash.config import Settings
from racedash.teams.directory import TeamAdmin
from racedash.teams.model import Credentials, TeamRecord
from racedash.teams.monitors import QUERY_KEY
from racedash.teams.sqlite import SqliteTeamBackend, db_path

_ANY_ADDRESS = {"", "0.0.0.0", "::"}


def team_admin(settings: Settings) -> TeamAdmin:
    """The teams of the server that runs with these settings (its state directory)."""
    return TeamAdmin(SqliteTeamBackend(db_path(settings.state_dir), create=True))


def base_url(settings: Settings) -> str:
    """Where monitors and browsers reach the server: ``public_url``, else this host and the port."""
    if settings.public_url:
        return settings.public_url.rstrip("/")
    host = socket.gethostname() if settings.host in _ANY_ADDRESS else settings.host
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.port}"


def login_url(base: str, token: str) -> str:
    return f"{base}/login?token={quote(token, safe='')}"


def monitor_url(base: str, key: str) -> str:
    """The server URL to configure in the monitor: python-socketio keeps its query on every request."""
    return f"{base}/?{QUERY_KEY}={quote(key, safe='')}"


def _credential_lines(base: str, credentials: Credentials) -> list[str]:
    lines = []
    if credentials.login_token is not None:
        lines.append(f"  team login:  {login_url(base, credentials.login_token)}")
    if credentials.publish_key is not None:
        lines.append(f"  monitor URL: {monitor_url(base, credentials.publish_key)}")
    return lines


def added(settings: Settings, record: TeamRecord, credentials: Credentials) -> str:
    base = base_url(settings)
    lines = [f"team {_quoted(record.name)} added (id {record.id})", *_credential_lines(base, credentials)]
    lines += [
        "The team login shows this team's sessions and recordings only; the monitor URL goes in the",
        "monitor's server address field: its sessions then belong to this team.",
        f"Shown once: racedash keeps only digests of both (`racedash team rotate {_arg(record.name)}` makes new ones).",
    ]
    if not settings.public_url:
        lines.append("(Set --public-url / RACEDASH_PUBLIC_URL to print the address monitors and browsers reach.)")
    return "\n".join(lines)


def rotated(settings: Settings, record: TeamRecord, credentials: Credentials) -> str:
    base = base_url(settings)
    what = [name for name, new in (("login token", credentials.login_token), ("publish key", credentials.publish_key))
            if new is not None]
    old = "the old ones no longer work" if len(what) > 1 else "the old one no longer works"
    lines = [f"team {_quoted(record.name)}: new {' and '.join(what)}; {old}", *_credential_lines(base, credentials)]
    if credentials.publish_key is not None:
        lines.append("Monitors with the old key cannot start sessions until given the new URL; "
                     "existing sessions keep this team.")
    if credentials.login_token is not None:
        lines.append("Browsers logged in with the old token are logged out.")
    return "\n".join(lines)


def listed(records: list[TeamRecord]) -> str:
    if not records:
        return "no teams: the server runs as one team (its team token sees everything)"
    rows = [("NAME", "ID", "CREATED", "ROTATED")]
    rows += [(r.name, r.id, _when(r.created), _when(r.rotated) if r.rotated else "-") for r in records]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return "\n".join(
        "  ".join(cell.ljust(widths[i]) if i < 3 else cell for i, cell in enumerate(row)).rstrip() for row in rows
    )


def removed(record: TeamRecord) -> str:
    return (f"team {_quoted(record.name)} removed (id {record.id}): it can no longer log in or publish; "
            "its recordings stay, visible to the admin only")


def _when(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))


def _quoted(name: str) -> str:
    return f'"{name}"'


def _arg(name: str) -> str:
    return shlex.quote(name)
