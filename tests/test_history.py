"""Gap-free reconnect with last_seq and telemetry_history on join, through a real server."""

from __future__ import annotations

import asyncio

import pytest

from racedash.config import Settings
from racedash.history import downsample
from racedash.server import RacedashServer
from racedash.sessions import Frame
from tests.helpers import Client, sample_setup
from tests.helpers import wait_until
from tests.recording_support import setup_payload, telemetry


@pytest.fixture
def servers(io_loop):
    made: list[RacedashServer] = []
    yield made
    for srv in made:
        io_loop.run_sync(srv.stop)


async def start(servers, tmp_path, **settings) -> RacedashServer:
    srv = await RacedashServer(Settings(host="127.0.0.1", port=0, recordings_dir=tmp_path / "r", **settings)).start()
    servers.append(srv)
    return srv


async def connect(url: str, clients) -> Client:
    client = Client(url)
    clients.append(client)
    return await client.connect()


async def publish(srv, clients, laps: int) -> tuple[Client, str]:
    monitor = await connect(srv.url, clients)
    session_id = (await monitor.call("request_session_id", {}))["session_id"]
    await monitor.call("setup_data", setup_payload(session_id))
    for lap in range(laps):
        await monitor.call("telemetry_update", telemetry(session_id, lap=lap))
    return monitor, session_id


def seqs(client: Client) -> list[int]:
    return [data["seq"] for event, data in client.log if event in ("telemetry_update", "setup_update")]


@pytest.mark.parametrize("ring_frames", [1200, 5])
async def test_last_seq_gets_exactly_the_missed_frames_then_live(tmp_path, servers, clients, ring_frames):
    """With a small ring the missed frames come from the recording."""
    srv = await start(servers, tmp_path, ring_frames=ring_frames)
    monitor, session_id = await publish(srv, clients, 30)  # seqs 1 (setup) .. 31
    viewer = await connect(srv.url, clients)
    join = await viewer.call("join_session", {"session_id": session_id, "last_seq": 3})
    assert join["ok"] and join["seq"] == 31 and join["missed"] == 28
    await viewer.wait_for("telemetry_update", 28)
    for lap in (30, 31):
        await monitor.call("telemetry_update", telemetry(session_id, lap=lap))
    await viewer.wait_for("telemetry_update", 30)
    assert seqs(viewer) == list(range(4, 34))
    assert "telemetry_history" not in viewer.events


async def test_last_seq_from_before_the_setup_includes_it(tmp_path, servers, clients):
    srv = await start(servers, tmp_path, ring_frames=3)
    _, session_id = await publish(srv, clients, 10)
    viewer = await connect(srv.url, clients)
    await viewer.call("join_session", {"session_id": session_id, "last_seq": 0})
    await viewer.wait_for("telemetry_update", 10)
    assert seqs(viewer) == list(range(1, 12))
    assert viewer.events["setup_update"][0]["setup"] == sample_setup()


@pytest.mark.parametrize("ring_frames", [1200, 4])
async def test_rejoin_while_publishing_has_no_gap_and_no_duplicate(tmp_path, servers, clients, ring_frames):
    srv = await start(servers, tmp_path, ring_frames=ring_frames, recording_flush_seconds=0.02)
    monitor, session_id = await publish(srv, clients, 20)
    total = 150

    async def keep_publishing() -> None:
        for lap in range(20, 20 + total):
            await monitor.emit("telemetry_update", telemetry(session_id, lap=lap))
            if lap % 10 == 0:
                await asyncio.sleep(0.001)

    publisher = asyncio.create_task(keep_publishing())
    viewers = []
    for last_seq in (5, 12, 18):
        viewer = await connect(srv.url, clients)
        await viewer.call("join_session", {"session_id": session_id, "last_seq": last_seq}, timeout=30)
        viewers.append((viewer, last_seq))
    fresh = await connect(srv.url, clients)
    await fresh.call("join_session", {"session_id": session_id}, timeout=30)
    await publisher
    final = 1 + 20 + total
    for viewer, last_seq in viewers:
        await wait_until(lambda: seqs(viewer)[-1:] == [final], timeout=30)
        assert seqs(viewer) == list(range(last_seq + 1, final + 1))
    # A fresh joiner: the setup and latest telemetry first, then every later frame once, in order.
    await wait_until(lambda: seqs(fresh)[-1:] == [final], timeout=30)
    received = seqs(fresh)
    assert received[0] == 1 and received[1:] == list(range(received[1], final + 1))


async def test_viewer_ahead_of_the_server_gets_the_state(tmp_path, servers, clients):
    """After a crash lost the last frames, a viewer's last_seq can be ahead: it is resynchronised."""
    srv = await start(servers, tmp_path)
    _, session_id = await publish(srv, clients, 3)
    viewer = await connect(srv.url, clients)
    join = await viewer.call("join_session", {"session_id": session_id, "last_seq": 99})
    assert join["missed"] is None and join["seq"] == 4
    await viewer.wait_for("telemetry_update")
    assert [e for e, _ in viewer.log] == ["setup_update", "telemetry_history", "telemetry_update", "race_tables"]


@pytest.mark.parametrize("ring_frames", [1200, 5])
async def test_history_on_join(tmp_path, servers, clients, ring_frames):
    srv = await start(servers, tmp_path, ring_frames=ring_frames)
    monitor, session_id = await publish(srv, clients, 40)
    viewer = await connect(srv.url, clients)
    join = await viewer.call("join_session", {"session_id": session_id})
    assert join["seq"] == 41
    await viewer.wait_for("telemetry_update")
    assert [e for e, _ in viewer.log] == ["setup_update", "telemetry_history", "telemetry_update", "race_tables"]
    history = viewer.events["telemetry_history"][0]
    assert history["session_id"] == session_id and history["count"] == 40 and not history["downsampled"]
    assert [p["seq"] for p in history["frames"]] == list(range(2, 42))
    assert [p["telemetry"]["lap"] for p in history["frames"]] == list(range(40))
    assert all(isinstance(p["t"], float) for p in history["frames"])
    assert history["window_seconds"] == 1800.0

    await monitor.call("telemetry_update", telemetry(session_id, lap=40))
    live = await viewer.wait_for("telemetry_update", 2)
    assert [m["seq"] for m in live] == [41, 42]


async def test_long_history_is_downsampled(tmp_path, servers, clients):
    srv = await start(servers, tmp_path, ring_frames=8, history_max_points=10)
    _, session_id = await publish(srv, clients, 50)
    viewer = await connect(srv.url, clients)
    await viewer.call("join_session", {"session_id": session_id})
    history = (await viewer.wait_for("telemetry_history"))[0]
    points = [p["seq"] for p in history["frames"]]
    assert history["count"] == 50 and history["downsampled"] and len(points) == 10
    assert points[0] == 2 and points[-1] == 51 and points == sorted(set(points))


async def test_no_history_event_for_a_session_without_telemetry(tmp_path, servers, clients):
    srv = await start(servers, tmp_path)
    _, session_id = await publish(srv, clients, 0)
    viewer = await connect(srv.url, clients)
    await viewer.call("join_session", {"session_id": session_id})
    await viewer.wait_for("setup_update")
    assert "telemetry_history" not in viewer.events


async def test_history_window_is_relative_to_the_latest_frame():
    from racedash.history import HistoryOptions, SessionHistory
    from racedash.sessions import Session

    session = Session(id="s", publish_token="t", created=0.0)
    for i in range(10):
        frame = Frame(seq=i + 1, kind="telemetry", received=1000.0 + 60 * i, payload={"telemetry": {"lap": i}})
        session.recent.append(frame)
        session.telemetry = frame
    session.next_seq = 11
    history = SessionHistory(HistoryOptions(window_seconds=180, max_points=100))
    payload = await history.history_payload(session, 10)
    assert [p["seq"] for p in payload["frames"]] == [7, 8, 9, 10]


def test_downsample_keeps_first_and_last_evenly():
    frames = [Frame(seq=i, kind="telemetry", received=float(i), payload={}) for i in range(1, 101)]
    assert downsample(frames, 200) == frames
    picked = [f.seq for f in downsample(frames, 5)]
    assert picked == [1, 26, 51, 75, 100]
    assert [f.seq for f in downsample(frames, 1)] == [100]


async def test_with_recording_off_nothing_is_written_and_the_ring_serves_joins(tmp_path, servers, clients):
    srv = await start(servers, tmp_path, recording_enabled=False, ring_frames=5)
    _, session_id = await publish(srv, clients, 10)  # seqs 1..11; the ring keeps 7..11
    assert not list((tmp_path / "r").glob("*.jsonl"))
    assert srv.app.recorder is None
    inside = await connect(srv.url, clients)
    join = await inside.call("join_session", {"session_id": session_id, "last_seq": 8})
    assert join["missed"] == 3
    await inside.wait_for("telemetry_update", 3)
    assert seqs(inside) == [9, 10, 11]
    # Too far back for the ring and nothing recorded: the state and history instead.
    behind = await connect(srv.url, clients)
    join = await behind.call("join_session", {"session_id": session_id, "last_seq": 2})
    assert join["missed"] is None
    history = (await behind.wait_for("telemetry_history"))[0]
    assert [p["seq"] for p in history["frames"]] == [7, 8, 9, 10, 11]


def test_the_ring_keeps_broadcast_telemetry_as_json_only():
    """A decoded telemetry payload is ~11 KB of objects the collector scans; its JSON ~1 KB."""
    import orjson

    from racedash.sessions import SessionRegistry

    registry = SessionRegistry(token_for=lambda session_id: "token", ring_size=100)
    session = registry.create()
    payloads = [{"session_id": session.id, "telemetry": {"lap": i, "fuel": 27.5 - i / 10, "tire_temps": {"fl": 80.1}}} for i in range(5)]
    setup = {"session_id": session.id, "timestamp": "2025-11-22T17:16:45.160430Z", "setup": {"a": 1}}
    registry.publish(session, "setup", setup, "sid", orjson.dumps(setup))
    frames = [registry.publish(session, "telemetry", p, "sid", orjson.dumps(p)) for p in payloads]
    assert [f._payload for f in frames[:-1]] == [None] * 4, "older telemetry frames still hold their dicts"
    assert frames[-1]._payload is payloads[-1]  # the newest is the live state, kept as is
    assert session.setup._payload is setup  # setups are few, and sent whole to every joiner
    assert [f.payload for f in session.frames_after(0)] == [setup, *payloads]  # decoded back, equal
    unrecorded = registry.publish(session, "telemetry", {"telemetry": {"lap": 9}}, "sid")
    registry.publish(session, "telemetry", {"telemetry": {"lap": 10}}, "sid")
    assert unrecorded.payload == {"telemetry": {"lap": 9}}  # nothing to decode from: kept
    with pytest.raises(ValueError):
        Frame(seq=1, kind="telemetry", received=1.0)
