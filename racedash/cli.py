"""The ``racedash`` command line: parse, build Settings, hand over. No logic lives here."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from racedash import __version__
from racedash.config import Settings, SettingsError
from racedash.errors import RacedashError

if TYPE_CHECKING:
    from racedash.simulator import SimulationOptions


# A demo is for trying racedash on this machine: it listens on loopback unless told otherwise.
DEMO_HOST = "127.0.0.1"


def _serve(args: argparse.Namespace) -> int:
    from racedash.server import serve

    settings = Settings.from_args(args)
    _configure_logging(settings.log_level, settings.log_format)
    drained = asyncio.run(serve(settings, on_ready=_announce))
    return 0 if drained else 1


def _config(args: argparse.Namespace) -> int:
    """Print the settings serve would run with (file, env and flags applied), secrets masked."""
    print(Settings.from_args(args).describe())
    return 0


def _team(args: argparse.Namespace) -> int:
    """``racedash team add|list|rotate|remove``: the teams of the server using the same state directory."""
    from racedash.teams import commands

    settings = Settings.from_args(args)
    admin = commands.team_admin(settings)
    if args.team_command == "add":
        print(commands.added(settings, *admin.add(args.name)))
    elif args.team_command == "list":
        print(commands.listed(admin.list()))
    elif args.team_command == "rotate":
        both = not (args.login or args.publish)
        record, credentials = admin.rotate(args.name, login=args.login or both, publish=args.publish or both)
        print(commands.rotated(settings, record, credentials))
    else:
        print(commands.removed(admin.remove(args.name)))
    return 0


def _replay(args: argparse.Namespace) -> int:
    import socketio

    from racedash.replay.publish import publish_recording

    try:
        asyncio.run(
            publish_recording(
                Path(args.file),
                args.url,
                speed=args.speed,
                session_id=args.session_id,
                publish_token=args.publish_token,
            )
        )
    except RacedashError as exc:
        print(f"racedash: {exc.message}", file=sys.stderr)
        return 1
    except socketio.exceptions.ConnectionError as exc:
        print(f"racedash: cannot reach {args.url}: {exc}", file=sys.stderr)
        return 1
    return 0


def _announce(server) -> None:
    from racedash.banner import login_label, show, start_banner, team_login_url

    show(start_banner("server", server.url, login_url=team_login_url(server.app.access, server.url),
                      login_label=login_label(server.app.access)))


def _publish_token(args: argparse.Namespace) -> int:
    """For token mode with a monitor configured with a fixed id: the token to give it."""
    from racedash.ids import parse_session_id
    from racedash.keys import derive, load_or_create_secret
    from racedash.rights import PublishRights

    settings = Settings.from_args(args)
    session_id = parse_session_id(args.session_id)
    secret = load_or_create_secret(settings.secret, settings.state_dir, settings.recordings_dir)
    print(PublishRights(derive(secret, "publish-token")).token_for(session_id))
    return 0


# --- simulator (racedash.simulator) ----------------------------------------
def _positive(kind: type) -> Callable[[str], float | int]:
    def parse(raw: str) -> float | int:
        value = kind(raw)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {raw}")
        return value

    parse.__name__ = kind.__name__
    return parse


def _add_simulation_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("simulation")
    group.add_argument("--rate", type=_positive(float), default=2.0, help="telemetry frames per second [default 2]")
    group.add_argument("--speedup", type=_positive(float), default=1.0, help="race seconds per real second [default 1]")
    group.add_argument("--laps", type=_positive(int), default=None, help="stop each car after this many laps [default: run until stopped]")
    group.add_argument("--cars", type=_positive(int), default=1, help="independent simulated cars, one session each [default 1]")
    group.add_argument("--seed", type=int, default=None, help="random seed; car i uses seed+i [default: random]")


def _simulation_options(
    args: argparse.Namespace, session_id: str | None = None, publish_token: str | None = None
) -> "SimulationOptions":
    from racedash.simulator import SimulationOptions

    return SimulationOptions(
        rate=args.rate, speedup=args.speedup, laps=args.laps, seed=args.seed, session_id=session_id, publish_token=publish_token
    )


def _simulate(args: argparse.Namespace) -> int:
    from racedash.errors import InvalidSessionId
    from racedash.ids import parse_session_id
    from racedash.simulator import runner, summary

    _configure_logging("WARNING")
    session_id = None
    if args.session_id is not None:
        if args.cars > 1:
            raise SettingsError("--session-id names one session; it cannot be used with --cars > 1")
        try:
            session_id = parse_session_id(args.session_id)
        except InvalidSessionId as exc:
            raise SettingsError(f"--session-id: {exc.message}") from None
    if args.dry_run:
        print(summary.dry_run(seed=args.seed, laps=args.laps or 20, dt=args.speedup / args.rate))
        return 0
    if args.publish_token is not None and session_id is None:
        raise SettingsError("--publish-token goes with --session-id (an assigned session's token is kept anyway)")
    options = _simulation_options(args, session_id, args.publish_token)
    asyncio.run(runner.simulate(args.url, options, cars=args.cars))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from racedash.simulator import runner

    settings = Settings.from_args(args)
    if args.setting_host is None and "RACEDASH_HOST" not in os.environ:
        settings = settings.replace(host=DEMO_HOST)
    _configure_logging(settings.log_level, settings.log_format)
    banner = DemoBanner(cars=args.cars)
    asyncio.run(
        runner.demo(
            settings,
            _simulation_options(args),
            cars=args.cars,
            on_ready=banner.server_ready,
            announce=banner.car_ready,
        )
    )
    return 0


class DemoBanner:
    """Prints the demo's banner once the server runs and every car has its dashboard URL."""

    def __init__(self, cars: int) -> None:
        self.cars = cars
        self.server = None
        self.monitors: list = []

    def server_ready(self, server) -> None:
        self.server = server

    def car_ready(self, monitor) -> None:
        if any(m is monitor for m in self.monitors):
            return  # a car that reconnected announces itself again
        self.monitors.append(monitor)
        if len(self.monitors) == self.cars and self.server is not None:
            self._show()

    def _show(self) -> None:
        from racedash.banner import show, start_banner, team_login_url

        server = self.server
        dashboards = [
            (f"dashboard ({m.model.car.name}, {m.model.driver})" if self.cars > 1 else "dashboard", m.dashboard_url)
            for m in self.monitors
        ]
        show(
            start_banner(
                "demo",
                server.url,
                login_url=team_login_url(server.app.access, server.url),
                dashboards=dashboards,
                stop_hint=f"Ctrl-C stops the simulated car{'s' if self.cars > 1 else ''} and the server.",
            )
        )


LOG_FORMATS = ("text", "json")


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line, for log shippers: no multi-line tracebacks to stitch back together."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)

    converter = time.gmtime  # the "Z" above: log times in UTC whatever the host's zone


def _configure_logging(level: str, log_format: str = "text") -> None:
    if log_format not in LOG_FORMATS:
        raise SettingsError(f"invalid value {log_format!r} for log_format (expected one of: {', '.join(LOG_FORMATS)})")
    handler = logging.StreamHandler()
    if log_format == "json":
        handler.setFormatter(JsonLogFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="racedash", description="Live race telemetry with record and replay.")
    parser.add_argument("--version", action="version", version=f"racedash {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the server", description="Run the racedash server.")
    Settings.add_arguments(serve)
    serve.set_defaults(run=_serve)

    replay = commands.add_parser(
        "replay",
        help="publish a recording into a running server, as a monitor would",
        description="Publish a recording into a running racedash server at its original cadence.",
    )
    replay.add_argument("file", metavar="FILE", help="a recording (<session_id>.jsonl)")
    replay.add_argument("--url", required=True, help="the server, e.g. http://127.0.0.1:5000")
    replay.add_argument("--speed", type=float, default=1.0, help="0.25 to 16 (default 1: the original cadence)")
    replay.add_argument("--session-id", default=None, help="publish under this id (default: request a new one)")
    replay.add_argument(
        "--publish-token", default=None, help="that session's publish token (needed in token mode; see publish-token)"
    )
    replay.set_defaults(run=_replay)

    simulate = commands.add_parser(
        "simulate",
        help="publish a simulated stint into a running server",
        description="Publish simulated endurance stints into a racedash server, as the monitor does.",
    )
    simulate.add_argument("--url", default="http://127.0.0.1:5000", help="server to publish to [default http://127.0.0.1:5000]")
    simulate.add_argument("--session-id", default=None, help="publish under this session id instead of requesting one")
    simulate.add_argument(
        "--publish-token", default=None, help="the --session-id's publish token, for a server in token mode (racedash publish-token ID)"
    )
    simulate.add_argument("--dry-run", action="store_true", help="print the stint's laps (default 20) as a table; no server")
    _add_simulation_arguments(simulate)
    simulate.set_defaults(run=_simulate)

    demo = commands.add_parser(
        "demo",
        help="run a server with a simulated car in it",
        description="Run racedash with a simulated car publishing into it; Ctrl-C stops both. "
        f"Listens on {DEMO_HOST} unless --host is given.",
    )
    _add_simulation_arguments(demo)
    Settings.add_arguments(demo, shown_defaults={"host": DEMO_HOST})
    demo.set_defaults(run=_demo)

    token = commands.add_parser(
        "publish-token",
        help="print the publish token of a session id",
        description="Print the publish_token of a session id (for monitors configured with a fixed id "
        "when RACEDASH_PUBLISH_AUTH=token). Uses the same secret as the server.",
    )
    token.add_argument("session_id")
    Settings.add_arguments(token)
    token.set_defaults(run=_publish_token)

    config = commands.add_parser(
        "config",
        help="print the effective settings (secrets masked)",
        description="Print the settings `racedash serve` would use with the same --config file, "
        "environment and flags: one `name = value` line each (TOML), secrets masked.",
    )
    Settings.add_arguments(config)
    config.set_defaults(run=_config)

    _add_team_parser(commands)
    return parser


def _add_team_parser(commands: argparse._SubParsersAction) -> None:
    team = commands.add_parser(
        "team",
        help="manage the teams hosted on this server (add, list, rotate, remove)",
        description="Teams on one server: each has its own login token (its sessions and recordings only) and "
        "publish key (in its monitors' server URL). Kept in the state directory; a running server sees changes "
        "at once. With no team, the server runs as one team, as before.",
    )
    actions = team.add_subparsers(dest="team_command", required=True, metavar="ACTION")
    add = actions.add_parser("add", help="add a team; prints its login link and monitor URL (once)")
    add.add_argument("name", help="the team's name (unique, case-insensitive)")
    listing = actions.add_parser("list", help="list the teams (never their tokens)")
    rotate = actions.add_parser(
        "rotate", help="new login token and/or publish key; the old ones stop working (default: both)"
    )
    rotate.add_argument("name")
    rotate.add_argument("--login", action="store_true", help="rotate the login token (logs its browsers out)")
    rotate.add_argument("--publish", action="store_true", help="rotate the publish key (monitors need the new URL)")
    remove = actions.add_parser("remove", help="remove a team; its recordings stay, for the admin only")
    remove.add_argument("name")
    for action in (add, listing, rotate, remove):
        Settings.add_arguments(action)  # --state-dir, --config, --public-url: as `serve` reads them
        action.set_defaults(run=_team)


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
