"""`--config racedash.toml`: precedence, errors, `racedash config`, and the JSON log format."""

from __future__ import annotations

import json
import logging
import signal
from pathlib import Path

import pytest

from racedash.cli import JsonLogFormatter, build_parser, main
from racedash.config import Settings, SettingsError
from tests.procs import ServerProcess


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "racedash.toml"
    path.write_text(text)
    return path


def settings_for(argv: list[str], env: dict[str, str] | None = None) -> Settings:
    args = build_parser().parse_args(["serve", *argv])
    return Settings.from_args(args, env=env or {})


def test_every_setting_by_its_name(tmp_path):
    path = write(
        tmp_path,
        'port = 6001\nrecordings_dir = "/srv/racedash/recordings"\nrecording_enabled = false\n'
        "drain_seconds = 3\nhistory_seconds = 90.5\n",
    )
    settings = Settings.from_file(path)
    assert settings.port == 6001
    assert settings.recordings_dir == Path("/srv/racedash/recordings")
    assert settings.recording_enabled is False
    assert settings.drain_seconds == 3.0 and isinstance(settings.drain_seconds, float)
    assert settings.history_seconds == 90.5
    assert settings.host == Settings().host  # what the file leaves out keeps its default


def test_precedence_flag_over_env_over_file_over_default(tmp_path):
    path = write(tmp_path, 'port = 6001\nhost = "10.0.0.1"\npublic_url = "https://file.example"\n')
    env = {"RACEDASH_PORT": "6002", "RACEDASH_HOST": "10.0.0.2"}
    settings = settings_for(["--config", str(path), "--port", "6003"], env)
    assert settings.port == 6003  # flag
    assert settings.host == "10.0.0.2"  # env over file
    assert settings.public_url == "https://file.example"  # file over default
    assert settings.log_level == "INFO"  # default
    assert settings_for(["--config", str(path)]).port == 6001


def test_unknown_key_is_an_error_naming_it(tmp_path):
    path = write(tmp_path, "port = 6001\nrecording_dir = 'typo'\n")
    with pytest.raises(SettingsError, match="unknown setting 'recording_dir'"):
        Settings.from_file(path)


@pytest.mark.parametrize(
    "line, key",
    [
        ('port = "6001"', "port"),
        ("port = true", "port"),
        ("port = 60.5", "port"),
        ('recording_enabled = "yes"', "recording_enabled"),
        ("host = 127", "host"),
        ("recordings_dir = 3", "recordings_dir"),
        ("drain_seconds = false", "drain_seconds"),
    ],
)
def test_wrong_type_is_an_error_naming_the_key(tmp_path, line, key):
    with pytest.raises(SettingsError, match=f"{key} must be"):
        Settings.from_file(write(tmp_path, line + "\n"))


def test_unreadable_or_invalid_file(tmp_path):
    with pytest.raises(SettingsError, match="cannot read config file"):
        Settings.from_file(tmp_path / "missing.toml")
    with pytest.raises(SettingsError, match="not valid TOML"):
        Settings.from_file(write(tmp_path, "port = \n"))


def test_cli_errors_exit_2_with_a_clear_message(tmp_path, capsys):
    path = write(tmp_path, "bogus_setting = 1\n")
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--config", str(path)])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "unknown setting 'bogus_setting'" in err and "Traceback" not in err
    with pytest.raises(SystemExit) as exited:
        main(["config", "--config", str(write(tmp_path, 'port = "x"\n'))])
    assert exited.value.code == 2 and "port must be an integer" in capsys.readouterr().err


def test_config_command_prints_effective_settings_with_secrets_masked(tmp_path, capsys, monkeypatch):
    path = write(tmp_path, 'team_token = "team-secret-value"\nport = 6001\nsecret = "server-secret"\n')
    monkeypatch.setenv("RACEDASH_MAX_MESSAGE_BYTES", "2048")
    assert main(["config", "--config", str(path), "--log-level", "DEBUG"]) == 0
    out = capsys.readouterr().out
    assert "team-secret-value" not in out and "server-secret" not in out
    lines = dict(line.split(" = ", 1) for line in out.splitlines())
    assert lines["team_token"] == '"***"' and lines["secret"] == '"***"'
    assert lines["port"] == "6001" and lines["max_message_bytes"] == "2048" and lines["log_level"] == '"DEBUG"'
    assert set(lines) == {f for f in Settings.__dataclass_fields__}


def test_config_output_is_a_config_file(tmp_path, capsys):
    """What `racedash config` prints (unmasked secrets aside) reads back as the same settings."""
    assert main(["config", "--port", "6123", "--recording-enabled", "false"]) == 0
    printed = write(tmp_path, capsys.readouterr().out)
    assert Settings.from_file(printed) == Settings(port=6123, recording_enabled=False)


def test_empty_secrets_are_shown_empty(capsys):
    assert main(["config"]) == 0
    out = capsys.readouterr().out
    assert 'team_token = ""' in out and 'secret = ""' in out


# --- structured logs ------------------------------------------------------------
def test_json_log_formatter_one_object_per_line():
    formatter = JsonLogFormatter()
    record = logging.LogRecord("racedash.server", logging.WARNING, __file__, 1, "listening on %s\nnext", ("x",), None)
    line = formatter.format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["level"] == "WARNING" and entry["logger"] == "racedash.server"
    assert entry["message"] == "listening on x\nnext" and entry["time"].endswith("Z")
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record = logging.LogRecord("racedash", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    entry = json.loads(formatter.format(record))
    assert "ValueError: boom" in entry["exception"]


def test_bad_log_format_is_a_settings_error(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--log-format", "xml"])
    assert exited.value.code == 2 and "log_format" in capsys.readouterr().err


@pytest.mark.slow
def test_server_logs_json_lines(tmp_path):
    server = ServerProcess("--log-format", "json", recordings_dir=tmp_path / "recordings").start()
    try:
        code = server.stop(signal.SIGTERM)
    finally:
        server.kill9()
    assert code == 0, server.output
    entries = [json.loads(line) for line in server.output.splitlines() if line.startswith("{")]
    messages = [e["message"] for e in entries]
    assert any(m.startswith("racedash listening on") for m in messages), server.output
    assert "shutting down" in messages
    assert all(set(e) >= {"time", "level", "logger", "message"} for e in entries)
    # Nothing else printed in the old text format.
    assert not [line for line in server.output.splitlines() if " INFO racedash" in line]
