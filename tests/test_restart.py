"""Sessions survive restarts of a real server process: clean (SIGTERM) and kill -9."""

from __future__ import annotations

import asyncio

import orjson
import pytest
import socketio

from racedash.config import Settings
from racedash.racefeed import race_options
from racedash.recording.format import decode_event
from racedash.recording.race import build_model, model_state_path
from racedash.recording.store import CRASH_SEQ_GAP
from racedash.simulator.model import SETUP
from tests.helpers import sample_setup
from tests.helpers import wait_until
from tests.procs import ServerProcess
from tests.recording_support import read_lines, recorded_seqs, setup_payload, telemetry
from tests.test_race_model import simulated

pytestmark = pytest.mark.slow


class Monitor:
    """Behaves like the real monitor: a plain python-socketio client with automatic
    reconnection that keeps its session id and sends its setup only once."""

    def __init__(self) -> None:
        self.sio = socketio.AsyncClient(reconnection_delay=0.1, reconnection_delay_max=0.5)
        self.connects = 0
        self.sio.on("connect", self._connected)

    async def _connected(self) -> None:
        self.connects += 1

    async def connect(self, url: str) -> None:
        await self.sio.connect(url, transports=["websocket"], wait_timeout=5)

    async def publish(self, event: str, payload: dict) -> dict:
        return await self.sio.call(event, payload, timeout=5)

    async def close(self) -> None:
        await self.sio.disconnect()
        await self.sio.shutdown()


@pytest.fixture
def processes():
    made: list[ServerProcess] = []
    yield made
    for process in made:
        process.kill9()


@pytest.fixture
def monitors(io_loop):
    made: list[Monitor] = []
    yield made

    async def close_all() -> None:
        for monitor in made:
            await monitor.close()

    io_loop.run_sync(close_all)


async def viewer_state(url: str, session_id: str) -> tuple[dict, list[tuple[str, dict]]]:
    viewer = socketio.AsyncClient(reconnection=False)
    events: list[tuple[str, dict]] = []
    got_telemetry = asyncio.Event()

    async def record(event: str, data: dict) -> None:
        events.append((event, data))
        if event == "telemetry_update":
            got_telemetry.set()

    viewer.on("*", record)
    await viewer.connect(url, transports=["websocket"], wait_timeout=5)
    try:
        ack = await viewer.call("join_session", {"session_id": session_id}, timeout=5)
        await asyncio.wait_for(got_telemetry.wait(), 5)
    finally:
        await viewer.disconnect()
        await viewer.shutdown()
    return ack, events


@pytest.mark.parametrize("how", ["sigterm", "kill9"])
async def test_monitor_keeps_publishing_across_a_server_restart(tmp_path, processes, monitors, how):
    recordings = tmp_path / "recordings"
    first = await ServerProcess(recordings_dir=recordings).astart()
    processes.append(first)
    monitor = Monitor()
    monitors.append(monitor)
    await monitor.connect(first.url)
    session_id = (await monitor.publish("request_session_id", {}))["session_id"]
    assert (await monitor.publish("setup_data", setup_payload(session_id)))["seq"] == 1
    for lap in range(1, 11):
        await monitor.publish("telemetry_update", telemetry(session_id, lap=lap))
    path = recordings / f"{session_id}.jsonl"
    if how == "kill9":
        # Everything acknowledged so far reaches the file within one flush window...
        await wait_until(lambda: recorded_seqs(path)[-1:] == [11])
        # ...and these may be lost with the process: at most one flush window of them.
        for lap in range(11, 16):
            await monitor.sio.emit("telemetry_update", telemetry(session_id, lap=lap))
        first.kill9()
    else:
        assert await first.astop() == 0
        assert recorded_seqs(path) == list(range(1, 12))  # a clean stop loses nothing
    on_disk = recorded_seqs(path)
    assert on_disk == list(range(1, on_disk[-1] + 1)) and on_disk[-1] >= 11

    second = await ServerProcess(recordings_dir=recordings, port=first.port).astart()
    processes.append(second)
    await wait_until(lambda: monitor.connects >= 2 and monitor.sio.connected, timeout=30)
    # Same id, no setup resent: the same session continues, seq follows the recording
    # (after a crash it jumps ahead, so no seq of a lost frame is ever reused).
    next_seq = on_disk[-1] + 1 + (CRASH_SEQ_GAP if how == "kill9" else 0)
    ack = await monitor.publish("telemetry_update", telemetry(session_id, lap=100))
    assert ack == {"ok": True, "seq": next_seq}

    join, events = await viewer_state(second.url, session_id)
    assert join["ok"] and join["has_setup"] and join["seq"] == next_seq
    events = [(event, data) for event, data in events if event != "race_tables"]  # additive (the race model)
    kinds = [event for event, _ in events]
    assert kinds[0] == "setup_update" and kinds[-1] == "telemetry_update"
    assert events[0][1]["setup"] == sample_setup() and events[0][1]["seq"] == 1
    assert events[-1][1]["telemetry"]["lap"] == 100

    assert await second.astop() == 0
    assert sorted(p.name for p in recordings.glob("*.jsonl")) == [path.name]
    seqs = recorded_seqs(path)
    assert seqs == list(range(1, on_disk[-1] + 1)) + [next_seq]
    lines = read_lines(path)
    assert all(line.endswith(b"\n") for line in lines)
    undecodable = [line for line in lines[1:] if decode_event(line) is None]
    assert len(undecodable) <= 1  # at most the fragment a kill -9 tore, now on its own line


async def test_torn_tail_after_kill9_is_skipped_and_ended(tmp_path, processes, monitors):
    recordings = tmp_path / "recordings"
    first = await ServerProcess(recordings_dir=recordings).astart()
    processes.append(first)
    monitor = Monitor()
    monitors.append(monitor)
    await monitor.connect(first.url)
    session_id = (await monitor.publish("request_session_id", {}))["session_id"]
    await monitor.publish("setup_data", setup_payload(session_id))
    await monitor.publish("telemetry_update", telemetry(session_id, lap=1))
    path = recordings / f"{session_id}.jsonl"
    await wait_until(lambda: recorded_seqs(path) == [1, 2])
    first.kill9()
    with open(path, "ab") as f:  # what a crash in the middle of a write leaves
        f.write(b'{"t": 1.5, "seq": 3, "kind": "telem')

    second = await ServerProcess(recordings_dir=recordings, port=first.port).astart()
    processes.append(second)
    await wait_until(lambda: monitor.connects >= 2 and monitor.sio.connected, timeout=30)
    resumed_seq = 3 + CRASH_SEQ_GAP  # a crash: the seq of a frame that may be lost is never reused
    assert (await monitor.publish("telemetry_update", telemetry(session_id, lap=2)))["seq"] == resumed_seq
    assert await second.astop() == 0
    lines = read_lines(path)
    assert lines[-2] == b'{"t": 1.5, "seq": 3, "kind": "telem\n'
    assert recorded_seqs(path) == [1, 2, resumed_seq]


async def test_after_kill9_the_race_model_resumes_from_its_saved_state(tmp_path, processes):
    """A long session's model is not rebuilt from the whole recording: from the state saved beside it."""

    _, frames = simulated(laps=5)
    messages = [("setup_data" if kind == SETUP else "telemetry_update", payload) for kind, payload in frames]
    recordings = tmp_path / "recordings"
    # Published as fast as acks come back: more than the default 100 events a second.
    env = {"RACEDASH_RACE_STATE_FRAMES": "100", "RACEDASH_EVENTS_PER_SECOND": "10000", "RACEDASH_EVENT_BURST": "10000"}
    first = await ServerProcess(recordings_dir=recordings, env=env).astart()
    processes.append(first)
    monitor = socketio.AsyncClient(reconnection_delay=0.1, reconnection_delay_max=0.5)  # default transports
    await monitor.connect(first.url, wait_timeout=5)
    try:
        session_id = (await monitor.call("request_session_id", {}, timeout=5))["session_id"]
        split = len(messages) * 2 // 3
        for event, payload in messages[:split]:
            assert (await monitor.call(event, {"session_id": session_id, **payload}, timeout=5))["ok"]
        state = model_state_path(recordings / f"{session_id}.jsonl")
        await wait_until(state.exists)  # saved every 100 frames (the next one once this one is written)
        first.kill9()

        second = await ServerProcess(recordings_dir=recordings, port=first.port, env=env).astart()
        processes.append(second)
        await wait_until(lambda: monitor.connected, timeout=30)
        for event, payload in messages[split:]:
            assert (await monitor.call(event, {"session_id": session_id, **payload}, timeout=10))["ok"]
        _, events = await viewer_state(second.url, session_id)
    finally:
        await monitor.disconnect()
        await monitor.shutdown()
    saved_seq = orjson.loads(state.read_bytes())["state"]["seq"]
    assert saved_seq >= 100
    assert "from its state saved at seq" in second.output
    assert await second.astop() == 0
    # What viewers were sent is what the whole recording gives, read from its first line.
    tables = next(data for event, data in events if event == "race_tables")
    whole = build_model(recordings / f"{session_id}.jsonl", race_options(Settings()), resume=False)[0].tables()
    assert len(whole["laps"]) >= 4
    for name in ("laps", "pit_stops", "driver_changes", "setup_changes", "alerts", "stints"):
        assert tables[name] == orjson.loads(orjson.dumps(whole[name])), name
