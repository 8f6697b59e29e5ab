"""Settings: one dataclass, every field reachable as a CLI flag and an env var.

Each field carries its own help text in ``metadata`` so that ``racedash serve
--help`` and the environment (``RACEDASH_<FIELD>``) are generated from one
place and cannot drift apart.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

ENV_PREFIX = "RACEDASH_"


def _setting(default: Any, help: str, **extra: Any) -> Any:
    return field(default=default, metadata={"help": help, **extra})


@dataclass(frozen=True)
class Settings:
    # --- network -----------------------------------------------------------
    host: str = _setting("0.0.0.0", "interface to listen on")
    port: int = _setting(5000, "TCP port (the monitor's default is 5000)")
    public_url: str = _setting(
        "", "base URL used in dashboard links (default: derived from the request or host:port)"
    )
    max_message_bytes: int = _setting(
        1_048_576, "largest Socket.IO message accepted; a real setup is ~60 KB"
    )
    cors_origins: str = _setting(
        "", "comma-separated origins allowed to connect; empty means same origin only"
    )

    # --- recordings ----------------------------------------------------------
    recordings_dir: Path = _setting(Path("recordings"), "directory holding one recording per session")
    state_dir: Path = _setting(Path(".racedash"), "directory for the server's own state (its secret), apart from the recordings")
    recording_enabled: bool = _setting(True, "record every session (off: live only, nothing written or resumed)")
    recording_flush_seconds: float = _setting(
        0.25, "group commit window: queued frames reach the file at least this often (the most a kill -9 loses)"
    )
    recording_fsync: str = _setting(
        "interval", "fsync policy: always (every group commit), interval (every --recording-fsync-seconds), none"
    )
    recording_fsync_seconds: float = _setting(5.0, "with fsync policy 'interval': seconds between fsyncs")
    recording_retry_seconds: float = _setting(2.0, "pause before retrying a recording that could not be written")
    recording_max_pending_mb: float = _setting(
        64.0, "frames queued per recording while its disk fails; beyond this the oldest are dropped"
    )
    recording_idle_close_seconds: float = _setting(
        30.0, "a recording with no frame this long closes its file (reopened by the next frame): quiet sessions hold no descriptor"
    )
    recording_summary_seconds: float = _setting(
        10.0, "how often a live recording's summary sidecar is refreshed (it is also written on close)"
    )
    # history on join and gap-free reconnect (racedash/history.py)
    ring_frames: int = _setting(1200, "frames per session kept in memory for reconnecting viewers")
    history_seconds: float = _setting(1800.0, "telemetry_history window sent to a joining viewer, in seconds")
    history_max_points: int = _setting(600, "telemetry_history is downsampled to at most this many frames")
    catch_up_max_frames: int = _setting(
        7200, "a viewer further behind than this gets the state and history instead of every missed frame"
    )
    # retention (racedash/recording/retention.py), off by default
    retention_max_age_days: float = _setting(0.0, "delete recordings whose last frame is older (0: keep forever)")
    retention_max_total_mb: float = _setting(0.0, "delete the oldest recordings beyond this total size (0: no limit)")
    retention_check_seconds: float = _setting(3600.0, "how often retention runs (also once at start)")

    # --- sessions ------------------------------------------------------------
    session_idle_seconds: float = _setting(
        900.0, "a session with no publisher for this long is ended and its memory freed"
    )

    # --- dashboard (UI) --------------------------------------------------------
    # Colour windows of the dashboard, "low:high": below is cold (blue), above hot (red).
    ui_tyre_temp_window: str = _setting("70:100", "tyre temperature window in °C, LOW:HIGH")
    ui_tyre_pressure_window: str = _setting("160:190", "tyre pressure window in kPa, LOW:HIGH")
    ui_brake_temp_window: str = _setting("200:750", "brake temperature window in °C, LOW:HIGH")
    ui_water_temp_window: str = _setting("60:105", "engine water temperature window in °C, LOW:HIGH")
    ui_tyre_wear_window: str = _setting(
        "20:40", "tyre wear left in percent, BAD:WARN (below BAD is red, below WARN amber)"
    )
    ui_low_fuel_laps: float = _setting(2.0, "warn when fewer laps of fuel than this are left")
    ui_stale_seconds: float = _setting(5.0, "dashboards warn of stale data after this many seconds without any")
    # --- race model (racedash/race, docs/protocol.md "Race model") -----------
    race_model: bool = _setting(True, "derive laps, stints, pit stops and strategy on the server (off: for comparisons)")
    race_gap_seconds: float = _setting(
        5.0, "monitor-time gap between frames that makes the laps it spans incomplete (never in a best or average)"
    )
    race_pit_lane_kmh: float = _setting(65.0, "at or below this speed next to a stop the car is in the pit lane")
    race_recent_laps: int = _setting(5, "fuel per lap and pace average the last N clean laps")
    race_reserve_laps: float = _setting(0.3, "'box by lap N' keeps this many laps of fuel in the tank")
    race_state_frames: int = _setting(
        600, "save a live session's race model beside its recording every N frames, so that resuming it reads only "
        "the frames after (0: never; then a resume reads the whole recording)"
    )
    alert_box_call_laps: float = _setting(3.0, "fuel alert when the last lap the car can pit at is this many laps away")
    alert_over_seconds: float = _setting(
        5.0, "tyre/brake alert when over the top of its window (ui_*_temp_window) this long"
    )
    alert_pressure_drop_kpa: float = _setting(20.0, "pressure-loss alert: a tyre losing this much within 10 s")
    alert_stale_seconds: float = _setting(30.0, "stale-data alert: a live session with a publisher but no frame for this long")
    # --- security and limits (docs/security.md) -----------------------------
    max_connections: int = _setting(0, "open connections in all (0: the descriptor limit minus 512, at most 20,000); more get 503")
    connections_per_address: int = _setting(256, "open connections per client address (0: no limit); more get 503")
    connection_exempt_addresses: str = _setting(
        "127.0.0.1,::1", "addresses not capped per address and given 64 connections of headroom (local health checks)"
    )
    http_idle_seconds: float = _setting(30.0, "an HTTP connection idle (or still sending its headers) this long is closed")
    trust_proxy_headers: bool = _setting(
        False, "take the client address and scheme from X-Forwarded-*/X-Real-IP (only behind a proxy that sets them)"
    )
    login_failures_per_minute: int = _setting(10, "failed team logins allowed per client address a minute (then 429)")
    publish_auth: str = _setting(
        "compat", "who may publish: 'compat' (the real monitor, no token needed) or 'token' (always the token)"
    )
    compat_takeover_seconds: float = _setting(
        120.0, "compat mode: a session is held this long for its monitor's address before another may take it over"
    )
    secret: str = _setting(
        "", "server secret for publish tokens and login cookies (default: generated and kept in the state dir)", secret=True
    )
    team_token: str = _setting(
        "", "team access token for recordings and replays (default: generated at start and printed); "
        "with teams (racedash team add) the admin's, who sees every team", secret=True
    )
    require_team: bool = _setting(
        False, "refuse publishing from a monitor whose server URL carries no team key (?team=KEY, racedash team add)"
    )
    events_per_second: float = _setting(100.0, "events one connection may send per second (token bucket rate)")
    event_burst: float = _setting(200.0, "events one connection may send in a burst")
    sessions_per_connection: int = _setting(16, "sessions one connection may create or publish")
    sessions_per_address: int = _setting(32, "live sessions one client address may publish, over all its connections (0: no limit)")
    viewers_per_session: int = _setting(2000, "viewers one session may have")
    joins_per_second: float = _setting(2.0, "join_session calls one connection may make per second (token bucket rate)")
    join_burst: float = _setting(10.0, "join_session calls one connection may make in a burst")
    max_setup_bytes: int = _setting(524_288, "largest setup_data payload accepted (encoded JSON bytes)")
    max_payload_values: int = _setting(20_000, "most values (object members and array items) in one payload; a real setup has ~2,000")
    ring_max_bytes: int = _setting(4_194_304, "encoded bytes of recent frames kept in memory per session (older ones come from the recording)")
    setup_history_bytes: int = _setting(4_194_304, "encoded bytes of past setups kept in memory per session (a real setup is ~60 KB)")
    max_live_sessions: int = _setting(2000, "live sessions this process holds at once (0: no limit); more are refused")

    # --- replay (racedash/replay) ------------------------------------------------
    replay_max_concurrent: int = _setting(16, "most replays running at once; one more is refused")
    replay_idle_seconds: float = _setting(
        120.0, "a replay with no viewer for this long is stopped and its resources freed"
    )
    replay_state_interval: float = _setting(1.0, "seconds between periodic replay_state events")
    replay_history_seconds: float = _setting(
        1800.0, "telemetry_history window sent after a seek or on join (recording seconds)"
    )
    replay_history_frames: int = _setting(
        150, "telemetry_history is downsampled to at most this many frames (each costs encode time on a seek)"
    )
    replay_follow_interval: float = _setting(
        0.25, "how often a replay that reached the end of a live recording looks for new frames"
    )
    replay_index_sidecar: bool = _setting(
        True, "cache each recording's seek index in <session_id>.index.json beside it"
    )

    # --- performance (issue 8; see docs/performance.md and benchmarks/README.md) ---
    fast_fanout: bool = _setting(
        True, "write each room frame, built once, straight to upgraded websockets (off: stock python-socketio emits)"
    )
    websocket_driver: bool = _setting(
        True, "run each websocket from Tornado's callbacks (off: engine.io's reader and writer task per connection)"
    )
    tcp_nodelay: bool = _setting(True, "set TCP_NODELAY on websocket connections (Nagle adds tens of ms to small frames)")
    slow_consumer_max_bytes: int = _setting(
        524_288, "unsent bytes a viewer may hold in the server before it only gets the latest state (fast fan-out)"
    )
    slow_consumer_disconnect_seconds: float = _setting(
        120.0, "a viewer still over that bound after this long is disconnected (fast fan-out)"
    )
    gc_freeze: bool = _setting(True, "gc.freeze() after start-up: long-lived objects leave the collector's scans")
    gc_thresholds: str = _setting(
        "10000,10,10", "gc.set_threshold values (gen0,gen1,gen2), empty for Python's defaults (700,10,10)"
    )

    # --- operations (docs/deployment.md) ------------------------------------
    metrics_public: bool = _setting(
        False, "serve GET /metrics without the team token (only where the port is reachable by the scraper alone)"
    )
    drain_seconds: float = _setting(
        10.0,
        "on SIGTERM: stop accepting connections, disconnect clients (they reconnect elsewhere), "
        "flush recordings; exit at the latest this many seconds after the signal",
    )

    # --- several processes (docs/scaling.md) ----------------------------------
    redis_url: str = _setting(
        "", "Redis shared by every process of one deployment, e.g. redis://127.0.0.1:6379/0 (empty: one process, all in memory)",
        secret=True,
    )
    redis_prefix: str = _setting("racedash:", "prefix of every Redis key and channel this deployment uses")
    cluster_lease_seconds: float = _setting(
        5.0, "with Redis: a session's writer lease; after its process dies, another takes the session over within this"
    )
    node_name: str = _setting(
        "", "this process's name among several behind one URL ([a-z0-9], at most 16): Engine.IO session ids start "
        "with '<name>.' so the load balancer routes each session's requests back here (empty: ids unchanged)",
    )

    # --- logging -------------------------------------------------------------
    log_level: str = _setting("INFO", "logging level")
    log_format: str = _setting("text", "log line format: text (readable) or json (one object per line, for log shippers)")
    access_log: bool = _setting(
        False, "one log line per HTTP request, secrets redacted (also on at log level debug; 5xx are always logged)"
    )

    def replace(self, **changes: Any) -> "Settings":
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_env(cls, env: Mapping[str, str], base: "Settings | None" = None) -> "Settings":
        """Settings from ``RACEDASH_*`` variables, on top of ``base`` (or the defaults)."""
        base = base or cls()
        changes: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is not None:
                changes[f.name] = _coerce(f, raw)
        return dataclasses.replace(base, **changes)

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser, shown_defaults: Mapping[str, Any] | None = None) -> None:
        """One flag per setting; ``shown_defaults`` names the defaults a command applies on its own."""
        shown_defaults = shown_defaults or {}
        parser.add_argument(
            "--config",
            dest="config_file",
            metavar="FILE",
            default=None,
            help="a TOML file of settings, each by its name as a top-level key (flags and RACEDASH_* env vars override it)",
        )
        group = parser.add_argument_group("server settings (each also read from RACEDASH_<NAME>)")
        for f in dataclasses.fields(cls):
            flag = "--" + f.name.replace("_", "-")
            env = ENV_PREFIX + f.name.upper()
            group.add_argument(
                flag,
                dest=f"setting_{f.name}",
                default=None,
                metavar=_type_of(f).__name__.upper(),
                help=f"{f.metadata['help']} [env {env}, default {shown_defaults.get(f.name, f.default)}]",
            )

    @classmethod
    def from_args(cls, args: argparse.Namespace, env: Mapping[str, str] | None = None) -> "Settings":
        """Defaults, overridden by the config file (--config), by the environment, then by flags."""
        config_file = getattr(args, "config_file", None)
        base = cls.from_file(Path(config_file)) if config_file else None
        settings = cls.from_env(os.environ if env is None else env, base)
        changes = {}
        for f in dataclasses.fields(cls):
            raw = getattr(args, f"setting_{f.name}", None)
            if raw is not None:
                changes[f.name] = _coerce(f, raw)
        return dataclasses.replace(settings, **changes)

    @classmethod
    def from_file(cls, path: Path, base: "Settings | None" = None) -> "Settings":
        """Settings from a TOML file: every key a setting's name; unknown keys and wrong types are errors."""
        try:
            with open(path, "rb") as f:
                document = tomllib.load(f)
        except OSError as exc:
            raise SettingsError(f"cannot read config file {path}: {exc.strerror or exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"config file {path} is not valid TOML: {exc}") from None
        fields = {f.name: f for f in dataclasses.fields(cls)}
        changes: dict[str, Any] = {}
        for key, value in document.items():
            f = fields.get(key)
            if f is None:
                # A typo would otherwise leave a setting silently at its default.
                raise SettingsError(f"config file {path}: unknown setting {key!r}")
            changes[key] = _from_toml(f, value, path)
        return dataclasses.replace(base or cls(), **changes)

    def describe(self) -> str:
        """The effective settings, one ``name = value`` line each (TOML), secrets masked."""
        lines = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.metadata.get("secret") and value:
                value = "***"
            lines.append(f"{f.name} = {_toml_value(value)}")
        return "\n".join(lines)


class SettingsError(ValueError):
    """A setting could not be parsed; the message names the setting."""


def _type_of(f: dataclasses.Field) -> type:
    default = f.default
    return type(default) if not isinstance(default, Path) else Path


def _coerce(f: dataclasses.Field, raw: str) -> Any:
    kind = _type_of(f)
    try:
        if kind is bool:
            lowered = raw.strip().lower()
            if lowered in {"1", "true", "yes", "on"}:
                return True
            if lowered in {"0", "false", "no", "off"}:
                return False
            raise ValueError(raw)
        return kind(raw)
    except ValueError as exc:
        raise SettingsError(f"invalid value {raw!r} for {f.name} (expected {kind.__name__})") from exc


def _from_toml(f: dataclasses.Field, value: Any, path: Path) -> Any:
    """A TOML value checked against the setting's type (TOML is typed: no string parsing here)."""
    kind = _type_of(f)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)  # `drain_seconds = 10` means 10.0
    if kind is Path and isinstance(value, str):
        return Path(value)
    expected = str if kind is Path else kind
    if type(value) is not expected:  # bool is an int subclass: `port = true` is refused too
        names = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}
        raise SettingsError(
            f"config file {path}: {f.name} must be {names.get(expected, expected.__name__)}, got {value!r}"
        )
    return value


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(str(value), ensure_ascii=False)  # a TOML basic string: JSON's escapes are TOML's
