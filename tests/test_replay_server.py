"""Replay through a real server and real Socket.IO clients, on real recording files."""

from __future__ import annotations

import asyncio
import json
import urllib.parse
import uuid

import pytest
import tornado.httpclient

from racedash.config import Settings
from racedash.recording.format import encode_event
from tests.helpers import Client
from tests.replay_helpers import connect, assert_state_first, bearer, new_recording, stint, telemetry_frame, write_recording


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The suite's loopback settings, with this file's replay timings."""
    return settings.replace(
        replay_state_interval=0.2,
        replay_max_concurrent=3,
        replay_history_seconds=5.0,
        replay_history_frames=1000,
    )


async def http(server, method: str, path: str, body: object = None, team: bool = True) -> tuple[int, dict]:
    request = tornado.httpclient.HTTPRequest(
        server.url + path,
        method=method,
        body=None if body is None and method == "GET" else json.dumps(body or {}),
        headers={"Content-Type": "application/json", **(bearer(server) if team else {})},
    )
    response = await tornado.httpclient.AsyncHTTPClient().fetch(request, raise_error=False)
    return response.code, json.loads(response.body)


def recording(settings, **options):
    return new_recording(settings.recordings_dir, **options)


async def wait_for_state(client: Client, status: str, timeout: float = 5) -> dict:
    """The first replay_state with this status the client receives (or has received)."""
    async def find() -> dict:
        while True:
            for state in client.events["replay_state"]:
                if state["status"] == status:
                    return state
            await client.wait_for("replay_state", len(client.events["replay_state"]) + 1, timeout)

    return await asyncio.wait_for(find(), timeout)


def seqs(client: Client, event: str = "telemetry_update") -> list[int]:
    return [m["seq"] for m in client.events[event]]


async def test_two_viewers_see_the_same_frames(server, clients, settings):
    recording_id, _path = recording(settings, laps=2, frames_per_lap=10, interval=0.02)
    starter = await connect(server, clients)
    ack = await starter.call("replay_start", {"recording_id": recording_id, "paused": True})
    assert ack["ok"] is True and uuid.UUID(ack["replay_id"]).version == 4
    replay_id = ack["replay_id"]
    assert ack["dashboard_url"] == f"{server.url}/dashboard/{replay_id}"
    viewers = [await connect(server, clients) for _ in range(2)]
    for viewer in viewers:
        join = await viewer.call("join_session", {"session_id": replay_id})
        assert join["ok"] and join["replay"] is True and join["state"]["status"] == "paused"
    control = await starter.call("replay_control", {"replay_id": replay_id, "action": "play"})
    assert control["ok"] and control["state"]["status"] == "playing"
    for viewer in viewers:
        await viewer.wait_for("telemetry_update", 20)
    first, second = (v.events["telemetry_update"] for v in viewers)
    assert first == second
    assert [m["seq"] for m in first] == list(range(2, 22))
    assert {m["session_id"] for m in first} == {replay_id}
    assert [m["telemetry"] for m in first] == [data["telemetry"] for _t, kind, data in stint(recording_id, laps=2, frames_per_lap=10, interval=0.02) if kind == "telemetry"]
    assert first[0]["telemetry"]["lap"] == 1 and first[-1]["telemetry"]["lap"] == 2
    assert viewers[0].events["setup_update"] == viewers[1].events["setup_update"]
    assert viewers[0].events["setup_update"][0]["seq"] == 1
    # The room learns that the replay ended.
    for viewer in viewers:
        state = await wait_for_state(viewer, "ended")
        assert state["position"] == state["duration"] == 0.4
    # The live dashboard page serves a replay id.
    response = await tornado.httpclient.AsyncHTTPClient().fetch(ack["dashboard_url"], raise_error=False)
    assert response.code == 200


async def test_viewer_joining_mid_replay_gets_the_state_first(server, clients, settings):
    recording_id, _path = recording(settings, laps=4, frames_per_lap=25, interval=0.05)
    first = await connect(server, clients)
    ack = await first.call("replay_start", {"recording_id": recording_id, "paused": True})
    replay_id = ack["replay_id"]
    await first.call("join_session", {"session_id": replay_id})
    await first.call("replay_control", {"replay_id": replay_id, "action": "play"})
    await first.wait_for("telemetry_update", 10)
    late = await connect(server, clients)
    join = await late.call("join_session", {"session_id": replay_id})
    assert join["ok"] and join["state"]["status"] == "playing"
    await late.wait_for("telemetry_update", 3)
    names = [event for event, _ in late.log]
    assert names[:4] == ["replay_state", "setup_update", "telemetry_history", "telemetry_update"]
    history = late.log[2][1]["frames"]
    current = late.log[3][1]
    assert history and history[-1]["seq"] == current["seq"]
    assert [f["seq"] for f in history] == list(range(history[0]["seq"], current["seq"] + 1))
    assert history[-1]["telemetry"] == current["telemetry"]
    late_frames = list(late.events["telemetry_update"][1:])
    later = [m["seq"] for m in late_frames]
    assert later == list(range(current["seq"] + 1, current["seq"] + 1 + len(later)))
    # From there on both viewers see the same frames.
    await first.wait_for("telemetry_update", later[-1] - 1)
    assert [m for m in first.events["telemetry_update"] if m["seq"] > current["seq"]][: len(later)] == late_frames
    await first.call("replay_control", {"replay_id": replay_id, "action": "stop"})


async def test_seek_by_lap_sends_state_then_continues(server, clients, settings):
    recording_id, _path = recording(settings, laps=5, frames_per_lap=20, interval=0.05)
    viewer = await connect(server, clients)
    replay_id = (await viewer.call("replay_start", {"recording_id": recording_id, "paused": True}))["replay_id"]
    await viewer.call("join_session", {"session_id": replay_id})
    state = (await viewer.call("replay_control", {"replay_id": replay_id, "action": "pause"}))["state"]
    assert [lap["lap"] for lap in state["laps"]] == [1, 2, 3, 4, 5]
    lap4 = state["laps"][3]["t"]
    viewer.log.clear()
    viewer.events.clear()
    ack = await viewer.call("replay_control", {"replay_id": replay_id, "action": "seek", "lap": 4})
    assert ack["ok"] and ack["state"]["lap"] == 4 and ack["state"]["position"] == lap4
    await viewer.wait_for("telemetry_update")
    assert_state_first(viewer.log)
    at_lap = viewer.events["telemetry_update"][0]
    assert at_lap["telemetry"]["lap"] == 4 and at_lap["telemetry"]["lap_time"] == 0.0
    await viewer.call("replay_control", {"replay_id": replay_id, "action": "speed", "speed": 4})
    await viewer.call("replay_control", {"replay_id": replay_id, "action": "resume"})
    frames = await viewer.wait_for("telemetry_update", 5)
    assert [m["seq"] for m in frames[:5]] == list(range(at_lap["seq"], at_lap["seq"] + 5))
    bad = await viewer.call("replay_control", {"replay_id": replay_id, "action": "seek", "lap": 42})
    assert bad["ok"] is False and bad["error"] == "unknown_lap"
    bad = await viewer.call("replay_control", {"replay_id": replay_id, "action": "speed", "speed": 64})
    assert bad["ok"] is False and bad["error"] == "invalid_control"
    bad = await viewer.call("replay_control", {"replay_id": replay_id, "action": "fly"})
    assert bad["ok"] is False and bad["error"] == "wrong_type"


async def test_two_concurrent_replays_stay_independent(server, clients, settings):
    recording_id, _path = recording(settings, laps=2, frames_per_lap=50, interval=0.02)
    a, b = await connect(server, clients), await connect(server, clients)
    id_a = (await a.call("replay_start", {"recording_id": recording_id, "paused": True}))["replay_id"]
    id_b = (await b.call("replay_start", {"recording_id": recording_id, "paused": True}))["replay_id"]
    assert id_a != id_b
    await a.call("join_session", {"session_id": id_a})
    await b.call("join_session", {"session_id": id_b})
    await b.call("replay_control", {"replay_id": id_b, "action": "seek", "lap": 2})
    await a.call("replay_control", {"replay_id": id_a, "action": "play"})
    await a.wait_for("telemetry_update", 100)
    assert seqs(a) == list(range(2, 102))
    # b stayed paused at lap 2: only its seek state, nothing played.
    assert seqs(b) == [52]
    assert b.events["replay_state"][-1]["status"] == "paused"
    assert {m["session_id"] for m in a.events["telemetry_update"]} == {id_a}
    assert {m["session_id"] for m in b.events["telemetry_update"]} == {id_b}
    await b.call("replay_control", {"replay_id": id_b, "action": "play"})
    await b.wait_for("telemetry_update", 50)
    assert seqs(b) == [52] + list(range(53, 102))
    assert seqs(a) == list(range(2, 102))


async def test_torn_tail_replays_up_to_the_last_good_line(server, clients, settings):
    session_id = str(uuid.uuid4())
    frames = stint(session_id, laps=1, frames_per_lap=5, interval=0.01)
    torn = encode_event(1_700_000_001.0, 99, "telemetry", {"session_id": session_id, "telemetry": telemetry_frame(1)})
    write_recording(settings.recordings_dir / f"{session_id}.jsonl", frames, tail=torn[: len(torn) // 2])
    viewer = await connect(server, clients)
    ack = await viewer.call("replay_start", {"recording_id": session_id, "paused": True})
    assert ack["ok"] and ack["state"]["duration"] == 0.05
    await viewer.call("join_session", {"session_id": ack["replay_id"]})
    await viewer.call("replay_control", {"replay_id": ack["replay_id"], "action": "play"})
    await wait_for_state(viewer, "ended")
    assert seqs(viewer) == [2, 3, 4, 5, 6]


@pytest.mark.parametrize(
    ("content", "recording_id", "code"),
    [
        (b'{"format": "something-else", "version": 1}\n', None, "bad_recording"),
        (b'{"format": "racedash-recording", "version": 99, "session_id": "x", "created": 1}\n', None, "bad_recording"),
        (b"not json at all\n", None, "bad_recording"),
        (b'{"format": "racedash-recording", "version": 1', None, "bad_recording"),
        (None, None, "unknown_recording"),
        (None, "../../etc/passwd", "unknown_recording"),
    ],
)
async def test_bad_recordings_get_a_clear_error(server, clients, settings, content, recording_id, code):
    session_id = str(uuid.uuid4())
    if content is not None:
        settings.recordings_dir.mkdir(parents=True, exist_ok=True)
        (settings.recordings_dir / f"{session_id}.jsonl").write_bytes(content)
    client = await connect(server, clients)
    ack = await client.call("replay_start", {"recording_id": recording_id or session_id})
    assert ack["ok"] is False and ack["error"] == code and ack["message"]
    quoted = urllib.parse.quote(recording_id or session_id, safe="")
    status, body = await http(server, "POST", f"/api/recordings/{quoted}/replay")
    assert body["error"] == code and status == (422 if code == "bad_recording" else 404)
    assert len(server.app.replays) == 0 and client.sio.connected


async def test_rest_start_control_and_state(server, clients, settings):
    recording_id, _path = recording(settings, laps=3, frames_per_lap=10, interval=0.5)
    status, body = await http(server, "POST", f"/api/recordings/{recording_id}/replay", {"paused": True, "speed": 2})
    assert status == 201 and body["ok"] is True
    replay_id = body["replay_id"]
    assert body["dashboard_url"] == f"{server.url}/dashboard/{replay_id}"
    viewer = await connect(server, clients)
    await viewer.call("join_session", {"session_id": replay_id})
    status, body = await http(server, "POST", f"/api/replays/{replay_id}/control", {"action": "seek", "lap": 3})
    assert status == 200 and body["state"]["lap"] == 3 and body["state"]["speed"] == 2.0
    update = (await viewer.wait_for("telemetry_update"))[0]
    assert update["telemetry"]["lap"] == 3
    status, body = await http(server, "GET", f"/api/replays/{replay_id}")
    assert status == 200 and body["state"]["status"] == "paused" and body["state"]["viewers"] == 1
    assert body["state"]["recording_id"] == recording_id and body["state"]["duration"] == 15.0
    status, body = await http(server, "POST", f"/api/replays/{replay_id}/control", {"action": "warp"})
    assert status == 400 and body["error"] == "wrong_type"
    status, body = await http(server, "POST", f"/api/replays/{replay_id}/control", {"action": "speed", "speed": 0.1})
    assert status == 400 and body["error"] == "invalid_control"
    status, body = await http(server, "POST", f"/api/replays/{replay_id}/control", {"action": "stop"})
    assert status == 200 and body["state"]["status"] == "stopped"
    await wait_for_state(viewer, "stopped")
    for _ in range(100):
        status, body = await http(server, "GET", f"/api/replays/{replay_id}")
        if status != 200:
            break
        await asyncio.sleep(0.02)
    assert status == 410 and body["error"] == "replay_stopped"
    status, body = await http(server, "GET", f"/api/replays/{uuid.uuid4()}")
    assert status == 404 and body["error"] == "unknown_replay"
    status, body = await http(server, "GET", "/api/replays/not-an-id")
    assert status == 404 and body["error"] == "unknown_replay"
    join = await viewer.call("join_session", {"session_id": replay_id})
    assert join["ok"] is False and join["error"] == "replay_stopped"


async def test_leave_replay_and_bad_payloads(server, clients, settings):
    recording_id, _path = recording(settings, laps=1, frames_per_lap=10, interval=0.5)
    viewer = await connect(server, clients)
    for payload, code in [
        ({}, "missing_field"),
        ({"recording_id": 5}, "wrong_type"),
        ({"recording_id": recording_id, "speed": "fast"}, "wrong_type"),
        ({"recording_id": recording_id, "speed": 100}, "invalid_control"),
        (None, "invalid_payload"),
    ]:
        ack = await viewer.call("replay_start", payload)
        assert ack["ok"] is False and ack["error"] == code
    ack = await viewer.call("replay_control", {"replay_id": str(uuid.uuid4()), "action": "play"})
    assert ack["error"] == "unknown_replay"
    replay_id = (await viewer.call("replay_start", {"recording_id": recording_id, "paused": True}))["replay_id"]
    await viewer.call("join_session", {"session_id": replay_id})
    assert server.app.replays.get(replay_id).viewers
    assert (await viewer.call("leave_session", {"session_id": replay_id}))["ok"]
    assert not server.app.replays.get(replay_id).viewers
    before = len(viewer.events["replay_state"])
    await viewer.call("replay_control", {"replay_id": replay_id, "action": "play"})
    await asyncio.sleep(0.3)
    assert len(viewer.events["replay_state"]) == before and "telemetry_update" not in viewer.events


async def test_cli_replay_publishes_a_recording_as_a_monitor(server, clients, settings, tmp_path):
    import os
    import sys
    from pathlib import Path

    recording_id, path = new_recording(tmp_path / "elsewhere", laps=2, frames_per_lap=10, interval=0.1)
    target = str(uuid.uuid4())
    viewer = await connect(server, clients)
    await viewer.call("join_session", {"session_id": target})
    root = Path(__file__).resolve().parents[1]
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "racedash", "replay", str(path), "--url", server.url, "--speed", "4",
        "--session-id", target,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, stderr.decode()
    assert f"{server.url}/dashboard/{target}" in stdout.decode() and "published 21 frames" in stdout.decode()
    frames = await viewer.wait_for("telemetry_update", 20)
    expected = [data["telemetry"] for _t, kind, data in stint(recording_id, laps=2, frames_per_lap=10, interval=0.1) if kind == "telemetry"]
    assert [m["telemetry"] for m in frames] == expected
    assert {m["session_id"] for m in frames} == {target}
    assert viewer.events["setup_update"][0]["setup"] == {"carSetup": {"garageValues": {}}}

    bad = tmp_path / f"{uuid.uuid4()}.jsonl"
    bad.write_bytes(b"garbage\n")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "racedash", "replay", str(bad), "--url", server.url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    _stdout, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 1 and b"cannot be replayed" in stderr


async def test_publish_recording_requests_an_id_like_the_monitor(server, clients, tmp_path):
    from racedash.replay.publish import publish_recording

    _recording_id, path = new_recording(tmp_path / "elsewhere", laps=1, frames_per_lap=8, interval=0.2)
    said: list[str] = []
    sent = await publish_recording(path, server.url, speed=16, say=said.append)
    assert sent == 9
    session_id = said[0].split(" as session ")[1].split()[0]
    session = server.app.registry.get(session_id)
    assert session is not None and session.next_seq == 10
    assert session.telemetry.payload["telemetry"]["lap_time"] == pytest.approx(7 * 0.2)


async def test_replaying_recordings_needs_team_access_viewing_needs_only_the_id(server, clients, settings):
    recording_id, _path = recording(settings, laps=1, frames_per_lap=10, interval=0.05)
    outsider = await connect(server, clients, team=False)
    ack = await outsider.call("replay_start", {"recording_id": recording_id})
    assert ack["ok"] is False and ack["error"] == "team_required"
    status, body = await http(server, "POST", f"/api/recordings/{recording_id}/replay", team=False)
    assert status == 403  # a browser POST without the team's XSRF token never gets as far as the login check
    assert len(server.app.replays) == 0
    team = await connect(server, clients)
    replay_id = (await team.call("replay_start", {"recording_id": recording_id, "paused": True}))["replay_id"]
    status, _body = await http(server, "GET", f"/api/replays/{replay_id}", team=False)
    assert status == 401
    # The replay link is enough to watch, as for a live session.
    join = await outsider.call("join_session", {"session_id": replay_id})
    assert join["ok"] and join["replay"]
    # ...and to drive the shared transport bar of the debrief room.
    assert (await outsider.call("replay_control", {"replay_id": replay_id, "action": "play"}))["ok"]
    await outsider.wait_for("telemetry_update", 10)


@pytest.mark.parametrize("settings_changes", [{"publish_auth": "token"}])
async def test_publish_recording_into_a_fixed_id_in_token_mode(server_with, clients, tmp_path, settings_changes):
    from racedash.errors import RacedashError
    from racedash.replay.publish import publish_recording

    _recording_id, path = new_recording(tmp_path / "elsewhere", laps=1, frames_per_lap=3, interval=0.1)
    target = str(uuid.uuid4())
    token = server_with.app.rights.token_for(target)
    sent = await publish_recording(path, server_with.url, speed=16, session_id=target, publish_token=token, say=lambda _m: None)
    assert sent == 4 and server_with.app.registry.get(target).next_seq == 5
    # Without the token the server refuses the first frame, and the publisher says so.
    with pytest.raises(RacedashError) as refused:
        await publish_recording(path, server_with.url, speed=16, session_id=str(uuid.uuid4()), say=lambda _m: None)
    assert refused.value.code == "not_publisher"
