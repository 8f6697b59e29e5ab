"""GET /metrics: Prometheus counters through a real server, scraped and parsed as Prometheus does."""

from __future__ import annotations

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families
from tornado.httpclient import AsyncHTTPClient

from racedash.metrics import Metrics
from tests.helpers import Client, sample_setup, sample_telemetry_payloads


async def scrape(server, headers: dict | None = None):
    client = AsyncHTTPClient()
    try:
        return await client.fetch(server.url + "/metrics", headers=headers or {}, raise_error=False)
    finally:
        client.close()


def samples(body: bytes) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} of an exposition."""
    found = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def bearer(server) -> dict:
    return {"Authorization": f"Bearer {server.app.access.token}"}


async def test_metrics_count_what_was_published(server, clients):
    monitor = Client(server.url)
    viewer = Client(server.url)
    clients.extend([monitor, viewer])
    await monitor.connect()
    await viewer.connect()
    session_id = (await monitor.call("request_session_id", {}))["session_id"]
    await viewer.call("join_session", {"session_id": session_id})
    setup_ack = await monitor.call(
        "setup_data", {"session_id": session_id, "timestamp": "2025-11-22T17:16:45Z", "setup": sample_setup()}
    )
    assert setup_ack["ok"]
    telemetry = sample_telemetry_payloads()[:7]
    for payload in telemetry:
        ack = await monitor.call("telemetry_update", {**payload, "session_id": session_id})
        assert ack["ok"], ack
    refused = [await monitor.call("telemetry_update", {"session_id": session_id, "telemetry": "x"}) for _ in range(3)]
    assert all(not ack["ok"] for ack in refused)
    code = refused[0]["error"]
    await viewer.wait_for("telemetry_update", len(telemetry))

    response = await scrape(server, bearer(server))
    assert response.code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    found = samples(response.body)
    assert found[("racedash_frames_in_total", (("event", "setup"),))] == 1
    assert found[("racedash_frames_in_total", (("event", "telemetry"),))] == len(telemetry)
    assert found[("racedash_refusals_total", (("code", code),))] == 3
    assert found[("racedash_live_sessions", ())] == 1
    assert found[("racedash_viewers", ())] == 1
    assert found[("racedash_replays", ())] == 0
    assert found[("racedash_problems", ())] == 0
    assert found[("racedash_recordings_open", ())] == 1
    assert ("racedash_recording_backlog_bytes", ()) in found
    delivered = sum(v for (name, _), v in found.items() if name == "racedash_fanout_deliveries_total")
    assert delivered >= len(telemetry) + 1  # each frame reached the one viewer
    # At least the frames' own bytes went out (each websocket frame holds its JSON).
    assert found[("racedash_fanout_bytes_out_total", ())] >= sum(len(orjson.dumps(p["telemetry"])) for p in telemetry)
    assert ("racedash_recording_fsyncs_total", ()) in found and ("racedash_recording_fsync_seconds_total", ()) in found
    assert found[("racedash_replay_seeks_total", ())] == 0
    assert ("racedash_event_loop_lag_seconds", ()) in found
    assert found[("process_resident_memory_bytes", ())] > 0 and found[("process_open_fds", ())] > 0


async def test_metrics_need_the_team_token_or_cookie(server):
    response = await scrape(server)
    assert response.code == 401 and b"racedash_" not in response.body
    wrong = await scrape(server, {"Authorization": "Bearer not-the-token"})
    assert wrong.code == 401
    # The team cookie a browser gets from /login works too.
    client = AsyncHTTPClient()
    try:
        login = await client.fetch(
            f"{server.url}/login?token={server.app.access.token}", follow_redirects=False, raise_error=False
        )
        cookie = login.headers["Set-Cookie"].split(";", 1)[0]
    finally:
        client.close()
    assert (await scrape(server, {"Cookie": cookie})).code == 200


@pytest.mark.parametrize("settings_changes", [{"metrics_public": True}])
async def test_metrics_public_opens_the_endpoint(server_with):
    response = await scrape(server_with)
    assert response.code == 200 and b"racedash_live_sessions" in response.body


def test_each_app_has_its_own_registry():
    first, second = Metrics(), Metrics()
    first.on_frame("telemetry")
    assert b'racedash_frames_in_total{event="telemetry"} 1.0' in first.exposition()
    assert b"racedash_frames_in_total{" not in second.exposition()


async def test_event_loop_lag_is_sampled():
    import asyncio

    metrics = Metrics(process=False)
    task = asyncio.create_task(metrics.watch_event_loop(interval=0.01))
    try:
        for _ in range(100):
            await asyncio.sleep(0.01)
            if metrics.loop_lag_histogram._sum.get() > 0 or b"_count 0.0" not in metrics.exposition():
                break
    finally:
        task.cancel()
    assert b"racedash_event_loop_lag_observed_seconds_count 0.0" not in metrics.exposition()


@pytest.mark.parametrize("settings_changes", [{"recording_fsync": "always", "recording_flush_seconds": 0.01}])
async def test_fsyncs_and_replay_seeks_are_counted(server_with, clients):
    from tests import replay_helpers

    server = server_with
    monitor = await replay_helpers.connect(server, clients, team=False)
    session_id = (await monitor.call("request_session_id", {}))["session_id"]
    for payload in sample_telemetry_payloads()[:3]:
        assert (await monitor.call("telemetry_update", {**payload, "session_id": session_id}))["ok"]
    assert await server.app.recorder.flush(session_id)
    team = await replay_helpers.connect(server, clients, team=True)
    replay_id = (await team.call("replay_start", {"recording_id": session_id, "paused": True}))["replay_id"]
    ack = await team.call("replay_control", {"replay_id": replay_id, "action": "seek", "time": 0.01})
    assert ack["ok"]
    found = samples((await scrape(server, bearer(server))).body)
    assert found[("racedash_recording_fsyncs_total", ())] >= 1
    assert found[("racedash_recording_fsync_seconds_total", ())] > 0
    assert found[("racedash_replay_seeks_total", ())] == 1 and found[("racedash_replay_seek_seconds_total", ())] > 0
