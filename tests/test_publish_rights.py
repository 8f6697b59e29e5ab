"""Publisher rights and per-connection limits through a real server."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from tests.helpers import Client, sample_setup, sample_telemetry_payloads


def telemetry(session_id: str, lap: int = 1, **extra) -> dict:
    frame = dict(sample_telemetry_payloads()[0]["telemetry"], lap=lap)
    return {"session_id": session_id, "telemetry": frame, **extra}


async def connect(server, clients, **kwargs) -> Client:
    client = Client(server.url)
    clients.append(client)
    return await client.connect(**kwargs)


async def test_viewer_can_never_publish_in_compat_mode(server, clients):
    monitor = await connect(server, clients)
    session_id = (await monitor.call("request_session_id", {}))["session_id"]
    viewer = await connect(server, clients)
    await viewer.call("join_session", {"session_id": session_id})
    await monitor.sio.disconnect()  # even with the publisher gone
    ack = await viewer.call("telemetry_update", telemetry(session_id))
    assert ack["ok"] is False and ack["error"] == "not_publisher"


async def test_second_connection_cannot_hijack_a_live_publisher(server, clients):
    monitor = await connect(server, clients)
    session_id = (await monitor.call("request_session_id", {}))["session_id"]
    intruder = await connect(server, clients)
    ack = await intruder.call("telemetry_update", telemetry(session_id))
    assert ack["error"] == "not_publisher"
    assert (await monitor.call("telemetry_update", telemetry(session_id)))["ok"]


async def test_publisher_gone_new_connection_takes_over_in_compat_mode(server, clients):
    """What the real monitor does after a network drop: a new connection, same id, no token."""
    first = await connect(server, clients)
    session_id = (await first.call("request_session_id", {}))["session_id"]
    await first.sio.disconnect()
    second = await connect(server, clients)
    for _ in range(50):
        ack = await second.call("telemetry_update", telemetry(session_id))
        if ack["ok"]:
            break
        await asyncio.sleep(0.02)  # the server may not have seen the disconnect yet
    assert ack["ok"] is True


async def test_publish_token_reclaims_the_session_in_auth_and_payload(server, clients):
    monitor = await connect(server, clients)
    assigned = await monitor.call("request_session_id", {})
    session_id, token = assigned["session_id"], assigned["publish_token"]
    by_auth = await connect(server, clients, auth={"publish_token": token})
    assert (await by_auth.call("telemetry_update", telemetry(session_id)))["ok"]
    other = await connect(server, clients)
    assert (await other.call("telemetry_update", telemetry(session_id, publish_token=token)))["ok"]
    wrong = await connect(server, clients)
    ack = await wrong.call("telemetry_update", telemetry(session_id, publish_token="forged"))
    assert ack["error"] == "not_publisher"


async def test_publish_token_is_never_broadcast_or_kept(server, clients):
    monitor = await connect(server, clients)
    assigned = await monitor.call("request_session_id", {})
    session_id, token = assigned["session_id"], assigned["publish_token"]
    viewer = await connect(server, clients)
    await viewer.call("join_session", {"session_id": session_id})
    await monitor.call("telemetry_update", telemetry(session_id, publish_token=token))
    update = (await viewer.wait_for("telemetry_update"))[0]
    assert token not in repr(update)
    assert "publish_token" not in server.app.registry.get(session_id).telemetry.payload


@pytest.mark.parametrize("settings_changes", [{"publish_auth": "token"}])
async def test_strict_mode_needs_the_token_for_every_other_connection(server_with, clients, settings_changes):
    server = server_with
    monitor = await connect(server, clients)
    assigned = await monitor.call("request_session_id", {})
    session_id = assigned["session_id"]
    # The connection that created the session holds the right.
    assert (await monitor.call("telemetry_update", telemetry(session_id)))["ok"]
    await monitor.sio.disconnect()
    returning = await connect(server, clients)
    ack = await returning.call("telemetry_update", telemetry(session_id))
    assert ack["error"] == "not_publisher"
    fixed = str(uuid.uuid4())
    assert (await returning.call("telemetry_update", telemetry(fixed)))["error"] == "not_publisher"
    ack = await returning.call("telemetry_update", telemetry(session_id, publish_token=assigned["publish_token"]))
    assert ack["ok"]


@pytest.mark.parametrize("settings_changes", [{"events_per_second": 5.0, "event_burst": 5.0}])
async def test_event_rate_limit_refuses_the_excess_only(server_with, clients, settings_changes):
    server = server_with
    flooder = await connect(server, clients)
    session_id = (await flooder.call("request_session_id", {}))["session_id"]
    acks = [await flooder.call("telemetry_update", telemetry(session_id, lap=i)) for i in range(12)]
    refused = [a for a in acks if not a["ok"]]
    assert refused and all(a["error"] == "limit_exceeded" for a in refused)
    calm = await connect(server, clients)
    other_id = (await calm.call("request_session_id", {}))["session_id"]
    assert (await calm.call("telemetry_update", telemetry(other_id)))["ok"]


@pytest.mark.parametrize("settings_changes", [{"sessions_per_connection": 2, "viewers_per_session": 1}])
async def test_session_and_viewer_limits(server_with, clients, settings_changes):
    server = server_with
    monitor = await connect(server, clients)
    first = (await monitor.call("request_session_id", {}))["session_id"]
    await monitor.call("request_session_id", {})
    ack = await monitor.call("request_session_id", {})
    assert ack["error"] == "limit_exceeded"
    assert (await monitor.call("telemetry_update", telemetry(str(uuid.uuid4()))))["error"] == "limit_exceeded"
    viewer = await connect(server, clients)
    assert (await viewer.call("join_session", {"session_id": first}))["ok"]
    assert (await viewer.call("join_session", {"session_id": first}))["ok"]  # re-joining is no new viewer
    crowd = await connect(server, clients)
    assert (await crowd.call("join_session", {"session_id": first}))["error"] == "limit_exceeded"


@pytest.mark.parametrize("settings_changes", [{"max_setup_bytes": 10_000}])
async def test_setup_size_limit(server_with, clients, settings_changes):
    server = server_with
    monitor = await connect(server, clients)
    session_id = (await monitor.call("request_session_id", {}))["session_id"]
    ack = await monitor.call(
        "setup_data", {"session_id": session_id, "timestamp": "2025-11-22T17:16:45Z", "setup": sample_setup()}
    )
    assert ack["error"] == "limit_exceeded"
    small = {"session_id": session_id, "timestamp": "2025-11-22T17:16:45Z", "setup": {"carSetup": {}}}
    assert (await monitor.call("setup_data", small))["ok"]


async def test_cross_origin_connection_is_refused_by_default(server, clients):
    import socketio

    foreign = Client(server.url)
    clients.append(foreign)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await foreign.connect(headers={"Origin": "http://evil.example"})
    same = await connect(server, clients, headers={"Origin": server.url})
    assert same.sio.connected


@pytest.mark.parametrize("settings_changes", [{"cors_origins": "https://pit.example, https://team.example"}])
async def test_configured_origins_may_connect(server_with, clients, settings_changes):
    allowed = await connect(server_with, clients, headers={"Origin": "https://team.example"})
    assert allowed.sio.connected
