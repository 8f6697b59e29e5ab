"""The few lines a person reads when racedash starts: what runs and where to go.

They are printed to stdout after start-up has logged what it had to say (logs go
to stderr), so the URLs are the last thing on the screen, one to a line, easy to
click or copy. The first line keeps the ``serving on URL`` form scripts look for.
"""

from __future__ import annotations

import sys
from typing import Iterable, TextIO

from racedash import __version__


def start_banner(
    what: str,
    base_url: str,
    *,
    login_url: str,
    dashboards: Iterable[tuple[str, str]] = (),
    stop_hint: str = "Ctrl-C stops it.",
    login_label: str = "team login",
) -> str:
    """The banner as text: a title line, then ``label: URL`` lines, aligned.

    ``login_label``: "admin login" when teams are configured (the token then sees every team's).
    """
    rows = [(label, url) for label, url in dashboards]
    rows.append(("status page", f"{base_url.rstrip('/')}/"))
    rows.append((login_label, login_url))
    width = max(len(label) for label, _ in rows) + 1
    lines = [f"racedash {__version__} {what} serving on {base_url}"]
    lines += [f"  {(label + ':').ljust(width)} {url}" for label, url in rows]
    lines.append(f"  {stop_hint}")
    return "\n".join(lines)


def team_login_url(access, base_url: str) -> str:
    """A ready-to-open link when racedash made the token; else where to log in and with what."""
    if access.generated:
        return access.login_url(base_url)
    return f"{base_url.rstrip('/')}/login (with the token set in RACEDASH_TEAM_TOKEN)"


def login_label(access) -> str:
    teams = getattr(access, "teams", None)
    return "admin login" if teams is not None and teams.configured() else "team login"


def show(text: str, out: TextIO | None = None) -> None:
    # Anything logged so far reaches the terminal first; the banner comes last.
    sys.stderr.flush()
    out = out or sys.stdout
    print(text, file=out, flush=True)
