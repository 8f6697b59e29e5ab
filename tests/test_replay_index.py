"""The seek index and the streaming reader on real files: laps, checkpoints, sidecar cache, staleness."""

from __future__ import annotations

import asyncio
import os
import uuid

import orjson
import pytest

from racedash.recording.format import encode_event
from racedash.replay import index as index_module
from racedash.replay.errors import BadRecording, UnknownRecording
from racedash.replay.index import RecordingIndex, open_index, refresh_index, sidecar_path
from racedash.replay.reader import RecordingReader, recording_path
from racedash.replay.snapshot import HistoryWindow, snapshot_at
from tests.replay_helpers import new_recording, stint, telemetry_frame, write_recording
from tests.test_ui_dashboard import monitor_session, publish
from tests.ui_data import setup_payload
from tests.ui_data import stint as ui_stint

T0 = 1_700_000_000.0


def test_index_finds_laps_setups_and_checkpoints(tmp_path, monkeypatch):
    monkeypatch.setattr(index_module, "CHECKPOINT_EVERY", 8)
    monkeypatch.setattr(index_module, "CHECKPOINT_SECONDS", 1e9)
    _rid, path = new_recording(tmp_path, laps=5, frames_per_lap=10, interval=1.0, setup_every_lap=True)
    index = open_index(path)
    assert index.events == 1 + 50 + 4
    assert [(s.lap, s.position) for s in index.laps] == [(1, 1.0), (2, 11.0), (3, 21.0), (4, 31.0), (5, 41.0)]
    assert index.duration == 50.0 and index.t0 == T0
    assert len(index.cp_offsets) == -(-index.events // 8)
    assert index.lap_at(0.5) is None and index.lap_at(11.0) == 2 and index.lap_at(49.0) == 5
    assert index.lap_start(7) is None
    with RecordingReader(path) as reader:
        # Every checkpoint offset starts an event line at the recorded position.
        for position, offset in zip(index.cp_positions, index.cp_offsets):
            event = reader.read_event_at(offset)
            assert event is not None and event.t - T0 == position
        setup = reader.read_event_at(index.setup_before(25.0))
        assert setup.kind == "setup" and setup.data["timestamp"] == "lap-3"
        # Each checkpoint knows the last telemetry at or before it.
        for offset, telemetry in zip(index.cp_offsets, index.cp_telemetry):
            if telemetry >= 0:
                assert telemetry <= offset and reader.read_event_at(telemetry).kind == "telemetry"


def test_checkpoints_follow_recording_time(tmp_path):
    _rid, path = new_recording(tmp_path, laps=10, frames_per_lap=20, interval=0.5)
    index = open_index(path)
    gaps = [b - a for a, b in zip(index.cp_positions, index.cp_positions[1:])]
    assert gaps and all(gap == 3.0 for gap in gaps)
    assert list(index.cp_events[:3]) == [0, 6, 12]  # the setup, then 5 frames per 3 s


def test_snapshot_reads_only_around_the_position(tmp_path):
    _rid, path = new_recording(tmp_path, laps=30, frames_per_lap=40, interval=0.5)
    index = open_index(path)
    # A window with fewer frames than points: every frame of it.
    snap = snapshot_at(path, index, 300.25, history_seconds=10.0, history_points=100)
    assert [round(p, 2) for p, _e in snap.history] == [290.5 + 0.5 * i for i in range(20)]
    assert snap.telemetry.t - T0 == 300.0 and snap.setup.seq == 1
    assert snap.history[-1][1] is snap.telemetry
    with RecordingReader(path) as reader:
        reader.seek(snap.resume_offset)
        nxt = reader.read_event()[1]
    assert nxt.t - T0 == 300.5
    # A longer window: the checkpoints' telemetry (every 3 s), at most the points asked, then the current one.
    snap = snapshot_at(path, index, 300.25, history_seconds=120.0, history_points=30)
    positions = [round(p, 2) for p, _e in snap.history]
    assert len(positions) <= 31 and positions == sorted(positions) and positions[-1] == 300.0
    assert all(p > 180.25 for p in positions) and positions[0] < 190
    assert snap.telemetry.t - T0 == 300.0
    window = HistoryWindow(10.0, 5)  # buckets of 2 s: the first frame of each is kept
    for position, event in snapshot_at(path, index, 300.25, history_seconds=10.0, history_points=100).history:
        window.add(position, event)
    kept = window.frames(snap.telemetry)
    assert [round(e.t - T0, 1) for e in kept][-5:] == [292.0, 294.0, 296.0, 298.0, 300.0]
    # A setup already decoded is reused while it is the one in force.
    known = snapshot_at(path, index, 100.0, history_seconds=1.0, history_points=10)
    again = snapshot_at(path, index, 250.0, history_seconds=1.0, history_points=10,
                        known_setup=(known.setup_offset, known.setup))
    assert again.setup is known.setup and again.setup_offset == index.header_end
    # Before the first frame: nothing; with no history asked: none.
    empty = snapshot_at(path, index, -1.0, history_seconds=10.0, history_points=100)
    assert empty.telemetry is None and empty.history == [] and empty.setup is None
    assert snapshot_at(path, index, 50.0, history_seconds=10.0, history_points=0).history == []


def test_sidecar_is_reused_extended_and_rebuilt_when_stale(tmp_path):
    session_id, path = new_recording(tmp_path, laps=2, frames_per_lap=10)
    index = open_index(path)
    sidecar = sidecar_path(path)
    assert sidecar.name == f"{session_id}.index.json" and sidecar.exists()
    cached = orjson.loads(sidecar.read_bytes())
    assert cached["events"] == index.events == 21
    assert RecordingIndex.from_json(sidecar.read_bytes()) == index
    for broken in ({"byteorder": "middle"}, {"checkpoints": ["zz", "", "", ""]}, {"version": 1}):
        with pytest.raises(ValueError):
            RecordingIndex.from_json(orjson.dumps({**cached, **broken}))

    # The recording grows: the sidecar is extended from where it stopped.
    with open(path, "ab") as f:
        f.write(encode_event(T0 + 20.0, 22, "telemetry", {"session_id": session_id, "telemetry": telemetry_frame(3)}))
    grown = open_index(path)
    assert grown.events == 22 and [s.lap for s in grown.laps] == [1, 2, 3]
    assert orjson.loads(sidecar.read_bytes())["events"] == 22

    # A corrupt sidecar is ignored and rewritten.
    sidecar.write_bytes(b"{not json")
    assert open_index(path).events == 22 and orjson.loads(sidecar.read_bytes())["events"] == 22

    # Another file under the same name (shorter): rebuilt from the file, not trusted.
    write_recording(path, stint(session_id, laps=1, frames_per_lap=3))
    assert open_index(path).events == 4
    write_recording(path, stint(session_id, laps=1, frames_per_lap=3), created=T0 + 1)
    assert open_index(path).created == T0 + 1

    # A rewritten file of the same header whose scanned boundary is no longer a line end.
    index = open_index(path)
    data = path.read_bytes()
    path.write_bytes(data[: index.scanned - 5] + b"XXXXXXXXXX\n" + data[index.scanned:])
    refreshed, added = refresh_index(index, path)
    assert refreshed is not index and refreshed.events == 3 and added == 3


def test_torn_tail_and_growing_file(tmp_path):
    session_id = str(uuid.uuid4())
    line = encode_event(T0 + 5, 3, "telemetry", {"session_id": session_id, "telemetry": telemetry_frame(2)})
    path = write_recording(tmp_path / f"{session_id}.jsonl", stint(session_id, laps=1, frames_per_lap=1), tail=line[:30])
    index = open_index(path, use_sidecar=False)
    assert index.events == 2 and index.scanned == os.path.getsize(path) - 30
    assert not sidecar_path(path).exists()
    with RecordingReader(path) as reader:
        assert [e.seq for _o, e in reader.events()] == [1, 2]
        assert reader.read_event() is None
        with open(path, "ab") as f:
            f.write(line[30:])
        assert reader.read_event()[1].seq == 3
    assert index.extend(path) == 1 and index.laps[-1].lap == 2
    # A torn line completed by a restarted writer's newline is skipped, later lines are read.
    with open(path, "ab") as f:
        f.write(line[:40] + b"\n" + encode_event(T0 + 6, 5, "telemetry", {"session_id": session_id, "telemetry": telemetry_frame(2)}))
    assert index.extend(path) == 1 and index.duration == 6.0


def test_reader_errors_are_typed(tmp_path):
    with pytest.raises(UnknownRecording):
        recording_path(tmp_path, "../secrets")
    with pytest.raises(UnknownRecording):
        RecordingReader(tmp_path / f"{uuid.uuid4()}.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b"")
    with pytest.raises(BadRecording, match="incomplete"):
        RecordingReader(bad)
    assert recording_path(tmp_path, "6F1C2D9E-4B7A-4E2F-9C1D-3A5B7E9F0A12").name == "6f1c2d9e-4b7a-4e2f-9c1d-3a5b7e9f0a12.jsonl"


def test_unwritable_sidecar_only_costs_a_rebuild(tmp_path, caplog):
    _rid, path = new_recording(tmp_path, laps=1)
    sidecar_path(path).mkdir()  # a directory where the sidecar file should go
    index = open_index(path)
    assert index.events == 11 and "could not write replay index" in caplog.text


def test_a_tampered_sidecar_with_the_right_types_is_rebuilt(tmp_path):
    """Numbers that would send a seek into the middle of a line or past the end are not trusted."""
    session_id, path = new_recording(tmp_path, laps=3, frames_per_lap=10)
    truth = open_index(path)
    cached = orjson.loads(sidecar_path(path).read_bytes())
    tampered = [
        {"laps": [[lap, p, o + 10**9] for lap, p, o in cached["laps"]]},  # offsets past the end
        {"laps": list(reversed(cached["laps"]))},  # out of order
        {"setups": [[-5.0, cached["header_end"]]]},  # a position before the start
        {"checkpoints": [cached["checkpoints"][0], cached["checkpoints"][0], *cached["checkpoints"][2:]]},
        {"scanned": 1},
    ]
    for change in tampered:
        with pytest.raises(ValueError):
            RecordingIndex.from_json(orjson.dumps({**cached, **change}))
        sidecar_path(path).write_bytes(orjson.dumps({**cached, **change}))
        assert open_index(path) == truth  # rebuilt from the recording


# --- kept current by the process writing a live recording -----------------------------------


@pytest.mark.parametrize("settings_changes", [{"race_state_frames": 5}])
async def test_the_writer_keeps_a_live_recordings_index_current(server_with, clients, settings):
    # So that the first time-shift or replay of a long live session scans minutes, not hours.
    monitor, session_id = await monitor_session(server_with, clients)
    await monitor.call("setup_data", setup_payload(session_id))
    # 12 frames: a state (and the index with it) at 5; one at 10 unless the first is still being
    # saved then (a save in flight skips the next), so only the first is waited for.
    seqs = await publish(monitor, ui_stint(session_id, 1, 3))
    path = recording_path(settings.recordings_dir, session_id)
    sidecar = sidecar_path(path)
    for _ in range(100):
        if sidecar.exists():
            break
        await asyncio.sleep(0.05)
    kept = RecordingIndex.from_json(sidecar.read_bytes())
    assert kept.events >= 1 + 5 and kept.scanned <= path.stat().st_size  # the setup and five frames
    for _ in range(100):  # acknowledged frames reach the file within the recorder's flush interval
        if open_index(path, use_sidecar=False).events == 1 + len(seqs):
            break
        await asyncio.sleep(0.05)
    # Extending the writer's sidecar gives exactly what a scan of the whole file gives.
    extended = open_index(path)
    assert extended.events == 1 + len(seqs)
    assert extended.to_json() == open_index(path, use_sidecar=False).to_json()


def test_an_index_that_cannot_be_kept_current_is_only_logged(tmp_path, caplog):
    missing = tmp_path / f"{uuid.uuid4()}.jsonl"
    index_module.keep_sidecar_current(missing)  # the recording went away (retention): no exception
    assert "could not bring the replay index" in caplog.text and not sidecar_path(missing).exists()


@pytest.mark.parametrize("settings_changes", [{"race_state_frames": 5, "replay_index_sidecar": False}])
async def test_with_sidecars_off_the_writer_writes_no_index(server_with, clients, settings):
    monitor, session_id = await monitor_session(server_with, clients)
    await publish(monitor, ui_stint(session_id, 1, 2))  # 8 frames: a state at 5
    path = recording_path(settings.recordings_dir, session_id)
    state = path.with_name(f"{session_id}.race-state.json")
    for _ in range(100):
        if state.exists():
            break
        await asyncio.sleep(0.05)
    assert state.exists()
    await asyncio.sleep(0.2)  # the index would be written right after the state
    assert not sidecar_path(path).exists()
