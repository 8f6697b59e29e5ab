"""One queue-fed writer per recording, with group commit.

Handlers never touch the disk: :meth:`RecordingWriter.append` only puts an
encoded line on the writer's queue (synchronously, so frames keep the order
in which they were stamped). The writer's task drains everything queued in
one ``write`` through aiofiles, then waits for the flush window before the
next one, so a busy session costs one write per window instead of one per
frame, and a line reaches the kernel at most ``flush_seconds`` after it was
queued. What a ``kill -9`` of the server can lose is therefore the last flush
window; what a power cut can lose depends on the fsync policy:

- ``always``: fsync after every group commit (safest, one fsync per window);
- ``interval`` (default): fsync at most every ``fsync_seconds``, and on close;
- ``none``: leave it to the operating system (fsync never called).

Disk errors (disk full, permissions, a missing directory) never reach the
live path: they are logged, reported through ``on_problem`` (shown on
/healthz and the status page) and retried every ``retry_seconds`` with the
queued lines kept in memory up to ``max_pending_bytes`` (beyond that the
oldest queued lines are dropped and counted).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import aiofiles
import aiofiles.os

from racedash import __version__
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

    def __post_init__(self) -> None:
        if self.fsync not in FSYNC_POLICIES:
            raise ValueError(f"recording fsync policy must be one of {', '.join(FSYNC_POLICIES)}, not {self.fsync!r}")


ProblemReporter = Callable[[str | None], None]


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
    ) -> None:
        self.path = path
        self.session_id = session_id
        self.options = options
        self.summary: Summary | None = None
        self.dropped = 0
        self._on_problem = on_problem
        self._after = after
        self._clock = clock
        self._pending: list[tuple[bytes, FrameFacts]] = []
        self._pending_bytes = 0
        self._queued = 0  # lines ever queued
        self._written = 0  # lines ever written (or dropped): flush() waits on this
        self._wake = asyncio.Event()
        self._closing = asyncio.Event()
        self._progress = asyncio.Condition()
        self._file: Any = None
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
                log.error("recording %s: %d queued frame(s) dropped, the disk is not keeping up", self.path.name, self.dropped)
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
            log.error("recording %s: close timed out with %d frame(s) not written", self.path.name, len(self._pending))
            await self._close_file()

    # -- the writer task ---------------------------------------------------------
    async def _run(self) -> None:
        if self._after is not None:
            await asyncio.gather(self._after, return_exceptions=True)
        while True:
            await self._wake.wait()
            self._wake.clear()
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
            # Group commit: let the next lines gather for one flush window.
            await self._pause(self.options.flush_seconds)
            if self._pending or self.closing:
                self._wake.set()
        await self._finish()

    async def _pause(self, seconds: float) -> None:
        if seconds <= 0 or self.closing:
            return
        try:
            await asyncio.wait_for(self._closing.wait(), seconds)
        except asyncio.TimeoutError:
            pass

    async def _commit(self) -> bool:
        batch = self._pending[:]  # lines appended while we await are left for the next commit
        data = b"".join(line for line, _ in batch)
        self._inflight = len(batch)
        try:
            if self._file is None:
                await self._open()
            assert self._file is not None and self.summary is not None
            offset = self.summary.file_size
            await self._file.write(data)
            await self._file.flush()
            self._dirty_since_fsync = True
            if self.options.fsync == "always" or (
                self.options.fsync == "interval" and time.monotonic() - self._last_fsync >= self.options.fsync_seconds
            ):
                await self._fsync()
        except (OSError, RecordingFormatError) as exc:
            await self._failed(exc)
            return False
        finally:
            self._inflight = 0
        # Success: account for the lines in the summary, then release them.
        del self._pending[: len(batch)]
        self._pending_bytes -= len(data)
        for line, facts in batch:
            self.summary.observe(facts, offset)
            offset += len(line)
        self.summary.good_size = self.summary.file_size = offset
        self._written += len(batch)
        if self._failing:
            self._failing = False
            log.info("recording %s is being written again", self.path.name)
            self._on_problem(None)
        async with self._progress:
            self._progress.notify_all()
        if time.monotonic() - self._last_sidecar >= self.options.summary_seconds:
            await self._save_summary()
        return True

    async def _open(self) -> None:
        """Open for appending: create with a header, or continue an existing recording."""
        await aiofiles.os.makedirs(self.path.parent, exist_ok=True)
        self.summary = await asyncio.to_thread(self._existing_summary, self.summary)
        handle = await aiofiles.open(self.path, "ab")
        try:
            size = await handle.tell()
            if size == 0:
                now = self._clock()
                header = encode_header(Header(session_id=self.session_id, created=now, racedash_version=__version__))
                await handle.write(header)
                self.summary = Summary(
                    session_id=self.session_id, created=now, racedash_version=__version__,
                    good_size=len(header), file_size=len(header),
                )
            else:
                if self.summary is None or self.summary.file_size != size:
                    raise OSError(f"{self.path.name} changed while being opened")
                if self.summary.good_size != size:
                    # A torn last line (crash mid-write): end it, so our first
                    # line starts fresh; readers skip the fragment.
                    await handle.write(b"\n")
                    size += 1
                    self.summary.good_size = self.summary.file_size = size
            await handle.flush()
            self.summary.ended = False
        except BaseException:
            await handle.close()
            raise
        self._file = handle

    def _existing_summary(self, known: Summary | None) -> Summary | None:
        """The summary of the recording on disk, or None when there is none yet (blocking).

        ``known`` (what this writer last wrote) is kept when the file still has
        the size it left it at, which is the normal case after a retried error.
        """
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return None
        if size == 0:
            return None
        if known is not None and known.file_size == size:
            return known
        try:
            return load_summary(self.path)
        except RecordingFormatError as exc:
            # Not ours to continue (bad or torn header): keep it aside, start anew.
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(self._clock())}")
            log.error("recording %s has a bad header (%s); moved to %s", self.path.name, exc, aside.name)
            os.replace(self.path, aside)
            sidecar_path(self.path).unlink(missing_ok=True)
            return None

    async def _fsync(self) -> None:
        if self._file is None or not self._dirty_since_fsync:
            return
        await asyncio.to_thread(os.fsync, self._file.fileno())
        self._last_fsync = time.monotonic()
        self._dirty_since_fsync = False

    async def _failed(self, exc: BaseException) -> None:
        message = getattr(exc, "strerror", None) or str(exc)
        if not self._failing:
            log.error("recording %s cannot be written: %s; retrying every %ss", self.path.name, exc, self.options.retry_seconds)
            self._on_problem(f"a recording cannot be written ({message}); retrying, live broadcasting continues")
        self._failing = True
        # Reopen on the next attempt; truncate whatever part of the batch made it.
        await self._close_file(truncate_to=self.summary.file_size if self.summary else None)

    async def _close_file(self, truncate_to: int | None = None) -> None:
        handle, self._file = self._file, None
        if handle is None:
            return
        try:
            if truncate_to is not None:
                await asyncio.to_thread(os.ftruncate, handle.fileno(), truncate_to)
        except OSError as exc:
            log.warning("recording %s: could not cut a partial write: %s", self.path.name, exc)
        try:
            await handle.close()
        except OSError as exc:
            log.warning("recording %s: close failed: %s", self.path.name, exc)

    async def _save_summary(self) -> None:
        self._last_sidecar = time.monotonic()
        if self.summary is None:
            return
        target = sidecar_path(self.path)
        tmp = target.with_name(target.name + ".tmp")
        try:
            async with aiofiles.open(tmp, "wb") as f:
                await f.write(self.summary.to_sidecar())
            await aiofiles.os.replace(tmp, target)
        except OSError as exc:
            # The sidecar is rebuilt from the recording when missing: not fatal.
            log.warning("recording %s: could not save its summary: %s", self.path.name, exc)

    async def _finish(self) -> None:
        if self._pending:
            log.error("recording %s closed with %d frame(s) not written (disk failing)", self.path.name, len(self._pending))
        if self._file is not None:
            try:
                if self.options.fsync != "none":
                    await self._fsync()
            except OSError as exc:
                log.error("recording %s: fsync on close failed: %s", self.path.name, exc)
            await self._close_file()
            if self.summary is not None:
                self.summary.ended = self._end_session
                await self._save_summary()
        async with self._progress:
            self._progress.notify_all()
