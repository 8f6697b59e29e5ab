"""The live core through a real server and real python-socketio clients."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from tests.helpers import Client, sample_setup, sample_telemetry_payloads


async def connect(server, clients) -> Client:
    client = Client(server.url)
    clients.append(client)
    return await client.connect()


async def new_session(server, clients) -> tuple[Client, str, dict]:
    monitor = await connect(server, clients)
    ack = await monitor.call("request_session_id", {})
    return monitor, ack["session_id"], ack


def telemetry(session_id: str, lap: int = 1, **fields) -> dict:
    frame = dict(sample_telemetry_payloads()[0]["telemetry"])
    frame.update(lap=lap, **fields)
    return {"session_id": session_id, "telemetry": frame}


def setup_payload(session_id: str) -> dict:
    return {"session_id": session_id, "timestamp": "2025-11-22T17:16:45.160430Z", "setup": sample_setup()}


async def test_request_session_id_assigns_uuid_to_caller_only(server, clients):
    monitor, session_id, ack = await new_session(server, clients)
    bystander = await connect(server, clients)
    assigned = (await monitor.wait_for("session_id_assigned"))[0]
    assert ack["ok"] is True
    assert uuid.UUID(session_id).version == 4
    assert assigned["session_id"] == session_id
    assert assigned["dashboard_url"] == f"{server.url}/dashboard/{session_id}"
    assert len(assigned["publish_token"]) >= 24
    await asyncio.sleep(0.1)
    assert "session_id_assigned" not in bystander.events


async def test_request_session_id_without_payload(server, clients):
    monitor = await connect(server, clients)
    ack = await monitor.call("request_session_id")
    assert ack["ok"] is True and uuid.UUID(ack["session_id"])


async def test_setup_and_telemetry_reach_the_room(server, clients):
    monitor, session_id, _ = await new_session(server, clients)
    viewer = await connect(server, clients)
    join = await viewer.call("join_session", {"session_id": session_id})
    assert join == {"ok": True, "session_id": session_id, "seq": 0, "has_setup": False, "has_telemetry": False}

    ack = await monitor.call("setup_data", setup_payload(session_id))
    assert ack == {"ok": True, "seq": 1}
    setup = (await viewer.wait_for("setup_update"))[0]
    assert setup["setup"] == sample_setup()
    assert setup["timestamp"] == "2025-11-22T17:16:45.160430Z"
    assert setup["session_id"] == session_id and setup["seq"] == 1

    sent = telemetry(session_id, lap=3)
    assert (await monitor.call("telemetry_update", sent))["seq"] == 2
    update = (await viewer.wait_for("telemetry_update"))[0]
    race = update.pop("race")  # additive: the race model's strategy as of this frame
    assert update == {"session_id": session_id, "telemetry": sent["telemetry"], "seq": 2}
    assert race["car_state"] == "garage" and race["laps_left"] is None  # the real sample: parked, before the line


async def test_join_gets_current_setup_and_latest_telemetry(server, clients):
    monitor, session_id, _ = await new_session(server, clients)
    await monitor.call("setup_data", setup_payload(session_id))
    for lap in (1, 2, 3):
        await monitor.call("telemetry_update", telemetry(session_id, lap=lap))

    viewer = await connect(server, clients)
    join = await viewer.call("join_session", {"session_id": session_id})
    assert join["has_setup"] and join["has_telemetry"] and join["seq"] == 4
    await viewer.wait_for("telemetry_update")
    # The recordings issue adds telemetry_history between the two (charts are filled at once),
    # the race model issue its tables after them.
    await viewer.wait_for("race_tables")
    assert [event for event, _ in viewer.log] == ["setup_update", "telemetry_history", "telemetry_update", "race_tables"]
    assert viewer.events["telemetry_update"][0]["telemetry"]["lap"] == 3


async def test_join_gets_every_setup_of_the_session_oldest_first(server, clients):
    monitor, session_id, _ = await new_session(server, clients)
    first = setup_payload(session_id)
    second = {**setup_payload(session_id), "timestamp": "2025-11-22T17:30:00.000000Z"}
    second["setup"]["carSetup"]["garageValues"]["VM_BRAKE_BALANCE"]["value"] = 99
    await monitor.call("setup_data", first)
    await monitor.call("telemetry_update", telemetry(session_id))
    await monitor.call("setup_data", second)
    viewer = await connect(server, clients)
    await viewer.call("join_session", {"session_id": session_id})
    setups = await viewer.wait_for("setup_update", 2)
    assert [s["seq"] for s in setups] == [1, 3]
    assert setups[-1]["setup"]["carSetup"]["garageValues"]["VM_BRAKE_BALANCE"]["value"] == 99


async def test_two_sessions_never_leak(server, clients):
    monitor_a, id_a, _ = await new_session(server, clients)
    monitor_b, id_b, _ = await new_session(server, clients)
    viewer_a = await connect(server, clients)
    viewer_b = await connect(server, clients)
    await viewer_a.call("join_session", {"session_id": id_a})
    await viewer_b.call("join_session", {"session_id": id_b})
    for lap in range(5):
        await monitor_a.call("telemetry_update", telemetry(id_a, lap=lap))
        await monitor_b.call("telemetry_update", telemetry(id_b, lap=100 + lap))
    a = await viewer_a.wait_for("telemetry_update", 5)
    b = await viewer_b.wait_for("telemetry_update", 5)
    await asyncio.sleep(0.1)
    assert {m["session_id"] for m in viewer_a.events["telemetry_update"]} == {id_a}
    assert {m["session_id"] for m in viewer_b.events["telemetry_update"]} == {id_b}
    assert [m["telemetry"]["lap"] for m in a] == list(range(5))
    assert [m["telemetry"]["lap"] for m in b] == list(range(100, 105))


async def test_twenty_viewers_receive_every_frame_in_order(server, clients):
    monitor, session_id, _ = await new_session(server, clients)
    viewers = [await connect(server, clients) for _ in range(20)]
    for viewer in viewers:
        await viewer.call("join_session", {"session_id": session_id})
    # Fire without waiting for acks: order must survive python-socketio's task per event.
    for lap in range(50):
        await monitor.emit("telemetry_update", telemetry(session_id, lap=lap))
    for viewer in viewers:
        frames = await viewer.wait_for("telemetry_update", 50)
        assert [m["telemetry"]["lap"] for m in frames] == list(range(50))
        assert [m["seq"] for m in frames] == list(range(1, 51))


@pytest.mark.parametrize(
    ("event", "payload", "code"),
    [
        ("telemetry_update", None, "invalid_payload"),
        ("telemetry_update", "not an object", "invalid_payload"),
        ("telemetry_update", [1, 2], "invalid_payload"),
        ("telemetry_update", {"telemetry": {}}, "missing_field"),
        ("telemetry_update", {"session_id": "nope", "telemetry": {}}, "invalid_session_id"),
        ("telemetry_update", {"session_id": 12, "telemetry": {}}, "wrong_type"),
        ("telemetry_update", {"session_id": "{sid}", "telemetry": "x"}, "wrong_type"),
        ("telemetry_update", {"session_id": "{sid}", "telemetry": {"lap": "three"}}, "wrong_type"),
        ("telemetry_update", {"session_id": "{sid}", "telemetry": {"fuel": None}}, "wrong_type"),
        ("telemetry_update", {"session_id": "{sid}", "telemetry": {"tire_temps": {"fl": "hot"}}}, "wrong_type"),
        ("setup_data", {"session_id": "{sid}", "setup": {}}, "missing_field"),
        ("setup_data", {"session_id": "{sid}", "timestamp": "t", "setup": []}, "wrong_type"),
        ("setup_data", {}, "missing_field"),
        ("join_session", {}, "missing_field"),
        ("join_session", {"session_id": "../../etc/passwd"}, "invalid_session_id"),
        ("join_session", {"session_id": "{sid}", "last_seq": "x"}, "wrong_type"),
        ("request_session_id", "x", "invalid_payload"),
        ("no_such_event", {}, "unknown_event"),
    ],
)
async def test_bad_input_gets_error_ack_and_good_publisher_keeps_flowing(server, clients, event, payload, code):
    monitor, session_id, _ = await new_session(server, clients)
    viewer = await connect(server, clients)
    await viewer.call("join_session", {"session_id": session_id})
    attacker = await connect(server, clients)
    if isinstance(payload, dict):
        payload = {k: (session_id if v == "{sid}" else v) for k, v in payload.items()}

    await monitor.call("telemetry_update", telemetry(session_id, lap=1))
    ack = await attacker.call(event, payload)
    assert ack["ok"] is False and ack["error"] == code and ack["message"]
    await monitor.call("telemetry_update", telemetry(session_id, lap=2))

    frames = await viewer.wait_for("telemetry_update", 2)
    assert [m["telemetry"]["lap"] for m in frames] == [1, 2]
    assert attacker.sio.connected and monitor.sio.connected


async def test_too_many_arguments_is_refused(server, clients):
    client = await connect(server, clients)
    ack = await client.sio.call("join_session", ({"session_id": str(uuid.uuid4())}, "extra"), timeout=5)
    assert ack["error"] == "invalid_payload"


@pytest.mark.parametrize("value", [2**70, "\ud800"])
async def test_unrecordable_values_are_refused(server, clients, value):
    monitor, session_id, _ = await new_session(server, clients)
    ack = await monitor.call("telemetry_update", telemetry(session_id, extra=value))
    assert ack["error"] == "invalid_payload"


async def test_nan_is_refused(server, clients):
    monitor, session_id, _ = await new_session(server, clients)
    # python-socketio's JSON decoder accepts NaN; racedash must not record it.
    ack = await monitor.call("telemetry_update", telemetry(session_id, fuel=float("nan")))
    assert ack["error"] == "wrong_type"


async def test_unknown_well_formed_id_is_taken_up(server, clients):
    """A monitor with a fixed id (or after a restart) publishes without requesting an id."""
    fixed = str(uuid.uuid4())
    viewer = await connect(server, clients)
    join = await viewer.call("join_session", {"session_id": fixed})
    assert join["ok"] and join["seq"] == 0
    monitor = await connect(server, clients)
    ack = await monitor.call("telemetry_update", telemetry(fixed.upper(), lap=7))
    assert ack == {"ok": True, "seq": 1}
    update = (await viewer.wait_for("telemetry_update"))[0]
    assert update["session_id"] == fixed and update["telemetry"]["lap"] == 7


async def test_join_with_last_seq_gets_only_missed_frames(server, clients):
    monitor, session_id, _ = await new_session(server, clients)
    await monitor.call("setup_data", setup_payload(session_id))
    for lap in range(1, 6):
        await monitor.call("telemetry_update", telemetry(session_id, lap=lap))
    viewer = await connect(server, clients)
    await viewer.call("join_session", {"session_id": session_id, "last_seq": 3})
    frames = await viewer.wait_for("telemetry_update", 3)
    await asyncio.sleep(0.1)
    assert [m["seq"] for m in frames] == [4, 5, 6]
    assert "setup_update" not in viewer.events


async def test_oversized_message_is_refused_without_harming_others(server, clients, settings):
    monitor, session_id, _ = await new_session(server, clients)
    viewer = await connect(server, clients)
    await viewer.call("join_session", {"session_id": session_id})
    attacker = await connect(server, clients)
    huge = {"session_id": session_id, "telemetry": {"junk": "x" * (settings.max_message_bytes + 10)}}
    await attacker.emit("telemetry_update", huge)
    await monitor.call("telemetry_update", telemetry(session_id, lap=9))
    frames = await viewer.wait_for("telemetry_update")
    for _ in range(50):
        if not attacker.sio.connected:
            break
        await asyncio.sleep(0.05)
    assert not attacker.sio.connected
    assert [m["telemetry"]["lap"] for m in frames] == [9]
    assert monitor.sio.connected and viewer.sio.connected


async def test_leave_session_stops_updates(server, clients):
    monitor, session_id, _ = await new_session(server, clients)
    viewer = await connect(server, clients)
    await viewer.call("join_session", {"session_id": session_id})
    assert (await viewer.call("leave_session", {"session_id": session_id}))["ok"]
    await monitor.call("telemetry_update", telemetry(session_id))
    await asyncio.sleep(0.1)
    assert "telemetry_update" not in viewer.events
