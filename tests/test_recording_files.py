"""Reading and writing recording files directly: reader search, summaries, the writer's edge cases."""

from __future__ import annotations

import asyncio
import random
import uuid

import orjson
import pytest

from racedash.recording.store import CRASH_SEQ_GAP
from racedash.recording.format import Header, decode_event, encode_event, encode_header
from racedash.recording.reader import find_offset, good_end, iter_events, tail_events
from racedash.recording.store import RecordingStore
from racedash.recording.summary import facts_of, load_summary, sidecar_path
from racedash.recording.writer import RecordingWriter, WriterOptions
from racedash.sessions import SETUP_HISTORY
from tests.helpers import wait_until
from tests.recording_support import recorded_seqs, write_recording


@pytest.fixture
def big_recording(tmp_path):
    session_id = str(uuid.uuid4())
    path = tmp_path / f"{session_id}.jsonl"
    write_recording(path, session_id, 3000, setup_every=700, torn_tail=b'{"t": 9')
    return session_id, path


def test_find_offset_by_seq_and_time_matches_a_linear_scan(big_recording):
    _, path = big_recording
    with open(path, "rb") as f:
        end = good_end(f)
        f.seek(0)
        start = len(f.readline())
        events = list(iter_events(f, start, end))
        rng = random.Random(4)
        for target in [0, 1, 2, 1500, 3001, 3002, 99999] + [rng.randint(1, 3001) for _ in range(30)]:
            expected = next((off for off, e in events if e.seq >= target), end)
            assert find_offset(f, start, end, lambda e: e.seq, target) == expected, target
        for target in [0.0, 1_700_000_000.0, 1_700_000_700.25, 1_700_001_500.5, 2e9]:
            expected = next((off for off, e in events if e.t >= target), end)
            assert find_offset(f, start, end, lambda e: e.t, target) == expected, target


def test_tail_events_skips_the_torn_line_and_the_header(big_recording):
    _, path = big_recording
    with open(path, "rb") as f:
        end = good_end(f)
        assert [e.seq for e in tail_events(f, end, 5)] == [2997, 2998, 2999, 3000, 3001]
        assert [e.seq for e in tail_events(f, end, 10_000)] == list(range(1, 3002))
        assert tail_events(f, end, 0) == []


async def test_store_reads_ranges_and_restores(big_recording):
    session_id, path = big_recording
    store = RecordingStore(path.parent)
    frames = await store.frames_between(session_id, 10, 15)
    assert [f.seq for f in frames] == [11, 12, 13, 14]
    since, count = await store.telemetry_since(session_id, 1_700_000_000.0 + 2990 * 0.5, 10**9, 600)
    assert [f.seq for f in since] == list(range(2990, 3002)) and count == 12
    # A long range is sampled at evenly spaced offsets: bounded work, evenly spread points.
    sampled, count = await store.telemetry_since(session_id, 0.0, 3000, 20)
    seqs = [f.seq for f in sampled]
    assert 15 <= len(seqs) <= 20 and seqs == sorted(set(seqs)) and seqs[0] == 2 and seqs[-1] > 2800
    assert all(f.kind == "telemetry" for f in sampled) and count == 2998
    restored = await store.restore_state(session_id, 3)
    # Written without a clean close: resuming skips past any frame a crash lost.
    assert restored.next_seq == 3002 + CRASH_SEQ_GAP and [f.seq for f in restored.recent] == [2999, 3000, 3001]
    assert restored.setup.seq == 2800 and restored.setup.payload["setup"]["marker"] == 2800
    assert [f.seq for f in restored.setups] == [1, 700, 1400, 2100, 2800]  # every setup change, oldest first
    assert restored.telemetry.seq == 3001
    assert await store.restore_state(str(uuid.uuid4()), 3) is None
    assert await store.frames_between(str(uuid.uuid4()), 0, 10) == []


def test_sidecar_for_another_file_is_rebuilt(big_recording, tmp_path):
    session_id, path = big_recording
    summary = load_summary(path)
    other = tmp_path / "other.jsonl"
    write_recording(other, session_id, 10, t0=1_600_000_000.0)  # same id, different header time
    sidecar_path(other).write_bytes(summary.to_sidecar())
    assert load_summary(other).frames == 11
    sidecar_path(other).write_bytes(b"{not json")
    assert load_summary(other).frames == 11


async def test_a_resumed_session_keeps_its_last_setups_only(tmp_path):
    session_id = str(uuid.uuid4())
    path = tmp_path / f"{session_id}.jsonl"
    write_recording(path, session_id, 400, setup_every=4)  # 100 setups with the first
    restored = await RecordingStore(tmp_path).restore_state(session_id, 3)
    seqs = [f.seq for f in restored.setups]
    assert len(seqs) == SETUP_HISTORY and seqs == list(range(404 - 4 * SETUP_HISTORY, 401, 4))
    assert [f.payload["setup"]["marker"] for f in restored.setups] == seqs


def test_a_sidecar_of_the_previous_version_is_rebuilt(big_recording):
    """Version 1 kept only the last setup's offset: its summary is made again from the file."""
    _, path = big_recording
    summary = orjson.loads(load_summary(path).to_sidecar())
    old = {**summary, "sidecar_version": 1, "last_setup_offset": summary["setup_offsets"][-1]}
    del old["setup_offsets"]
    sidecar_path(path).write_bytes(orjson.dumps(old))
    assert len(load_summary(path).setup_offsets) == 5
    assert orjson.loads(sidecar_path(path).read_bytes())["sidecar_version"] == 2


def test_facts_ignore_wrong_types():
    facts = facts_of("telemetry", 1, 1.0, {"telemetry": {"lap": True, "player_name": 5, "track_name": ""}})
    assert facts.lap is None and facts.driver is None and facts.track is None
    assert facts_of("telemetry", 1, 1.0, {"telemetry": "x"}).lap is None


def lines(n: int, size: int = 100) -> list[bytes]:
    return [encode_event(1.0 + i, i + 1, "telemetry", {"telemetry": {"lap": i, "pad": "x" * size}}) for i in range(n)]


async def test_writer_drops_the_oldest_lines_beyond_its_memory_bound_while_failing(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("x")  # the directory cannot be created: every write fails
    path = blocker / "r" / f"{uuid.uuid4()}.jsonl"
    problems = []
    writer = RecordingWriter(path, "s", WriterOptions(retry_seconds=0.01, flush_seconds=0.01, max_pending_bytes=1000),
                             on_problem=problems.append)
    for line in lines(30):
        writer.append(line, facts_of("telemetry", decode_event(line).seq, 1.0, decode_event(line).data))
    assert writer.dropped > 0
    assert not await writer.flush(timeout=0.1)
    await wait_until(lambda: problems and problems[-1])
    blocker.unlink()
    await wait_until(lambda: recorded_seqs(path)[-1:] == [30], timeout=5)
    kept = recorded_seqs(path)
    assert kept == list(range(31 - len(kept), 31)) and len(kept) == 30 - writer.dropped
    assert problems[-1] is None
    await writer.close()
    assert orjson.loads(sidecar_path(path).read_bytes())["ended"] is False


async def test_writer_sets_a_bad_header_aside_and_starts_anew(tmp_path):
    path = tmp_path / f"{uuid.uuid4()}.jsonl"
    path.write_bytes(b'{"format": "something else"}\n{"t": 1}\n')
    writer = RecordingWriter(path, "s", WriterOptions(flush_seconds=0.01))
    (line,) = lines(1)
    writer.append(line, facts_of("telemetry", 1, 1.0, decode_event(line).data))
    assert await writer.flush()
    await writer.close(session_ended=True)
    assert recorded_seqs(path) == [1]
    (aside,) = tmp_path.glob("*.corrupt-*")
    assert aside.read_bytes().startswith(b'{"format": "something else"}')
    assert load_summary(path).ended is True


async def test_writer_continues_a_recording_it_did_not_start(tmp_path):
    session_id = str(uuid.uuid4())
    path = tmp_path / f"{session_id}.jsonl"
    path.write_bytes(encode_header(Header(session_id=session_id, created=5.0, racedash_version="x")) + lines(3)[0])
    writer = RecordingWriter(path, session_id, WriterOptions(flush_seconds=0, fsync="always"))
    line = lines(2)[1]
    writer.append(line, facts_of("telemetry", 2, 2.0, decode_event(line).data))
    await writer.flush()
    await asyncio.wait_for(writer.close(), 5)
    assert recorded_seqs(path) == [1, 2]
    summary = load_summary(path)
    assert summary.frames == 2 and summary.created == 5.0 and summary.good_size == path.stat().st_size


def test_tail_events_reads_past_a_line_of_many_chunks(tmp_path):
    """A frame far longer than the read chunk (an 8 MB one here) is read in one linear pass."""
    from racedash.recording.reader import CHUNK

    session_id = str(uuid.uuid4())
    path = tmp_path / f"{session_id}.jsonl"
    with open(path, "wb") as f:
        f.write(encode_header(Header(session_id=session_id, created=1.0, racedash_version="t")))
        f.write(encode_event(1.0, 1, "telemetry", {"telemetry": {"lap": 1}}))
        f.write(encode_event(2.0, 2, "telemetry", {"telemetry": {"lap": 2, "pad": "x" * (128 * CHUNK)}}))
        f.write(encode_event(3.0, 3, "telemetry", {"telemetry": {"lap": 3}}))
        f.write(b'{"t": 4.0, "seq": 4, "kind": "telemetry", "data": {"pad": "' + b"y" * (3 * CHUNK))  # torn
    with open(path, "rb") as f:
        end = good_end(f)
        f.seek(0)
        header_end = len(f.readline())
        tail = tail_events(f, end, 10, floor=header_end)
    assert [e.seq for e in tail] == [1, 2, 3]
    assert len(tail[1].data["telemetry"]["pad"]) == 128 * CHUNK
