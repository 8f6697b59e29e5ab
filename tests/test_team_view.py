"""The team view (/team, /api/live), the multi-car page (/cars) and the recordings list's new fields.

Real servers and real python-socketio clients: simulated stints are published as the
monitor publishes them, and what the team endpoints answer is checked against the
simulator's own record.
"""

from __future__ import annotations

import time
import uuid

import orjson
import pytest
from tornado.httpclient import AsyncHTTPClient

from racedash.simulator.model import SETUP, StintConfig, run_stint
from racedash.teamview import live_sessions, parse_car_ids, state_label
from racedash.errors import InvalidSessionId
from tests.helpers import Client, wait_until


@pytest.fixture
def settings(settings):
    # A stint is published as fast as the client can send it: far above the per-connection event rate.
    return settings.replace(events_per_second=100_000.0, event_burst=100_000.0)


async def fetch(server, path: str, *, team: bool = True, **kwargs):
    headers = {"Authorization": f"Bearer {server.app.access.token}"} if team else {}
    return await AsyncHTTPClient().fetch(server.url + path, raise_error=False, follow_redirects=False,
                                         headers=headers, **kwargs)


async def publish_stint(server, clients, *, seed: int, laps: int) -> tuple[str, object, Client]:
    """A simulated stint published through a real client; returns (session id, simulator, monitor)."""
    sim, published = run_stint(StintConfig(seed=seed, laps=laps), dt=2.0)
    monitor = Client(server.url)
    clients.append(monitor)
    await monitor.connect()
    session_id = (await monitor.call("request_session_id", {}))["session_id"]
    for pub in published:
        if pub.kind == SETUP:
            ack = await monitor.call("setup_data", {"session_id": session_id, "timestamp": pub.payload["timestamp"],
                                                    "setup": pub.payload["setup"]})
        else:
            ack = await monitor.call("telemetry_update", {"session_id": session_id, "telemetry": pub.payload})
        assert ack["ok"], ack
    return session_id, (sim, published), monitor


async def live_rows(server) -> dict[str, dict]:
    response = await fetch(server, "/api/live")
    assert response.code == 200 and response.headers["Cache-Control"] == "no-store"
    body = orjson.loads(response.body)
    assert body["ok"] is True
    return {row["session_id"]: row for row in body["sessions"]}


async def test_team_pages_need_team_access(server):
    some = [str(uuid.uuid4()), str(uuid.uuid4())]
    for path in ("/team", f"/cars?ids={some[0]},{some[1]}"):
        response = await fetch(server, path, team=False)
        assert response.code == 302 and response.headers["Location"].startswith("/login?next=")
    response = await fetch(server, "/api/live", team=False)
    assert response.code == 401 and orjson.loads(response.body)["ok"] is False
    assert response.headers["Cache-Control"] == "no-store"
    assert (await fetch(server, "/team")).code == 200
    cookie_login = await fetch(server, f"/login?token={server.app.access.token}&next=/team", team=False)
    assert cookie_login.code == 302 and cookie_login.headers["Location"] == "/team"


async def test_live_rows_follow_the_simulated_stints(server, clients):
    first, (sim, published), monitor = await publish_stint(server, clients, seed=3, laps=4)
    second, (_sim2, published2), _ = await publish_stint(server, clients, seed=8, laps=3)
    rows = await live_rows(server)
    assert list(rows) == [first, second]  # oldest session first

    row = rows[first]
    last = [p.payload for p in published if p.kind != SETUP][-1]
    assert row["dashboard_url"] == f"/dashboard/{first}"
    assert (row["driver"], row["car"], row["track"]) == (last["player_name"], last["car_name"], last["track_name"])
    assert (row["lap"], row["position"], row["fuel"]) == (last["lap"], last["position"], last["fuel"])
    assert row["publisher_connected"] is True and row["stale"] is False
    assert row["car_state"] == "on_track" and row["state"] == "on track"

    truth = {lap.number: lap.lap_time for lap in sim.laps}
    tables = server.app.race.tables(first)
    clean = [lap["lap"] for lap in tables["laps"] if lap["clean"]]
    assert clean, tables["laps"]
    assert row["best_lap"] == pytest.approx(min(truth[n] for n in clean), abs=0.05)
    assert row["last_lap"] == pytest.approx(truth[tables["laps"][-1]["lap"]], abs=0.05)
    assert rows[second]["driver"] == [p.payload for p in published2 if p.kind != SETUP][-1]["player_name"]

    # The monitor goes away: the row says so at once, and stays until the session ends.
    await monitor.close()
    await wait_until(lambda: server.app.registry.get(first).publisher_sid is None)
    rows = await live_rows(server)
    assert rows[first]["publisher_connected"] is False and rows[first]["state"] == "monitor gone"
    assert rows[second]["state"] == "on track"


async def test_a_silent_publisher_reads_as_stale(server, clients):
    session_id, _, _ = await publish_stint(server, clients, seed=5, laps=2)
    later = time.monotonic() + 42
    row = {r["session_id"]: r for r in live_sessions(server.app.registry, server.app.race, later, 5.0)}[session_id]
    assert row["stale"] is True and row["state"].startswith("no data for 4")


def test_state_label_and_car_ids():
    assert state_label("in_pit", publisher_connected=True, silent_seconds=0.5, stale_seconds=5) == "IN PIT"
    assert state_label("pit_lane", publisher_connected=True, silent_seconds=0.5, stale_seconds=5) == "PIT LANE"
    assert state_label("garage", publisher_connected=True, silent_seconds=0.5, stale_seconds=5) == "garage"
    assert state_label("on_track", publisher_connected=True, silent_seconds=12, stale_seconds=5) == "no data for 12 s"
    assert state_label("on_track", publisher_connected=False, silent_seconds=99, stale_seconds=5) == "monitor gone"
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    assert parse_car_ids(f"{a}, {b},{a}") == [a, b]
    for bad in (a, f"{a},nope", ",".join(str(uuid.uuid4()) for _ in range(5))):
        with pytest.raises(InvalidSessionId):
            parse_car_ids(bad)


async def test_cars_page_joins_only_live_sessions(server, clients):
    live, _, _ = await publish_stint(server, clients, seed=2, laps=2)
    unknown = str(uuid.uuid4())
    response = await fetch(server, f"/cars?ids={live},{unknown}")
    assert response.code == 200 and response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    page = response.body.decode()
    assert f'data-session-id="{live}" data-live="true"' in page
    assert f'data-session-id="{unknown}" data-live="false"' in page
    assert server.app.registry.get(unknown) is None  # rendering it took up no session
    assert (await fetch(server, f"/cars?ids={live}")).code == 400
    assert (await fetch(server, f"/cars?ids={live},../etc")).code == 400


async def test_recordings_list_best_lap_and_live_publisher(server, clients):
    session_id, (sim, _), monitor = await publish_stint(server, clients, seed=3, laps=4)
    listed = {r["session_id"]: r for r in orjson.loads((await fetch(server, "/api/recordings")).body)["recordings"]}
    assert listed[session_id]["live"] is True and listed[session_id]["best_lap"] is None  # growing: no fresh tables

    await monitor.close()
    await wait_until(lambda: server.app.registry.get(session_id).publisher_sid is None)
    listed = {r["session_id"]: r for r in orjson.loads((await fetch(server, "/api/recordings")).body)["recordings"]}
    assert listed[session_id]["live"] is False  # recording still open, but nobody publishes
    assert listed[session_id]["drivers"]

    # Once the recording is closed and its tables built (an export), the list shows its best lap.
    await server.app.recorder.close_session(session_id, ended=True)
    server.app.registry.end(session_id)
    csv = await fetch(server, f"/api/recordings/{session_id}/laps.csv")
    assert csv.code == 200 and csv.body.startswith(b"lap,")
    listed = {r["session_id"]: r for r in orjson.loads((await fetch(server, "/api/recordings")).body)["recordings"]}
    tables = orjson.loads((await fetch(server, f"/api/recordings/{session_id}/laps.json")).body)
    best = min(lap["time"] for lap in tables["laps"] if lap["clean"])
    assert listed[session_id]["best_lap"] == pytest.approx(best)
