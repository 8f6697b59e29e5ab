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
from pathlib import Path
from typing import MutableMapping

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


class Recorder:
    def __init__(
        self,
        store: RecordingStore,
        options: WriterOptions,
        *,
        ring_size: int,
        problems: MutableMapping[str, str] | None = None,
    ) -> None:
        self.store = store
        self.options = options
        self.problems: MutableMapping[str, str] = {} if problems is None else problems
        self.started = False  # set once watching: a missing directory is then news
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
        """Notice a deleted recordings directory even while nothing is being written."""
        self.started = True
        while True:
            await asyncio.sleep(interval)
            await asyncio.to_thread(self.check_directory)

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
                line = encode_event_json(frame.received, frame.seq, frame.kind, frame.data_json)
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

    def live_summaries(self) -> dict[str, Summary]:
        """Copies of the live recordings' summaries (only what is on disk)."""
        return {sid: w.summary.copy() for sid, w in self._writers.items() if w.summary is not None}

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
        task.add_done_callback(lambda done: self._closed(session_id, done))
        await asyncio.shield(task)

    def _closed(self, session_id: str, task: asyncio.Task[None]) -> None:
        if self._closing.get(session_id) is task:
            del self._closing[session_id]
        if session_id not in self._writers:
            self.problems.pop(f"recording:{session_id}", None)

    async def close(self) -> None:
        """Close every recording (server shutdown: the sessions may resume after a restart)."""
        await asyncio.gather(*(self.close_session(sid, ended=False) for sid in list(self._writers)))
        if self._closing:
            await asyncio.gather(*self._closing.values(), return_exceptions=True)
