"""The recorder: the sessions' FrameSink and Restorer, one writer per live recording.

Its writers share one :class:`CommitBatcher`: their commits take one thread
hop per flush window between them, however many recordings are live.

``append`` runs inside a socket handler before its first ``await``: it
encodes the frame and queues the line, nothing more, so it neither blocks nor
reorders. Disk problems are reported into ``problems`` (the mapping shown on
/healthz and the status page) under a key per recording, and cleared when the
recording is written again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Callable, MutableMapping

import orjson

from racedash.ids import parse_session_id
from racedash.recording.files import make_directory
from racedash.recording.batcher import CommitBatcher
from racedash.recording.format import encode_event, encode_event_json
from racedash.recording.store import RecordingStore
from racedash.recording.summary import Summary, facts_of
from racedash.recording.writer import RecordingWriter, WriterOptions
from racedash.sessions import Frame, RestoredState

log = logging.getLogger(__name__)

DIRECTORY_PROBLEM = "recordings:directory"
STALL_PROBLEM = "recordings:stalled"
STALL_SECONDS = 10.0  # a write (with its fsync) that has not returned by then: the disk is frozen


class Recorder:
    def __init__(
        self,
        store: RecordingStore,
        options: WriterOptions,
        *,
        ring_size: int,
        problems: MutableMapping[str, str] | None = None,
        team_of: Callable[[str], str | None] = lambda session_id: None,
    ) -> None:
        self.store = store
        # The team a session belongs to (racedash.teams), named in its recording's header.
        self.team_of = team_of
        self.options = options
        self.problems: MutableMapping[str, str] = {} if problems is None else problems
        self.started = False  # set once watching: a missing directory is then news
        self.closed_fsyncs = 0
        self.closed_fsync_seconds = 0.0
        self.ring_size = ring_size
        self._writers: dict[str, RecordingWriter] = {}
        # Every writer's commits share one thread hop per flush window.
        self.batcher = CommitBatcher(options.flush_seconds)
        self._closing: dict[str, asyncio.Task[None]] = {}
        self.unencodable = 0

    @property
    def directory(self) -> Path:
        return self.store.directory

    async def watch_directory(self, interval: float) -> None:
        """Notice a deleted recordings directory even while nothing is being written, and a frozen disk."""
        self.started = True
        while True:
            await asyncio.sleep(interval)
            self.check_stalls(time.monotonic())
            self.close_idle_files(time.monotonic())
            # Bounded: on a frozen disk even this may hang; the stall is reported meanwhile.
            try:
                await asyncio.wait_for(asyncio.to_thread(self.check_directory), interval * 5)
            except asyncio.TimeoutError:
                pass

    def backlog(self) -> tuple[int, int]:
        """(open recordings, bytes queued for the disk)."""
        writers = list(self._writers.values())
        return len(writers), sum(w.pending_bytes for w in writers)

    def fsync_totals(self) -> tuple[int, float]:
        """(fsyncs, seconds spent in them) of the recordings open now and those closed before."""
        writers = list(self._writers.values())
        return (self.closed_fsyncs + sum(w.fsyncs for w in writers),
                self.closed_fsync_seconds + sum(w.fsync_seconds for w in writers))

    def close_idle_files(self, now: float) -> None:
        """Recordings with no frame for ``idle_close_seconds`` give their descriptor back."""
        idle = self.options.idle_close_seconds
        if idle <= 0:
            return
        for writer in self._writers.values():
            if writer.is_file_open and now - writer.last_activity >= idle:
                writer.close_if_idle()

    def check_stalls(self, now: float, stall_seconds: float = STALL_SECONDS) -> None:
        """Report writes that have not returned for ``stall_seconds`` (a frozen or hung disk)."""
        waiting = [now - w.commit_started for w in self._writers.values() if w.commit_started is not None]
        stalled = [age for age in waiting if age >= stall_seconds]
        if stalled:
            if STALL_PROBLEM not in self.problems:
                log.error("the recordings disk has not completed a write for %.0f s (%d recording(s) waiting)",
                          max(stalled), len(stalled))
            self.problems[STALL_PROBLEM] = (
                f"the recordings disk has not completed a write for {max(stalled):.0f} s ({len(stalled)} recording(s) "
                "waiting); live broadcasting continues"
            )
        elif STALL_PROBLEM in self.problems:
            log.info("the recordings disk answers again")
            del self.problems[STALL_PROBLEM]

    def check_directory(self) -> None:
        """Create the recordings dir (at start-up, and again if it disappears); a failure is reported, not fatal."""
        existed = self.directory.is_dir()
        try:
            make_directory(self.directory)
            if not existed and self.started:
                log.error("the recordings directory %s disappeared; recreated for the recordings that go on", self.directory)
        except OSError as exc:
            log.error("recordings directory %s cannot be created: %s", self.directory, exc)
            self.problems[DIRECTORY_PROBLEM] = f"the recordings directory cannot be created ({exc.strerror or exc})"

    # -- FrameSink ------------------------------------------------------------------
    def append(self, session_id: str, frame: Frame) -> None:
        try:
            if frame.data_json is not None:
                line = encode_event_json(frame.received, frame.seq, frame.kind, frame.data_json, frame.tail_at)
            else:
                line = encode_event(frame.received, frame.seq, frame.kind, frame.payload)
        except (orjson.JSONEncodeError, TypeError) as exc:
            # e.g. an integer beyond 64 bits: broadcast it, but it cannot be recorded.
            self.unencodable += 1
            log.error("frame %d of session %s cannot be recorded: %s", frame.seq, session_id[:8], exc)
            return
        self._writer(session_id).append(line, facts_of(frame.kind, frame.seq, frame.received, frame.payload))

    def _writer(self, session_id: str) -> RecordingWriter:
        writer = self._writers.get(session_id)
        if writer is None:
            writer = RecordingWriter(
                self.store.path_for(session_id),
                session_id,
                self.options,
                on_problem=lambda message, key=f"recording:{session_id}": self._report(key, message),
                after=self._closing.get(session_id),
                batcher=self.batcher,
                team=self.team_of(session_id),
            )
            self._writers[session_id] = writer
        return writer

    def _report(self, key: str, message: str | None) -> None:
        if message is None:
            self.problems.pop(key, None)
            self.problems.pop(DIRECTORY_PROBLEM, None)
        else:
            self.problems[key] = message

    # -- Restorer -------------------------------------------------------------------
    async def restore(self, session_id: str) -> RestoredState | None:
        """Resume the recording of a session this process does not hold (after a restart or an idle end)."""
        session_id = parse_session_id(session_id)
        await self.wait_closed(session_id)
        writer = self._writers.get(session_id)
        if writer is not None:
            # Frames arrived for it in this process already; let them land first.
            await writer.flush()
        return await self.store.restore_state(session_id, self.ring_size)

    # -- reading help -------------------------------------------------------------------
    def is_live(self, session_id: str) -> bool:
        return session_id in self._writers or session_id in self._closing

    def live_summaries(self) -> dict[str, Summary | None]:
        """Copies of the live recordings' summaries (only what is on disk); None for a recording
        whose writer has not opened its file yet (a session just resumed): live all the same."""
        return {sid: w.summary.copy() if w.summary is not None else None for sid, w in self._writers.items()}

    async def flush(self, session_id: str, timeout: float = 2.0) -> bool:
        writer = self._writers.get(session_id)
        return True if writer is None else await writer.flush(timeout)

    async def wait_closed(self, session_id: str) -> None:
        task = self._closing.get(session_id)
        if task is not None:
            await asyncio.shield(task)

    # -- closing ------------------------------------------------------------------------
    async def close_session(self, session_id: str, *, ended: bool = True) -> None:
        """Close one recording (the session ended): flush, fsync, summary, memory freed."""
        writer = self._writers.pop(session_id, None)
        if writer is None:
            return
        task = asyncio.create_task(writer.close(session_ended=ended), name=f"close-recording-{session_id[:8]}")
        self._closing[session_id] = task
        task.add_done_callback(lambda done: self._closed(session_id, done, writer))
        await asyncio.shield(task)

    def _closed(self, session_id: str, task: asyncio.Task[None], writer: RecordingWriter) -> None:
        self.closed_fsyncs += writer.fsyncs
        self.closed_fsync_seconds += writer.fsync_seconds
        if self._closing.get(session_id) is task:
            del self._closing[session_id]
        if session_id not in self._writers:
            self.problems.pop(f"recording:{session_id}", None)

    async def close(self) -> None:
        """Close every recording (server shutdown: the sessions may resume after a restart)."""
        await asyncio.gather(*(self.close_session(sid, ended=False) for sid in list(self._writers)))
        if self._closing:
            await asyncio.gather(*self._closing.values(), return_exceptions=True)
