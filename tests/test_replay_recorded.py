"""Replays of recordings written by the real recorder, through a real server (recording on)."""

from __future__ import annotations

import asyncio

import pytest

from racedash.config import Settings
from racedash.recording.format import decode_event
from tests.helpers import Client, sample_setup, sample_telemetry_payloads
from tests.replay_helpers import assert_state_first, team_headers


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The suite's loopback settings, with this file's replay timings."""
    return settings.replace(
        replay_state_interval=0.2,
        # A 10 s window in 1000 buckets of 10 ms: every frame of these stints is kept.
        replay_history_seconds=10.0,
        replay_history_frames=1000,
    )


async def connect(server, clients, team: bool = False) -> Client:
    client = Client(server.url)
    clients.append(client)
    return await client.connect(headers=team_headers(server) if team else {})


def stint_frames(session_id: str, laps: int, per_lap: int) -> list[dict]:
    """The real sample telemetry, numbered into laps."""
    samples = [p["telemetry"] for p in sample_telemetry_payloads()]
    frames = []
    for i in range(laps * per_lap):
        telemetry = dict(samples[i % len(samples)])
        telemetry["lap"] = 1 + i // per_lap
        frames.append({"session_id": session_id, "telemetry": telemetry})
    return frames


async def record_stint(server, clients, laps: int = 3, per_lap: int = 10, gap: float = 0.02) -> tuple[str, list[dict]]:
    """A monitor publishes a real setup and a stint; returns once the recorder has it all on disk."""
    monitor = await connect(server, clients)
    session_id = (await monitor.call("request_session_id", {}))["session_id"]
    setup = {"session_id": session_id, "timestamp": "2025-11-22T17:16:45.160430Z", "setup": sample_setup()}
    await monitor.call("setup_data", setup)
    frames = stint_frames(session_id, laps, per_lap)
    for frame in frames:
        await monitor.call("telemetry_update", frame)
        await asyncio.sleep(gap)
    assert await server.app.recorder.flush(session_id)
    return session_id, frames


def recorded(server, session_id: str) -> list:
    path = server.settings.recordings_dir / f"{session_id}.jsonl"
    with open(path, "rb") as f:
        f.readline()
        return [e for e in map(decode_event, f) if e is not None]


async def test_replay_of_a_recording_made_by_the_real_recorder(server, clients):
    session_id, frames = await record_stint(server, clients, laps=3, per_lap=10)
    await clients[-1].close()  # the stint is over: the monitor goes away, the recording stays
    events = recorded(server, session_id)
    assert [e.seq for e in events] == list(range(1, 32))

    team = await connect(server, clients, team=True)
    ack = await team.call("replay_start", {"recording_id": session_id, "paused": True, "speed": 4})
    assert ack["ok"], ack
    state = ack["state"]
    assert [lap["lap"] for lap in state["laps"]] == [1, 2, 3]
    assert state["duration"] == pytest.approx(events[-1].t - events[0].t, abs=1e-3)
    replay_id = ack["replay_id"]
    viewer = await connect(server, clients)
    await viewer.call("join_session", {"session_id": replay_id})
    await viewer.call("replay_control", {"replay_id": replay_id, "action": "play"})
    got = await viewer.wait_for("telemetry_update", 30)
    assert [m["telemetry"] for m in got] == [f["telemetry"] for f in frames]
    assert [m["seq"] for m in got] == list(range(2, 32))
    assert viewer.events["setup_update"][0]["setup"] == sample_setup()

    # Seek to lap 2 of the recorded stint: its state, then its frames.
    viewer.log.clear()
    viewer.events.clear()
    ack = await viewer.call("replay_control", {"replay_id": replay_id, "action": "seek", "lap": 2})
    assert ack["state"]["lap"] == 2 and ack["state"]["status"] == "paused"
    await viewer.wait_for("telemetry_update")
    assert_state_first(viewer.log)
    assert viewer.events["telemetry_update"][0]["seq"] == 12
    history = viewer.events["telemetry_history"][0]["frames"]
    assert [f["seq"] for f in history] == list(range(2, 13))
    assert [f["t"] for f in history] == [e.t for e in events[1:12]]


async def test_timeshift_follows_the_growing_recording_and_returns_to_live(server, clients):
    session_id, frames = await record_stint(server, clients, laps=1, per_lap=20)
    monitor = clients[-1]
    viewer = await connect(server, clients)
    await viewer.call("join_session", {"session_id": session_id})
    ack = await viewer.call("timeshift_start", {"session_id": session_id, "back": 0.1, "speed": 4})
    assert ack["ok"], ack
    assert ack["session_id"] == session_id and ack["state"]["live"] is True
    assert ack["state"]["status"] == "playing"
    replay_id = ack["replay_id"]
    await viewer.call("leave_session", {"session_id": session_id})
    await viewer.call("join_session", {"session_id": replay_id})
    # The stint goes on: lap 2 is recorded after the time-shift started.
    last = 0
    for frame in stint_frames(session_id, 2, 10)[10:]:
        last = (await monitor.call("telemetry_update", frame))["seq"]
        await asyncio.sleep(0.02)

    async def shifted_until(seq: int) -> list[dict]:
        while True:
            got = [m for m in viewer.events["telemetry_update"] if m["session_id"] == replay_id]
            if got and got[-1]["seq"] >= seq:
                return got
            await viewer.wait_for("telemetry_update", len(viewer.events["telemetry_update"]) + 1)

    shifted = await asyncio.wait_for(shifted_until(last), 10)
    assert [m["seq"] for m in shifted] == list(range(shifted[0]["seq"], last + 1))
    assert shifted[-1]["telemetry"]["lap"] == 2
    state = viewer.events["replay_state"][-1]
    assert state["live"] is True and [lap["lap"] for lap in state["laps"]] == [1, 2]
    # Back to live: stop the replay and join the live session again (without last_seq).
    stop = await viewer.call("replay_control", {"replay_id": replay_id, "action": "stop"})
    assert stop["state"]["status"] == "stopped"
    join = await viewer.call("join_session", {"session_id": session_id})
    assert join["ok"] and join["seq"] == last
    before = len(viewer.events["telemetry_update"])
    await monitor.call("telemetry_update", stint_frames(session_id, 3, 10)[-1])
    live = await viewer.wait_for("telemetry_update", before + 1)
    assert live[-1]["session_id"] == session_id and live[-1]["telemetry"]["lap"] == 3
