"""HTTP routes through a real server."""

from __future__ import annotations

import uuid

import orjson
import pytest
from tornado.httpclient import AsyncHTTPClient

from tests.helpers import Client


async def fetch(server, path: str, **kwargs):
    client = AsyncHTTPClient()
    try:
        return await client.fetch(server.url + path, raise_error=False, **kwargs)
    finally:
        client.close()


async def test_status_page_counts_but_never_lists_ids(server, clients):
    monitor = Client(server.url)
    clients.append(monitor)
    await monitor.connect()
    ack = await monitor.call("request_session_id", {})
    viewer = Client(server.url)
    clients.append(viewer)
    await viewer.connect()
    await viewer.call("join_session", {"session_id": ack["session_id"]})

    response = await fetch(server, "/")
    body = response.body.decode()
    assert response.code == 200
    assert ack["session_id"] not in body and ack["session_id"][:8] not in body
    assert 'data-field="live_sessions">1<' in body
    assert 'data-field="viewers">1<' in body
    assert "0.1.0" in body


async def test_healthz_is_json(server):
    response = await fetch(server, "/healthz")
    assert response.code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    health = orjson.loads(response.body)
    assert health["status"] == "ok" and health["live_sessions"] == 0 and health["uptime_seconds"] >= 0
    assert health["live"] is True and health["ready"] is True


async def test_liveness_and_readiness_for_load_balancers(server):
    live = await fetch(server, "/healthz/live")
    assert live.code == 200 and orjson.loads(live.body) == {"live": True}
    ready = await fetch(server, "/healthz/ready")
    assert ready.code == 200 and orjson.loads(ready.body) == {"ready": True, "problems": []}

    server.app.status.problems["recordings:test"] = "the disk is full"
    ready = await fetch(server, "/healthz/ready")
    assert ready.code == 503 and orjson.loads(ready.body) == {"ready": False, "problems": ["the disk is full"]}
    assert orjson.loads((await fetch(server, "/healthz")).body)["ready"] is False
    assert (await fetch(server, "/healthz/live")).code == 200  # not ready, but alive: no restart
    del server.app.status.problems["recordings:test"]

    # The recordings directory replaced by a file: nothing could be recorded.
    recordings = server.settings.recordings_dir
    recordings.rmdir()
    recordings.write_text("")
    try:
        ready = await fetch(server, "/healthz/ready")
        assert ready.code == 503 and not orjson.loads(ready.body)["ready"]
    finally:
        recordings.unlink()
        recordings.mkdir()

    server.app.status.draining = True
    ready = await fetch(server, "/healthz/ready")
    assert ready.code == 503 and orjson.loads(ready.body)["problems"] == ["shutting down"]


async def test_dashboard_page_for_a_well_formed_id(server):
    session_id = str(uuid.uuid4())
    response = await fetch(server, f"/dashboard/{session_id}")
    body = response.body.decode()
    assert response.code == 200
    assert f'data-session-id="{session_id}"' in body
    assert "/static/vendor/socket.io-client/socket.io.min.js" in body
    assert "http://" not in body and "https://" not in body  # nothing loaded from the internet
    assert response.headers["Referrer-Policy"] == "no-referrer"


@pytest.mark.parametrize("path", ["/dashboard/not-a-uuid", "/dashboard/..%2F..%2Fetc%2Fpasswd", "/nope", "/dashboard/"])
async def test_unknown_routes_and_malformed_ids_get_a_404_page(server, path):
    response = await fetch(server, path)
    assert response.code == 404
    assert b"<html" in response.body and b"404" in response.body


async def test_unknown_api_route_gets_json_404(server):
    response = await fetch(server, "/api/nothing-here")
    assert response.code == 404
    assert orjson.loads(response.body)["ok"] is False


async def test_vendored_client_is_served(server):
    response = await fetch(server, "/static/vendor/socket.io-client/socket.io.min.js")
    assert response.code == 200 and b"Socket.IO v4.8.1" in response.body


@pytest.mark.parametrize(
    "path",
    [
        "/static/../setup.py",
        "/static/..%2F..%2Fsetup.py",
        "/static/%2e%2e/%2e%2e/setup.py",
        "/static//etc/passwd",
        "/dashboard/..%2F..%2F..%2Fetc%2Fpasswd",
    ],
)
async def test_traversal_urls_never_serve_files_outside_static(server, path):
    response = await fetch(server, path)
    assert response.code in (400, 403, 404)
    assert b"install_requires" not in response.body and b"root:" not in response.body


async def test_status_page_leads_to_the_recordings(server):
    anonymous = (await fetch(server, "/")).body.decode()
    assert 'href="/login?next=/recordings"' in anonymous and "team login" in anonymous
    team = await fetch(server, "/", headers={"Authorization": f"Bearer {server.app.access.token}"})
    assert 'href="/recordings"' in team.body.decode()


async def test_no_access_log_at_the_default_level(server, caplog):
    caplog.set_level("DEBUG", logger="tornado.access")
    for path in ("/", "/healthz", "/static/css/app.css", "/nope"):
        await fetch(server, path)
    assert [r for r in caplog.records if r.name == "tornado.access"] == []


@pytest.mark.parametrize("settings_changes", [{"access_log": True}])
async def test_access_log_on_request_keeps_secrets_out(server_with, caplog):
    caplog.set_level("INFO", logger="tornado.access")
    session_id = str(uuid.uuid4())
    token = server_with.app.access.token
    await fetch(server_with, f"/dashboard/{session_id}?v=1")
    await fetch(server_with, f"/login?token={token}", follow_redirects=False)
    await fetch(server_with, "/login?token=wrong-guess")
    lines = [r.getMessage() for r in caplog.records if r.name == "tornado.access"]
    assert len(lines) == 3
    assert f"/dashboard/{session_id[:8]}…" in lines[0]
    text = "\n".join(lines)
    assert session_id not in text and token not in text and "wrong-guess" not in text and "?" not in text


@pytest.mark.parametrize("path", ["/", "/login", "/nope", "/healthz", f"/dashboard/{uuid.uuid4()}"])
async def test_pages_forbid_framing_sniffing_and_foreign_scripts(server, path):
    response = await fetch(server, path)
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    policy = response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in policy and "script-src 'self'" in policy
