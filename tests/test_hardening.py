"""Attacks on a public server, each reproduced against a real server (the hardening issue's table)."""

from __future__ import annotations

import asyncio
import logging
import socket
import subprocess
import sys
import threading
import time
import uuid

import pytest

from racedash.logbudget import RefusalLog
from tests.helpers import Client, sample_telemetry_payloads, wait_until
from tests.procs import REPO, ServerProcess


async def connect(server, clients) -> Client:
    client = Client(server.url)
    clients.append(client)
    await client.connect()
    return client


async def raw_call(client: Client, packet_after_id: str, timeout: float = 5) -> object:
    """Send ``2<id><packet_after_id>`` as it is, and wait for the ack to that id."""
    answer: asyncio.Future = asyncio.get_running_loop().create_future()
    ack_id = client.sio._generate_ack_id("/", lambda *args: answer.set_result(args[0] if args else None))
    await client.sio.eio.send(f"2{ack_id}{packet_after_id}")
    return await asyncio.wait_for(answer, timeout)


def telemetry(session_id: str) -> dict:
    return {"session_id": session_id, "telemetry": sample_telemetry_payloads()[0]["telemetry"]}


@pytest.mark.parametrize("name", ["disconnect", "connect", "message", "connect_error"])
async def test_a_client_cannot_run_the_servers_own_events(server, clients, name):
    viewer = await connect(server, clients)
    session_id = str(uuid.uuid4())
    assert (await viewer.call("join_session", {"session_id": session_id}))["ok"]
    ack = await raw_call(viewer, f'["{name}",{{}}]')
    assert ack == {"ok": False, "error": "invalid_event", "message": ack["message"]}
    # The viewer mark survived: a viewer still cannot publish in compat mode.
    refused = await viewer.call("telemetry_update", telemetry(session_id))
    assert refused["error"] == "not_publisher"
    assert viewer.sio.connected


@pytest.mark.parametrize("packet", ['[{"a":1},{}]', "[12,{}]", "[null]", '{"a":1}'])
async def test_an_event_name_that_is_not_a_string_is_refused(server, clients, packet):
    client = await connect(server, clients)
    ack = await raw_call(client, packet)
    assert ack["ok"] is False and ack["error"] == "invalid_event"
    assert (await client.call("join_session", {"session_id": str(uuid.uuid4())}))["ok"]


async def test_json_nested_too_deep_is_refused_without_a_traceback(server, clients, caplog):
    client = await connect(server, clients)
    deep = "[" * 3000 + "]" * 3000
    ack = await raw_call(client, f'["telemetry_update",{deep}]')
    assert ack["ok"] is False and ack["error"] == "invalid_payload"
    assert "Traceback" not in caplog.text and not [r for r in caplog.records if r.exc_info]
    assert (await client.call("join_session", {"session_id": str(uuid.uuid4())}))["ok"]


async def test_a_flood_of_bad_input_logs_a_few_lines(server, clients, caplog):
    caplog.set_level(logging.INFO)
    client = await connect(server, clients)
    for _ in range(200):
        await client.emit("no_such_event", {})
        await client.sio.eio.send('2["telemetry_update",' + "[" * 2000 + "]" * 2000 + "]")
        await client.sio.eio.send('2["disconnect",{}]')
    assert (await client.call("join_session", {"session_id": str(uuid.uuid4())}))["ok"]  # all handled by now
    refusals = [r for r in caplog.records if r.name == "racedash.refused"]
    assert 1 <= len(refusals) <= 3  # one line per kind of refusal per 10 s, not 600
    assert not any(r.exc_info for r in refusals)


def test_refusal_log_bounds():
    now = [100.0]
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    logger = logging.getLogger("test.refusals")
    logger.propagate = False
    logger.addHandler(Collect())
    budget = RefusalLog(logger, interval=10.0, max_lines_per_second=3, max_entries=2, clock=lambda: now[0])
    assert budget.refused("a", "x", "one")
    assert not budget.refused("a", "x", "two")
    now[0] += 10.0
    assert budget.refused("a", "x", "three")
    assert lines[-1] == "three (and 1 more like it in the last 10 s)"
    # At most three lines a second over all clients; the rest are counted and said once.
    now[0] += 20.0
    logged = [budget.refused(f"c{i}", "x", f"client {i}") for i in range(10)]
    assert logged.count(True) == 3
    now[0] += 1.0
    budget.refused("d", "x", "later")
    assert "7 refusal log lines were dropped" in lines[-2]
    assert len(budget._clients) <= 2  # bounded table
    budget.forget("d")
    assert "d" not in budget._clients


def setup_payload(session_id: str, setup: object) -> dict:
    return {"session_id": session_id, "timestamp": "2025-11-22T17:16:45.160430Z", "setup": setup}


async def test_a_setup_of_many_tiny_values_is_refused(server, clients):
    monitor = await connect(server, clients)
    session_id = (await monitor.call("request_session_id", {}))["session_id"]
    ack = await monitor.call("setup_data", setup_payload(session_id, {"x": [{}] * 100_000}), timeout=10)
    assert ack["ok"] is False and ack["error"] == "limit_exceeded" and "too many values" in ack["message"]
    assert server.app.registry.get(session_id).setup is None


@pytest.mark.parametrize("settings_changes", [{"setup_history_bytes": 1_000_000, "ring_max_bytes": 500_000}])
async def test_what_a_session_holds_in_memory_is_bounded_in_bytes(server_with, clients):
    monitor = await connect(server_with, clients)
    session_id = (await monitor.call("request_session_id", {}))["session_id"]
    big_setup = {"carSetup": {"garageValues": {f"K{i}": {"stringValue": "x" * 400} for i in range(1000)}}}  # ~420 KB
    for _ in range(10):
        assert (await monitor.call("setup_data", setup_payload(session_id, big_setup), timeout=10))["ok"]
    frame = telemetry(session_id)
    frame["telemetry"] = {**frame["telemetry"], "padding": "y" * 50_000}
    for _ in range(40):
        assert (await monitor.call("telemetry_update", frame))["ok"]
    session = server_with.app.registry.get(session_id)
    assert session.setups_bytes <= 1_000_000 and len(session.setups) == 2
    assert session.recent_bytes <= 500_000 and len(session.recent) < 40
    assert session.setups_bytes == sum(f.size for f in session.setups)
    assert session.recent_bytes == sum(f.size for f in session.recent)
    # Only the current setup is held as Python objects; the rest as their JSON.
    assert all(f._payload is None for f in list(session.setups)[:-1])

    # A viewer far behind still gets every frame it missed: from the recording.
    viewer = await connect(server_with, clients)
    join = await viewer.call("join_session", {"session_id": session_id, "last_seq": 1})
    assert join["missed"] == 49


@pytest.mark.parametrize("settings_changes", [{"max_live_sessions": 3}])
async def test_live_sessions_are_capped(server_with, clients):
    monitor = await connect(server_with, clients)
    for _ in range(3):
        assert (await monitor.call("request_session_id", {}))["ok"]
    ack = await monitor.call("request_session_id", {})
    assert ack["ok"] is False and ack["error"] == "limit_exceeded"
    refused = await monitor.call("telemetry_update", telemetry(str(uuid.uuid4())))
    assert refused["error"] == "limit_exceeded"


# -- connections: caps per address and in total, idle timeouts, accept back-off --------------

async def open_sockets(server, count: int) -> list[socket.socket]:
    loop = asyncio.get_running_loop()
    socks = []
    for _ in range(count):
        sock = socket.socket()
        sock.setblocking(False)
        await loop.sock_connect(sock, ("127.0.0.1", server.port))
        socks.append(sock)
    return socks


async def refused_with_503(server) -> bool:
    """A fresh connection: True when the server answers 503 and closes it at once."""
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setblocking(False)
    try:
        await loop.sock_connect(sock, ("127.0.0.1", server.port))
        await loop.sock_sendall(sock, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = await asyncio.wait_for(loop.sock_recv(sock, 4096), 5)
        return answer.startswith(b"HTTP/1.1 503")
    finally:
        sock.close()


@pytest.mark.parametrize("settings_changes", [{"connections_per_address": 5, "connection_exempt_addresses": ""}])
async def test_connections_per_address_are_capped(server_with):
    idle = await open_sockets(server_with, 5)
    try:
        await wait_until(lambda: server_with.gate.total == 5)
        assert await refused_with_503(server_with)
        idle.pop().close()
        await wait_until(lambda: server_with.gate.total == 4)
        assert not await refused_with_503(server_with)
    finally:
        for sock in idle:
            sock.close()
    await wait_until(lambda: server_with.gate.total == 0)


@pytest.mark.parametrize("settings_changes", [{"max_connections": 6, "connections_per_address": 0}])
async def test_total_cap_keeps_headroom_for_local_health_checks(server_with):
    idle = await open_sockets(server_with, 6)
    try:
        await wait_until(lambda: server_with.gate.total == 6)
        # Loopback is exempt by default: /healthz still answers at the cap...
        assert not await refused_with_503(server_with)
        # ...while any other address is refused.
        server_with.gate.exempt = frozenset()
        assert await refused_with_503(server_with)
    finally:
        for sock in idle:
            sock.close()


@pytest.mark.parametrize("settings_changes", [{"http_idle_seconds": 0.5}])
async def test_a_slowloris_connection_is_dropped(server_with):
    loop = asyncio.get_running_loop()
    [sock] = await open_sockets(server_with, 1)
    try:
        await loop.sock_sendall(sock, b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        assert await asyncio.wait_for(loop.sock_recv(sock, 4096), 5) == b""  # closed by the server
    finally:
        sock.close()
    await wait_until(lambda: server_with.gate.total == 0)


@pytest.mark.slow
def test_running_out_of_descriptors_pauses_accepts_with_one_line(tmp_path):
    """A real server with 200 descriptors and no cap of its own: 300 sockets run it out."""
    code = (
        "import resource, runpy, sys; resource.setrlimit(resource.RLIMIT_NOFILE, (200, 200)); "
        "sys.argv = ['racedash'] + sys.argv[1:]; runpy.run_module('racedash', run_name='__main__')"
    )
    server = ServerProcess("--max-connections", "5000", "--connections-per-address", "0", recordings_dir=tmp_path / "r")
    server.command = ["-c", code, *server.command]
    server.start = _start_with_python_c(server)
    server.start()
    socks = []
    try:
        for _ in range(300):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            socks.append(sock)
        time.sleep(1.5)
    finally:
        for sock in socks:
            sock.close()
    deadline = time.monotonic() + 10
    while not server._healthy():
        assert time.monotonic() < deadline, server.output
        time.sleep(0.1)
    server.stop()
    pauses = server.output.count("cannot accept connections")
    assert 1 <= pauses <= 10, server.output[-2000:]
    assert "Traceback" not in server.output


def _start_with_python_c(server: ServerProcess):
    """ServerProcess runs ``python -m racedash``; this one runs ``python -c <code> serve …``."""
    def start(timeout: float = 20) -> ServerProcess:
        server.process = subprocess.Popen(
            [sys.executable, *server.command], env=server.env, cwd=REPO,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        server._reader = threading.Thread(target=server._read_output, daemon=True)
        server._reader.start()
        if not server._ready.wait(timeout) or not server.url:
            server.kill9()
            raise RuntimeError(server.output)
        return server
    return start


@pytest.mark.parametrize("settings_changes", [{"sessions_per_address": 3, "connection_exempt_addresses": ""}])
async def test_sessions_per_address_survive_reconnecting(server_with, clients):
    first = await connect(server_with, clients)
    for _ in range(2):
        assert (await first.call("request_session_id", {}))["ok"]
    second = await connect(server_with, clients)  # a new connection does not reset the count
    assert (await second.call("request_session_id", {}))["ok"]
    refused = await second.call("request_session_id", {})
    assert refused["error"] == "limit_exceeded" and "address" in refused["message"]
    refused = await second.call("telemetry_update", telemetry(str(uuid.uuid4())))
    assert refused["error"] == "limit_exceeded"


def test_an_ended_session_no_longer_counts_for_its_address():
    from racedash.limits import ConnectionLimits

    limits = ConnectionLimits(events_per_second=10, event_burst=10, sessions_per_connection=10, sessions_per_address=1)
    limits.bind("a", "203.0.113.5")
    limits.check_new_session("a", "s1")
    limits.bind("b", "203.0.113.5")
    with pytest.raises(Exception, match="at most 1 live"):
        limits.check_new_session("b", "s2")
    limits.session_ended("s1")
    limits.check_new_session("b", "s2")


@pytest.mark.parametrize("settings_changes", [{"ring_frames": 50, "events_per_second": 10_000.0, "event_burst": 10_000.0}])
async def test_rejoins_from_far_back_are_rate_limited(server_with, clients):
    monitor = await connect(server_with, clients)
    session_id = (await monitor.call("request_session_id", {}))["session_id"]
    for _ in range(300):
        await monitor.emit("telemetry_update", telemetry(session_id))
    await monitor.call("telemetry_update", telemetry(session_id))
    attacker = await connect(server_with, clients)
    acks = await asyncio.gather(*(attacker.call("join_session", {"session_id": session_id, "last_seq": 1}, timeout=20)
                                  for _ in range(40)))
    granted = [a for a in acks if a["ok"]]
    assert 1 <= len(granted) <= 11  # the burst (10) and what refilled meanwhile
    assert all(a["missed"] == 300 for a in granted)  # each read back from the recording, in full
    assert all(a["error"] == "limit_exceeded" for a in acks if not a["ok"])


# -- files: sidecars that lie -------------------------------------------------------------------

@pytest.mark.parametrize("field, value", [("last_seq", "9"), ("setup_offsets", "abc"), ("drivers", [1, 2]),
                                          ("ended", 1), ("frames", -5), ("extra", True)])
async def test_a_tampered_summary_sidecar_is_rebuilt_not_a_500(server, clients, field, value):
    import orjson

    from racedash.recording.summary import sidecar_path
    from tests.recording_support import api, write_recording

    session_id = str(uuid.uuid4())
    path = server.settings.recordings_dir / f"{session_id}.jsonl"
    write_recording(path, session_id, 20)
    status, _, _ = await api(server, f"/api/recordings/{session_id}")
    assert status == 200
    sidecar = orjson.loads(sidecar_path(path).read_bytes())
    sidecar[field] = value
    sidecar_path(path).write_bytes(orjson.dumps(sidecar))

    status, _, body = await api(server, "/api/recordings")
    assert status == 200 and session_id in body.decode()
    status, _, body = await api(server, f"/api/recordings/{session_id}")
    assert status == 200 and orjson.loads(body)["recording"]["last_seq"] == 21  # a setup, then 20 frames
    monitor = await connect(server, clients)
    ack = await monitor.call("telemetry_update", telemetry(session_id))
    assert ack["ok"] and ack["seq"] > 21


@pytest.mark.parametrize("settings_changes", [{"access_log": True}])
async def test_no_log_line_holds_a_secret(server_with, clients, caplog):
    """Session ids (the viewers' secret) and the team token never appear in full in any log line."""
    from tests.recording_support import api

    caplog.set_level(logging.DEBUG)
    server = server_with
    directory = server.settings.recordings_dir
    directory.mkdir(parents=True, exist_ok=True)
    broken = str(uuid.uuid4())
    (directory / f"{broken}.jsonl").symlink_to("/dev/full")  # a recording that fails: its errors are logged
    monitor = await connect(server, clients)
    session_id = (await monitor.call("request_session_id", {}))["session_id"]
    await monitor.call("telemetry_update", telemetry(session_id))
    await monitor.call("telemetry_update", telemetry(broken))
    await monitor.call("telemetry_update", {"session_id": session_id})  # refused: missing field
    viewer = await connect(server, clients)
    await viewer.call("join_session", {"session_id": session_id, "last_seq": 1})
    await api(server, f"/api/recordings/{session_id}")
    await api(server, f"/dashboard/{session_id}")
    await api(server, f"/login?token={server.app.access.token}")
    await wait_until(lambda: any("not a regular file" in p for p in server.app.status.snapshot()["problems"]))
    await monitor.close()
    clients.remove(monitor)
    await wait_until(lambda: "publisher of session" in caplog.text)
    text = caplog.text
    for secret in (session_id, broken, server.app.access.token):
        assert secret not in text
    assert session_id[:8] in text  # prefixes are what logs show


# -- the recordings directory deleted under a running server ------------------------------------

@pytest.mark.parametrize("settings_changes", [{"recording_flush_seconds": 0.02}])
async def test_a_deleted_recordings_directory_is_reported_and_recording_goes_on(server_with, clients):
    import shutil

    from tests.recording_support import recorded_seqs

    server = server_with
    monitor = await connect(server, clients)
    session_id = (await monitor.call("request_session_id", {}))["session_id"]
    for _ in range(5):
        await monitor.call("telemetry_update", telemetry(session_id))
    path = server.settings.recordings_dir / f"{session_id}.jsonl"
    await wait_until(lambda: path.exists() and recorded_seqs(path) == [1, 2, 3, 4, 5])
    secret = server.app.rights.token_for(session_id)

    shutil.rmtree(server.settings.recordings_dir)
    for _ in range(3):
        assert (await monitor.call("telemetry_update", telemetry(session_id)))["ok"]
    # Reported where an operator looks, with what was lost...
    await wait_until(lambda: any("deleted or replaced" in p for p in server.app.status.snapshot()["problems"]))
    problem = next(p for p in server.app.status.snapshot()["problems"] if "deleted or replaced" in p)
    assert "5 recorded frames lost" in problem
    assert server.app.status.snapshot()["status"] == "degraded"
    # ...and the recording goes on in a fresh file: nothing acknowledged after the loss is lost.
    await wait_until(lambda: path.exists() and recorded_seqs(path) == [6, 7, 8])
    # The secret was not in the recordings directory: tokens stay valid.
    assert server.app.rights.token_for(session_id) == secret
    assert (server.settings.state_dir / ".racedash-secret").is_file()


def test_a_secret_kept_with_the_recordings_moves_to_the_state_directory(tmp_path):
    from racedash.keys import SECRET_FILE, load_or_create_secret

    recordings, state = tmp_path / "recordings", tmp_path / "state"
    recordings.mkdir()
    (recordings / SECRET_FILE).write_bytes(b"the-old-secret")
    assert load_or_create_secret("", state, recordings) == b"the-old-secret"
    assert not (recordings / SECRET_FILE).exists() and (state / SECRET_FILE).read_bytes() == b"the-old-secret"
    assert load_or_create_secret("", state, recordings) == b"the-old-secret"


# -- replays: time-shift is for live sessions; the team keeps its slots ---------------------------

@pytest.mark.parametrize("settings_changes", [{"replay_max_concurrent": 4}])
async def test_time_shift_is_for_live_sessions_and_leaves_the_team_its_slots(server_with, clients):
    from tests import replay_helpers

    server = server_with
    monitor = await connect(server, clients)
    live_id = (await monitor.call("request_session_id", {}))["session_id"]
    for _ in range(3):
        await monitor.call("telemetry_update", telemetry(live_id))
    assert await server.app.recorder.flush(live_id)

    anonymous = await replay_helpers.connect(server, clients, team=False)
    first = await anonymous.call("timeshift_start", {"session_id": live_id, "back": 1})
    assert first["ok"]
    # The room is never told the live session's id (only the caller, who sent it).
    assert "recording_id" not in first["state"]
    viewer = await replay_helpers.connect(server, clients, team=False)
    joined = await viewer.call("join_session", {"session_id": first["replay_id"]})
    assert live_id not in str(joined) and all(live_id not in str(data) for _, data in viewer.log)
    # Half the slots for anonymous time-shifts: the third is refused...
    assert (await anonymous.call("timeshift_start", {"session_id": live_id, "back": 1}))["ok"]
    refused = await anonymous.call("timeshift_start", {"session_id": live_id, "back": 1})
    assert refused["ok"] is False and refused["error"] == "too_many_replays"
    # ...while the team still gets one.
    team = await replay_helpers.connect(server, clients, team=True)
    assert (await team.call("replay_start", {"recording_id": live_id}))["ok"]

    # Once the publisher is gone, the recording is the team's alone to replay.
    await monitor.close()
    clients.remove(monitor)
    await wait_until(lambda: not server.app.replays.is_live(live_id))
    gone = await anonymous.call("timeshift_start", {"session_id": live_id, "back": 1})
    assert gone["ok"] is False and gone["error"] == "team_required"


async def test_an_oversized_polling_post_gets_413_not_a_hang(server):
    import json

    from tornado.httpclient import AsyncHTTPClient

    http = AsyncHTTPClient()
    try:
        opened = await http.fetch(f"{server.url}/socket.io/?EIO=4&transport=polling", request_timeout=5)
        sid = json.loads(opened.body.decode()[1:])["sid"]
        big = b"4" + b"x" * (server.settings.max_message_bytes + 1)
        response = await http.fetch(f"{server.url}/socket.io/?EIO=4&transport=polling&sid={sid}", method="POST",
                                    body=big, request_timeout=5, raise_error=False)
        assert response.code == 413
        assert (await http.fetch(f"{server.url}/healthz", request_timeout=5)).code == 200
    finally:
        http.close()


# -- compat mode: the returning monitor wins -------------------------------------------------------

async def connect_from(server, clients, address: str) -> Client:
    """A client seen as coming from ``address`` (the server trusts proxy headers in these tests)."""
    client = Client(server.url)
    clients.append(client)
    await client.sio.connect(server.url, transports=["websocket"], wait_timeout=5, headers={"X-Real-IP": address})
    return client


@pytest.mark.parametrize("settings_changes", [{"trust_proxy_headers": True, "compat_takeover_seconds": 1.0}])
async def test_a_viewer_elsewhere_cannot_take_over_a_dropped_monitors_session(server_with, clients):
    server = server_with
    monitor = await connect_from(server, clients, "203.0.113.10")
    session_id = (await monitor.call("request_session_id", {}))["session_id"]
    assert (await monitor.call("telemetry_update", telemetry(session_id)))["ok"]
    await monitor.close()  # the monitor's network drops
    clients.remove(monitor)
    await wait_until(lambda: server.app.registry.get(session_id).publisher_sid is None)

    # Someone with the dashboard URL, from elsewhere, publishes fake data: refused...
    intruder = await connect_from(server, clients, "198.51.100.7")
    refused = await intruder.call("telemetry_update", telemetry(session_id))
    assert refused["ok"] is False and refused["error"] == "not_publisher"
    # ...and the real monitor, back from its address without a token, carries on.
    back = await connect_from(server, clients, "203.0.113.10")
    assert (await back.call("telemetry_update", telemetry(session_id)))["ok"]
    assert (await intruder.call("telemetry_update", telemetry(session_id)))["error"] == "not_publisher"

    # A monitor whose address changed gets its session back once it has been silent a while.
    await back.close()
    clients.remove(back)
    await asyncio.sleep(1.1)
    moved = await connect_from(server, clients, "192.0.2.44")
    assert (await moved.call("telemetry_update", telemetry(session_id)))["ok"]
