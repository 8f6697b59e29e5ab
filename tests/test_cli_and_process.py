"""racedash as users run it: the command line, a server process, the real monitor's client."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid

import pytest
import socketio

from racedash.config import Settings, SettingsError
from tests.helpers import sample_setup, sample_telemetry_payloads
from tests.procs import REPO, ServerProcess, close_sync_client, free_port


@pytest.fixture
def spawned():
    """Server processes a test started; killed at teardown even when the test fails early."""
    started: list[ServerProcess] = []
    yield started
    for server in started:
        server.kill9()


def spawn(spawned: list, *args: str, **kwargs) -> ServerProcess:
    server = ServerProcess(*args, **kwargs)
    spawned.append(server)
    return server.start()


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "racedash", *args],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_serve_help_lists_every_setting_with_its_env_var():
    result = run_cli("serve", "--help")
    assert result.returncode == 0
    for name in ("port", "host", "recordings_dir", "max_message_bytes"):
        assert "--" + name.replace("_", "-") in result.stdout
        assert "RACEDASH_" + name.upper() in result.stdout


def test_settings_precedence_defaults_env_flags():
    assert Settings().port == 5000 and Settings().host == "0.0.0.0"
    from_env = Settings.from_env({"RACEDASH_PORT": "6001", "RACEDASH_SESSION_IDLE_SECONDS": "2.5"})
    assert from_env.port == 6001 and from_env.session_idle_seconds == 2.5
    with pytest.raises(SettingsError, match="port"):
        Settings.from_env({"RACEDASH_PORT": "many"})


def test_bad_setting_is_a_clean_cli_error(tmp_path):
    result = run_cli("serve", "--port", "lots")
    assert result.returncode == 2
    assert "invalid value 'lots' for port" in result.stderr and "Traceback" not in result.stderr
    result = run_cli("serve", "--port", "0", "--publish-auth", "maybe", "--recordings-dir", str(tmp_path))
    assert result.returncode == 2
    assert "publish_auth must be one of" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_shuts_down_cleanly_with_connected_clients(tmp_path, sig, spawned):
    server = spawn(spawned, "--recordings-dir", str(tmp_path))
    client = socketio.Client(reconnection=False)
    disconnected = threading.Event()
    client.on("disconnect", lambda *a: disconnected.set())
    try:
        client.connect(server.url, transports=["websocket"])
        code = server.stop(sig)
    finally:
        close_sync_client(client)
        server.kill9()
    output = server.output
    assert code == 0, output
    assert disconnected.wait(5)
    assert "Traceback" not in output and "shutting down" in output


@pytest.mark.slow
def test_port_in_use_is_a_clean_error(tmp_path, spawned):
    server = spawn(spawned, "--recordings-dir", str(tmp_path))
    try:
        result = run_cli("serve", "--host", "127.0.0.1", "--port", str(server.port))
    finally:
        server.stop()
    assert result.returncode == 1
    assert "racedash:" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_env_var_configures_the_server(tmp_path, spawned):
    env = {"RACEDASH_MAX_MESSAGE_BYTES": "2048", "RACEDASH_RECORDINGS_DIR": str(tmp_path), "RACEDASH_PORT": str(free_port())}
    server = ServerProcess(env=env)
    spawned.append(server)
    server.command = ["serve", "--host", "127.0.0.1"]
    server.start()
    client = socketio.Client(reconnection=False)
    try:
        client.connect(server.url, transports=["websocket"])
        session_id = client.call("request_session_id", {}, timeout=5)["session_id"]
        # 2 KB limit: a real 60 KB setup is refused by the transport, which drops this connection only.
        client.emit("setup_data", {"session_id": session_id, "timestamp": "2025-11-22T17:16:45Z", "setup": sample_setup()})
        deadline = time.monotonic() + 5
        while client.connected and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not client.connected
    finally:
        close_sync_client(client)
        server.stop()


@pytest.mark.slow
def test_real_monitor_behaviour_is_served(tmp_path, spawned):
    """Exactly what the monitor does: plain sync client, `{}` id request, no acks, ISO Z timestamps."""
    server = spawn(spawned, "--recordings-dir", str(tmp_path))
    monitor = socketio.Client()
    viewer = socketio.Client()
    assigned: list[dict] = []
    got_id = threading.Event()
    received: list[dict] = []
    setups: list[dict] = []
    done = threading.Event()
    samples = sample_telemetry_payloads()[:20]

    @monitor.on("session_id_assigned")
    def on_assigned(data):
        assigned.append(data)
        got_id.set()

    @viewer.on("telemetry_update")
    def on_telemetry(data):
        received.append(data)
        if len(received) == len(samples):
            done.set()

    viewer.on("setup_update", setups.append)
    try:
        monitor.connect(server.url)  # default transports, as the monitor does
        monitor.emit("request_session_id", {})
        assert got_id.wait(5)
        session_id = assigned[0]["session_id"]
        assert uuid.UUID(session_id)
        viewer.connect(server.url, transports=["websocket"])
        viewer.call("join_session", {"session_id": session_id}, timeout=5)
        monitor.emit("setup_data", {"session_id": session_id, "timestamp": "2025-11-22T17:16:45.160430Z", "setup": sample_setup()})
        for sample in samples:
            monitor.emit("telemetry_update", {**sample, "session_id": session_id})
        assert done.wait(10)
    finally:
        close_sync_client(monitor)
        close_sync_client(viewer)
        code = server.stop()
    assert code == 0, server.output
    assert setups and setups[0]["setup"] == sample_setup()
    assert [r["telemetry"] for r in received] == [s["telemetry"] for s in samples]
    assert [r["seq"] for r in received] == list(range(2, 2 + len(samples)))


@pytest.mark.slow
def test_publish_token_command_matches_the_server(tmp_path, spawned):
    """Token mode with a fixed-id monitor: the operator prints the token and the monitor uses it."""
    fixed = str(uuid.uuid4())
    result = run_cli("publish-token", fixed, "--recordings-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    server = spawn(spawned, "--recordings-dir", str(tmp_path), "--publish-auth", "token")
    client = socketio.Client(reconnection=False)
    try:
        client.connect(server.url, transports=["websocket"], auth={"publish_token": token})
        telemetry = {"session_id": fixed, "telemetry": sample_telemetry_payloads()[0]["telemetry"]}
        assert client.call("telemetry_update", telemetry, timeout=5) == {"ok": True, "seq": 1}
    finally:
        close_sync_client(client)
        server.stop()
    assert run_cli("publish-token", "not-a-uuid", "--recordings-dir", str(tmp_path)).returncode == 2
