"""One queue-fed writer per recording, with group commit in one thread hop per window.

Handlers never touch the disk: :meth:`RecordingWriter.append` only puts an
encoded line on the writer's queue (synchronously, so frames keep the order
in which they were stamped). The writer's task commits everything queued as
one batch, then waits for the flush window before the next one, so a busy
session costs one commit per window instead of one per frame, and a line
reaches the kernel at most ``flush_seconds`` after it was queued. What a
``kill -9`` of the server can lose is therefore the last flush window; what a
power cut can lose depends on the fsync policy:

- ``always``: fsync after every group commit (safest, one fsync per window);
- ``interval`` (default): fsync at most every ``fsync_seconds``, and on close;
- ``none``: leave it to the operating system (fsync never called).

One thread hop per commit: all the blocking work of a commit (opening the
file when it is not open, writing the batch, the fsync the policy asks for,
the summary sidecar when it is due, cutting a failed write back) is one plain
function, :meth:`RecordingFile.commit`, run once in aiofiles' executor
(``aiofiles.os.wrap``: the loop's default executor, where aiofiles runs its
file calls too). Awaiting an aiofiles file object's methods would cost a
thread round trip per call (write, flush, fsync, and open/write/close/replace
for the sidecar); with 50 live recordings those hops kept the pool's threads
competing with the event loop for the GIL. The file is opened unbuffered, so
nothing waits in a user-space buffer when the hop returns. The thread never
touches the writer's state: it is given bytes (the batch, and the sidecar
made on the loop) and returns what it found on opening.

One hop per flush window for all of a Recorder's writers: even one hop per
commit is one per frame at 2 Hz telemetry, so hundreds of live sessions would
still cost hundreds of hops a second. A writer given a
:class:`~racedash.recording.batcher.CommitBatcher` hands it its commit
instead: the batcher ticks once per window, takes each due writer's batch at
the tick (every line queued until then) and runs all their commits in one
executor call; the tick is the writer's flush window, so a line still reaches
the kernel at most ``flush_seconds`` after it was queued. A commit that opens
the file (a recording starting, resuming, or retrying after an error) or
closes it is not held for the tick: it makes its own hop, so a new recording
is on disk, and listed live, at once. A writer made without a batcher (tests)
makes its own hop per commit and waits the window itself.

Disk errors (disk full, permissions, a missing directory) never reach the
live path: they are logged, reported through ``on_problem`` (shown on
/healthz and the status page) and retried every ``retry_seconds`` with the
queued lines kept in memory up to ``max_pending_bytes`` (beyond that the
oldest queued lines are dropped and counted).
"""

from __future__ import annotations

import asyncio
import errno
import io
import logging
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from functools import partial
from typing import Any, Callable, NamedTuple

from racedash import __version__
from racedash.recording.batcher import CommitBatcher, in_thread
from racedash.recording.files import NotARegularFile, make_directory, open_regular, replace_atomically, shown
from racedash.recording.format import Header, RecordingFormatError, encode_header
from racedash.recording.summary import FrameFacts, Summary, load_summary, sidecar_path

log = logging.getLogger(__name__)

FSYNC_POLICIES = ("always", "interval", "none")


@dataclass(frozen=True)
class WriterOptions:
    flush_seconds: float = 0.25
    fsync: str = "interval"
    fsync_seconds: float = 5.0
    retry_seconds: float = 2.0
    max_pending_bytes: int = 64 * 1024 * 1024
    summary_seconds: float = 10.0
    close_timeout: float = 10.0
    # Where frames the recordings disk would not take are saved when a recording closes
    # (a clean stop on a failing disk), rather than dropped. None: they are dropped, and logged.
    spill_dir: Path | None = None
    idle_close_seconds: float = 30.0  # a recording with no frame this long closes its file until the next one

    def __post_init__(self) -> None:
        if self.fsync not in FSYNC_POLICIES:
            raise ValueError(f"recording fsync policy must be one of {', '.join(FSYNC_POLICIES)}, not {self.fsync!r}")


ProblemReporter = Callable[[str | None], None]


@dataclass
class CommitResult:
    # The recording's summary as found (or started) on opening, when this commit opened the file.
    opened: Summary | None = None
    # Why the batch is not on disk; the file has then been cut back to its size before the batch and closed.
    error: OSError | RecordingFormatError | None = None
    # The file open until now had been deleted or replaced under us: its frames went with it.
    lost: bool = False
    fsync_seconds: float | None = None  # how long this commit's fsync took, when it made one


class PreparedCommit(NamedTuple):
    batch: list[tuple[bytes, FrameFacts]]  # the head of the queue being written
    fsync: bool
    updated: Summary | None  # the summary counting the batch, when its sidecar is saved with it
    args: tuple[Any, ...]  # RecordingFile.commit's


class RecordingFile:
    """The blocking half of a writer: the open file and every call that touches the disk.

    Its methods run in a worker thread (in a hop of their own, or one after
    the other with other recordings' in a batcher's hop). The writer's task
    awaits each before it starts another, so the file is never used by two threads,
    except by :meth:`close` when the writer's close timed out on a hung commit.
    """

    def __init__(self, path: Path, session_id: str, clock: Callable[[], float], team: str | None = None) -> None:
        self.path = path
        self.session_id = session_id
        self.clock = clock
        self.team = team  # written into a new recording's header; a continued one keeps its own
        self.file: io.FileIO | None = None

    @property
    def is_open(self) -> bool:
        return self.file is not None

    def commit(self, data: bytes, size: int, known: Summary | None, fsync: bool, sidecar: bytes | None) -> CommitResult:
        """Append ``data`` to the file, whose size is ``size`` if it is open (else open it first).

        Then fsync if asked and save ``sidecar`` (the summary once the batch
        is on disk). ``known`` is the writer's summary when reopening (a copy:
        the thread may change it).
        """
        result = CommitResult()
        cut_back_to: int | None = None  # the file's size before this batch, once it is open
        if self.file is not None and self._gone():
            # Deleted (or the directory with it) or replaced: appending would write into a file
            # nobody can read. Continue in a new file at the path; the writer reports the loss.
            self.close()
            result.lost = True
            known = None
        try:
            if self.file is None:
                result.opened = self._open(known)
                size = result.opened.file_size
            cut_back_to = size
            self._write_all(data)
            if fsync:
                started = time.perf_counter()
                os.fsync(self.file.fileno())
                result.fsync_seconds = time.perf_counter() - started
        except (OSError, RecordingFormatError) as exc:
            # The lines stay queued and are retried: whatever part of them made
            # it would be written twice, so cut it off; the retry reopens.
            self.close(truncate_to=cut_back_to)
            result.error = exc
            return result
        if sidecar is not None and not result.lost:
            self.save_sidecar(sidecar)
        return result

    def _gone(self) -> bool:
        """The open file is no longer the one at ``path`` (deleted, or another file put there)."""
        assert self.file is not None
        try:
            opened = os.fstat(self.file.fileno())
            if opened.st_nlink == 0:
                return True
            at_path = os.lstat(self.path)
        except FileNotFoundError:
            return True
        except OSError:
            return False  # cannot tell: the write itself will say
        return (at_path.st_ino, at_path.st_dev) != (opened.st_ino, opened.st_dev)

    def _write_all(self, data: bytes) -> None:
        file = self.file  # (if a timed-out close closes it meanwhile, fileno() raises instead of reusing the fd)
        assert file is not None
        remaining = memoryview(data)
        while remaining:
            # Unbuffered: one write(2), which may write less than asked (e.g. the disk filling up).
            written = os.write(file.fileno(), remaining)
            if written <= 0:
                raise OSError(errno.EIO, "the recording's write made no progress")
            remaining = remaining[written:]

    def _open(self, known: Summary | None) -> Summary:
        """Open for appending: create with a header, or continue an existing recording."""
        make_directory(self.path.parent)
        summary = self._existing_summary(known)
        self.file = open_regular(self.path, "ab")  # never through a link, never a pipe; closed by close()
        cut_back_to: int | None = None  # set before this method writes anything
        try:
            size = os.fstat(self.file.fileno()).st_size
            if size == 0:
                now = self.clock()
                header = encode_header(
                    Header(session_id=self.session_id, created=now, racedash_version=__version__, team=self.team)
                )
                cut_back_to = 0
                self._write_all(header)
                return Summary(
                    session_id=self.session_id, created=now, racedash_version=__version__, team=self.team,
                    good_size=len(header), file_size=len(header),
                )
            if summary is None or summary.file_size != size:
                raise OSError(f"{self.path.name} changed while being opened")
            if summary.good_size != size:
                # A torn last line (crash mid-write): end it, so our first
                # line starts fresh; readers skip the fragment.
                cut_back_to = size
                self._write_all(b"\n")
                summary.good_size = summary.file_size = size + 1
            summary.ended = False
            return summary
        except BaseException:
            self.close(truncate_to=cut_back_to)
            raise

    def _existing_summary(self, known: Summary | None) -> Summary | None:
        """The summary of the recording on disk, or None when there is none yet.

        ``known`` (what this writer last wrote) is kept when the file still has
        the size it left it at, which is the normal case after a retried error.
        """
        try:
            info = os.lstat(self.path)
        except FileNotFoundError:
            return None
        if not stat.S_ISREG(info.st_mode):
            raise NotARegularFile(self.path)  # reported like any disk problem; never appended through
        size = info.st_size
        if size == 0:
            return None
        if known is not None and known.file_size == size:
            return known
        try:
            return load_summary(self.path)
        except RecordingFormatError as exc:
            # Not ours to continue (bad or torn header): keep it aside, start anew.
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(self.clock())}")
            log.error("recording %s has a bad header (%s); moved to %s", shown(self.path), exc, shown(aside))
            os.replace(self.path, aside)
            sidecar_path(self.path).unlink(missing_ok=True)
            return None

    def save_sidecar(self, sidecar: bytes) -> None:
        """Replace the summary sidecar atomically (a reader never sees half of one)."""
        try:
            replace_atomically(sidecar_path(self.path), sidecar)
        except OSError as exc:
            # The sidecar is rebuilt from the recording when missing: not fatal.
            log.warning("recording %s: could not save its summary: %s", shown(self.path), exc.strerror or exc)

    def finish(self, fsync: bool, sidecar: bytes | None) -> None:
        """Fsync (if asked), close, then save the final summary; errors are logged, not raised."""
        if fsync and self.file is not None:
            try:
                os.fsync(self.file.fileno())
            except OSError as exc:
                log.error("recording %s: fsync on close failed: %s", shown(self.path), exc.strerror or exc)
        self.close()
        if sidecar is not None:
            self.save_sidecar(sidecar)

    def close(self, truncate_to: int | None = None) -> None:
        file, self.file = self.file, None
        if file is None:
            return
        if truncate_to is not None:
            try:
                os.ftruncate(file.fileno(), truncate_to)
            except OSError as exc:
                log.warning("recording %s: could not cut a partial write: %s", shown(self.path), exc.strerror or exc)
        try:
            file.close()
        except OSError as exc:
            log.warning("recording %s: close failed: %s", shown(self.path), exc.strerror or exc)


class RecordingWriter:
    """Appends one session's lines to ``path``; owns its task from construction to :meth:`close`."""

    def __init__(
        self,
        path: Path,
        session_id: str,
        options: WriterOptions,
        *,
        on_problem: ProblemReporter = lambda message: None,
        after: asyncio.Future[Any] | None = None,
        clock: Callable[[], float] = time.time,
        batcher: CommitBatcher | None = None,
        team: str | None = None,
    ) -> None:
        self.path = path
        self.session_id = session_id
        self.options = options
        # What is on disk; only the loop changes it (the thread gets copies and bytes).
        self.summary: Summary | None = None
        self.dropped = 0
        self.lost_frames = 0  # frames recorded into a file deleted or replaced under this writer
        self._spilled = False
        self.commit_started: float | None = None
        self.last_activity = time.monotonic()
        self._idle_close = False
        self.fsyncs = 0  # for /metrics: how many, and how long in all
        self.fsync_seconds = 0.0
        self._loss_reported = False
        self._on_problem = on_problem
        self._after = after
        self._batcher = batcher
        self._file = RecordingFile(path, session_id, clock, team)
        self._pending: list[tuple[bytes, FrameFacts]] = []
        self._pending_bytes = 0
        self._queued = 0  # lines ever queued
        self._written = 0  # lines ever written (or dropped): flush() waits on this
        self._wake = asyncio.Event()
        self._closing = asyncio.Event()
        self._progress = asyncio.Condition()
        self._failing = False
        self._last_fsync = time.monotonic()
        self._last_sidecar = time.monotonic()
        self._dirty_since_fsync = False
        self._close_attempts = 0
        self._inflight = 0  # lines at the head of _pending that the current commit is writing
        self._end_session = False
        self._task = asyncio.create_task(self._run(), name=f"recording-writer-{session_id[:8]}")

    # -- called from handlers (synchronous, never touches the disk) ------------
    def append(self, line: bytes, facts: FrameFacts) -> None:
        self.last_activity = time.monotonic()
        self._pending.append((line, facts))
        self._pending_bytes += len(line)
        self._queued += 1
        # Drop the oldest lines not being written right now (those stay: a commit is using them).
        while self._pending_bytes > self.options.max_pending_bytes and len(self._pending) > self._inflight + 1:
            dropped, _ = self._pending.pop(self._inflight)
            self._pending_bytes -= len(dropped)
            self._written += 1
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.error("recording %s: %d queued frame(s) dropped, the disk is not keeping up", shown(self.path), self.dropped)
        self._wake.set()

    @property
    def closing(self) -> bool:
        return self._closing.is_set()

    @property
    def done(self) -> bool:
        return self._task.done()

    # -- awaited by readers and shutdown ----------------------------------------
    async def flush(self, timeout: float = 2.0) -> bool:
        """Wait until every line queued so far is on disk (False on timeout, e.g. a failing disk)."""
        target = self._queued

        async def reached() -> None:
            async with self._progress:
                await self._progress.wait_for(lambda: self._written >= target or self._task.done())

        try:
            await asyncio.wait_for(reached(), timeout)
        except asyncio.TimeoutError:
            return False
        return self._written >= target

    async def close(self, *, session_ended: bool = False) -> None:
        """Write what is queued, fsync (unless policy ``none``), save the summary, close the file.

        ``session_ended`` marks the summary as ended (the session timed out);
        a server shutdown leaves it unmarked, since the session may resume.
        """
        self._end_session = session_ended
        self._closing.set()
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), self.options.close_timeout)
        except asyncio.TimeoutError:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            log.error("recording %s: close timed out with %d frame(s) not written", shown(self.path), len(self._pending))
            await self._spill()
            await in_thread(self._file.close)

    # -- the writer task ---------------------------------------------------------
    async def _run(self) -> None:
        if self._after is not None:
            await asyncio.gather(self._after, return_exceptions=True)
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._idle_close:
                self._idle_close = False
                if not self._pending and not self.closing and self._file.is_open:
                    await self._close_idle_file()
            if self._pending:
                if not await self._commit():
                    # Keep the lines and try again after a pause (or at once when closing).
                    if self.closing:
                        self._close_attempts += 1
                        if self._close_attempts > 3:
                            break
                    await self._pause(self.options.retry_seconds)
                    self._wake.set()
                    continue
            if self.closing and not self._pending:
                break
            if self._batcher is None:
                # Group commit: let the next lines gather for one flush window.
                # (A batcher's tick is that window: the next commit waits for it.)
                await self._pause(self.options.flush_seconds)
                if self._pending or self.closing:
                    self._wake.set()
        await self._finish()

    @property
    def pending_bytes(self) -> int:
        """Encoded lines queued for the disk, not yet written."""
        return self._pending_bytes

    @property
    def is_file_open(self) -> bool:
        return self._file.is_open

    def close_if_idle(self) -> None:
        """Close the file (not the writer) at its next turn if nothing is queued: the next frame reopens it.

        A session silent for a while holds no descriptor: thousands of quiet
        sessions cannot use up the process's files.
        """
        self._idle_close = True
        self._wake.set()

    async def _close_idle_file(self) -> None:
        fsync = self.options.fsync != "none" and self._dirty_since_fsync
        await in_thread(self._file.finish, fsync, self.summary.to_sidecar() if self.summary is not None else None)
        self._dirty_since_fsync = False
        self._last_sidecar = time.monotonic()

    async def _pause(self, seconds: float) -> None:
        if seconds <= 0 or self.closing:
            return
        try:
            await asyncio.wait_for(self._closing.wait(), seconds)
        except asyncio.TimeoutError:
            pass

    async def _commit(self) -> bool:
        prepared: PreparedCommit | None = None
        self.commit_started = time.monotonic()  # a commit that never returns is a frozen disk (Recorder.watch)
        try:
            if self._batcher is None or self.closing or not self._file.is_open:
                # Opening (a recording starting, resuming or retrying after an error) and closing
                # are rare and not held for the batcher's tick: a new or resumed recording is on
                # disk, and listed live, at once, and a close does not wait a window.
                prepared = self._prepare()
                result = await in_thread(self._file.commit, *prepared.args)
            else:

                def prepare() -> Callable[[], CommitResult]:
                    # On the loop, at the batcher's tick: the batch is what is queued by then.
                    nonlocal prepared
                    prepared = self._prepare()
                    return partial(self._file.commit, *prepared.args)

                result = await self._batcher.commit(prepare)
        finally:
            self.commit_started = None
            self._inflight = 0
        assert prepared is not None
        return await self._committed(result, prepared)

    def _prepare(self) -> PreparedCommit:
        """Take the queued lines as the batch to commit (and mark them in flight)."""
        batch = self._pending[:]  # lines appended while the commit runs are left for the next one
        data = b"".join(line for line, _ in batch)
        now = time.monotonic()
        fsync = self.options.fsync == "always" or (
            self.options.fsync == "interval" and now - self._last_fsync >= self.options.fsync_seconds
        )
        updated: Summary | None = None  # the summary counting this batch, when its sidecar is due
        if self._file.is_open:
            assert self.summary is not None
            size, known = self.summary.file_size, None
            if now - self._last_sidecar >= self.options.summary_seconds:
                # Made here on the loop, from a copy; the thread only gets its bytes, saved after the write.
                updated = self.summary.copy()
                account(updated, batch)
        else:
            # The hop opens the file first (a sidecar due now waits for the next
            # commit). Reopening after an error starts from this writer's
            # summary: a copy, since the thread may change it.
            size, known = 0, self.summary.copy() if self.summary is not None else None
        self._inflight = len(batch)
        sidecar = updated.to_sidecar() if updated is not None else None
        return PreparedCommit(batch, fsync, updated, (data, size, known, fsync, sidecar))

    async def _committed(self, result: CommitResult, prepared: PreparedCommit) -> bool:
        batch, fsync, updated = prepared.batch, prepared.fsync, prepared.updated
        if result.fsync_seconds is not None:
            self.fsyncs += 1
            self.fsync_seconds += result.fsync_seconds
        if result.lost:
            self._lost(self.summary)
            updated = None  # counted the old file's lines; the new file's summary starts below
        if result.opened is not None:
            self.summary = result.opened
        if result.error is not None:
            self._failed(result.error)
            return False
        # Success: account for the lines in the summary, then release them.
        assert self.summary is not None
        if updated is not None:
            self.summary = updated
            self._last_sidecar = time.monotonic()
        else:
            account(self.summary, batch)
        if fsync:
            self._last_fsync = time.monotonic()
        self._dirty_since_fsync = not fsync
        del self._pending[: len(batch)]
        self._pending_bytes -= len(prepared.args[0])
        self._written += len(batch)
        if self._failing:
            self._failing = False
            log.info("recording %s is being written again", shown(self.path))
            self._on_problem(None)
        async with self._progress:
            self._progress.notify_all()
        return True

    def _lost(self, old: Summary | None) -> None:
        frames = old.frames if old is not None else 0
        self.lost_frames += frames
        log.error("recording %s was deleted or replaced while being written: %d recorded frame(s) lost with it; "
                  "recording continues in a new file", shown(self.path), frames)
        self._on_problem(f"a recording file was deleted or replaced while being written ({frames} recorded frames "
                         "lost with it); recording continues in a new file")
        self._loss_reported = True

    def _failed(self, exc: OSError | RecordingFormatError) -> None:
        # The file is closed already (cut back to its last good size): the next attempt reopens it.
        message = getattr(exc, "strerror", None) or str(exc)
        if not self._failing:
            log.error("recording %s cannot be written: %s; retrying every %ss", shown(self.path), message, self.options.retry_seconds)
            self._on_problem(f"a recording cannot be written ({message}); retrying, live broadcasting continues")
        self._failing = True

    async def _spill(self) -> None:
        """Save the frames still queued elsewhere (the state directory) instead of dropping them."""
        if not self._pending or self.options.spill_dir is None:
            return
        lines = b"".join(line for line, _ in self._pending)
        target = self.options.spill_dir / f"{self.session_id}-{int(time.time())}.jsonl"
        try:
            await asyncio.wait_for(asyncio.to_thread(_write_new_file, target, lines), 5.0)
        except (OSError, asyncio.TimeoutError) as exc:
            log.error("recording %s: %d frame(s) could not be saved elsewhere either (%s)", shown(self.path),
                      len(self._pending), getattr(exc, "strerror", None) or type(exc).__name__)
            return
        log.error("recording %s: %d frame(s) the disk did not take are saved in %s/%s; append them to the "
                  "recording to recover them", shown(self.path), len(self._pending), target.parent, shown(target))
        self._pending.clear()
        self._spilled = True  # the file lacks those seqs: a resume must skip past them

    async def _finish(self) -> None:
        if self._pending:
            log.error("recording %s closed with %d frame(s) not written (disk failing)", shown(self.path), len(self._pending))
            await self._spill()
        if self._file.is_open:
            final: Summary | None = None
            if self.summary is not None:
                final = self.summary.copy()
                final.ended = self._end_session
                final.closed_cleanly = not self._pending and not self._spilled
            fsync = self.options.fsync != "none" and self._dirty_since_fsync
            await in_thread(self._file.finish, fsync, final.to_sidecar() if final is not None else None)
            if final is not None:
                self.summary = final
        async with self._progress:
            self._progress.notify_all()


def account(summary: Summary, batch: list[tuple[bytes, FrameFacts]]) -> None:
    """Count a batch just appended at the end of the file (``summary.file_size``) into ``summary``."""
    summary.closed_cleanly = False
    offset = summary.file_size
    for line, facts in batch:
        summary.observe(facts, offset)
        offset += len(line)
    summary.good_size = summary.file_size = offset


def _write_new_file(path: Path, data: bytes) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
