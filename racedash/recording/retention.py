"""Retention: delete old recordings by age and total size. Off unless configured.

Candidates are never live (a session held by this process, or a recording
being written or closed). Ended recordings go first, oldest (by last event)
first; then recordings that were interrupted (server stopped or crashed) and
never resumed, oldest first.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Callable

from racedash.recording.store import RecordingStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetentionPolicy:
    max_age_seconds: float = 0.0  # 0: no age limit
    max_total_bytes: int = 0  # 0: no size limit

    @property
    def enabled(self) -> bool:
        return self.max_age_seconds > 0 or self.max_total_bytes > 0


def plan(recordings: list[dict[str, Any]], policy: RetentionPolicy, now: float) -> list[str]:
    """The session ids to delete, in deletion order (pure: metadata in, decision out)."""
    candidates = sorted(
        (r for r in recordings if not r["live"]),
        key=lambda r: (r["state"] != "ended", r["last_time"] or r["created"]),
    )
    doomed: list[str] = []
    if policy.max_age_seconds > 0:
        cutoff = now - policy.max_age_seconds
        doomed = [r["session_id"] for r in candidates if (r["last_time"] or r["created"]) < cutoff]
    if policy.max_total_bytes > 0:
        total = sum(r["size"] for r in recordings if r["session_id"] not in doomed)
        for r in candidates:
            if total <= policy.max_total_bytes:
                break
            if r["session_id"] not in doomed:
                doomed.append(r["session_id"])
                total -= r["size"]
    return doomed


class Retention:
    def __init__(
        self,
        store: RecordingStore,
        policy: RetentionPolicy,
        *,
        is_live: Callable[[str], bool],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.policy = policy
        self.is_live = is_live
        self.clock = clock

    async def run_once(self) -> list[str]:
        """Apply the policy now; returns the ids of the deleted recordings."""
        if not self.policy.enabled:
            return []
        recordings = await self.store.list()
        for item in recordings:
            # The store only knows the recorder's writers; the session registry
            # also knows sessions being resumed or watched: both are live.
            item["live"] = item["live"] or self.is_live(item["session_id"])
        deleted = []
        for session_id in plan(recordings, self.policy, self.clock()):
            if self.is_live(session_id):  # it may have been resumed since the listing
                continue
            try:
                freed = self.store.delete(session_id)
            except OSError as exc:
                log.error("retention could not delete recording %s: %s", session_id[:8], exc)
                continue
            deleted.append(session_id)
            log.info("retention deleted recording %s (%d bytes)", session_id[:8], freed)
        return deleted
