"""Graceful drain on SIGTERM: clients sent away to reconnect, recordings complete, exit 0 in time."""

from __future__ import annotations

import asyncio
import json
import signal
import threading
import time

import pytest
import socketio

from racedash.server import _stop_within
from tests.helpers import sample_setup, sample_telemetry_payloads
from tests.procs import ServerProcess, close_sync_client


class Tracked:
    """A sync python-socketio client (the monitor's kind) that remembers why it was disconnected."""

    def __init__(self) -> None:
        self.client = socketio.Client(reconnection=True, reconnection_delay=5)
        self.reasons: list[str] = []
        self.disconnected = threading.Event()

        @self.client.on("disconnect")
        def on_disconnect(reason=None):
            self.reasons.append(reason)
            self.disconnected.set()


@pytest.mark.slow
def test_sigterm_drains_publisher_and_viewer(tmp_path):
    recordings = tmp_path / "recordings"
    # A long flush window: the frames are still queued in memory when SIGTERM arrives.
    server = ServerProcess("--recording-flush-seconds", "5", "--drain-seconds", "8", recordings_dir=recordings).start()
    monitor, viewer = Tracked(), Tracked()
    acked: list[int] = []
    stop_publishing = threading.Event()
    try:
        monitor.client.connect(server.url, transports=["websocket"])
        viewer.client.connect(server.url, transports=["websocket"])
        session_id = monitor.client.call("request_session_id", {}, timeout=5)["session_id"]
        assert viewer.client.call("join_session", {"session_id": session_id}, timeout=5)["ok"]
        ack = monitor.client.call(
            "setup_data", {"session_id": session_id, "timestamp": "2025-11-22T17:16:45Z", "setup": sample_setup()}, timeout=5
        )
        acked.append(ack["seq"])
        samples = sample_telemetry_payloads()

        def publish() -> None:
            i = 0
            while not stop_publishing.is_set() and monitor.client.connected:
                try:
                    ack = monitor.client.call(
                        "telemetry_update", {**samples[i % len(samples)], "session_id": session_id}, timeout=2
                    )
                except (socketio.exceptions.TimeoutError, socketio.exceptions.BadNamespaceError):
                    return
                if ack and ack.get("ok"):
                    acked.append(ack["seq"])
                i += 1
                time.sleep(0.01)

        publisher = threading.Thread(target=publish, daemon=True)
        publisher.start()
        while len(acked) < 30:
            time.sleep(0.01)
        started = time.monotonic()
        code = server.stop(signal.SIGTERM, timeout=15)
        elapsed = time.monotonic() - started
        stop_publishing.set()
        publisher.join(5)
        assert monitor.disconnected.wait(10) and viewer.disconnected.wait(10), (monitor.reasons, viewer.reasons, server.output)
    finally:
        stop_publishing.set()
        close_sync_client(monitor.client)
        close_sync_client(viewer.client)
        server.kill9()

    output = server.output
    assert code == 0, output
    assert elapsed < 8, output
    assert "Traceback" not in output and "disconnected 2 client(s)" in output, output
    # Sent away at the transport, not with Socket.IO's "server disconnect": both would reconnect.
    assert socketio.Client.reason.SERVER_DISCONNECT not in monitor.reasons + viewer.reasons
    lines = (recordings / f"{session_id}.jsonl").read_text().splitlines()
    recorded = [json.loads(line)["seq"] for line in lines[1:]]
    assert set(acked) <= set(recorded), f"acked but not on disk: {sorted(set(acked) - set(recorded))[:10]}"
    assert len(acked) >= 30


class SlowServer:
    async def stop(self) -> None:
        await asyncio.sleep(60)


async def test_drain_is_bounded():
    started = time.monotonic()
    assert await _stop_within(SlowServer(), 0.2) is False
    assert time.monotonic() - started < 2


def test_drain_bound_is_in_serve_help():
    from racedash.cli import build_parser

    help_text = build_parser()._subparsers._group_actions[0].choices["serve"].format_help()
    assert "--drain-seconds" in help_text and "SIGTERM" in help_text


async def test_a_stuck_step_of_the_stop_does_not_keep_the_recordings_from_closing(settings, caplog):
    """A shutdown step that never returns is left after its deadline; the recordings still close cleanly."""
    from racedash.recording.summary import read_sidecar
    from racedash.server import RacedashServer
    from tests.helpers import Client

    server = await RacedashServer(settings).start()
    monitor = await Client(server.url, reconnection=False).connect()
    try:
        session_id = (await monitor.call("request_session_id"))["session_id"]
        payload = {"session_id": session_id, "timestamp": "2025-11-22T17:16:45Z", "setup": sample_setup()}
        assert (await monitor.call("setup_data", payload))["ok"]
        assert (await monitor.call("telemetry_update", {**sample_telemetry_payloads()[0], "session_id": session_id}))["ok"]

        async def never_returns() -> None:
            await asyncio.Event().wait()

        server.app.sio.shutdown = never_returns  # e.g. a client's connection that never finishes closing
        server.step_seconds = 0.3
        caplog.set_level("ERROR", logger="racedash.deadline")
        started = time.monotonic()
        await server.stop()
        assert time.monotonic() - started < 5
    finally:
        await monitor.sio.disconnect()
    assert "shutdown: socket.io did not finish within 0.3 s" in caplog.text
    summary = read_sidecar(settings.recordings_dir / f"{session_id}.jsonl")
    assert summary is not None and summary.closed_cleanly and summary.last_seq == 2
