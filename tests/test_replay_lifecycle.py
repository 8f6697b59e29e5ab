"""Replay lifecycle through a real server: idle replays stop, the concurrency limit, shutdown."""

from __future__ import annotations

import asyncio

import pytest

from racedash.config import Settings
from racedash.server import RacedashServer
from tests.helpers import Client, wait_until
from tests.replay_helpers import connect, new_recording, team_headers


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The suite's loopback settings, with this file's replay timings."""
    return settings.replace(
        replay_max_concurrent=2,
        replay_idle_seconds=0.4,
        replay_state_interval=0.1,
    )


async def test_idle_replay_stops_and_frees_its_resources(server, clients, settings):
    recording_id, _path = new_recording(settings.recordings_dir, laps=50, frames_per_lap=20, interval=0.5)
    manager = server.app.replays
    client = await connect(server, clients)
    unwatched = (await client.call("replay_start", {"recording_id": recording_id}))["replay_id"]
    watched = (await client.call("replay_start", {"recording_id": recording_id}))["replay_id"]
    viewer = await connect(server, clients)
    await viewer.call("join_session", {"session_id": watched})
    stopped_task = manager.get(unwatched).task
    await wait_until(lambda: manager.was_stopped(unwatched))
    assert stopped_task.done()
    ack = await client.call("replay_control", {"replay_id": unwatched, "action": "play"})
    assert ack["error"] == "replay_stopped"
    # The watched replay outlives the idle time while its viewer stays...
    await asyncio.sleep(settings.replay_idle_seconds * 2)
    assert manager.get(watched).status == "playing"
    # ...and stops once the viewer is gone for that long.
    last_state = len(viewer.events["replay_state"])
    await viewer.close()
    clients.remove(viewer)
    await wait_until(lambda: manager.was_stopped(watched))
    assert len(manager) == 0
    assert last_state > 0


async def test_max_concurrent_replays_gives_a_clear_error(server, clients, settings):
    recording_id, _path = new_recording(settings.recordings_dir, laps=1)
    client = await connect(server, clients)
    viewer = await connect(server, clients)
    first = await client.call("replay_start", {"recording_id": recording_id, "paused": True})
    second = await client.call("replay_start", {"recording_id": recording_id, "paused": True})
    await viewer.call("join_session", {"session_id": first["replay_id"]})
    await viewer.call("join_session", {"session_id": second["replay_id"]})
    third = await client.call("replay_start", {"recording_id": recording_id})
    assert third["ok"] is False and third["error"] == "too_many_replays"
    assert "2 replays" in third["message"]
    await client.call("replay_control", {"replay_id": first["replay_id"], "action": "stop"})
    await wait_until(lambda: len(server.app.replays) == 1)
    again = await client.call("replay_start", {"recording_id": recording_id, "paused": True})
    assert again["ok"] is True


async def test_server_shutdown_cancels_running_replays(settings, io_loop):
    recording_id, _path = new_recording(settings.recordings_dir, laps=20, frames_per_lap=20)
    server = await RacedashServer(settings).start()
    viewer = Client(server.url)
    try:
        await viewer.connect(headers=team_headers(server))
        ack = await viewer.call("replay_start", {"recording_id": recording_id})
        await viewer.call("join_session", {"session_id": ack["replay_id"]})
        task = server.app.replays.get(ack["replay_id"]).task
        await viewer.wait_for("telemetry_update")
    finally:
        await server.stop()
        await viewer.close()
    assert task.done() and task.cancelled()
    assert not server.app.replays._tasks
