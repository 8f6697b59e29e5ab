"""Recordings through a real server, real clients and real files."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import orjson
import pytest

from racedash.config import Settings, SettingsError
from racedash.app import make_app
from racedash.recording.store import CRASH_SEQ_GAP
from racedash.recording.format import decode_event, decode_header, encode_event
from racedash.recording.summary import load_summary, sidecar_path
from racedash.server import RacedashServer
from racedash.sessions import Frame
from tests.helpers import Client, sample_setup
from tests.helpers import wait_until
from tests.recording_support import (
    api,
    fetch,
    read_lines,
    recorded_events,
    recorded_seqs,
    setup_payload,
    telemetry,
    write_recording,
)


@pytest.fixture
def servers(io_loop):
    """Servers started by a test (with its own settings); each is stopped afterwards."""
    made: list[RacedashServer] = []
    yield made
    for srv in made:
        if srv.app is not None and srv._http is not None:
            io_loop.run_sync(srv.stop)


async def start(servers, settings: Settings) -> RacedashServer:
    srv = await RacedashServer(settings).start()
    servers.append(srv)
    return srv


async def connect(url: str, clients) -> Client:
    client = Client(url)
    clients.append(client)
    return await client.connect()


def recording(settings: Settings, session_id: str) -> Path:
    return settings.recordings_dir / f"{session_id}.jsonl"


async def test_every_frame_is_recorded_in_order_exactly_as_sent(server, clients, settings):
    monitor = await connect(server.url, clients)
    session_id = (await monitor.call("request_session_id", {}))["session_id"]
    await monitor.call("setup_data", setup_payload(session_id))
    sent = [telemetry(session_id, lap=lap, lap_time=-2.75, extra_field={"kept": [1, "a"]}) for lap in range(60)]
    for payload in sent:  # no acks awaited: order must survive the task per event
        await monitor.emit("telemetry_update", payload)
    path = recording(settings, session_id)
    await wait_until(lambda: len(recorded_events(path)) == 61)

    lines = read_lines(path)
    header = decode_header(lines[0])
    assert header.session_id == session_id and header.racedash_version
    events = recorded_events(path)
    assert [e.seq for e in events] == list(range(1, 62))
    assert [e.kind for e in events] == ["setup"] + ["telemetry"] * 60
    assert events[0].data == setup_payload(session_id)
    assert [e.data for e in events[1:]] == sent
    assert all(b.t >= a.t for a, b in zip(events, events[1:]))


@pytest.mark.parametrize("policy", ["always", "interval", "none"])
async def test_fsync_policies_all_record(tmp_path, servers, clients, policy):
    settings = Settings(host="127.0.0.1", port=0, recordings_dir=tmp_path / "r", recording_fsync=policy,
                        recording_fsync_seconds=0.0, recording_flush_seconds=0.01)
    srv = await start(servers, settings)
    monitor = await connect(srv.url, clients)
    session_id = (await monitor.call("request_session_id", {}))["session_id"]
    for lap in range(5):
        await monitor.call("telemetry_update", telemetry(session_id, lap=lap))
    await wait_until(lambda: recorded_seqs(recording(settings, session_id)) == [1, 2, 3, 4, 5])


def test_unknown_fsync_policy_is_a_settings_error(tmp_path):
    with pytest.raises(SettingsError, match="fsync"):
        make_app(Settings(recordings_dir=tmp_path, recording_fsync="sometimes"))


async def test_clean_restart_continues_the_same_session_and_recording(tmp_path, servers, clients):
    settings = Settings(host="127.0.0.1", port=0, recordings_dir=tmp_path / "r")
    first = await start(servers, settings)
    monitor = await connect(first.url, clients)
    session_id = (await monitor.call("request_session_id", {}))["session_id"]
    await monitor.call("setup_data", setup_payload(session_id))
    await monitor.call("setup_data", setup_payload(session_id, marker="after the first pit stop"))
    for lap in range(1, 6):
        await monitor.call("telemetry_update", telemetry(session_id, lap=lap))
    await first.stop()
    path = recording(settings, session_id)
    assert recorded_seqs(path) == [1, 2, 3, 4, 5, 6, 7]  # a clean stop loses nothing
    assert load_summary(path).public(live=False)["state"] == "interrupted"

    second = await start(servers, settings)
    # The monitor keeps its id and never resends its setup.
    monitor = await connect(second.url, clients)
    ack = await monitor.call("telemetry_update", telemetry(session_id, lap=6))
    assert ack == {"ok": True, "seq": 8}
    viewer = await connect(second.url, clients)
    join = await viewer.call("join_session", {"session_id": session_id})
    assert join["has_setup"] and join["seq"] == 8
    # Every setup change of the session, as before the restart, oldest first.
    setups = await viewer.wait_for("setup_update", count=2)
    assert [s["seq"] for s in setups] == [1, 2] and setups[0]["setup"] == sample_setup()
    assert setups[1]["setup"]["marker"] == "after the first pit stop"
    latest = (await viewer.wait_for("telemetry_update"))[0]
    assert latest["seq"] == 8 and latest["telemetry"]["lap"] == 6

    await wait_until(lambda: recorded_seqs(path) == list(range(1, 9)))
    assert sorted(p.name for p in settings.recordings_dir.glob("*.jsonl")) == [f"{session_id}.jsonl"]
    assert sum(1 for line in read_lines(path) if b'"format"' in line) == 1  # one header


async def test_torn_last_line_is_skipped_by_readers_and_the_next_append_starts_fresh(server, clients, settings):
    session_id = str(uuid.uuid4())
    settings.recordings_dir.mkdir(parents=True, exist_ok=True)
    path = recording(settings, session_id)
    torn = b'{"t": 1700000100.0, "seq": 22, "kind": "telemetry", "data": {"session_id": "'
    write_recording(path, session_id, 20, torn_tail=torn)
    good = path.read_bytes()[: -len(torn)]

    status, _, body = await api(server, f"/api/recordings/{session_id}")
    meta = orjson.loads(body)["recording"]
    assert status == 200 and meta["frames"] == 21 and meta["last_seq"] == 21 and meta["size"] == len(good)
    status, headers, body = await api(server, f"/api/recordings/{session_id}.jsonl")
    assert status == 200 and body == good and headers["Content-Type"] == "application/x-ndjson"

    monitor = await connect(server.url, clients)
    ack = await monitor.call("telemetry_update", telemetry(session_id, lap=99))
    # The file was not closed cleanly (it has a torn tail): seq jumps past any lost frame.
    assert ack == {"ok": True, "seq": 22 + CRASH_SEQ_GAP}
    await wait_until(lambda: recorded_seqs(path) == list(range(1, 22)) + [22 + CRASH_SEQ_GAP])
    lines = read_lines(path)
    assert lines[-2] == torn + b"\n"  # the fragment was ended, and skipped
    assert decode_event(lines[-1]).data["telemetry"]["lap"] == 99

    viewer = await connect(server.url, clients)
    await viewer.call("join_session", {"session_id": session_id})
    assert (await viewer.wait_for("setup_update"))[0]["setup"] == sample_setup()


async def test_unwritable_recordings_dir_is_reported_retried_and_never_stops_live(tmp_path, servers, clients):
    # Tests may run as root, where permissions do not stop a write: a regular file
    # where a directory should be does.
    blocker = tmp_path / "blocker"
    blocker.write_text("not a directory")
    settings = Settings(host="127.0.0.1", port=0, recordings_dir=blocker / "recordings",
                        recording_retry_seconds=0.05, recording_flush_seconds=0.01)
    srv = await start(servers, settings)
    status, _, body = await fetch(srv.url + "/healthz")
    assert orjson.loads(body)["status"] == "degraded"

    monitor = await connect(srv.url, clients)
    session_id = (await monitor.call("request_session_id", {}))["session_id"]
    viewer = await connect(srv.url, clients)
    await viewer.call("join_session", {"session_id": session_id})
    await monitor.call("setup_data", setup_payload(session_id))
    for lap in range(10):
        await monitor.call("telemetry_update", telemetry(session_id, lap=lap))
    frames = await viewer.wait_for("telemetry_update", 10)
    assert [f["telemetry"]["lap"] for f in frames] == list(range(10))

    health = orjson.loads((await fetch(srv.url + "/healthz"))[2])
    assert health["status"] == "degraded"
    assert any("recording cannot be written" in p for p in health["problems"])
    assert session_id not in str(health)  # never leak the id
    page = (await fetch(srv.url + "/"))[2].decode()
    assert "recording cannot be written" in page and session_id not in page

    blocker.unlink()
    settings.recordings_dir.mkdir(parents=True)
    path = recording(settings, session_id)
    await wait_until(lambda: recorded_seqs(path) == list(range(1, 12)))
    await wait_until(lambda: srv.app.status.snapshot()["status"] == "ok")


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs Linux /dev/full")
async def test_an_unwritable_recording_is_reported_and_retried(tmp_path, servers, clients):
    """A link planted as the recording (to /dev/full: a write would fail with ENOSPC) is refused
    like a failing disk: reported, retried, and recording resumes once the path is a file again."""
    settings = Settings(host="127.0.0.1", port=0, recordings_dir=tmp_path / "r",
                        recording_retry_seconds=0.05, recording_flush_seconds=0.01)
    settings.recordings_dir.mkdir()
    session_id = str(uuid.uuid4())
    path = recording(settings, session_id)
    path.symlink_to("/dev/full")  # never written through (O_NOFOLLOW): refused as not a regular file
    srv = await start(servers, settings)
    monitor = await connect(srv.url, clients)
    viewer = await connect(srv.url, clients)
    await viewer.call("join_session", {"session_id": session_id})
    for lap in range(5):
        assert (await monitor.call("telemetry_update", telemetry(session_id, lap=lap)))["ok"]
    await viewer.wait_for("telemetry_update", 5)
    await wait_until(lambda: any("not a regular file" in p for p in srv.app.status.snapshot()["problems"]))

    path.unlink()
    await monitor.call("telemetry_update", telemetry(session_id, lap=5))
    await wait_until(lambda: recorded_seqs(path) == [1, 2, 3, 4, 5, 6])
    await wait_until(lambda: srv.app.status.snapshot()["problems"] == [])


async def test_frame_that_cannot_be_encoded_is_skipped_and_logged(server, settings, caplog):
    """Validation refuses such values first; the recorder still must not fail on one."""
    session_id = str(uuid.uuid4())
    recorder = server.app.recorder
    recorder.append(session_id, Frame(seq=1, kind="telemetry", received=1.0, payload={"telemetry": {"n": 2**70}}))
    recorder.append(session_id, Frame(seq=2, kind="telemetry", received=2.0, payload={"telemetry": {"lap": 1}}))
    await wait_until(lambda: recorded_seqs(recording(settings, session_id)) == [2])
    assert recorder.unencodable == 1
    assert "cannot be recorded" in caplog.text


async def test_idle_session_ends_closes_its_recording_and_resumes(tmp_path, servers, clients):
    settings = Settings(host="127.0.0.1", port=0, recordings_dir=tmp_path / "r", session_idle_seconds=0.2)
    srv = await start(servers, settings)
    monitor = await connect(srv.url, clients)
    session_id = (await monitor.call("request_session_id", {}))["session_id"]
    await monitor.call("setup_data", setup_payload(session_id))
    for lap in range(3):
        await monitor.call("telemetry_update", telemetry(session_id, lap=lap, player_name="Ana"))
    await monitor.close()

    await wait_until(lambda: srv.app.registry.get(session_id) is None)
    await wait_until(lambda: not srv.app.recorder.is_live(session_id))
    path = recording(settings, session_id)
    summary = orjson.loads(sidecar_path(path).read_bytes())
    assert summary["ended"] is True and summary["frames"] == 4 and summary["drivers"] == ["Ana"]
    meta = orjson.loads((await api(srv, f"/api/recordings/{session_id}"))[2])["recording"]
    assert meta["state"] == "ended" and meta["live"] is False

    monitor = await connect(srv.url, clients)
    assert (await monitor.call("telemetry_update", telemetry(session_id, lap=3)))["seq"] == 5
    viewer = await connect(srv.url, clients)
    await viewer.call("join_session", {"session_id": session_id})
    assert (await viewer.wait_for("setup_update"))[0]["seq"] == 1
    meta = orjson.loads((await api(srv, f"/api/recordings/{session_id}"))[2])["recording"]
    assert meta["state"] == "live"
    await wait_until(lambda: recorded_seqs(path) == [1, 2, 3, 4, 5])


async def test_listing_uses_the_summary_sidecar_not_the_whole_file(server, settings):
    settings.recordings_dir.mkdir(parents=True, exist_ok=True)
    session_id = str(uuid.uuid4())
    path = recording(settings, session_id)
    write_recording(path, session_id, 20_000, setup_every=5000, lap_every=40)

    listing = orjson.loads((await api(server, "/api/recordings"))[2])["recordings"]
    (meta,) = [r for r in listing if r["session_id"] == session_id]
    assert meta["frames"] == 20_001 and meta["setups"] == 5 and meta["last_seq"] == 20_001
    assert meta["laps"] == 501 and meta["first_lap"] == 1
    assert meta["size"] == path.stat().st_size and meta["state"] == "interrupted" and not meta["live"]
    assert meta["track"] and meta["car"] and meta["drivers"]
    assert meta["duration"] == pytest.approx(20_001 * 0.5)
    assert sidecar_path(path).exists()

    # Doctor the sidecar: if metadata reflects it, the recording was not read.
    sidecar = orjson.loads(sidecar_path(path).read_bytes())
    sidecar.update(track="FROM-SIDECAR", frames=123_456_789, setups=777)
    sidecar_path(path).write_bytes(orjson.dumps(sidecar))
    meta = orjson.loads((await api(server, f"/api/recordings/{session_id}"))[2])["recording"]
    assert meta["track"] == "FROM-SIDECAR" and meta["frames"] == 123_456_789

    # Stale (the file grew): only the new bytes are read.
    with open(path, "ab") as f:
        f.write(encode_event(1_800_000_000.0, 20_002, "telemetry", telemetry(session_id, lap=999)))
    meta = orjson.loads((await api(server, f"/api/recordings/{session_id}"))[2])["recording"]
    assert meta["setups"] == 777 and meta["frames"] == 123_456_790 and meta["last_lap"] == 999

    # Missing: rebuilt from the file, and saved again.
    sidecar_path(path).unlink()
    meta = orjson.loads((await api(server, f"/api/recordings/{session_id}"))[2])["recording"]
    assert meta["frames"] == 20_002 and meta["setups"] == 5
    assert sidecar_path(path).exists()


async def test_recordings_api(server, clients, settings):
    monitor = await connect(server.url, clients)
    session_id = (await monitor.call("request_session_id", {}))["session_id"]
    await monitor.call("setup_data", setup_payload(session_id))
    for lap in range(1, 4):
        await monitor.call("telemetry_update", telemetry(session_id, lap=lap, player_name="Bo"))
    path = recording(settings, session_id)
    await wait_until(lambda: len(recorded_seqs(path)) == 4)

    status, headers, body = await api(server, "/api/recordings")
    listing = orjson.loads(body)
    assert status == 200 and listing["ok"] and headers["Cache-Control"] == "no-store"
    (meta,) = listing["recordings"]
    assert meta["session_id"] == session_id and meta["live"] and meta["state"] == "live"
    assert meta["frames"] == 4 and meta["laps"] == 3 and meta["drivers"] == ["Bo"]
    assert meta["first_time"] <= meta["last_time"] and meta["size"] == path.stat().st_size

    status, _, body = await api(server, f"/api/recordings/{session_id.upper()}")
    assert status == 200 and orjson.loads(body)["recording"]["session_id"] == session_id

    status, headers, body = await api(server, f"/api/recordings/{session_id}.jsonl")
    assert status == 200 and session_id in headers["Content-Disposition"]
    lines = body.splitlines(keepends=True)
    assert decode_header(lines[0]).session_id == session_id
    assert [decode_event(line).seq for line in lines[1:]] == [1, 2, 3, 4]

    for bad in (str(uuid.uuid4()), "nope", "..%2F..%2Fetc%2Fpasswd", f"{uuid.uuid4()}.jsonl"):
        status, _, body = await api(server, f"/api/recordings/{bad}")
        assert status == 404 and orjson.loads(body)["error"] == "unknown_recording", bad


async def test_recordings_api_is_team_only(server, clients, settings):
    settings.recordings_dir.mkdir(parents=True, exist_ok=True)
    session_id = str(uuid.uuid4())
    write_recording(recording(settings, session_id), session_id, 3)
    for path in ("/api/recordings", f"/api/recordings/{session_id}", f"/api/recordings/{session_id}.jsonl"):
        status, _, body = await fetch(server.url + path)
        assert status == 401 and orjson.loads(body)["error"] == "http_401", path
        status, _, body = await fetch(server.url + path, token="not-the-team-token")
        assert status == 401, path
        assert (await api(server, path))[0] == 200, path


async def test_a_recording_that_cannot_be_resumed_never_repeats_a_seq(server, clients, settings):
    """Its header unreadable: the session goes on live, numbered above anything the file held."""
    session_id = str(uuid.uuid4())
    settings.recordings_dir.mkdir(parents=True, exist_ok=True)
    path = recording(settings, session_id)
    path.write_bytes(b"not a racedash header\n" + b'{"t": 1.0, "seq": 5, "kind": "telemetry", "data": {}}\n')
    monitor = await connect(server.url, clients)
    ack = await monitor.call("telemetry_update", telemetry(session_id, lap=1))
    assert ack["ok"] and ack["seq"] > 10**12
    second = await monitor.call("telemetry_update", telemetry(session_id, lap=2))
    assert second["seq"] == ack["seq"] + 1
    # The unreadable file is set aside; the new recording holds only the new frames.
    await wait_until(lambda: recorded_seqs(path) == [ack["seq"], second["seq"]])
    assert list(path.parent.glob(f"{session_id}.jsonl.corrupt-*"))
