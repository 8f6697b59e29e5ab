"""Retention: by age and total size, oldest ended first, never a live recording."""

from __future__ import annotations

import uuid

import pytest

from racedash.config import Settings
from racedash.recording.retention import RetentionPolicy, plan
from racedash.recording.summary import load_summary, sidecar_path, write_sidecar
from racedash.server import RacedashServer
from tests.helpers import Client
from tests.helpers import wait_until
from tests.recording_support import recorded_seqs, setup_payload, telemetry, write_recording

DAY = 86400.0


def item(session_id: str, last_time: float, size: int, state: str = "ended") -> dict:
    return {"session_id": session_id, "created": last_time - 10, "last_time": last_time, "size": size,
            "live": state == "live", "state": state}


def test_plan_is_off_by_default():
    recordings = [item("a", 0.0, 10**9)]
    assert not RetentionPolicy().enabled
    assert plan(recordings, RetentionPolicy(), now=10 * DAY) == []


def test_plan_by_age_never_takes_a_live_recording():
    recordings = [item("old", 1 * DAY, 10), item("older-live", 0.5 * DAY, 10, "live"), item("new", 9 * DAY, 10)]
    assert plan(recordings, RetentionPolicy(max_age_seconds=5 * DAY), now=10 * DAY) == ["old"]


def test_plan_by_size_takes_oldest_ended_first_then_interrupted():
    recordings = [
        item("live", 1.0, 500, "live"),
        item("ended-new", 30.0, 100),
        item("ended-old", 20.0, 100),
        item("interrupted-oldest", 10.0, 100, "interrupted"),
    ]
    policy = RetentionPolicy(max_total_bytes=650)
    assert plan(recordings, policy, now=100.0) == ["ended-old", "ended-new"]
    # Even when live recordings alone exceed the limit, they stay.
    policy = RetentionPolicy(max_total_bytes=1)
    assert plan(recordings, policy, now=100.0) == ["ended-old", "ended-new", "interrupted-oldest"]


@pytest.fixture
def retained_server(io_loop, tmp_path):
    settings = Settings(host="127.0.0.1", port=0, recordings_dir=tmp_path / "r",
                        retention_max_total_mb=0.001, retention_check_seconds=3600)
    settings.recordings_dir.mkdir()
    srv = RacedashServer(settings)
    yield srv
    if srv._http is not None:
        io_loop.run_sync(srv.stop)


def ended_recording(directory, frames: int = 5):
    session_id = str(uuid.uuid4())
    path = directory / f"{session_id}.jsonl"
    write_recording(path, session_id, frames)
    summary = load_summary(path)
    summary.ended = True
    write_sidecar(path, summary)
    return session_id, path


async def test_retention_never_touches_a_live_session(retained_server, clients):
    directory = retained_server.settings.recordings_dir
    ended = [ended_recording(directory) for _ in range(3)]
    srv = await retained_server.start()  # retention runs once at start
    await wait_until(lambda: not any(path.exists() for _, path in ended))

    ended = [ended_recording(directory) for _ in range(3)]
    # A recording whose session is held by the server (a viewer joined it) but not being written.
    watched_id, watched_path = ended_recording(directory)
    viewer = Client(srv.url)
    clients.append(viewer)
    await viewer.connect()
    await viewer.call("join_session", {"session_id": watched_id})

    monitor = Client(srv.url)
    clients.append(monitor)
    await monitor.connect()
    live_id = (await monitor.call("request_session_id", {}))["session_id"]
    await monitor.call("setup_data", setup_payload(live_id))  # ~60 KB: alone above the 1 KB limit
    live_path = directory / f"{live_id}.jsonl"
    await wait_until(lambda: recorded_seqs(live_path) == [1])

    deleted = await srv.app.retention.run_once()
    assert sorted(deleted) == sorted(sid for sid, _ in ended)
    for _, path in ended:
        assert not path.exists() and not sidecar_path(path).exists()
    assert watched_path.exists() and live_path.exists()

    # The live recording keeps being written after retention ran.
    await monitor.call("telemetry_update", telemetry(live_id, lap=1))
    await wait_until(lambda: recorded_seqs(live_path) == [1, 2])
    assert await srv.app.retention.run_once() == []
