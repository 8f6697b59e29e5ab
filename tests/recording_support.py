"""Helpers for the recording tests: payloads, writing and reading recordings, HTTP calls."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from racedash.recording.format import Header, decode_event, encode_event, encode_header
from tests.helpers import sample_setup, sample_telemetry_payloads


def telemetry(session_id: str, lap: int = 1, **fields: Any) -> dict:
    frame = dict(sample_telemetry_payloads()[0]["telemetry"])
    frame.update(lap=lap, **fields)
    return {"session_id": session_id, "telemetry": frame}


def setup_payload(session_id: str, **setup_changes: Any) -> dict:
    setup = sample_setup()
    setup.update(setup_changes)
    return {"session_id": session_id, "timestamp": "2025-11-22T17:16:45.160430Z", "setup": setup}


def read_lines(path: Path) -> list[bytes]:
    with open(path, "rb") as f:
        return f.read().splitlines(keepends=True)


def recorded_events(path: Path) -> list:
    """Every decodable event of a recording (what every reader sees)."""
    if not path.exists():
        return []
    return [e for e in (decode_event(line) for line in read_lines(path)[1:]) if e is not None]


def recorded_seqs(path: Path) -> list[int]:
    return [e.seq for e in recorded_events(path)]


def write_recording(path: Path, session_id: str, frames: int, *, t0: float = 1_700_000_000.0, step: float = 0.5,
                    setup_every: int = 0, torn_tail: bytes = b"", lap_every: int = 100) -> None:
    """A recording made with the format module (as the writer makes them), for listing/restore tests."""
    base = sample_telemetry_payloads()[0]["telemetry"]
    with open(path, "wb") as f:
        f.write(encode_header(Header(session_id=session_id, created=t0, racedash_version="test")))
        f.write(encode_event(t0, 1, "setup", setup_payload(session_id)))
        for seq in range(2, frames + 2):
            if setup_every and seq % setup_every == 0:
                f.write(encode_event(t0 + seq * step, seq, "setup", setup_payload(session_id, marker=seq)))
                continue
            frame = dict(base, lap=seq // lap_every + 1)
            f.write(encode_event(t0 + seq * step, seq, "telemetry", {"session_id": session_id, "telemetry": frame}))
        f.write(torn_tail)


def http_get(url: str, timeout: float = 5.0, token: str | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


async def fetch(url: str, token: str | None = None) -> tuple[int, dict[str, str], bytes]:
    return await asyncio.to_thread(http_get, url, 5.0, token)


async def api(srv, path: str) -> tuple[int, dict[str, str], bytes]:
    """GET a recordings API path of an in-process server with its team token (the API is team-only)."""
    return await fetch(srv.url + path, token=srv.app.access.token)
