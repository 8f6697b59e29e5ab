"""The commit batcher: all live recordings' commits share one thread hop per flush window."""

from __future__ import annotations

import asyncio
import errno
import os
import time
import uuid

import pytest

from racedash.recording.batcher import CommitBatcher
from racedash.recording.recorder import Recorder
from racedash.recording.store import RecordingStore
from racedash.recording.writer import RecordingWriter, WriterOptions
from racedash.sessions import Frame
from tests.helpers import wait_until
from tests.recording_support import recorded_seqs
from tests.test_recording_writer import append, count_hops, line

real_write = os.write


def writers(tmp_path, count: int, batcher: CommitBatcher, problems: list[list] | None = None, **options):
    opts = WriterOptions(flush_seconds=batcher.window, **options)
    group = []
    for i in range(count):
        reported: list[str | None] = []
        if problems is not None:
            problems.append(reported)
        path = tmp_path / f"{uuid.uuid4()}.jsonl"
        group.append(RecordingWriter(path, f"s{i}", opts, batcher=batcher, on_problem=reported.append))
    return group


async def test_the_commits_of_many_writers_share_one_hop_per_tick(tmp_path, monkeypatch):
    hops = count_hops(monkeypatch)
    batcher = CommitBatcher(0.05)
    group = writers(tmp_path, 8, batcher)
    for writer in group:
        append(writer, 1)
    assert all(await asyncio.gather(*(w.flush() for w in group)))
    # Opening a recording is not held for the tick: one hop each, as a writer alone would.
    assert hops == {"RecordingFile.commit": 8}
    for seq in (2, 3, 4):
        for writer in group:
            append(writer, seq)
        assert all(await asyncio.gather(*(w.flush() for w in group)))
    assert hops == {"RecordingFile.commit": 8, "run_all": 3} and batcher.hops == 3
    await asyncio.gather(*(w.close(session_ended=True) for w in group))
    assert all(recorded_seqs(w.path) == [1, 2, 3, 4] for w in group)
    assert all(w.summary.frames == 4 and w.summary.ended and w.summary.closed_cleanly for w in group)


async def test_the_recorder_gives_its_writers_one_batcher(tmp_path, monkeypatch):
    hops = count_hops(monkeypatch)
    recorder = Recorder(RecordingStore(tmp_path), WriterOptions(flush_seconds=0.05), ring_size=10)
    sessions = [str(uuid.uuid4()) for _ in range(20)]
    for seq in range(1, 5):
        for sid in sessions:
            recorder.append(sid, Frame(seq=seq, kind="telemetry", received=float(seq), payload={"telemetry": {"lap": seq}}))
        assert all(await asyncio.gather(*(recorder.flush(sid) for sid in sessions)))
    assert hops == {"RecordingFile.commit": 20, "run_all": 3}
    await recorder.close()
    assert all(recorded_seqs(tmp_path / f"{sid}.jsonl") == [1, 2, 3, 4] for sid in sessions)


async def test_a_failing_recording_does_not_stop_the_others_in_its_hop(tmp_path, monkeypatch):
    batcher = CommitBatcher(0.05)
    problems: list[list[str | None]] = []
    group = writers(tmp_path, 3, batcher, problems, retry_seconds=0.05)
    for writer in group:
        append(writer, 1)
    assert all(await asyncio.gather(*(w.flush() for w in group)))
    hops = count_hops(monkeypatch)
    bad = group[1]._file.file.fileno()

    def failing_for_one(fd, data):
        if fd == bad:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", failing_for_one)
    for writer in group:
        append(writer, 2)
    ok = await asyncio.gather(*(w.flush(timeout=0.5) for w in group))
    assert ok == [True, False, True]
    assert hops["run_all"] == 1  # all three were in that hop
    assert recorded_seqs(group[0].path) == recorded_seqs(group[2].path) == [1, 2]
    assert recorded_seqs(group[1].path) == [1]
    assert problems[1] and "No space left" in problems[1][-1]
    assert problems[0] == problems[2] == []

    monkeypatch.setattr(os, "write", real_write)  # the failing one recovers on its retry
    assert await group[1].flush()
    assert problems[1][-1] is None
    await asyncio.gather(*(w.close() for w in group))
    assert all(recorded_seqs(w.path) == [1, 2] for w in group)


async def test_one_commit_raising_is_handed_to_its_caller_alone():
    batcher = CommitBatcher(0.01)

    def broken() -> int:
        raise ValueError("I/O operation on closed file")

    def prepare_failing():
        raise RuntimeError("could not prepare")

    results = await asyncio.gather(
        batcher.commit(lambda: lambda: 1),
        batcher.commit(lambda: broken),
        batcher.commit(prepare_failing),
        batcher.commit(lambda: lambda: 4),
        return_exceptions=True,
    )
    assert results[0] == 1 and results[3] == 4
    assert isinstance(results[1], ValueError) and isinstance(results[2], RuntimeError)
    assert batcher.hops == 1


async def test_a_cancelled_commit_is_dropped_before_its_tick():
    batcher = CommitBatcher(0.05)
    prepared = []
    assert await batcher.commit(lambda: lambda: 0) == 0  # ticked at once: the next tick is a window away
    waiting = asyncio.ensure_future(batcher.commit(lambda: prepared.append(1) or (lambda: 1)))
    other = asyncio.ensure_future(batcher.commit(lambda: lambda: 2))
    await asyncio.sleep(0)
    waiting.cancel()
    assert await other == 2
    assert prepared == [] and waiting.cancelled()


@pytest.mark.parametrize("window", [0.1, 0.25])
async def test_a_queued_line_is_on_disk_within_the_flush_window(tmp_path, window):
    """Real files, lines queued at arbitrary moments: each reaches the file at most one window later."""
    batcher = CommitBatcher(window)
    group = writers(tmp_path, 5, batcher)
    expected: list[tuple[int, int, float]] = []  # (writer, file size once the line is in, when it was queued)
    seq = 0
    for writer in group:  # open them first (that commit is not batched)
        seq += 1
        append(writer, seq)
    assert all(await asyncio.gather(*(w.flush() for w in group)))
    latencies: list[float] = []
    pending = expected

    async def watch() -> None:
        while True:
            now = time.monotonic()
            sizes = [w.path.stat().st_size for w in group]
            for item in [e for e in pending if sizes[e[0]] >= e[1]]:
                latencies.append(now - item[2])
                pending.remove(item)
            await asyncio.sleep(0.002)

    watcher = asyncio.create_task(watch())
    try:
        deadline = time.monotonic() + 6 * window
        step = 0
        while time.monotonic() < deadline:
            step += 1
            i = step % len(group)
            writer = group[i]
            size = writer.path.stat().st_size + sum(len(lin) for lin, _ in writer._pending)
            seq += 1
            append(writer, seq)
            expected.append((i, size + len(line(seq)), time.monotonic()))
            await asyncio.sleep(window * (0.13 + 0.29 * (step % 4)))  # out of step with the window
        await wait_until(lambda: not pending, timeout=3)
    finally:
        watcher.cancel()
    assert len(latencies) >= 10
    assert max(latencies) <= window + 0.06, sorted(latencies)[-3:]
    await asyncio.gather(*(w.close() for w in group))
