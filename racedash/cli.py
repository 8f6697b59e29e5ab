"""The ``racedash`` command line: parse, build Settings, hand over. No logic lives here."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from typing import Sequence

from racedash import __version__
from racedash.config import Settings, SettingsError
from racedash.errors import RacedashError


def _serve(args: argparse.Namespace) -> int:
    from racedash.server import serve

    settings = Settings.from_args(args)
    _configure_logging(settings.log_level)
    asyncio.run(serve(settings, on_ready=_announce))
    return 0


def _announce(server) -> None:
    print(f"racedash {__version__} serving on {server.url}", flush=True)
    access = server.app.access
    if access.generated:
        # Like Jupyter: a fresh token each start unless RACEDASH_TEAM_TOKEN is set.
        print(f"team login (recordings, replays): {access.login_url(server.url)}", flush=True)


def _publish_token(args: argparse.Namespace) -> int:
    """For token mode with a monitor configured with a fixed id: the token to give it."""
    from racedash.ids import parse_session_id
    from racedash.keys import derive, load_or_create_secret
    from racedash.rights import PublishRights

    settings = Settings.from_args(args)
    session_id = parse_session_id(args.session_id)
    secret = load_or_create_secret(settings.secret, settings.recordings_dir)
    print(PublishRights(derive(secret, "publish-token")).token_for(session_id))
    return 0


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="racedash", description="Live race telemetry with record and replay.")
    parser.add_argument("--version", action="version", version=f"racedash {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the server", description="Run the racedash server.")
    Settings.add_arguments(serve)
    serve.set_defaults(run=_serve)

    token = commands.add_parser(
        "publish-token",
        help="print the publish token of a session id",
        description="Print the publish_token of a session id (for monitors configured with a fixed id "
        "when RACEDASH_PUBLISH_AUTH=token). Uses the same secret as the server.",
    )
    token.add_argument("session_id")
    Settings.add_arguments(token)
    token.set_defaults(run=_publish_token)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (SettingsError, RacedashError) as exc:
        parser.exit(2, f"racedash: {exc}\n")
    except OSError as exc:
        # e.g. the port is taken: a clean message, not a traceback.
        print(f"racedash: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
