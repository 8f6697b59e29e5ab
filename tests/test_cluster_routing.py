"""Several racedash processes behind the shipped nginx site: each Engine.IO session stays on its process.

The processes name themselves in the session ids they issue (``node_name``:
``a.<random>``), and deploy/nginx/racedash-cluster.conf routes every request
carrying ``?sid=`` to the process that name belongs to; handshakes go round
robin, or, with a node hint (``?node=b``: a page that knows its session's
writer), to that process while it is up. These tests run that file for real (tests/cluster.py) with real
python-socketio clients, as the monitor connects: long-polling first, then the
websocket upgrade.
"""

from __future__ import annotations

import json
import re
import ssl
import threading
import time
from typing import Any, Callable

import pytest
import requests
import socketio
import urllib3
import websocket

from racedash.config import Settings, SettingsError
from racedash.socketserver import GuardedServer, check_node_name
from tests.cluster import Cluster, render_site
from tests.helpers import sample_telemetry_payloads
from tests.procs import close_sync_client

ENGINEIO_SID = re.compile(r"[A-Za-z0-9_-]{20}")  # engine.io's own: 15 random bytes, url-safe base64
slow = pytest.mark.slow

# The cluster's certificate is its own, self-signed.
pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with Cluster(tmp_path_factory.mktemp("cluster"), 3) as running:
        yield running


def http_session() -> requests.Session:
    urllib3.disable_warnings()
    session = requests.Session()
    session.trust_env = False  # or REQUESTS_CA_BUNDLE overrides verify=False
    session.verify = False
    return session


def sync_client(**options: Any) -> socketio.Client:
    return socketio.Client(http_session=http_session(), ssl_verify=False, **options)


def close_polling_client(client: socketio.Client) -> None:
    """Close a polling client without waiting out its parked long-poll GET.

    python-engineio's sync client joins its read loop on disconnect, and the
    server releases the GET parked when the client closed only at its ping
    timeout: 30 s per polling client (tests/test_deploy_nginx.py's polling case
    pays it). The CLOSE packet still goes out (the write loop is joined); the
    read loop ends on its own when that GET returns.
    """
    write_loop = client.eio.write_loop_task
    # No reconnect thread may outlive the test: it would go on calling random() in the test
    # process (hypothesis, in later tests, refuses strategies run while random is used).
    client.reconnection = False
    if client._reconnect_abort is not None:
        client._reconnect_abort.set()
    client.eio.disconnect(abort=True)
    if client._reconnect_task is not None:
        client._reconnect_task.join(5)
    if write_loop is not None:
        write_loop.join(5)


def telemetry(session_id: str, k: int) -> dict:
    payloads = sample_telemetry_payloads()
    return {**payloads[k % len(payloads)], "session_id": session_id}


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not met within {timeout} s")
        time.sleep(0.02)
    return value


def assert_routed_by_sid(cluster: Cluster, sids: set[str]) -> None:
    """Every request nginx logged for these sessions went to the process their sid names, and only there."""
    for route in cluster.routes():
        if route.sid in sids:
            assert cluster.name_of(route.upstream) == cluster.node_of(route.sid), route


# -- session ids ---------------------------------------------------------------------------------
def test_without_node_name_session_ids_are_engineios_own():
    assert Settings().node_name == ""
    server = GuardedServer(async_mode="tornado")
    assert "generate_id" not in vars(server.eio)  # engine.io's method, untouched
    ids = {server.eio.generate_id() for _ in range(100)}
    assert len(ids) == 100 and all(ENGINEIO_SID.fullmatch(sid) for sid in ids)


def test_node_name_prefixes_every_session_id():
    server = GuardedServer(async_mode="tornado", node_name="b7")
    ids = {server.eio.generate_id() for _ in range(100)}
    assert len(ids) == 100
    for sid in ids:
        name, dot, rest = sid.partition(".")
        assert (name, dot) == ("b7", ".") and ENGINEIO_SID.fullmatch(rest), sid
    # '.' is never in engine.io's own ids: the name is always everything before the first one.
    assert Cluster.node_of(next(iter(ids))) == "b7" and Cluster.node_of("Xy_-" * 5) == ""


@pytest.mark.parametrize("name", ["A", "a.b", "a-b", "a b", "é", "x" * 17])
def test_node_name_is_checked(name):
    with pytest.raises(SettingsError, match="node_name"):
        GuardedServer(async_mode="tornado", node_name=name)
    with pytest.raises(SettingsError):
        check_node_name(name)


def test_the_shipped_site_renders_for_two_and_three_processes(tmp_path):
    three = render_site("127.0.0.1:1", {"a": "127.0.0.1:2", "b": "127.0.0.1:3", "c": "127.0.0.1:4"}, tmp_path, tmp_path)
    assert "@@" not in three.split("# The simpler")[0] and "~^c\\." in three and "127.0.0.1:4" in three
    two = render_site("127.0.0.1:1", {"a": "127.0.0.1:2", "b": "127.0.0.1:3"}, tmp_path, tmp_path)
    code = "\n".join(line.split("#", 1)[0] for line in two.splitlines())
    assert not re.search(r"\bracedash_c(_first)?\b|~\^c|^\s*c\s|@@", code, re.M) and re.search(r"\bracedash_b\b", code)
    # The node hint: each process's handshake upstream, the others its backups.
    assert re.search(r"^\s*b\s+racedash_b_first;", code, re.M) and "racedash_c_first" in three
    b_first = re.search(r"upstream racedash_b_first \{(.*?)\}", code, re.S)
    assert b_first and b_first.group(1).split() == [
        "server", "127.0.0.1:3", "max_fails=1", "fail_timeout=5s;", "server", "127.0.0.1:2", "backup;", "keepalive", "8;"]


# -- through nginx -----------------------------------------------------------------------------
@slow
def test_real_clients_stay_on_the_process_that_issued_their_sid(cluster):
    """Monitors as they connect for real: polling handshake (round robin), then the upgrade (by sid)."""
    clients = [sync_client(reconnection=False) for _ in range(12)]
    try:
        nodes: dict[str, str] = {}
        for client in clients:
            client.connect(cluster.url, wait_timeout=10)
            node = cluster.node_of(client.eio.sid)
            assert node in cluster.nodes, client.eio.sid
            # A misrouted upgrade gets 400 and the client silently stays on polling.
            assert client.transport() == "websocket"
            # The namespace sid comes from the process that took the Socket.IO CONNECT packet.
            assert cluster.node_of(client.get_sid()) == node
            nodes[client.eio.sid] = node
        assert len(set(nodes.values())) > 1, nodes  # the handshakes spread over the processes

        for client in clients:
            assigned = client.call("request_session_id", {}, timeout=5)
            assert assigned["ok"], assigned
            client.session_id = assigned["session_id"]  # type: ignore[attr-defined]
        for k in range(5):
            for client in clients:
                ack = client.call("telemetry_update", telemetry(client.session_id, k), timeout=5)  # type: ignore[attr-defined]
                assert ack["ok"] and ack["seq"] == k + 1, ack
        for client in clients:
            assert client.connected and cluster.node_of(client.eio.sid) == nodes[client.eio.sid]
    finally:
        for client in clients:
            close_sync_client(client)
    # nginx logs a websocket when it closes: every session's handshake, upgrade and close went where its sid says.
    wait_until(lambda: {r.sid for r in cluster.routes() if r.transport == "websocket"} >= set(nodes), 5, "websockets logged")
    assert_routed_by_sid(cluster, set(nodes))
    upgrades = [r for r in cluster.routes() if r.sid in nodes and r.transport == "websocket"]
    assert len(upgrades) == len(nodes) and {r.status for r in upgrades} == {101}


@slow
def test_a_polling_only_client_keeps_its_process(cluster):
    client = sync_client(reconnection=False)
    try:
        client.connect(cluster.url, transports=["polling"], wait_timeout=10)
        sid = client.eio.sid
        session_id = client.call("request_session_id", {}, timeout=5)["session_id"]
        seqs = [client.call("telemetry_update", telemetry(session_id, k), timeout=5)["seq"] for k in range(60)]
        assert seqs == list(range(1, 61))
        assert client.transport() == "polling" and client.eio.sid == sid
    finally:
        close_polling_client(client)
    routes = [r for r in cluster.routes() if r.sid == sid]
    assert sum(r.method == "POST" for r in routes) >= 60  # each emit a POST of its own, each routed by sid
    assert_routed_by_sid(cluster, {sid})


@slow
def test_one_session_over_polling_then_websocket(cluster):
    """Acks over long-polling, then the upgrade, then acks over the websocket: one session, one process."""
    http = http_session()
    base = cluster.url + "/socket.io/?EIO=4&transport=polling"
    opened = http.get(base, timeout=5)
    sid = json.loads(opened.text[1:])["sid"]
    node = cluster.node_of(sid)
    url = f"{base}&sid={sid}"
    received: list[str] = []

    def post(packet: str) -> None:
        assert http.post(url, data=packet.encode(), timeout=5).status_code == 200

    def wait_packet(prefix: str) -> str:
        while True:
            found = next((p for p in received if p.startswith(prefix)), None)
            if found is not None:
                received.remove(found)
                return found
            response = http.get(url, timeout=30)
            assert response.status_code == 200, response.text
            received.extend(response.text.split("\x1e"))

    post("40")
    assert cluster.node_of(json.loads(wait_packet("40")[2:])["sid"]) == node
    post('420["request_session_id",{}]')
    session_id = json.loads(wait_packet("430")[3:])[0]["session_id"]
    post("421" + json.dumps(["telemetry_update", telemetry(session_id, 0)]))
    assert json.loads(wait_packet("431")[3:])[0]["seq"] == 1

    ws_url = cluster.url.replace("https://", "wss://") + f"/socket.io/?EIO=4&transport=websocket&sid={sid}"
    ws = websocket.create_connection(ws_url, timeout=5, sslopt={"cert_reqs": ssl.CERT_NONE})
    try:
        ws.send("2probe")
        assert ws.recv() == "3probe"
        ws.send("5")  # upgraded: the polling transport is done
        for k in (1, 2, 3):
            ws.send(f"42{k}" + json.dumps(["telemetry_update", telemetry(session_id, k)]))
            reply = ws.recv()
            while not reply.startswith(f"43{k}"):  # a broadcast or a ping may come first
                reply = ws.recv()
            assert json.loads(reply[2 + len(str(k)) :])[0]["seq"] == k + 1
    finally:
        ws.close()
        http.close()
    wait_until(lambda: any(r.sid == sid and r.transport == "websocket" for r in cluster.routes()), 5, "websocket logged")
    assert_routed_by_sid(cluster, {sid})
    assert {cluster.name_of(r.upstream) for r in cluster.routes() if r.sid == sid} == {node}


def refused_upgrade_status(cluster: Cluster, sid: str) -> int:
    ws_url = cluster.url.replace("https://", "wss://") + f"/socket.io/?EIO=4&transport=websocket&sid={sid}"
    try:
        ws = websocket.create_connection(ws_url, timeout=2, sslopt={"cert_reqs": ssl.CERT_NONE})
    except websocket.WebSocketBadStatusException as refused:
        return refused.status_code
    try:
        ws.recv()  # accepted: a close, or a timeout
    except (websocket.WebSocketException, OSError):
        pass
    finally:
        ws.close()
    return 101


@slow
@pytest.mark.parametrize("sid", ["z.AAAAAAAAAAAAAAAAAAAA", "AAAAAAAAAAAAAAAAAAAA", "A.AAAAAAAAAAAAAAAAAAAA"])
def test_nginx_refuses_a_sid_naming_no_process(cluster, sid):
    """No process of that name (or none at all): nginx answers 400 itself, for polling and the upgrade."""
    http = http_session()
    try:
        url = f"{cluster.url}/socket.io/?EIO=4&transport=polling&sid={sid}"
        assert http.get(url, timeout=5).status_code == 400
        assert http.post(url, data=b"40", timeout=5).status_code == 400
        assert refused_upgrade_status(cluster, sid) == 400
    finally:
        http.close()
    assert all(r.upstream == "-" for r in cluster.routes() if r.sid == sid)  # no process saw them


@slow
def test_a_session_its_process_does_not_know_gets_a_clean_error(cluster):
    """A known name, an unknown session (e.g. the process restarted): the process answers 400 at once."""
    http = http_session()
    try:
        url = f"{cluster.url}/socket.io/?EIO=4&transport=polling&sid=a.AAAAAAAAAAAAAAAAAAAA"
        started = time.monotonic()
        get, post = http.get(url, timeout=5), http.post(url, data=b"40", timeout=5)
        assert (get.status_code, post.status_code) == (400, 400) and "Invalid session" in get.text
        assert time.monotonic() - started < 2
    finally:
        http.close()


@slow
def test_an_upgrade_for_a_session_its_process_does_not_know_is_refused(cluster):
    assert refused_upgrade_status(cluster, "a.AAAAAAAAAAAAAAAAAAAA") == 400


@slow
def test_clients_of_a_killed_process_reconnect_to_the_others(tmp_path):
    with Cluster(tmp_path, 3) as cluster:
        clients: list[socketio.Client] = []
        try:
            while {cluster.node_of(c.eio.sid) for c in clients} != set(cluster.nodes):
                client = sync_client(reconnection=True, reconnection_delay=0.2, reconnection_delay_max=1)
                client.connect(cluster.url, wait_timeout=10)
                clients.append(client)
                assert len(clients) <= 9, "handshakes did not reach every process"
            on_b = next(c for c in clients if cluster.node_of(c.eio.sid) == "b")
            others = [c for c in clients if c is not on_b]
            assert on_b.call("request_session_id", {}, timeout=5)["ok"]
            reconnected = threading.Event()
            on_b.on("connect", reconnected.set)

            cluster.nodes["b"].kill9()
            assert reconnected.wait(15), cluster.output()
            assert cluster.node_of(on_b.eio.sid) in {"a", "c"} and on_b.transport() == "websocket"
            # Routing only: what the new process makes of the old session is the shared state's to test.
            assert on_b.call("request_session_id", {}, timeout=5)["ok"]
            for client in others:
                assert client.call("request_session_id", {}, timeout=5)["ok"]
            # New handshakes skip the dead process.
            for _ in range(4):
                response = http_session().get(cluster.url + "/socket.io/?EIO=4&transport=polling", timeout=5)
                assert response.status_code == 200
                assert cluster.node_of(json.loads(response.text[1:])["sid"]) in {"a", "c"}
        finally:
            for client in clients:
                close_sync_client(client)


# -- the node hint ---------------------------------------------------------------------------------
def hinted_handshakes(cluster: Cluster, node: str) -> list:
    """Handshakes nginx logged with ``?node=<node>`` (no sid yet)."""
    return [r for r in cluster.routes() if r.node == node and r.sid is None]


@slow
def test_a_node_hint_lands_every_handshake_on_that_process(cluster):
    """?node=b: python-socketio repeats the URL's query on every request; the handshake goes to b, the rest by sid."""
    hinted: list[socketio.Client] = []
    plain: list[socketio.Client] = []
    try:
        for _ in range(6):  # interleaved: the hint does not disturb the round robin of the others
            client = sync_client(reconnection=False)
            client.connect(cluster.url + "?node=b", wait_timeout=10)
            hinted.append(client)
            client = sync_client(reconnection=False)
            client.connect(cluster.url, wait_timeout=10)
            plain.append(client)
        for client in hinted:
            assert cluster.node_of(client.eio.sid) == "b", client.eio.sid
            assert cluster.node_of(client.get_sid()) == "b" and client.transport() == "websocket"
            assert client.call("request_session_id", {}, timeout=5)["ok"]
        assert {cluster.node_of(c.eio.sid) for c in plain} == set(cluster.nodes)
        sids = {c.eio.sid for c in hinted}
    finally:
        for client in hinted + plain:
            close_sync_client(client)
    handshakes = hinted_handshakes(cluster, "b")
    assert len(handshakes) >= 6 and {cluster.name_of(r.upstream) for r in handshakes} == {"b"}
    assert all("," not in r.upstream and r.status == 200 for r in handshakes)  # b first, no retry
    # Every later request repeated the hint with its sid, and went by the sid.
    wait_until(lambda: {r.sid for r in cluster.routes() if r.transport == "websocket"} >= sids, 5, "websockets logged")
    assert {r.sid for r in cluster.routes() if r.node == "b" and r.sid is not None} >= sids
    assert_routed_by_sid(cluster, sids)


@slow
@pytest.mark.parametrize("hint", ["zz", "", "a.b"])
def test_an_unknown_node_hint_goes_round_robin(cluster, hint):
    """A name no process has (or garbage) is no error: the handshakes spread as without a hint."""
    clients = [sync_client(reconnection=False) for _ in range(6)]
    try:
        for client in clients:
            client.connect(f"{cluster.url}?node={hint}", wait_timeout=10)
            assert client.transport() == "websocket"
        assert {cluster.node_of(c.eio.sid) for c in clients} == set(cluster.nodes)
    finally:
        for client in clients:
            close_sync_client(client)


@slow
def test_the_sid_wins_over_the_node_hint(cluster):
    """A request with a sid goes where its sid says, whatever its hint says; a sid naming no process is refused."""
    http = http_session()
    try:
        opened = http.get(cluster.url + "/socket.io/?EIO=4&transport=polling&node=b", timeout=5)
        sid = json.loads(opened.text[1:])["sid"]
        assert cluster.node_of(sid) == "b"
        url = f"{cluster.url}/socket.io/?EIO=4&transport=polling&node=a&sid={sid}"  # a hint elsewhere
        assert http.post(url, data=b"40", timeout=5).status_code == 200  # 400 Invalid session on a
        reply = http.get(url, timeout=10)
        assert reply.status_code == 200 and reply.text.startswith("40"), reply.text
        assert cluster.node_of(json.loads(reply.text[2:])["sid"]) == "b"
        assert http.post(url, data=b"1", timeout=5).status_code == 200  # close the session

        for other in ("z.AAAAAAAAAAAAAAAAAAAA", "AAAAAAAAAAAAAAAAAAAA"):
            refused = f"{cluster.url}/socket.io/?EIO=4&transport=polling&node=b&sid={other}"
            assert http.get(refused, timeout=5).status_code == 400
        unknown = http.get(f"{cluster.url}/socket.io/?EIO=4&transport=polling&node=b&sid=a.AAAAAAAAAAAAAAAAAAAA", timeout=5)
        assert unknown.status_code == 400 and "Invalid session" in unknown.text  # process a said so, not b
    finally:
        http.close()
    assert_routed_by_sid(cluster, {sid, "a.AAAAAAAAAAAAAAAAAAAA"})
    with_sid = [r for r in cluster.routes() if r.sid == sid]
    assert len(with_sid) >= 3 and {r.node for r in with_sid} == {"a"}  # every one hinted at a, every one on b
    assert all(r.upstream == "-" for r in cluster.routes() if r.sid in {"z.AAAAAAAAAAAAAAAAAAAA", "AAAAAAAAAAAAAAAAAAAA"})


@slow
@pytest.mark.parametrize("processes", [3, 2])
def test_a_node_hint_to_a_killed_process_connects_to_another(tmp_path, processes):
    """b down: ?node=b handshakes go to the others (b's backups), a hinted client reconnects there, none is refused.

    Two processes also run the site as its header says to cut it down (c's lines deleted).
    """
    with Cluster(tmp_path, processes) as cluster:
        clients: list[socketio.Client] = []
        try:
            hinted = sync_client(reconnection=True, reconnection_delay=0.2, reconnection_delay_max=1)
            clients.append(hinted)
            hinted.connect(cluster.url + "?node=b", wait_timeout=10)
            assert cluster.node_of(hinted.eio.sid) == "b"
            reconnected = threading.Event()
            hinted.on("connect", reconnected.set)

            cluster.nodes["b"].kill9()
            assert reconnected.wait(15), cluster.output()
            others = set(cluster.nodes) - {"b"}
            assert cluster.node_of(hinted.eio.sid) in others and hinted.transport() == "websocket"
            assert hinted.call("request_session_id", {}, timeout=5)["ok"]
            for _ in range(4):  # new hinted clients: no error, on the live processes
                client = sync_client(reconnection=False)
                clients.append(client)
                client.connect(cluster.url + "?node=b", wait_timeout=10)
                assert cluster.node_of(client.eio.sid) in others
            if processes == 2:  # c is no process here: its hint is unknown, round robin, never 400
                client = sync_client(reconnection=False)
                clients.append(client)
                client.connect(cluster.url + "?node=c", wait_timeout=10)
                assert cluster.node_of(client.eio.sid) == "a"
        finally:
            for client in clients:
                close_sync_client(client)
        handshakes = hinted_handshakes(cluster, "b")
        b_address = cluster.addresses()["b"]
        assert handshakes[0].upstream == b_address and handshakes[0].status == 200  # before the kill
        after = handshakes[1:]
        assert len(after) >= 5 and all(r.status == 200 and cluster.name_of(r.upstream) in others for r in after)
        # The first after the kill tried b (refused) and went on to a backup; later ones skipped b.
        assert after[0].upstream.startswith(b_address + ", "), after[0]
