"""Traversal attempts in URLs, ids and download names never touch a file outside the recordings dir."""

from __future__ import annotations

import urllib.parse
import uuid

import pytest

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
