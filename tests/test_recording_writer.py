"""The recording writer's commit: one thread hop each, short and failing writes, fsync policy, the sidecar."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import threading
import time
import uuid
from collections import Counter

import orjson
import pytest

from racedash.recording.format import decode_event, encode_event
from racedash.recording.summary import facts_of, load_summary, sidecar_path
from racedash.recording.writer import RecordingWriter, WriterOptions
from tests.helpers import wait_until
from tests.recording_support import recorded_seqs

real_write = os.write
real_fsync = os.fsync


def line(seq: int) -> bytes:
    return encode_event(1_700_000_000.0 + seq, seq, "telemetry", {"telemetry": {"lap": seq, "pad": "x" * 100}})


def append(writer: RecordingWriter, *seqs: int) -> None:
    for seq in seqs:
        encoded = line(seq)
        writer.append(encoded, facts_of("telemetry", seq, decode_event(encoded).t, decode_event(encoded).data))


@pytest.fixture
def path(tmp_path):
    return tmp_path / f"{uuid.uuid4()}.jsonl"


def count_hops(monkeypatch) -> Counter[str]:
    """What the running loop is asked to run in its executor (every thread hop), by function name."""
    loop = asyncio.get_running_loop()
    counted: Counter[str] = Counter()
    submit = loop.run_in_executor

    def counting(executor, func, *args):
        counted[getattr(func, "func", func).__qualname__] += 1
        return submit(executor, func, *args)

    monkeypatch.setattr(loop, "run_in_executor", counting)
    return counted


@contextlib.contextmanager
def hanging_writes(monkeypatch, then_write: bool = False):
    """Writes block (a hung disk) until the block ends; then they fail with EIO, or go through."""
    hung, released = threading.Event(), threading.Event()

    def hanging_write(fd, data):
        hung.set()
        released.wait(10)
        if then_write:
            return real_write(fd, data)
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "write", hanging_write)
    try:
        yield hung
    finally:
        released.set()
        monkeypatch.undo()


@pytest.fixture
def fsyncs(monkeypatch):
    calls = []

    def counting(fd):
        calls.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting)
    return calls


async def test_each_commit_is_one_thread_hop_with_the_open_and_the_sidecar_folded_in(path, monkeypatch):
    hops = count_hops(monkeypatch)
    writer = RecordingWriter(path, "s", WriterOptions(flush_seconds=0, fsync="always", summary_seconds=0))
    append(writer, 1, 2)
    assert await writer.flush()
    # Opening (directory, header) and writing the first batch: one hop.
    assert hops == {"RecordingFile.commit": 1}
    assert recorded_seqs(path) == [1, 2]
    assert not sidecar_path(path).exists()  # a commit that opens the file leaves the sidecar to the next

    append(writer, 3)
    assert await writer.flush()
    assert hops == {"RecordingFile.commit": 2}
    # Saved in that same hop, already counting the batch it wrote.
    sidecar = orjson.loads(sidecar_path(path).read_bytes())
    assert sidecar["frames"] == 3 and sidecar["last_seq"] == 3
    assert sidecar["good_size"] == sidecar["file_size"] == path.stat().st_size
    assert sidecar["closed_cleanly"] is False

    await writer.close(session_ended=True)
    assert hops == {"RecordingFile.commit": 2, "RecordingFile.finish": 1}
    summary = load_summary(path)
    assert summary.ended and summary.closed_cleanly and summary.frames == 3
    assert writer.summary == summary


@pytest.mark.parametrize(
    "policy, fsync_seconds, expected",
    [
        ("always", 5.0, [1, 2, 3, 3]),  # after every commit; nothing left to sync on close
        ("interval", 0.0, [1, 2, 3, 3]),  # the interval has always passed
        ("interval", 3600.0, [0, 0, 0, 1]),  # not yet: only on close
        ("none", 0.0, [0, 0, 0, 0]),  # never, not even on close
    ],
)
async def test_fsync_policy_is_honoured_within_the_commit(path, monkeypatch, fsyncs, policy, fsync_seconds, expected):
    hops = count_hops(monkeypatch)
    writer = RecordingWriter(path, "s", WriterOptions(flush_seconds=0, fsync=policy, fsync_seconds=fsync_seconds))
    seen = []
    for seq in (1, 2, 3):
        append(writer, seq)
        assert await writer.flush()
        seen.append(len(fsyncs))
    await writer.close()
    seen.append(len(fsyncs))
    assert seen == expected
    assert hops == {"RecordingFile.commit": 3, "RecordingFile.finish": 1}
    assert recorded_seqs(path) == [1, 2, 3]


async def test_a_short_write_is_continued(path, monkeypatch):
    writer = RecordingWriter(path, "s", WriterOptions(flush_seconds=0))
    append(writer, 1)
    assert await writer.flush()
    calls = []

    def short_write(fd, data):
        calls.append(len(data))
        return real_write(fd, bytes(data[:50]))  # as a filling disk may: fewer bytes than asked

    monkeypatch.setattr(os, "write", short_write)
    append(writer, 2, 3, 4)
    assert await writer.flush()
    monkeypatch.undo()
    assert len(calls) > 3 and calls[0] == 3 * len(line(2))
    await writer.close()
    assert recorded_seqs(path) == [1, 2, 3, 4]
    assert path.read_bytes().endswith(line(4))
    summary = load_summary(path)
    assert summary.frames == 4 and summary.good_size == summary.file_size == path.stat().st_size


async def test_a_write_failing_midway_is_cut_back_reported_and_retried(path, monkeypatch):
    problems = []
    writer = RecordingWriter(path, "s", WriterOptions(flush_seconds=0, retry_seconds=0.02), on_problem=problems.append)
    append(writer, 1)
    assert await writer.flush()
    good_size = path.stat().st_size
    space = [30]  # bytes left on the "disk"

    def filling_write(fd, data):
        if not space[0]:
            raise OSError(errno.ENOSPC, "No space left on device")
        written = real_write(fd, bytes(data[: space[0]]))
        space[0] -= written
        return written

    monkeypatch.setattr(os, "write", filling_write)
    append(writer, 2, 3)
    assert not await writer.flush(timeout=0.2)
    await wait_until(lambda: problems and "No space left" in problems[-1])
    # Part of the batch had reached the file: it was cut off, the lines stay queued.
    assert path.stat().st_size == good_size and recorded_seqs(path) == [1]
    assert writer.summary.file_size == good_size and writer.summary.frames == 1

    monkeypatch.undo()  # space again: the retry reopens the file and writes each line once
    assert await writer.flush()
    assert problems[-1] is None
    append(writer, 4)
    await writer.close()
    assert recorded_seqs(path) == [1, 2, 3, 4]
    sidecar_path(path).unlink()
    rebuilt = load_summary(path)
    assert rebuilt.frames == writer.summary.frames == 4
    assert rebuilt.good_size == writer.summary.good_size == path.stat().st_size


async def test_a_failing_fsync_cuts_the_batch_back_and_retries_it(path, monkeypatch):
    problems = []
    writer = RecordingWriter(path, "s", WriterOptions(flush_seconds=0, fsync="always", retry_seconds=0.02),
                             on_problem=problems.append)
    append(writer, 1)
    assert await writer.flush()
    failures = [1]

    def failing_fsync(fd):
        if failures[0]:
            failures[0] -= 1
            raise OSError(errno.EIO, "Input/output error")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", failing_fsync)
    append(writer, 2)
    assert await writer.flush()
    assert problems[0] and "Input/output error" in problems[0] and problems[-1] is None
    await writer.close()
    assert recorded_seqs(path) == [1, 2]  # written twice, kept once


async def test_a_close_that_times_out_on_a_hung_disk_still_closes_the_file(path, monkeypatch):
    writer = RecordingWriter(path, "s", WriterOptions(flush_seconds=0, close_timeout=0.2))
    append(writer, 1)
    assert await writer.flush()
    with hanging_writes(monkeypatch) as hung:
        append(writer, 2)
        await wait_until(hung.is_set)
        await writer.close()  # gives up waiting for the commit and closes the file from another thread
        assert writer.done and not writer._file.is_open
    assert recorded_seqs(path) == [1]


async def test_frames_a_failing_disk_will_not_take_are_saved_elsewhere_on_close(path, tmp_path, monkeypatch):
    spill = tmp_path / "state" / "unwritten"
    writer = RecordingWriter(path, "abcd", WriterOptions(flush_seconds=0, retry_seconds=0.02, spill_dir=spill))
    append(writer, 1)
    assert await writer.flush()

    def full_disk(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", full_disk)
    append(writer, 2, 3)
    await writer.close()  # a clean stop while the disk is full
    monkeypatch.undo()
    assert recorded_seqs(path) == [1]
    [saved] = spill.glob("abcd-*.jsonl")
    assert [decode_event(raw + b"\n").seq for raw in saved.read_bytes().splitlines()] == [2, 3]


async def test_a_close_on_a_hung_disk_saves_its_frames_elsewhere(path, tmp_path, monkeypatch):
    spill = tmp_path / "unwritten"
    writer = RecordingWriter(path, "efgh", WriterOptions(flush_seconds=0, close_timeout=0.2, spill_dir=spill))
    append(writer, 1)
    assert await writer.flush()
    with hanging_writes(monkeypatch) as hung:
        append(writer, 2)
        await wait_until(hung.is_set)
        await writer.close()
    [saved] = spill.glob("efgh-*.jsonl")
    assert decode_event(saved.read_bytes()).seq == 2


async def test_a_frozen_disk_is_reported(server, clients, monkeypatch):
    """A write that never returns (an NFS mount gone away): /healthz says so while it lasts."""
    from tests.helpers import Client

    monitor = Client(server.url)
    clients.append(monitor)
    await monitor.connect()
    session_id = (await monitor.call("request_session_id", {}))["session_id"]
    await monitor.call("telemetry_update", {"session_id": session_id, "telemetry": {"lap": 1}})
    assert await server.app.recorder.flush(session_id)
    with hanging_writes(monkeypatch, then_write=True) as hung:
        await monitor.call("telemetry_update", {"session_id": session_id, "telemetry": {"lap": 2}})
        await wait_until(hung.is_set)
        recorder = server.app.recorder
        recorder.check_stalls(time.monotonic() + 60)  # as the watch would see it a minute on
        assert any("has not completed a write" in p for p in server.app.status.snapshot()["problems"])
        assert server.app.status.snapshot()["status"] == "degraded"
    assert await server.app.recorder.flush(session_id)
    server.app.recorder.check_stalls(time.monotonic())
    assert server.app.status.snapshot()["problems"] == []


async def test_a_quiet_recording_gives_its_descriptor_back_and_reopens(server, clients):
    from tests.helpers import Client

    monitor = Client(server.url)
    clients.append(monitor)
    await monitor.connect()
    session_id = (await monitor.call("request_session_id", {}))["session_id"]
    for lap in (1, 2):
        await monitor.call("telemetry_update", {"session_id": session_id, "telemetry": {"lap": lap}})
    recorder = server.app.recorder
    assert await recorder.flush(session_id)
    writer = recorder._writers[session_id]
    assert writer.is_file_open
    recorder.close_idle_files(time.monotonic() + recorder.options.idle_close_seconds)
    await wait_until(lambda: not writer.is_file_open)
    assert recorder.is_live(session_id)  # the recording goes on; only the descriptor is given back
    await monitor.call("telemetry_update", {"session_id": session_id, "telemetry": {"lap": 3}})
    assert await recorder.flush(session_id)
    assert writer.is_file_open
    path = server.settings.recordings_dir / f"{session_id}.jsonl"
    assert recorded_seqs(path) == [1, 2, 3]
