"""The race model's accuracy through real servers: live, late join, outage, silence, kill -9 (tests/race_harness.py)."""

from __future__ import annotations

import asyncio
import uuid

import orjson
import pytest

from racedash.config import Settings
from racedash.server import RacedashServer
from tests.helpers import Client, wait_until
from tests.procs import ServerProcess
from tests.race_harness import Stream, check_against_truth, laps_from_events, simulated_stream
from tests.recording_support import api

# The harness publishes a stint as fast as the loopback allows, far above a monitor's 2 Hz.
FAST = {"events_per_second": 100_000.0, "event_burst": 100_000.0}


@pytest.fixture
def settings(settings):
    return settings.replace(**FAST)


async def publish(client: Client, stream: Stream, session_id: str, indices) -> float | None:
    """Publish the chosen messages in order, each acknowledged; returns the fuel of the last frame."""
    fuel = None
    for i in indices:
        event, payload = stream.payload(i, session_id)
        ack = await client.call(event, payload)
        assert ack["ok"], ack
        if event == "telemetry_update":
            fuel = payload["telemetry"]["fuel"]
    return fuel


async def viewer(url: str, clients: list, session_id: str) -> Client:
    client = Client(url)
    clients.append(client)
    await client.connect()
    assert (await client.call("join_session", {"session_id": session_id}))["ok"]
    await client.wait_for("race_tables")
    return client


async def late_tables(url: str, clients: list, session_id: str) -> dict:
    late = await viewer(url, clients, session_id)
    return late.events["race_tables"][-1]


async def new_monitor(url: str, clients: list) -> tuple[Client, str]:
    monitor = Client(url)
    clients.append(monitor)
    await monitor.connect()
    return monitor, (await monitor.call("request_session_id", {}))["session_id"]


@pytest.mark.slow
@pytest.mark.parametrize("speedup, laps", [(1, 12), (10, 22), (100, 22)], ids=["1x-12laps", "10x", "100x"])
async def test_live_early_and_late_viewers_get_the_true_laps(server, clients, speedup, laps):
    stream = simulated_stream(speedup=speedup, laps=laps)
    monitor, session_id = await new_monitor(server.url, clients)
    early = await viewer(server.url, clients, session_id)
    fuel = await publish(monitor, stream, session_id, range(len(stream.messages)))
    late = await late_tables(server.url, clients, session_id)
    measured = check_against_truth(stream, late, fuel_now=fuel)
    assert measured["complete"] >= laps - 2

    # The early viewer built the same laps from the events it was sent while watching, each once.
    await wait_until(lambda: len(early.events["lap_completed"]) == len(late["laps"]))
    assert laps_from_events(early.events["race_tables"][0], early.log) == late["laps"]
    seqs = [e["seq"] for e in early.events["lap_completed"]]
    assert seqs == sorted(set(seqs))
    assert [e["number"] for e in early.events["pit_stop"]] == [s["number"] for s in late["pit_stops"]]
    # Every frame told the viewer the strategy as of that frame; the last one agrees with the tables.
    last_race = early.events["telemetry_update"][-1]["race"]
    assert last_race["laps_left"] == late["strategy"]["laps_left"]

    # The per-lap export gives the same rows.
    await server.app.recorder.flush(session_id)
    status, _, body = await api(server, f"/api/recordings/{session_id}/laps.json")
    assert status == 200
    assert [row["time"] for row in orjson.loads(body)["laps"]] == [row["time"] for row in late["laps"]]


@pytest.mark.slow
async def test_a_silent_publisher_leaves_its_laps_out_of_every_average(server, clients):
    stream = simulated_stream(speedup=10, laps=16)
    start = stream.index_where(lap=5, lap_time_over=30.0)
    end = start
    while stream.seconds_between(start, end) < 30.0 / 10 * 10:  # 30 s of the monitor's clock
        end += 1
    monitor, session_id = await new_monitor(server.url, clients)
    fuel = await publish(monitor, stream, session_id, [i for i in range(len(stream.messages)) if not start <= i < end])
    tables = await late_tables(server.url, clients, session_id)
    check_against_truth(stream, tables, fuel_now=fuel, skipped={5})


@pytest.mark.slow
async def test_a_rejoining_viewer_gets_only_the_race_events_it_missed(server, clients):
    stream = simulated_stream(speedup=10, laps=14)
    monitor, session_id = await new_monitor(server.url, clients)
    watcher = await viewer(server.url, clients, session_id)
    half = stream.index_where(lap=6, lap_time_over=10.0)
    await publish(monitor, stream, session_id, range(half))
    await wait_until(lambda: watcher.events["telemetry_update"] and watcher.events["telemetry_update"][-1]["seq"] == half)
    seen = watcher.events["telemetry_update"][-1]["seq"]
    await watcher.close()
    clients.remove(watcher)
    await publish(monitor, stream, session_id, range(half, len(stream.messages)))

    back = Client(server.url)
    clients.append(back)
    await back.connect()
    join = await back.call("join_session", {"session_id": session_id, "last_seq": seen})
    assert join["ok"] and join["missed"] == len(stream.messages) - half
    assert "race_tables" not in back.events
    everything = await late_tables(server.url, clients, session_id)
    missed_laps = [row for row in everything["laps"] if row["seq"] > seen]
    await wait_until(lambda: len(back.events["lap_completed"]) == len(missed_laps))
    assert [e["lap"] for e in back.events["lap_completed"]] == missed_laps
    assert [e["number"] for e in back.events["pit_stop"]] == [s["number"] for s in everything["pit_stops"] if s["seq"] > seen]


@pytest.mark.slow
async def test_laps_go_on_across_a_kill_9_of_the_server(tmp_path, clients):
    stream = simulated_stream(speedup=10, laps=20)
    recordings = tmp_path / "recordings"
    env = {f"RACEDASH_{k.upper()}": str(v) for k, v in FAST.items()}
    first = ServerProcess(recordings_dir=recordings, env=env)
    await first.astart()
    try:
        monitor, session_id = await new_monitor(first.url, clients)
        cut = stream.index_where(lap=8, lap_time_over=50.0)
        await publish(monitor, stream, session_id, range(cut))
        await asyncio.sleep(0.6)  # past the recording's flush window (0.25 s): what a kill -9 keeps
        old_sid = monitor.sio.sid
        first.kill9()
        second = ServerProcess(recordings_dir=recordings, port=first.port, env=env)
        await second.astart()
        try:
            # Like the monitor: it reconnects by itself and goes on under its old id, the car having
            # driven on meanwhile (8 s of the monitor's clock: a gap, at 10x more than half a lap).
            await wait_until(lambda: monitor.sio.connected and monitor.sio.sid != old_sid, timeout=20)
            resume = cut
            while stream.seconds_between(cut, resume) < 8.0:
                resume += 1
            fuel = await publish(monitor, stream, session_id, range(resume, len(stream.messages)))
            tables = await late_tables(second.url, clients, session_id)
            measured = check_against_truth(stream, tables, fuel_now=fuel, skipped={8})
            assert measured["complete"] >= 16
            assert [row["lap"] for row in tables["laps"]] == list(range(1, tables["laps"][-1]["lap"] + 1))
        finally:
            # Clients first: a client left reconnecting to a dead server cannot be shut down cleanly.
            for client in clients:
                await client.close()
            clients.clear()
            second.kill9()
    finally:
        first.kill9()


async def test_publisher_gone_is_an_alert_in_the_tables(server, clients):
    stream = simulated_stream(speedup=10, laps=3)
    monitor, session_id = await new_monitor(server.url, clients)
    watcher = await viewer(server.url, clients, session_id)
    await publish(monitor, stream, session_id, range(20))
    await monitor.close()
    clients.remove(monitor)
    [alert] = await watcher.wait_for("alert")
    assert alert["kind"] == "publisher_gone" and alert["severity"] == "critical"
    tables = await late_tables(server.url, clients, session_id)
    assert [a["kind"] for a in tables["alerts"]] == ["publisher_gone"]


@pytest.mark.parametrize("settings_changes", [{"alert_stale_seconds": 0.3, **FAST}])
async def test_stale_data_is_an_alert_once_per_silence(server_with, clients):
    stream = simulated_stream(speedup=10, laps=3)
    monitor, session_id = await new_monitor(server_with.url, clients)
    watcher = await viewer(server_with.url, clients, session_id)
    await publish(monitor, stream, session_id, range(10))
    [alert] = await watcher.wait_for("alert", timeout=5)
    assert alert["kind"] == "stale_data"
    await asyncio.sleep(0.6)
    assert len(watcher.events["alert"]) == 1  # once per silence
    await publish(monitor, stream, session_id, range(10, 12))
    await watcher.wait_for("alert", count=2, timeout=5)  # a new silence alerts again


@pytest.mark.parametrize("settings_changes", [{"race_model": False}])
async def test_the_race_model_can_be_switched_off(server_with, clients):
    stream = simulated_stream(speedup=10, laps=2)
    monitor, session_id = await new_monitor(server_with.url, clients)
    watcher = Client(server_with.url)
    clients.append(watcher)
    await watcher.connect()
    await watcher.call("join_session", {"session_id": session_id})
    await publish(monitor, stream, session_id, range(5))
    frames = await watcher.wait_for("telemetry_update", count=4)
    assert "race" not in frames[-1] and "race_tables" not in watcher.events


async def test_the_strategy_toward_a_typed_target(server, clients):
    stream = simulated_stream(speedup=10, laps=8)
    monitor, session_id = await new_monitor(server.url, clients)
    fuel = await publish(monitor, stream, session_id, range(len(stream.messages)))
    watcher = await viewer(server.url, clients, session_id)
    tables = watcher.events["race_tables"][-1]
    per_lap = tables["strategy"]["fuel_per_lap"]
    ack = await watcher.call("race_strategy", {"session_id": session_id, "target_laps": 20})
    assert ack["ok"] and ack["strategy"]["target_laps"] == 20
    # Litres to add now for 20 more laps, from the server's own fuel per lap.
    assert ack["strategy"]["fuel_to_target"] == pytest.approx(20 * per_lap - fuel, abs=0.05)
    by_time = await watcher.call("race_strategy", {"session_id": session_id, "target_seconds": 3600})
    assert by_time["strategy"]["fuel_to_target"] is not None and by_time["strategy"]["target_seconds"] == 3600
    for bad, code in [({"session_id": session_id, "target_laps": 0}, "wrong_type"),
                      ({"session_id": session_id, "target_laps": "20"}, "wrong_type"),
                      ({"session_id": str(uuid.uuid4()), "target_laps": 5}, "unknown_session")]:
        refused = await watcher.call("race_strategy", bad)
        assert refused["ok"] is False and refused["error"] == code, (bad, refused)
