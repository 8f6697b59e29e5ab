"""What one viewer is sent (join state, history, gap-fill, replay state, race tables) is encoded once.

Through a real server and real python-socketio clients: the messages never go
through python-socketio's encoder (its recursive binary check is never asked
about them), and frames the ring keeps are cut from their stored JSON, never
decoded again.
"""

from __future__ import annotations

import orjson
import pytest
import socketio.packet

from racedash.packets import FastJsonPacket
from racedash.recording.format import decode_encoded_event, encode_event_json
from racedash.sessions import SETUP, TELEMETRY, Frame
from racedash.wire import frame_message, history_message, history_point, payload_json
from tests.helpers import Client, sample_setup, wait_until
from tests.recording_support import setup_payload, telemetry
from tests.replay_helpers import new_recording

STATE_EVENTS = {"setup_update", "telemetry_update", "telemetry_history", "race_tables", "replay_state",
                "lap_completed", "pit_stop", "driver_change", "setup_change", "alert"}


@pytest.fixture
def binary_checks(monkeypatch):
    """Every event python-socketio's encoder was asked to walk for binary parts."""
    asked: list[str] = []
    original = socketio.packet.Packet.data_is_binary.__func__

    def spy(cls, data):
        # The server's packets only (the test's clients share the base class): an emit is [event, data].
        if issubclass(cls, FastJsonPacket) and isinstance(data, list) and data and isinstance(data[0], str):
            asked.append(data[0])  # an emit: [event, data]; acks carry no event name
        return original(cls, data)

    monkeypatch.setattr(socketio.packet.Packet, "data_is_binary", classmethod(spy))
    return asked


@pytest.fixture
def decodes(monkeypatch):
    """How often a kept frame's JSON was decoded back into Python objects."""
    count = [0]
    original = Frame.payload

    def counted(self):
        if self._payload is None:
            count[0] += 1
        return original.fget(self)

    monkeypatch.setattr(Frame, "payload", property(counted))
    return count


async def connect(server, clients, polling_first: bool = False) -> Client:
    client = Client(server.url)
    clients.append(client)
    if polling_first:  # default transports, like the monitor: engine.io's queue path, not the direct write
        await client.sio.connect(server.url, wait_timeout=5)
        return client
    return await client.connect()


async def publish(server, clients, frames: int) -> tuple[Client, str]:
    monitor = await connect(server, clients)
    session_id = (await monitor.call("request_session_id", {}))["session_id"]
    await monitor.call("setup_data", setup_payload(session_id))
    for lap in range(frames):
        await monitor.call("telemetry_update", telemetry(session_id, lap=lap))
    return monitor, session_id


async def test_join_history_and_gap_fill_are_cut_from_the_ring_never_decoded_or_walked(
        server, clients, binary_checks, decodes):
    assert server.app.sio.packet_class is FastJsonPacket
    monitor, session_id = await publish(server, clients, 40)
    decodes[0] = 0
    viewer = await connect(server, clients)
    join = await viewer.call("join_session", {"session_id": session_id})
    assert join["ok"] and join["seq"] == 41
    await viewer.wait_for("race_tables")
    history = viewer.events["telemetry_history"][0]
    assert [p["seq"] for p in history["frames"]] == list(range(2, 42))
    assert history["frames"][-1]["telemetry"] == telemetry(session_id, lap=39)["telemetry"]
    assert viewer.events["setup_update"][0]["setup"] == sample_setup()
    assert viewer.events["telemetry_update"][-1]["seq"] == 41

    rejoiner = await connect(server, clients, polling_first=True)
    rejoin = await rejoiner.call("join_session", {"session_id": session_id, "last_seq": 5})
    assert rejoin["missed"] == 36
    await rejoiner.wait_for("telemetry_update", 36)
    assert [d["seq"] for d in rejoiner.events["telemetry_update"]] == list(range(6, 42))
    assert rejoiner.events["telemetry_update"][-1]["telemetry"] == telemetry(session_id, lap=39)["telemetry"]

    await monitor.call("telemetry_update", telemetry(session_id, lap=40))  # and live goes on to both
    await wait_until(lambda: rejoiner.events["telemetry_update"][-1]["seq"] == 42)
    await wait_until(lambda: viewer.events["telemetry_update"][-1]["seq"] == 42)
    assert binary_checks == []
    assert decodes[0] == 0


async def test_the_binary_check_can_see_an_emit_through_the_stock_path(server, clients, binary_checks):
    """The spy above is not blind: a stock python-socketio emit is walked, and seen."""
    viewer = await connect(server, clients)
    await server.app.sio.emit("telemetry_update", {"x": 1}, to=viewer.sio.get_sid())
    await viewer.wait_for("telemetry_update")
    assert binary_checks == ["telemetry_update"]


async def test_replay_state_after_join_and_seek_skips_the_binary_check(server, clients, binary_checks):
    recording_id, _path = new_recording(server.app.settings.recordings_dir, laps=4, frames_per_lap=30)
    viewer = await connect(server, clients)
    replay = await server.app.replays.start(recording_id, paused=True)
    join = await viewer.call("join_session", {"session_id": replay.id})
    assert join["ok"]
    await viewer.wait_for("telemetry_history")
    await replay.seek(60.0)
    await viewer.wait_for("telemetry_history", 2)
    await viewer.wait_for("telemetry_update")
    await viewer.wait_for("race_tables", 2)
    assert viewer.events["telemetry_history"][-1]["frames"], "the seek sent the history before its point"
    assert binary_checks == []


def test_a_live_payload_is_laid_out_with_its_viewed_part_last_and_keeps_every_member():
    payload = {"telemetry": {"speed": 201.5, "lap": 3}, "session_id": "s", "extra": [1, 2]}
    data_json, tail_at = payload_json(TELEMETRY, payload)
    assert orjson.loads(data_json) == payload
    assert data_json[tail_at:] == b'"telemetry":{"speed":201.5,"lap":3}}'
    setup = {"session_id": "s", "setup": {"a": "</script>\u2028"}, "timestamp": "12:00"}
    data_json, tail_at = payload_json(SETUP, setup)
    assert orjson.loads(data_json) == setup
    assert data_json[tail_at:].startswith(b'"timestamp":"12:00","setup":')


def test_a_frame_message_is_the_same_whether_cut_from_bytes_or_encoded_from_the_payload():
    payload = {"session_id": "s", "telemetry": {"speed": 201.5, "tyres": {"fl": 80.1}}}
    data_json, tail_at = payload_json(TELEMETRY, payload)
    cut = Frame(7, TELEMETRY, 1700000000.25, data_json=data_json, tail_at=tail_at)
    decoded = Frame(7, TELEMETRY, 1700000000.25, payload=payload)
    for frame in (cut, decoded):
        assert orjson.loads(frame_message("room", frame, {"laps_left": 3.5})[2:]) == [
            "telemetry_update", {"session_id": "room", "telemetry": payload["telemetry"], "seq": 7, "race": {"laps_left": 3.5}}]
        assert orjson.loads(history_point(frame)) == {"seq": 7, "t": 1700000000.25, "telemetry": payload["telemetry"]}
    setup = {"session_id": "s", "timestamp": "t", "setup": {"wing": 3}}
    data_json, tail_at = payload_json(SETUP, setup)
    frame = Frame(1, SETUP, 1.0, data_json=data_json, tail_at=tail_at)
    assert orjson.loads(frame_message("room", frame)[2:]) == [
        "setup_update", {"session_id": "room", "timestamp": "t", "setup": {"wing": 3}, "seq": 1}]
    assert orjson.loads(history_message({"session_id": "r"}, [history_point(cut)])[2:])[1]["frames"][0]["seq"] == 7
    assert orjson.loads(history_message({}, [])[2:]) == ["telemetry_history", {"frames": []}]


@pytest.mark.parametrize("settings_changes", [{"ring_frames": 5}])
async def test_gap_fill_and_history_from_the_recording_are_cut_from_its_lines(server_with, clients, decodes):
    """With a 5-frame ring the missed frames and the older history come from the recording file."""
    server = server_with
    monitor, session_id = await publish(server, clients, 30)
    await server.app.recorder.flush(session_id)
    decodes[0] = 0
    rejoiner = await connect(server, clients, polling_first=True)
    ack = await rejoiner.call("join_session", {"session_id": session_id, "last_seq": 3})
    assert ack["missed"] == 28
    await rejoiner.wait_for("telemetry_update", 28)
    assert [d["seq"] for d in rejoiner.events["telemetry_update"]] == list(range(4, 32))
    assert rejoiner.events["telemetry_update"][0]["telemetry"] == telemetry(session_id, lap=2)["telemetry"]
    viewer = await connect(server, clients)
    await viewer.call("join_session", {"session_id": session_id})
    await viewer.wait_for("race_tables")
    history = viewer.events["telemetry_history"][0]["frames"]
    assert [p["seq"] for p in history] == list(range(2, 32))
    assert history[0]["telemetry"] == telemetry(session_id, lap=0)["telemetry"]
    assert decodes[0] == 0


def test_a_recorded_line_is_cut_apart_only_when_its_layout_holds():
    data_json, tail_at = payload_json(TELEMETRY, {"session_id": "s", "telemetry": {"speed": 1.5}})
    line = encode_event_json(1700000000.5, 12, TELEMETRY, data_json, tail_at)
    assert orjson.loads(line) == {"t": 1700000000.5, "seq": 12, "kind": "telemetry", "at": tail_at,
                                  "data": {"session_id": "s", "telemetry": {"speed": 1.5}}}
    encoded = decode_encoded_event(line)
    assert encoded is not None and (encoded.t, encoded.seq, encoded.kind) == (1700000000.5, 12, TELEMETRY)
    assert encoded.data_json == data_json and encoded.tail_at == tail_at
    for broken in (
        line[:-1],  # torn: no newline
        line[:-3] + b"\n",  # torn inside the data
        line.replace(b'"at":%d' % tail_at, b'"at":%d' % (tail_at + 1)),  # an offset that misses its key
        line.replace(b'"at":%d' % tail_at, b'"at":0'),
        encode_event_json(1700000000.5, 12, TELEMETRY, data_json),  # written without "at": decoded instead
        b'{"t":1,"seq":1,"kind":"lap","at":3,"data":{"a":1}}\n',
    ):
        assert decode_encoded_event(broken) is None, broken
