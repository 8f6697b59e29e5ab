"""Several teams on one server, as they use it: `racedash team add` in a shell, a real
`racedash serve` process, the unmodified monitor's client (a sync python-socketio
Client with its default transports, polling first) configured with the printed
monitor URL, scripts with bearer tokens, browsers with the login cookie."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
import socketio
from playwright.async_api import expect

from tests.browser import chromium
from tests.helpers import sample_setup, sample_telemetry_payloads
from tests.procs import REPO, ServerProcess, close_sync_client, free_port

ADMIN = "the-admin-token"
pytestmark = pytest.mark.slow


# --- the command line ---------------------------------------------------------------------------
def racedash(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "racedash", *args], cwd=REPO, capture_output=True, text=True, timeout=30,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


@dataclass
class Team:
    name: str
    login_url: str
    monitor_url: str
    output: str

    @property
    def token(self) -> str:
        return self.login_url.split("token=", 1)[1]


def team_command(tmp_path: Path, port: int, *args: str) -> str:
    result = racedash("team", *args, "--state-dir", str(tmp_path / "state"), "--host", "127.0.0.1", "--port", str(port))
    assert result.returncode == 0, result.stderr
    return result.stdout


def add_team(tmp_path: Path, port: int, name: str) -> Team:
    out = team_command(tmp_path, port, "add", name)
    login = re.search(r"team login:\s+(\S+)", out).group(1)
    monitor = re.search(r"monitor URL:\s+(\S+)", out).group(1)
    return Team(name, login, monitor, out)


def rotate(tmp_path: Path, port: int, team: Team, *flags: str) -> Team:
    out = team_command(tmp_path, port, "rotate", team.name, *flags)
    login = re.search(r"team login:\s+(\S+)", out)
    monitor = re.search(r"monitor URL:\s+(\S+)", out)
    return Team(team.name, login.group(1) if login else team.login_url, monitor.group(1) if monitor else team.monitor_url, out)


# --- the server, scripts and monitors ----------------------------------------------------------------
@pytest.fixture
def servers():
    started: list[ServerProcess] = []
    yield started
    for server in started:
        server.kill9()


def serve(servers: list, tmp_path: Path, port: int, *args: str) -> ServerProcess:
    server = ServerProcess(*args, recordings_dir=tmp_path / "recordings", port=port,
                           env={"RACEDASH_TEAM_TOKEN": ADMIN, "RACEDASH_EVENTS_PER_SECOND": "1000",
                                "RACEDASH_RECORDING_SUMMARY_SECONDS": "0.2"})
    servers.append(server)
    return server.start()


def http(server: ServerProcess, path: str, *, token: str | None = None, cookie: str | None = None,
         method: str = "GET", body: dict | None = None) -> tuple[int, bytes, dict]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if cookie:
        headers["Cookie"] = cookie
    data = json.dumps(body or {}).encode() if method == "POST" else None
    request = urllib.request.Request(server.url + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read(), dict(error.headers)


def api(server: ServerProcess, path: str, token: str) -> dict:
    status, body, _ = http(server, path, token=token)
    assert status == 200, (status, body)
    return orjson.loads(body)


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def login_cookie(login_url: str) -> str:
    """What a browser keeps after following the printed login link."""
    opener = urllib.request.build_opener(NoRedirect)
    try:
        opener.open(login_url, timeout=10)
    except urllib.error.HTTPError as error:
        with error:
            assert error.code == 302, error.code
            cookie = next(h for h in error.headers.get_all("Set-Cookie") if h.startswith("racedash_team="))
            return cookie.split(";")[0]
    raise AssertionError("login did not redirect")


class Monitor:
    """The unmodified monitor: python-socketio's sync Client, default transports, the configured URL."""

    def __init__(self, url: str) -> None:
        self.client = socketio.Client(reconnection=False)
        self.client.connect(url, wait_timeout=10)
        self.session_id: str | None = None

    def call(self, event: str, data: dict) -> dict:
        return self.client.call(event, data, timeout=10)

    def start_session(self) -> dict:
        ack = self.call("request_session_id", {})
        if ack["ok"]:
            self.session_id = ack["session_id"]
        return ack

    def publish(self, frames: int = 3, session_id: str | None = None) -> list[dict]:
        session_id = session_id or self.session_id
        acks = [self.call("setup_data", {"session_id": session_id, "timestamp": "2025-11-22T17:16:45.160430Z",
                                         "setup": sample_setup()})]
        for payload in sample_telemetry_payloads()[:frames]:
            acks.append(self.call("telemetry_update", {**payload, "session_id": session_id}))
        return acks

    def close(self) -> None:
        close_sync_client(self.client)


@pytest.fixture
def monitors():
    made: list[Monitor] = []
    yield made
    for monitor in made:
        monitor.close()


def monitor(monitors: list, url: str) -> Monitor:
    made = Monitor(url)
    monitors.append(made)
    return made


def wait_for(predicate, timeout: float = 10.0):
    import time

    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def recording_ids(server: ServerProcess, token: str) -> set[str]:
    return {r["session_id"] for r in api(server, "/api/recordings", token)["recordings"]}


def live_ids(server: ServerProcess, token: str) -> set[str]:
    return {r["session_id"] for r in api(server, "/api/live", token)["sessions"]}


# --- the tests -------------------------------------------------------------------------------------------
def test_two_teams_see_only_their_own_sessions_and_recordings(tmp_path, servers, monitors):
    port = free_port()
    red = add_team(tmp_path, port, "Red Racing")
    assert red.monitor_url.startswith(f"http://127.0.0.1:{port}/?team=")
    assert red.login_url.startswith(f"http://127.0.0.1:{port}/login?token=")
    server = serve(servers, tmp_path, port)
    blue = add_team(tmp_path, port, "Blue")  # while the server runs: no restart needed

    red_monitor, blue_monitor = monitor(monitors, red.monitor_url), monitor(monitors, blue.monitor_url)
    plain_monitor = monitor(monitors, server.url)
    for m in (red_monitor, blue_monitor, plain_monitor):
        assert m.start_session()["ok"]
        assert all(ack["ok"] for ack in m.publish())
    red_id, blue_id, plain_id = red_monitor.session_id, blue_monitor.session_id, plain_monitor.session_id
    assert red_monitor.client.transport() in ("polling", "websocket")

    # The live list (team view) and the recordings, as each login sees them.
    assert live_ids(server, red.token) == {red_id}
    assert live_ids(server, blue.token) == {blue_id}
    assert live_ids(server, ADMIN) == {red_id, blue_id, plain_id}
    wait_for(lambda: recording_ids(server, ADMIN) == {red_id, blue_id, plain_id})
    assert recording_ids(server, red.token) == {red_id}
    assert recording_ids(server, blue.token) == {blue_id}
    teams = {r["session_id"]: r["team"] for r in api(server, "/api/recordings", ADMIN)["recordings"]}
    assert teams[plain_id] is None and teams[red_id] and teams[blue_id] and teams[red_id] != teams[blue_id]

    # The recording's header and summary sidecar name the team; a keyless one's header is as before.
    recordings = tmp_path / "recordings"
    assert orjson.loads((recordings / f"{red_id}.jsonl").read_bytes().split(b"\n")[0])["team"] == teams[red_id]
    assert "team" not in orjson.loads((recordings / f"{plain_id}.jsonl").read_bytes().split(b"\n")[0])
    wait_for(lambda: (recordings / f"{red_id}.summary.json").exists())
    assert orjson.loads((recordings / f"{red_id}.summary.json").read_bytes())["team"] == teams[red_id]

    # Another team's recording is a missing one: 404, word for word.
    missing = str(uuid.uuid4())
    for suffix in ("", ".jsonl", "/laps.csv", "/laps.json"):
        status, body, _ = http(server, f"/api/recordings/{blue_id}{suffix}", token=red.token)
        unknown = http(server, f"/api/recordings/{missing}{suffix}", token=red.token)
        assert (status, body) == unknown[:2] and status == 404, (suffix, body)
        assert orjson.loads(body)["error"] == "unknown_recording"
        assert http(server, f"/api/recordings/{blue_id}{suffix}", token=blue.token)[0] == 200
        assert http(server, f"/api/recordings/{plain_id}{suffix}", token=red.token)[0] == 404
        assert http(server, f"/api/recordings/{red_id}{suffix}", token=ADMIN)[0] == 200

    # Replays through REST: a team's own, never another's; the admin any.
    def replay(recording_id: str, token: str) -> tuple[int, dict]:
        status, body, _ = http(server, f"/api/recordings/{recording_id}/replay", token=token, method="POST",
                               body={"paused": True})
        return status, orjson.loads(body)

    status, refused = replay(blue_id, red.token)
    _, absent = replay(missing, red.token)
    assert status == 404 and refused["error"] == "unknown_recording"
    assert refused["message"].replace(blue_id, "ID") == absent["message"].replace(missing, "ID")
    assert replay(red_id, red.token)[0] == 201
    status, admins = replay(blue_id, ADMIN)
    assert status == 201
    assert http(server, f"/api/replays/{admins['replay_id']}", token=red.token)[0] == 404
    assert http(server, f"/api/replays/{admins['replay_id']}", token=blue.token)[0] == 200

    # Socket.IO replays and time-shift with the login cookie from the browser's handshake.
    red_cookie, blue_cookie = login_cookie(red.login_url), login_cookie(blue.login_url)
    red_browser = socketio.Client(reconnection=False)
    blue_browser = socketio.Client(reconnection=False)
    anonymous = socketio.Client(reconnection=False)
    try:
        red_browser.connect(server.url, headers={"Cookie": red_cookie}, wait_timeout=10)
        blue_browser.connect(server.url, headers={"Cookie": blue_cookie}, wait_timeout=10)
        anonymous.connect(server.url, wait_timeout=10)
        ack = red_browser.call("replay_start", {"recording_id": blue_id, "paused": True}, timeout=10)
        assert ack["ok"] is False and ack["error"] == "unknown_recording"
        assert red_browser.call("replay_start", {"recording_id": red_id, "paused": True}, timeout=10)["ok"]
        # A live session's viewer may time-shift it: its id is the right to view, whoever holds it.
        assert red_browser.call("timeshift_start", {"session_id": blue_id, "back": 1}, timeout=10)["ok"]
        blue_monitor.close()
        monitors.remove(blue_monitor)
        wait_for(lambda: not api(server, "/api/live", ADMIN)["sessions"][1]["publisher_connected"])
        # Once no monitor publishes it, it is a finished recording: the other team's is unknown.
        ack = red_browser.call("timeshift_start", {"session_id": blue_id, "back": 1}, timeout=10)
        assert ack["ok"] is False and ack["error"] == "unknown_recording"
        ack = anonymous.call("timeshift_start", {"session_id": blue_id, "back": 1}, timeout=10)
        assert ack["ok"] is False and ack["error"] == "team_required"
        assert blue_browser.call("timeshift_start", {"session_id": blue_id, "back": 1}, timeout=10)["ok"]
        # The dashboard URL stays viewable by whoever holds it.
        joined = anonymous.call("join_session", {"session_id": blue_id}, timeout=10)
        assert joined["ok"] and joined["has_telemetry"]
    finally:
        for client in (red_browser, blue_browser, anonymous):
            close_sync_client(client)
    assert http(server, f"/dashboard/{blue_id}")[0] == 200

    # Cookies work as bearer tokens do; the multi-car page does not confirm another team's session.
    assert {r["session_id"] for r in orjson.loads(http(server, "/api/recordings", cookie=red_cookie)[1])["recordings"]} == {red_id}
    status, page, _ = http(server, f"/cars?ids={red_id},{blue_id}", cookie=red_cookie)
    assert status == 200
    blue_card = re.search(rf'data-session-id="{blue_id}"[^>]*', page.decode())
    red_card = re.search(rf'data-session-id="{red_id}"[^>]*', page.decode())
    assert blue_card and red_card and blue_card.group(0).replace(blue_id, "") != red_card.group(0).replace(red_id, "")
    # Server-wide metrics are the admin's.
    assert http(server, "/metrics", token=red.token)[0] == 401
    assert http(server, "/metrics", token=ADMIN)[0] == 200
    # `team list` names the teams, never a token.
    listing = team_command(tmp_path, port, "list")
    assert "Red Racing" in listing and "Blue" in listing and red.token not in listing


def test_rotation_removal_and_restart_keep_every_session_in_its_team(tmp_path, servers, monitors):
    port = free_port()
    red = add_team(tmp_path, port, "Red")
    server = serve(servers, tmp_path, port)
    first = monitor(monitors, red.monitor_url)
    assert first.start_session()["ok"] and all(a["ok"] for a in first.publish())
    old_cookie = login_cookie(red.login_url)

    rotated = rotate(tmp_path, port, red, "--publish")
    assert rotated.monitor_url != red.monitor_url and rotated.login_url == red.login_url
    # The connected monitor goes on with its session; it cannot start another with the old key.
    assert first.call("telemetry_update", {**sample_telemetry_payloads()[5], "session_id": first.session_id})["ok"]
    ack = first.start_session()
    assert ack == {"ok": False, "error": "unknown_team", "message": ack["message"]} and "rotated" in ack["message"]
    stale = monitor(monitors, red.monitor_url)
    for ack in (stale.start_session(), stale.publish(frames=1, session_id=str(uuid.uuid4()))[0]):
        assert ack["ok"] is False and ack["error"] == "unknown_team"
    second = monitor(monitors, rotated.monitor_url)
    assert second.start_session()["ok"] and all(a["ok"] for a in second.publish())
    ids = {first.session_id, second.session_id}
    wait_for(lambda: recording_ids(server, red.token) == ids)
    assert live_ids(server, red.token) == ids

    # A new login token logs the old one and its browsers out.
    relogged = rotate(tmp_path, port, rotated, "--login")
    assert http(server, "/api/recordings", token=red.token)[0] == 401
    assert http(server, "/api/recordings", cookie=old_cookie)[0] == 401
    assert recording_ids(server, relogged.token) == ids

    # A restart: the tags are in the recordings, not in the server's memory.
    while monitors:
        monitors.pop().close()
    assert server.stop() == 0
    server = serve(servers, tmp_path, port)
    assert recording_ids(server, relogged.token) == ids
    # The returning monitor (new key) resumes its session in its team; a keyless one may not take it.
    back = monitor(monitors, rotated.monitor_url)
    assert all(a["ok"] for a in back.publish(frames=1, session_id=first.session_id))
    intruder = monitor(monitors, server.url)
    ack = intruder.publish(frames=1, session_id=second.session_id)[0]
    assert ack["ok"] is False and ack["error"] == "not_publisher"
    # (The refused take-up resumed that session from its recording, as a viewer's join does: it is listed, as Red's.)
    assert live_ids(server, relogged.token) == ids
    assert recording_ids(server, relogged.token) == ids

    # A removed team can neither log in nor publish; its recordings are the admin's.
    assert "removed" in team_command(tmp_path, port, "remove", "red")
    assert http(server, "/api/recordings", token=relogged.token)[0] == 401
    assert monitor(monitors, rotated.monitor_url).start_session()["error"] == "unknown_team"
    assert ids <= recording_ids(server, ADMIN)


def test_require_team_refuses_a_monitor_without_a_key(tmp_path, servers, monitors):
    port = free_port()
    red = add_team(tmp_path, port, "Red")
    server = serve(servers, tmp_path, port, "--require-team", "true")
    keyless = monitor(monitors, server.url)
    ack = keyless.start_session()
    assert ack["ok"] is False and ack["error"] == "team_key_required" and "?team=" in ack["message"]
    acks = keyless.publish(frames=1, session_id=str(uuid.uuid4()))
    assert all(a["ok"] is False and a["error"] == "team_key_required" for a in acks)
    wrong = monitor(monitors, f"{server.url}/?team=not-a-key")
    assert wrong.start_session()["error"] == "unknown_team"
    assert api(server, "/api/live", ADMIN)["sessions"] == []
    keyed = monitor(monitors, red.monitor_url)
    assert keyed.start_session()["ok"] and all(a["ok"] for a in keyed.publish(frames=1))


def test_without_teams_one_token_sees_everything_as_before(tmp_path, servers, monitors):
    port = free_port()
    server = serve(servers, tmp_path, port)
    plain = monitor(monitors, server.url)
    assert plain.start_session()["ok"] and all(a["ok"] for a in plain.publish(frames=1))
    assert live_ids(server, ADMIN) == {plain.session_id}
    wait_for(lambda: recording_ids(server, ADMIN) == {plain.session_id})
    assert not (tmp_path / "state" / "teams.sqlite3").exists()  # `serve` needs no new step, makes no new file
    ack = monitor(monitors, f"{server.url}/?team=whatever").start_session()
    assert ack["error"] == "unknown_team"


@pytest.mark.browser
async def test_each_team_sees_its_own_cars_and_recordings_in_a_browser(tmp_path, servers, monitors):
    port = free_port()
    red = await asyncio.to_thread(add_team, tmp_path, port, "Red")
    blue = await asyncio.to_thread(add_team, tmp_path, port, "Blue")
    server = await asyncio.to_thread(serve, servers, tmp_path, port)
    sessions = {}
    for team in (red, blue):
        car = await asyncio.to_thread(monitor, monitors, team.monitor_url)
        assert (await asyncio.to_thread(car.start_session))["ok"]
        assert all(a["ok"] for a in await asyncio.to_thread(car.publish, 2))
        sessions[team.name] = car.session_id
    await asyncio.to_thread(wait_for, lambda: len(recording_ids(server, ADMIN)) == 2)
    async with chromium() as browser:
        for team, other in ((red, blue), (blue, red)):
            tab = await browser.open(team.login_url + "&next=/recordings")
            page = tab.page
            await expect(page.locator("#team-scope")).to_have_text(f"Team {team.name}")
            await expect(page.locator("#rec-body tr")).to_have_count(1)
            await expect(page.locator("#rec-body tr").first).to_have_attribute("data-session-id", sessions[team.name])
            await page.goto(server.url + "/team")
            await expect(page.locator("#team-scope")).to_have_text(f"Team {team.name}")
            await expect(page.locator(f'#team-body tr[data-session-id="{sessions[team.name]}"]')).to_have_count(1)
            await expect(page.locator("#team-body tr")).to_have_count(1)
            assert sessions[other.name] not in await page.content()
            tab.assert_clean()
        admin = await browser.open(f"{server.url}/login?token={ADMIN}&next=/recordings")
        await expect(admin.page.locator("#team-scope")).to_have_text("Admin: every team")
        await expect(admin.page.locator("#rec-body tr")).to_have_count(2)
        admin.assert_clean()
