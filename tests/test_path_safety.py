"""Traversal attempts in URLs, ids and download names never touch a file outside the recordings dir."""

from __future__ import annotations

import os
import stat
import urllib.parse
import uuid

import pytest

from tests.helpers import wait_until
from tests.recording_support import api, write_recording
from tests.replay_helpers import connect


@pytest.fixture
def planted(settings):
    """A valid recording outside the recordings dir, where a traversal would find it."""
    settings.recordings_dir.mkdir(parents=True, exist_ok=True)
    session_id = str(uuid.uuid4())
    outside = settings.recordings_dir.parent / f"{session_id}.jsonl"
    write_recording(outside, session_id, 3)
    return session_id, outside.read_bytes()


def attempts(session_id: str) -> list[str]:
    raw = [
        f"../{session_id}",
        f"..%2F{session_id}",
        f"%2e%2e%2f{session_id}",
        f"..%5C{session_id}",
        f"....//{session_id}",
        f"%252e%252e%252f{session_id}",
        f"{session_id}%00",
        f"/{session_id}",
    ]
    return raw + [urllib.parse.quote(r, safe="") for r in raw]


async def test_download_and_metadata_never_reach_outside(server, planted):
    session_id, content = planted
    for attempt in attempts(session_id):
        for path in (f"/api/recordings/{attempt}", f"/api/recordings/{attempt}.jsonl"):
            status, _, body = await api(server, path)
            assert status in (400, 404), (path, status)
            assert b'"seq"' not in body and content not in body, path
    status, _, body = await api(server, "/api/recordings")
    assert status == 200 and session_id.encode() not in body


async def test_replays_never_open_a_file_outside(server, clients, planted):
    session_id, _ = planted
    team = await connect(server, clients, team=True)
    for attempt in attempts(session_id):
        ack = await team.call("replay_start", {"recording_id": urllib.parse.unquote(attempt)})
        assert ack["ok"] is False, attempt
        status, _, _ = await api(server, f"/api/recordings/{attempt}/replay")
        assert status in (400, 403, 404, 405), attempt


# -- links and special files planted in the recordings directory --------------------------------

async def test_a_planted_link_is_no_recording(server, clients, planted):
    """``<id>.jsonl`` linking to a recording (or /etc/shadow) outside: never served, listed or replayed."""
    session_id, content = planted
    link = server.settings.recordings_dir / f"{session_id}.jsonl"
    link.symlink_to(server.settings.recordings_dir.parent / f"{session_id}.jsonl")
    for path in (f"/api/recordings/{session_id}", f"/api/recordings/{session_id}.jsonl",
                 f"/api/recordings/{session_id}/laps.csv"):
        status, _, body = await api(server, path)
        assert status == 404 and content not in body, path
    status, _, body = await api(server, "/api/recordings")
    assert status == 200 and session_id.encode() not in body
    team = await connect(server, clients, team=True)
    assert (await team.call("replay_start", {"recording_id": session_id}))["ok"] is False


async def test_a_recording_is_never_appended_through_a_link(server, clients, tmp_path):
    outside = tmp_path / "victim.txt"
    outside.write_bytes(b"precious\n")
    session_id = str(uuid.uuid4())
    directory = server.settings.recordings_dir
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{session_id}.jsonl").symlink_to(outside)
    (directory / f"{session_id}.summary.json").symlink_to(outside)
    monitor = await connect(server, clients)
    ack = await monitor.call("telemetry_update", {"session_id": session_id, "telemetry": {"lap": 1}})
    assert ack["ok"]  # accepted live; its recording is refused and reported, not written through
    await wait_until(lambda: any("not a regular file" in p for p in server.app.status.snapshot()["problems"]))
    await server.app.recorder.close_session(session_id, ended=True)
    assert outside.read_bytes() == b"precious\n"


async def test_a_fifo_named_like_a_recording_blocks_nothing(server, clients):
    session_id = str(uuid.uuid4())
    directory = server.settings.recordings_dir
    directory.mkdir(parents=True, exist_ok=True)
    os.mkfifo(directory / f"{session_id}.jsonl")
    status, _, _ = await api(server, f"/api/recordings/{session_id}.jsonl")
    assert status == 404
    team = await connect(server, clients, team=True)
    assert (await team.call("replay_start", {"recording_id": session_id}))["ok"] is False
    monitor = await connect(server, clients)
    assert (await monitor.call("telemetry_update", {"session_id": session_id, "telemetry": {"lap": 1}}))["ok"]
    await wait_until(lambda: any("not a regular file" in p for p in server.app.status.snapshot()["problems"]))
    # The server still answers and stops (a blocked worker thread would hang the stop).
    status, _, _ = await api(server, "/api/recordings")
    assert status == 200


async def test_recordings_are_not_world_readable(server, clients):
    monitor = await connect(server, clients)
    session_id = (await monitor.call("request_session_id", {}))["session_id"]
    await monitor.call("telemetry_update", {"session_id": session_id, "telemetry": {"lap": 1}})
    assert await server.app.recorder.flush(session_id)
    directory = server.settings.recordings_dir
    assert stat.S_IMODE((directory / f"{session_id}.jsonl").stat().st_mode) == 0o640
    assert stat.S_IMODE(directory.stat().st_mode) & 0o007 == 0
