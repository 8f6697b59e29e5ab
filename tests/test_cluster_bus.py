"""Room frames across processes through Redis: two and three real servers, real clients, real Redis.

The servers run in this test's process (each its own app, ports and Redis
clients), so the test can read their counters; tests/test_cluster_routing.py
runs separate processes behind nginx.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import shutil
import subprocess
import time

import orjson
import pytest
import tornado.httpclient

from racedash.config import Settings
from racedash.server import RacedashServer
from tests.helpers import Client, wait_until
from tests.procs import free_port
from tests.recording_support import setup_payload, telemetry
from tests.replay_helpers import bearer, new_recording

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def prefix():
    """A key and channel prefix of this test's own; its keys are deleted afterwards."""
    name = f"racedash-test-{secrets.token_hex(4)}:"
    yield name
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(match=f"{name}*"):
        client.delete(key)
    client.close()


@pytest.fixture
def servers(io_loop):
    made: list[RacedashServer] = []
    yield made
    for srv in made:
        io_loop.run_sync(srv.stop)


async def start(servers, tmp_path, redis_url: str, prefix: str, **changes) -> RacedashServer:
    settings = Settings(host="127.0.0.1", port=0, recordings_dir=tmp_path / "recordings", state_dir=tmp_path / "state",
                        secret="cluster-test-secret", redis_url=redis_url, redis_prefix=prefix, **changes)
    srv = await RacedashServer(settings).start()
    servers.append(srv)
    await wait_until(srv.app.cluster.up)
    return srv


async def connect(url: str, clients, polling_first: bool = True) -> Client:
    client = Client(url)
    clients.append(client)
    if polling_first:  # default transports, like the monitor
        await client.sio.connect(url, wait_timeout=5)
        return client
    return await client.connect()


def health(srv) -> dict:
    return srv.app.status.snapshot()


async def fetch_health(srv) -> dict:
    response = await tornado.httpclient.AsyncHTTPClient().fetch(srv.url + "/healthz", raise_error=False)
    return orjson.loads(response.body)


def seqs(client: Client) -> list[int]:
    return [data["seq"] for event, data in client.log if event == "telemetry_update"]


async def test_a_room_emit_reaches_viewers_on_every_process_once_and_idle_processes_never_get_it(
        tmp_path, servers, clients, prefix):
    a = await start(servers, tmp_path, REDIS_URL, prefix)
    b = await start(servers, tmp_path, REDIS_URL, prefix)
    idle = await start(servers, tmp_path, REDIS_URL, prefix)
    monitor = await connect(a.url, clients)
    session_id = (await monitor.call("request_session_id", {}))["session_id"]
    await monitor.call("setup_data", setup_payload(session_id))
    on_a = await connect(a.url, clients, polling_first=False)
    on_b = await connect(b.url, clients)
    on_b_websocket = await connect(b.url, clients, polling_first=False)
    for viewer in (on_a, on_b, on_b_websocket):
        assert (await viewer.call("join_session", {"session_id": session_id}))["ok"]
    for lap in range(20):
        await monitor.call("telemetry_update", telemetry(session_id, lap=lap))
    for viewer in (on_a, on_b, on_b_websocket):
        await wait_until(lambda v=viewer: seqs(v)[-1:] == [21])
        assert seqs(viewer) == sorted(set(seqs(viewer))), "a frame reached a viewer twice"
        assert seqs(viewer)[-20:] == list(range(2, 22))
    assert on_b.events["telemetry_update"][-1]["telemetry"] == telemetry(session_id, lap=19)["telemetry"]
    assert "race" in on_b.events["telemetry_update"][-1], "the race summary crosses too: the same bytes"
    # A session's frames have a channel of their own, subscribed to by the processes following it only:
    # neither the idle process nor the writer (its own frames) receives them.
    assert idle.app.cluster.bus.subscriber.stats.frames == 0
    assert a.app.cluster.bus.subscriber.stats.frames == 0
    assert b.app.cluster.bus.subscriber.stats.frames >= 20
    assert idle.app.cluster.bus.stats.delivered == 0
    assert (await fetch_health(a))["redis"] == "up" and (await fetch_health(a))["status"] == "ok"


async def test_without_redis_nothing_changes(server):
    assert server.app.cluster is None
    assert server.app.status.snapshot()["redis"] is None


@pytest.fixture
def own_redis(tmp_path):
    """A Redis of this test's own on a free port, which the test may stop and start again."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    port = free_port()
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
               "--dir", str(tmp_path)]

    class OwnRedis:
        url = f"redis://127.0.0.1:{port}/0"
        process: subprocess.Popen | None = None

        def start(self) -> None:
            self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 10
            import redis

            while True:
                try:
                    redis.Redis(port=port).ping()
                    return
                except redis.ConnectionError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)

        def stop(self) -> None:
            if self.process is not None:
                self.process.kill()
                self.process.wait()
                self.process = None

    own = OwnRedis()
    own.start()
    yield own
    own.stop()


async def test_redis_going_away_degrades_and_the_cluster_heals_when_it_returns(
        tmp_path, servers, clients, own_redis, prefix):
    a = await start(servers, tmp_path, own_redis.url, prefix, node_name="a")
    b = await start(servers, tmp_path, own_redis.url, prefix, node_name="b")
    monitor = await connect(a.url, clients)
    session_id = (await monitor.call("request_session_id", {}))["session_id"]
    on_a = await connect(a.url, clients)
    on_b = await connect(b.url, clients)
    for viewer in (on_a, on_b):
        await viewer.call("join_session", {"session_id": session_id})
    await monitor.call("telemetry_update", telemetry(session_id, lap=0))
    await wait_until(lambda: seqs(on_b) == [1])

    own_redis.stop()
    await wait_until(lambda: health(a)["redis"] == "down")
    reported = await fetch_health(a)
    assert reported["status"] == "degraded" and reported["redis"] == "down" and reported["ready"] is True
    # A page b serves can no longer name the session's writer: it comes at once, without the hint.
    assert await dashboard_node(b, session_id) is None
    assert await dashboard_node(a, session_id) == "a"  # a knows it writes the session
    for lap in range(1, 4):  # the monitor's own process goes on: acks, its viewers, its recording
        ack = await monitor.call("telemetry_update", telemetry(session_id, lap=lap))
        assert ack["ok"] and ack["seq"] == 1 + lap
    await wait_until(lambda: seqs(on_a)[-1:] == [4])

    own_redis.start()
    await wait_until(lambda: a.app.cluster.up() and b.app.cluster.up(), timeout=15)
    assert health(b)["redis"] == "up"
    await monitor.call("telemetry_update", telemetry(session_id, lap=4))
    # The frames Redis never carried come from the writer's recording: nothing missed, nothing twice.
    await wait_until(lambda: seqs(on_b) == [1, 2, 3, 4, 5])
    assert on_b.events["telemetry_update"][2]["telemetry"] == telemetry(session_id, lap=2)["telemetry"]
    recorded = (tmp_path / "recordings" / f"{session_id}.jsonl")
    await wait_until(lambda: recorded.exists() and recorded.read_bytes().count(b'"kind":"telemetry"') == 5)


def state_of(client: Client) -> dict:
    """What a join sent, in comparable form."""
    return {
        "setups": [d["setup"] for e, d in client.log if e == "setup_update"],
        "history": [(p["seq"], p["telemetry"]) for p in client.events["telemetry_history"][0]["frames"]],
        "latest": client.events["telemetry_update"][0],
        "race_tables": client.events["race_tables"][0],
    }


@pytest.mark.parametrize("state_frames", [600, 25], ids=["whole-recording", "from-saved-state"])
async def test_a_viewer_on_another_process_joins_exactly_as_on_the_writer(tmp_path, servers, clients, prefix,
                                                                          state_frames, caplog):
    """B takes the session up from the recording (and, every 25 frames, the race model state A saved beside it)."""
    a = await start(servers, tmp_path, REDIS_URL, prefix, race_state_frames=state_frames)
    b = await start(servers, tmp_path, REDIS_URL, prefix, race_state_frames=state_frames)
    monitor = await connect(a.url, clients)
    session_id = (await monitor.call("request_session_id", {}))["session_id"]
    await monitor.call("setup_data", setup_payload(session_id))
    for i in range(60):
        await monitor.call("telemetry_update", telemetry(session_id, lap=i // 20 + 1, lap_time=(i % 20) * 5.0))
    saved_state = tmp_path / "recordings" / f"{session_id}.race-state.json"
    if state_frames < 60:
        await wait_until(saved_state.exists)
    caplog.set_level("INFO", logger="racedash.recording.race")
    on_a = await connect(a.url, clients)
    on_b = await connect(b.url, clients)
    join_a = await on_a.call("join_session", {"session_id": session_id})
    join_b = await on_b.call("join_session", {"session_id": session_id})
    assert join_a["seq"] == join_b["seq"] == 61
    for viewer in (on_a, on_b):
        await viewer.wait_for("race_tables")
    assert state_of(on_b) == state_of(on_a)
    assert len(state_of(on_b)["race_tables"]["laps"]) >= 2
    assert ("from its state saved at seq" in caplog.text) == (state_frames < 60)

    rejoin_b = await connect(b.url, clients)
    ack = await rejoin_b.call("join_session", {"session_id": session_id, "last_seq": 40})
    assert ack["missed"] == 21
    await rejoin_b.wait_for("telemetry_update", 21)
    assert seqs(rejoin_b) == list(range(41, 62))

    await monitor.call("telemetry_update", telemetry(session_id, lap=4, lap_time=1.0))  # lap 3 completes
    for viewer in (on_a, on_b, rejoin_b):
        await wait_until(lambda v=viewer: seqs(v)[-1:] == [62])
        await viewer.wait_for("lap_completed")
    assert on_b.events["telemetry_update"][-1] == on_a.events["telemetry_update"][-1]  # race summary included
    assert on_b.events["lap_completed"] == on_a.events["lap_completed"]
    assert seqs(on_b) == sorted(set(seqs(on_b)))


async def test_a_replay_started_on_one_process_is_watched_and_controlled_from_another(
        tmp_path, servers, clients, prefix):
    a = await start(servers, tmp_path, REDIS_URL, prefix)
    b = await start(servers, tmp_path, REDIS_URL, prefix)
    recording_id, _path = new_recording(tmp_path / "recordings", laps=4, frames_per_lap=30)
    replay = await a.app.replays.start(recording_id, paused=True)
    await wait_until(lambda: b.app.cluster.replays is not None)
    on_a = await connect(a.url, clients, polling_first=False)
    on_b = await connect(b.url, clients)
    join_a = await on_a.call("join_session", {"session_id": replay.id})
    join_b = await on_b.call("join_session", {"session_id": replay.id})
    assert join_b["ok"] and join_b["replay"] and join_b["state"]["status"] == "paused"
    assert join_b["state"]["duration"] == join_a["state"]["duration"]
    for viewer in (on_a, on_b):
        await viewer.wait_for("race_tables")
        assert viewer.events["telemetry_history"]

    ack = await on_b.call("replay_control", {"replay_id": replay.id, "action": "seek", "time": 30.0})
    assert ack["ok"] and ack["state"]["position"] == 30.0 and replay.position == 30.0
    for viewer in (on_a, on_b):
        await viewer.wait_for("telemetry_history", 2)
    bad = await on_b.call("replay_control", {"replay_id": replay.id, "action": "seek", "lap": 99})
    assert bad["ok"] is False and bad["error"] == "unknown_lap", "the running process's refusal comes back"

    await on_b.call("replay_control", {"replay_id": replay.id, "action": "speed", "speed": 16})
    await on_b.call("replay_control", {"replay_id": replay.id, "action": "play"})
    await wait_until(lambda: len(seqs(on_b)) >= 20)
    await on_b.call("replay_control", {"replay_id": replay.id, "action": "pause"})
    await wait_until(lambda: on_a.events["replay_state"][-1]["status"] == "paused")
    await wait_until(lambda: seqs(on_b) == seqs(on_a))
    assert seqs(on_b) == sorted(set(seqs(on_b))), "in order, once"

    assert (await on_b.call("leave_session", {"session_id": replay.id}))["ok"]
    await wait_until(lambda: on_b.sio.get_sid() not in replay.viewers)


async def live_rows(srv) -> list[dict]:
    response = await tornado.httpclient.AsyncHTTPClient().fetch(srv.url + "/api/live", headers=bearer(srv))
    return orjson.loads(response.body)["sessions"]


async def test_the_team_view_lists_the_cars_of_every_process_once(tmp_path, servers, clients, prefix):
    a = await start(servers, tmp_path, REDIS_URL, prefix, cluster_lease_seconds=0.6, team_token="cluster-admin")
    b = await start(servers, tmp_path, REDIS_URL, prefix, cluster_lease_seconds=0.6, team_token="cluster-admin")
    ids = []
    for srv in (a, b):
        monitor = await connect(srv.url, clients)
        session_id = (await monitor.call("request_session_id", {}))["session_id"]
        await monitor.call("telemetry_update", telemetry(session_id, lap=1))
        ids.append(session_id)
    watcher = await connect(b.url, clients)
    await watcher.call("join_session", {"session_id": ids[0]})  # b follows a's session now

    async def listed(srv) -> list[tuple[str, bool]]:
        return [(row["session_id"], row["publisher_connected"]) for row in await live_rows(srv)]

    for srv in (a, b):
        deadline = asyncio.get_running_loop().time() + 10
        while sorted(await listed(srv)) != sorted((i, True) for i in ids):
            assert asyncio.get_running_loop().time() < deadline, await listed(srv)
            await asyncio.sleep(0.1)


def recorded_seqs(tmp_path, session_id: str) -> list[int]:
    path = tmp_path / "recordings" / f"{session_id}.jsonl"
    return [orjson.loads(line)["seq"] for line in path.read_bytes().splitlines()[1:]]


async def test_a_monitor_that_moves_to_another_process_goes_on_in_the_same_file(tmp_path, servers, clients, prefix):
    a = await start(servers, tmp_path, REDIS_URL, prefix, cluster_lease_seconds=0.6)
    b = await start(servers, tmp_path, REDIS_URL, prefix, cluster_lease_seconds=0.6)
    monitor = await connect(a.url, clients)
    session_id = (await monitor.call("request_session_id", {}))["session_id"]
    await monitor.call("setup_data", setup_payload(session_id))
    for lap in range(5):
        await monitor.call("telemetry_update", telemetry(session_id, lap=lap))
    on_a = await connect(a.url, clients)
    await on_a.call("join_session", {"session_id": session_id})
    await monitor.close()  # the network moves the monitor: it comes back through b

    moved = await connect(b.url, clients)
    acks = [await moved.call("telemetry_update", telemetry(session_id, lap=lap)) for lap in range(5, 10)]
    assert [ack["seq"] for ack in acks] == list(range(7, 12)), acks
    assert b.app.cluster.writes(session_id) and not a.app.cluster.writes(session_id)
    await wait_until(lambda: seqs(on_a)[-1:] == [11])  # a follows it now, for its viewer
    assert seqs(on_a) == list(range(6, 12))  # the latest on join, then every frame once
    await b.app.recorder.flush(session_id)
    assert recorded_seqs(tmp_path, session_id) == list(range(1, 12))


async def test_a_session_written_through_another_process_is_refused_after_the_lease_wait(
        tmp_path, servers, clients, prefix):
    a = await start(servers, tmp_path, REDIS_URL, prefix, cluster_lease_seconds=0.6)
    b = await start(servers, tmp_path, REDIS_URL, prefix, cluster_lease_seconds=0.6)
    monitor = await connect(a.url, clients)
    assigned = await monitor.call("request_session_id", {})
    await monitor.call("telemetry_update", telemetry(assigned["session_id"], lap=0))
    second = await connect(b.url, clients)
    payload = {**telemetry(assigned["session_id"], lap=1), "publish_token": assigned["publish_token"]}
    refused = await second.call("telemetry_update", payload)
    assert refused["ok"] is False and refused["error"] == "session_busy", refused
    assert (await monitor.call("telemetry_update", telemetry(assigned["session_id"], lap=2)))["seq"] == 2


async def test_a_writer_that_finds_its_lease_taken_stops_writing_and_lets_its_monitor_go(
        tmp_path, servers, clients, prefix):
    a = await start(servers, tmp_path, REDIS_URL, prefix, cluster_lease_seconds=0.6)
    monitor = await connect(a.url, clients)
    session_id = (await monitor.call("request_session_id", {}))["session_id"]
    await monitor.call("telemetry_update", telemetry(session_id, lap=0))
    import redis.asyncio

    other = redis.asyncio.Redis.from_url(REDIS_URL)
    await other.set(f"{prefix}s:{session_id}:owner", "elsewhere:999", px=5000)  # another process took it
    await other.aclose()
    await wait_until(lambda: not a.app.cluster.writes(session_id), timeout=5)
    await wait_until(lambda: not monitor.sio.connected, timeout=5)
    assert a.app.cluster.written_elsewhere(session_id)


async def test_a_replay_is_controlled_over_rest_through_a_process_that_does_not_run_it(
        tmp_path, servers, clients, prefix):
    a = await start(servers, tmp_path, REDIS_URL, prefix, team_token="cluster-admin")
    b = await start(servers, tmp_path, REDIS_URL, prefix, team_token="cluster-admin")
    recording_id, _path = new_recording(tmp_path / "recordings", laps=4, frames_per_lap=30)
    replay = await a.app.replays.start(recording_id, paused=True)
    await wait_until(lambda: b.app.cluster.replays is not None)
    http = tornado.httpclient.AsyncHTTPClient()

    async def control(body: dict) -> tuple[int, dict]:
        response = await http.fetch(f"{b.url}/api/replays/{replay.id}/control", method="POST",
                                    body=orjson.dumps(body), headers=bearer(b), raise_error=False)
        return response.code, orjson.loads(response.body)

    for _ in range(50):  # the replay's listing reaches Redis right after it starts
        code, answer = await control({"action": "seek", "time": 40.0})
        if code != 404:
            break
        await asyncio.sleep(0.05)
    assert code == 200 and answer["state"]["position"] == 40.0 and replay.position == 40.0
    code, answer = await control({"action": "seek", "lap": 99})
    assert code == 404 and answer["error"] == "unknown_lap"


async def dashboard_node(srv, session_id: str) -> str | None:
    """The routing hint a dashboard page served by ``srv`` carries (data-node), or None."""
    response = await tornado.httpclient.AsyncHTTPClient().fetch(f"{srv.url}/dashboard/{session_id}")
    found = re.search(r'data-node="([^"]*)"', response.body.decode())
    return found.group(1) if found else None


async def test_a_dashboard_page_names_the_process_that_writes_its_session(tmp_path, servers, clients, prefix):
    a = await start(servers, tmp_path, REDIS_URL, prefix, node_name="a")
    b = await start(servers, tmp_path, REDIS_URL, prefix, node_name="b")
    monitor = await connect(a.url, clients)
    session_id = (await monitor.call("request_session_id", {}))["session_id"]
    await monitor.call("setup_data", setup_payload(session_id))
    # Served by either process, the page sends its socket to a (?node=a): the load balancer routes
    # the handshake there (deploy/nginx/racedash-cluster.conf), and b need not follow the session.
    assert await dashboard_node(a, session_id) == "a"
    assert await dashboard_node(b, session_id) == "a"
    assert not b.app.cluster.follower.follows(session_id)
    assert await dashboard_node(b, "00000000-0000-4000-8000-000000000000") is None  # nobody writes it

    # The monitor moves to b: b writes the session from its next frame on, and the pages say so.
    await monitor.sio.disconnect()
    moved = await connect(b.url, clients)
    assert (await moved.call("telemetry_update", telemetry(session_id, lap=1)))["ok"]
    await wait_until(lambda: b.app.cluster.writes(session_id))
    assert await dashboard_node(a, session_id) == "b"
    assert await dashboard_node(b, session_id) == "b"


async def test_without_node_names_pages_carry_no_routing_hint(tmp_path, servers, clients, prefix):
    a = await start(servers, tmp_path, REDIS_URL, prefix)
    monitor = await connect(a.url, clients)
    session_id = (await monitor.call("request_session_id", {}))["session_id"]
    await monitor.call("setup_data", setup_payload(session_id))
    assert await dashboard_node(a, session_id) is None
