"""The stint simulator: the pure model, the setup it generates, and the monitor-like publisher."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import uuid

import pytest

from racedash.server import RacedashServer
from racedash.simulator import SimulationOptions, StintConfig, StintModel, build_monitors, run_stint
from racedash.simulator.model import CORNERS, KELVIN, SETUP, TELEMETRY, UNKNOWN_TEMP
from racedash.simulator.publisher import Fleet, SimulatedMonitor
from racedash.simulator.runner import simulate
from racedash.simulator.setup_sheet import SetupSheet
from racedash.simulator.summary import stint_table
from racedash.validation import Validators
from tests.helpers import Client, sample_setup, sample_telemetry_payloads, wait_until
from tests.procs import REPO, ServerProcess
from tests.recording_support import recorded_events

ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
SEED = 7

# The subprocesses import racedash from this checkout, installed or not.
SUBPROCESS_ENV = {**os.environ, "PYTHONPATH": str(REPO)}


@pytest.fixture(scope="module")
def stint():
    """A 20-lap stint sampled at 2 Hz; the model is pure, so one run serves every test."""
    return run_stint(StintConfig(seed=SEED, laps=20), dt=0.5)


def telemetry_of(published) -> list[dict]:
    return [p.payload for p in published if p.kind == TELEMETRY]


def setups_of(published) -> list[dict]:
    return [p.payload for p in published if p.kind == SETUP]


# -- the stream's payload facts ----------------------------------------------------


def test_every_message_passes_the_servers_validators(stint):
    _, published = stint
    validators = Validators()
    session_id = str(uuid.uuid4())
    for pub in published:
        if pub.kind == SETUP:
            validators.setup_data({"session_id": session_id, **pub.payload})
        else:
            validators.telemetry_update({"session_id": session_id, "telemetry": pub.payload})


def test_telemetry_has_the_monitors_fields_and_types(stint):
    _, published = stint
    real_fields = set(sample_telemetry_payloads()[0]["telemetry"])
    for frame in telemetry_of(published):
        assert set(frame) == real_fields
        assert ISO_Z.match(frame["timestamp"])
        for name in ("lap", "position", "gear"):
            assert type(frame[name]) is int
        for name in ("lap_time", "fuel", "fuel_capacity", "engine_water_temp", "track_temp", "ambient_temp", "speed", "rpm"):
            assert isinstance(frame[name], float)
        for name in ("tire_pressures", "tire_temps", "tire_wear", "brake_temps"):
            assert set(frame[name]) == set(CORNERS)
            assert all(isinstance(v, float) for v in frame[name].values())
        for name in ("player_name", "car_name", "track_name", "session_type"):
            assert isinstance(frame[name], str) and frame[name]
        assert -1 <= frame["gear"] <= 7


def test_setup_has_the_real_setups_shape(stint):
    _, published = stint
    real = sample_setup()
    real_entry_keys = {frozenset(v) for v in real["carSetup"]["garageValues"].values() if isinstance(v, dict) and "key" in v}
    for payload in setups_of(published):
        assert ISO_Z.match(payload["timestamp"])
        setup = payload["setup"]
        assert set(setup) == set(real)
        values = setup["carSetup"]["garageValues"]
        assert {"VM_BRAKE_BALANCE", "WM_PRESSURE-W_FL", "gearGraph", "symmetric"} <= set(values)
        settings = [v for v in values.values() if isinstance(v, dict) and "key" in v]
        assert len(settings) > 150
        for key, entry in values.items():
            if key in ("gearGraph", "symmetric"):
                continue
            assert frozenset(entry) in real_entry_keys
            assert entry["key"] == key
            assert entry["minValue"] <= entry["value"] <= entry["maxValue"]
            assert isinstance(entry["stringValue"], str) and isinstance(entry["available"], bool)
        assert set(values["gearGraph"]) == set(real["carSetup"]["garageValues"]["gearGraph"])


def test_the_games_oddities_are_there(stint):
    _, published = stint
    frames = telemetry_of(published)
    garage = [f for f in frames if f["speed"] == 0.0 and f["lap_time"] < 0]
    assert garage, "the stint starts in the garage"
    for frame in garage:
        assert set(frame["tire_temps"].values()) == {UNKNOWN_TEMP}
        assert set(frame["tire_pressures"].values()) == {0.0}
        assert frame["position"] == 0
    before_line = [f["lap_time"] for f in frames if f["lap_time"] < 0]
    moving = [t for f, t in zip(frames, before_line) if f["speed"] > 0]
    assert before_line[0] < -5
    assert moving == sorted(moving), "lap_time counts up towards the line"
    on_track = [f for f in frames if f["lap_time"] >= 0]
    assert all(UNKNOWN_TEMP not in f["tire_temps"].values() for f in on_track)


def parked_brakes_above_ambient(frame: dict) -> list[float]:
    """°C by which each brake of a frame is above the air, reading brake_temps as Kelvin."""
    return [k - KELVIN - frame["ambient_temp"] for k in frame["brake_temps"].values()]


def test_brake_temps_are_kelvin_like_the_real_monitors(stint):
    # The real parked car reads 307.57 K: 34.4 °C, a few degrees above the 28.9 °C air.
    real = sample_telemetry_payloads()[0]["telemetry"]
    assert all(0 < d < 15 for d in parked_brakes_above_ambient(real))
    _, published = stint
    first = telemetry_of(published)[:5]
    assert all(f["speed"] == 0.0 for f in first), "the stint starts parked, like the sample"
    for frame in first:
        assert all(280 < k < 350 for k in frame["brake_temps"].values())
        assert all(0 < d < 15 for d in parked_brakes_above_ambient(frame))


# -- determinism --------------------------------------------------------------------


def test_a_fixed_seed_gives_the_same_stream(stint):
    _, published = stint
    _, again = run_stint(StintConfig(seed=SEED, laps=20), dt=0.5)
    assert again == published


def test_another_seed_gives_another_stint(stint):
    model, _ = stint
    other, _ = run_stint(StintConfig(seed=SEED + 1, laps=5), dt=2.0)
    assert [lap.lap_time for lap in other.laps] != [lap.lap_time for lap in model.laps[:5]]


def test_laps_do_not_depend_on_the_sampling_rate(stint):
    model, _ = stint
    coarse, _ = run_stint(StintConfig(seed=SEED, laps=20), dt=3.7)
    assert [(lap.number, lap.lap_time, lap.fuel_end, lap.driver) for lap in coarse.laps] == [
        (lap.number, lap.lap_time, lap.fuel_end, lap.driver) for lap in model.laps
    ]


# -- a race's events ------------------------------------------------------------------


def test_twenty_laps_have_a_refuelling_stop_a_driver_change_and_a_setup_change(stint):
    model, published = stint
    frames = telemetry_of(published)
    refuels = [i for i in range(1, len(frames)) if frames[i]["fuel"] > frames[i - 1]["fuel"] + 1e-9]
    assert refuels, "fuel goes up at a stop"
    assert all(frames[i]["speed"] == 0.0 for i in refuels), "refuelling happens standing still"
    new_tyres = [i for i in range(1, len(frames)) if frames[i]["tire_wear"]["fl"] > frames[i - 1]["tire_wear"]["fl"]]
    assert new_tyres and frames[new_tyres[0]]["tire_wear"] == {c: 1.0 for c in CORNERS}
    drivers = [f["player_name"] for f in frames]
    changes = [i for i in range(1, len(drivers)) if drivers[i] != drivers[i - 1]]
    assert changes and all(frames[i]["speed"] == 0.0 for i in changes), "drivers change at a stop"
    setups = setups_of(published)
    assert len(setups) >= 2
    first = setups[0]["setup"]["carSetup"]["garageValues"]
    later = setups[1]["setup"]["carSetup"]["garageValues"]
    changed = [k for k in first if isinstance(first[k], dict) and first[k].get("value") != later[k].get("value")]
    assert changed and all(later[k]["numChangesValue"] == first[k]["numChangesValue"] + 1 for k in changed)
    assert any(lap.stopped and lap.refuel_l > 0 and lap.new_tyres for lap in model.laps)


def test_fuel_never_negative_and_laps_only_increase(stint):
    model, published = stint
    frames = telemetry_of(published)
    assert min(f["fuel"] for f in frames) >= 0.0
    assert all(f["fuel"] <= f["fuel_capacity"] for f in frames)
    laps = [f["lap"] for f in frames]
    assert laps == sorted(laps)
    assert laps[0] == 1 and laps[-1] == 20
    assert [lap.number for lap in model.laps] == list(range(1, 21))


def test_lap_time_resets_at_the_line(stint):
    _, published = stint
    frames = telemetry_of(published)
    for before, after in zip(frames, frames[1:]):
        if after["lap"] == before["lap"] + 1:
            assert 0 <= after["lap_time"] < before["lap_time"]
        elif after["lap"] == before["lap"] and before["lap_time"] >= 0:
            assert after["lap_time"] > before["lap_time"]


def test_numbers_are_believable(stint):
    model, published = stint
    base = model.track.base_lap_s
    flying = [lap.lap_time for lap in model.laps if not lap.stopped and not lap.pit_in and lap.number > 1]
    assert all(base * 0.97 < t < base * 1.15 for t in flying)
    assert len({round(t, 1) for t in flying}) > len(flying) // 2, "lap times vary"
    stops = [lap for lap in model.laps if lap.stopped]
    assert all(lap.lap_time > max(flying) + 20 for lap in stops), "a stop costs time"
    burns = [lap.fuel_start + lap.refuel_l - lap.fuel_end for lap in model.laps]
    assert all(2.5 < b < 3.6 for b in burns) and len({round(b, 2) for b in burns}) > 5
    frames = telemetry_of(published)
    out_laps = {lap.number for lap in model.laps if lap.stopped}  # cold new tyres
    running = [f for f in frames if f["lap"] >= 3 and f["lap"] not in out_laps and f["speed"] > 61]
    tyre = [f["tire_temps"]["fl"] for f in running]
    assert 70 < min(tyre) and max(tyre) < 120
    warming = [f["tire_temps"]["fl"] for f in frames if f["lap"] == 1 and f["lap_time"] >= 0]
    assert warming[0] + 25 < warming[-1], "tyres warm up from cold"
    hot = [f for f in running if f["tire_temps"]["fl"] > 90]
    cool = [f for f in running if f["tire_temps"]["fl"] < 85]
    assert hot and cool
    assert min(f["tire_pressures"]["fl"] for f in hot) > max(f["tire_pressures"]["fl"] for f in cool), "pressure follows temperature"
    brakes = [f["brake_temps"]["fl"] - KELVIN for f in running]  # the wire carries Kelvin
    assert max(brakes) > 500 and min(brakes) < 350, "brakes spike under braking and cool on straights"
    assert max(f["speed"] for f in running) > 250 and min(f["speed"] for f in running) < 110
    gears = {f["gear"] for f in running}
    assert {2, 4, 6} <= gears
    assert all(f["rpm"] <= 9000 for f in frames)
    positions = {f["position"] for f in frames if f["position"]}
    assert len(positions) > 1
    ambient = [f["ambient_temp"] for f in frames]
    assert 0 < max(ambient) - min(ambient) < 4, "weather drifts slowly"
    wear = [lap.wear_end["fl"] for lap in model.laps if not lap.stopped]
    assert all(0.7 < w < 1.0 for w in wear)


def test_summary_table_lists_every_lap(stint):
    model, published = stint
    table = stint_table(model, published).splitlines()
    assert len([line for line in table if re.match(r"^\s*\d+\s+\d:\d\d\.\d{3}", line)]) == 20
    assert any("stop: +" in line and "new tyres" in line for line in table)
    assert any(line.startswith("setup change at") for line in table)


def test_model_refuses_misuse():
    model = StintModel(StintConfig(seed=1))
    with pytest.raises(RuntimeError):
        model.step(1.0)
    model.start()
    with pytest.raises(RuntimeError):
        model.start()
    with pytest.raises(ValueError):
        model.step(0)
    with pytest.raises(ValueError):
        run_stint(StintConfig(seed=1), dt=1.0)


def test_setup_sheet_changes_are_counted_and_clamped():
    import random

    sheet = SetupSheet(
        random.Random(1),
        vehicle_name="Test #1:LMP2",
        team_name="Test",
        driver_names=["A B"],
        fuel_capacity=75.0,
        burn_per_lap=3.0,
        gear_top_kmh=(0.0, 100.0, 150.0),
    )
    before = sheet.payload(ambient_c=20, track_c=30, position=3, time_of_day_s=0)["carSetup"]["garageValues"]
    sheet.values["VM_BRAKE_BALANCE"] = 20
    assert sheet.change("VM_BRAKE_BALANCE", 1) == ("55.0:45.0", "55.5:44.5")
    assert not sheet.can_move("VM_BRAKE_BALANCE", 100)
    sheet.change("VM_BRAKE_BALANCE", 100)
    after = sheet.payload(ambient_c=20, track_c=30, position=3, time_of_day_s=0)
    entry = after["carSetup"]["garageValues"]["VM_BRAKE_BALANCE"]
    assert entry["value"] == entry["maxValue"] == 45 and entry["numChangesValue"] == 2
    assert entry["lastSavedStringValue"] == before["VM_BRAKE_BALANCE"]["stringValue"]
    names = after["teamInfo"]["driverNames"][0]
    assert len(names) == 32 and bytes(names).rstrip(b"\0") == b"A B"


def test_options_are_checked():
    for bad in ({"rate": 0}, {"speedup": -1}, {"laps": 0}):
        with pytest.raises(ValueError):
            SimulationOptions(**bad)
    with pytest.raises(ValueError):
        build_monitors("http://127.0.0.1:1", 0, SimulationOptions())
    with pytest.raises(ValueError):
        build_monitors("http://127.0.0.1:1", 2, SimulationOptions(session_id=str(uuid.uuid4())))


# -- the publisher against a real server ---------------------------------------------------


def monitor_for(url: str, *, seed: int = SEED, speedup: float = 20.0, rate: float = 20.0, **kwargs) -> SimulatedMonitor:
    config = StintConfig(seed=seed, garage_s=1.0, time_scale=speedup)
    return SimulatedMonitor(url, StintModel(config), rate=rate, speedup=speedup, announce=lambda m: None, **kwargs)


async def test_publisher_delivers_setup_and_telemetry_to_a_viewer(server, clients):
    monitor = monitor_for(server.url)
    fleet = Fleet([monitor])
    fleet.start()
    try:
        await wait_until(lambda: monitor.session_id is not None)
        assert uuid.UUID(monitor.session_id).version == 4
        assert monitor.dashboard_url == f"{server.url}/dashboard/{monitor.session_id}"
        viewer = Client(server.url)
        clients.append(viewer)
        await viewer.connect()
        join = await viewer.call("join_session", {"session_id": monitor.session_id})
        assert join["ok"] is True
        setup = (await viewer.wait_for("setup_update"))[0]
        frames = await viewer.wait_for("telemetry_update", count=10)
    finally:
        await fleet.stop()
    validators = Validators()
    assert setup["session_id"] == monitor.session_id
    validators.setup_data({k: setup[k] for k in ("session_id", "timestamp", "setup")})
    assert setup["setup"]["carSetup"]["garageValues"]["VM_BRAKE_BALANCE"]["key"] == "VM_BRAKE_BALANCE"
    for frame in frames:
        assert frame["session_id"] == monitor.session_id
        validators.telemetry_update({"session_id": frame["session_id"], "telemetry": frame["telemetry"]})
    times = [f["telemetry"]["timestamp"] for f in frames]
    assert times == sorted(times)
    # One request_session_id, one session: nothing asked twice.
    assert [s.id for s in server.app.registry] == [monitor.session_id]


async def test_publisher_uses_a_given_session_id_without_requesting_one(server, clients):
    session_id = str(uuid.uuid4())
    viewer = Client(server.url)
    clients.append(viewer)
    await viewer.connect()
    assert (await viewer.call("join_session", {"session_id": session_id}))["ok"] is True
    monitor = monitor_for(server.url, session_id=session_id)
    fleet = Fleet([monitor])
    fleet.start()
    try:
        frames = await viewer.wait_for("telemetry_update", count=3)
        assert (await viewer.wait_for("setup_update"))[0]["session_id"] == session_id
    finally:
        await fleet.stop()
    assert monitor.session_id == session_id
    assert all(f["session_id"] == session_id for f in frames)
    assert [s.id for s in server.app.registry] == [session_id], "no id was requested"


@pytest.mark.parametrize("publish_auth", ["compat", "token"])
async def test_reconnect_after_a_server_restart_keeps_the_session_id(tmp_path, clients, publish_auth):
    """In token mode the kept publish_token (sent in the connect auth) is what lets it continue."""
    mode = ("--publish-auth", publish_auth)
    first = await ServerProcess(*mode, recordings_dir=tmp_path / "recordings").astart()
    second = ServerProcess(*mode, recordings_dir=tmp_path / "recordings", port=first.port)
    monitor = monitor_for(first.url, speedup=5.0, reconnection_delay=0.1, reconnection_delay_max=0.3)
    fleet = Fleet([monitor])
    fleet.start()
    try:
        await wait_until(lambda: monitor.sent >= 3)
        session_id = monitor.session_id
        assert await first.astop(signal.SIGINT) == 0
        await wait_until(lambda: not monitor.sio.connected)
        recording = tmp_path / "recordings" / f"{session_id}.jsonl"
        setups_before = [e.seq for e in recorded_events(recording) if e.kind == "setup"]
        await second.astart()
        viewer = Client(second.url)
        clients.append(viewer)
        await viewer.connect()
        join = await viewer.call("join_session", {"session_id": session_id})
        frames = await viewer.wait_for("telemetry_update", count=3, timeout=10)
        assert all(f["session_id"] == session_id for f in frames)
        assert monitor.session_id == session_id and monitor.connects == 2
        assert monitor.publish_token, "kept from session_id_assigned"
        # Like the real monitor, it neither asked for a new id nor sent its setup again:
        # the setup the viewer gets is the one restored from the recording.
        assert "session_id_assigned" not in viewer.events
        assert join["ok"] is True and join["has_setup"] is True
        assert setups_before and viewer.events["setup_update"][0]["seq"] == setups_before[-1]
    finally:
        await fleet.stop()
        await first.astop()
        await second.astop()
    assert [e.seq for e in recorded_events(recording) if e.kind == "setup"] == setups_before


async def test_a_given_session_id_with_its_token_publishes_in_token_mode(settings, clients):
    server = await RacedashServer(settings.replace(publish_auth="token")).start()
    session_id = str(uuid.uuid4())
    try:
        viewer = Client(server.url)
        clients.append(viewer)
        await viewer.connect()
        await viewer.call("join_session", {"session_id": session_id})
        token = server.app.rights.token_for(session_id)
        monitor = monitor_for(server.url, session_id=session_id, publish_token=token)
        fleet = Fleet([monitor])
        fleet.start()
        try:
            frames = await viewer.wait_for("telemetry_update", count=3)
        finally:
            await fleet.stop()
        assert {f["session_id"] for f in frames} == {session_id}
    finally:
        await server.stop()


async def test_several_cars_publish_into_their_own_sessions(server, clients):
    announced = []
    monitors = build_monitors(
        server.url, 3, SimulationOptions(rate=20, speedup=20, seed=11), announce=lambda m: announced.append(m)
    )
    fleet = Fleet(monitors)
    fleet.start()
    try:
        await wait_until(lambda: len(announced) == 3)
        ids = {m.session_id for m in monitors}
        assert len(ids) == 3
        viewers = []
        for monitor in monitors:
            viewer = Client(server.url)
            clients.append(viewer)
            await viewer.connect()
            await viewer.call("join_session", {"session_id": monitor.session_id})
            viewers.append(viewer)
        for monitor, viewer in zip(monitors, viewers):
            frames = await viewer.wait_for("telemetry_update", count=3)
            assert {f["session_id"] for f in frames} == {monitor.session_id}
            assert {f["telemetry"]["car_name"] for f in frames} == {monitor.model.car.name}
    finally:
        await fleet.stop()
    assert len({m.model.car.name for m in monitors}) == 3


async def test_simulate_runs_its_laps_and_returns(server):
    announced = []
    await asyncio.wait_for(
        simulate(server.url, SimulationOptions(rate=50, speedup=400, laps=2, seed=5), announce=announced.append),
        timeout=30,
    )
    [monitor] = announced
    assert monitor.model.finished and [lap.number for lap in monitor.model.laps] == [1, 2]
    assert monitor.sent > 10 and not monitor.sio.connected


async def test_simulate_stops_on_request(server):
    stop = asyncio.Event()
    announced = []
    task = asyncio.create_task(
        simulate(server.url, SimulationOptions(rate=10, seed=5), stop=stop, announce=announced.append)
    )
    await wait_until(lambda: announced and announced[0].sent >= 2)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert not announced[0].sio.connected


async def test_a_monitor_waits_for_a_server_that_is_not_up_yet(settings, clients, caplog):
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monitor = monitor_for(f"http://127.0.0.1:{port}", reconnection_delay=0.1, reconnection_delay_max=0.2)
    fleet = Fleet([monitor])
    fleet.start()
    server = None
    try:
        await wait_until(lambda: any("cannot reach" in r.getMessage() for r in caplog.records))
        assert monitor.connects == 0
        server = await RacedashServer(settings.replace(port=port)).start()
        await wait_until(lambda: monitor.sent >= 2, timeout=10)
    finally:
        await fleet.stop()
        if server is not None:
            await server.stop()


async def test_simulate_command_publishes_and_exits(server):
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "racedash", "simulate", "--url", server.url,
        "--laps", "1", "--speedup", "300", "--rate", "20", "--seed", "3",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=SUBPROCESS_ENV,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    [url] = re.findall(r"http://\S+/dashboard/\S+", out.decode())
    session_id = url.rsplit("/", 1)[1]
    session = server.app.registry.get(session_id)
    assert session is not None and session.telemetry is not None and session.setup is not None
