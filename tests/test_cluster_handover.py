"""A session's writer killed with -9: its monitor comes back through nginx to another process, which goes on.

Three real ``racedash serve`` processes on one Redis behind the shipped nginx
site (tests/cluster.py); a real sync python-socketio monitor, default
transports (polling first), publishing through nginx; a viewer connected to
another process. The process the monitor is on is killed with SIGKILL in the
middle of the stream. What must hold: one recording file whose seqs run on
with no gap and no repeat, every acknowledged frame in it, the viewer never
sent a frame twice, the setup still there for a new viewer.
"""

from __future__ import annotations

import threading
import time

import orjson
import pytest
import socketio

from tests.cluster import Cluster
from tests.helpers import sample_setup, sample_telemetry_payloads
from tests.procs import close_sync_client
from tests.test_cluster_routing import close_polling_client, http_session, sync_client, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")]


class Monitor(threading.Thread):
    """Publishes like the monitor: an id, a setup, then telemetry at ``rate`` Hz through reconnects."""

    def __init__(self, url: str, rate: float = 20.0) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.interval = 1 / rate
        self.client = sync_client(reconnection_delay=0.2, reconnection_delay_max=0.5)
        self.acked: list[int] = []
        self.errors: list[str] = []
        self.session_id = ""
        self.running = True

    def start_publishing(self) -> "Monitor":
        self.client.connect(self.url, wait_timeout=10)
        self.session_id = self.client.call("request_session_id", {}, timeout=10)["session_id"]
        ack = self.client.call("setup_data", {"session_id": self.session_id, "timestamp": "t0", "setup": sample_setup()},
                               timeout=10)
        self.acked.append(ack["seq"])
        self.start()
        return self

    def run(self) -> None:
        payloads = sample_telemetry_payloads()
        k = 0
        while self.running:
            payload = {**payloads[k % len(payloads)], "session_id": self.session_id}
            try:
                ack = self.client.call("telemetry_update", payload, timeout=5)
            except (socketio.exceptions.SocketIOError, TimeoutError) as exc:
                self.errors.append(type(exc).__name__)
                time.sleep(0.1)  # the client reconnects by itself; the frame is the monitor's to lose
                k += 1
                continue
            if ack.get("ok"):
                self.acked.append(ack["seq"])
            else:
                self.errors.append(ack.get("error", "?"))
            k += 1
            time.sleep(self.interval)

    def stop(self) -> None:
        self.running = False
        if self.is_alive():
            self.join(10)
        close_polling_client(self.client)


class Viewer:
    def __init__(self, url: str, session_id: str) -> None:
        self.seqs: list[int] = []
        self.client = socketio.Client(http_session=http_session(), ssl_verify=False)
        self.client.on("telemetry_update", lambda data: self.seqs.append(data["seq"]))
        self.client.on("setup_update", lambda data: self.seqs.append(data["seq"]))
        self.client.connect(url, transports=["websocket"], wait_timeout=10)
        assert self.client.call("join_session", {"session_id": session_id}, timeout=10)["ok"]


def recorded_seqs(cluster: Cluster, session_id: str) -> list[int]:
    path = cluster.directory / "recordings" / f"{session_id}.jsonl"
    seqs = []
    for line in path.read_bytes().splitlines()[1:]:
        try:
            seqs.append(orjson.loads(line)["seq"])
        except orjson.JSONDecodeError:
            pass  # a torn line (none expected: the writer sets them aside)
    return seqs


def test_kill_9_of_the_writer_hands_the_session_over_with_one_file_and_continuous_seq(tmp_path):
    with Cluster(tmp_path, 3, "--cluster-lease-seconds", "2", "--recording-flush-seconds", "1.0") as cluster:
        monitor = Monitor(cluster.url).start_publishing()
        viewers: list[Viewer] = []
        try:
            writer = cluster.node_of(monitor.client.eio.sid)
            watcher_node = next(name for name in cluster.nodes if name != writer)
            viewer = Viewer(cluster.nodes[watcher_node].url, monitor.session_id)
            viewers.append(viewer)
            wait_until(lambda: len(monitor.acked) >= 40, 20, "40 frames before the kill")
            cluster.nodes[writer].kill9()
            killed_at = len(monitor.acked)
            wait_until(lambda: len(monitor.acked) >= killed_at + 40, 40, "40 frames after the kill")
            new_writer = cluster.node_of(monitor.client.eio.sid)
            monitor.running = False
            monitor.join(10)
            last = monitor.acked[-1]
            wait_until(lambda: viewer.seqs[-1:] == [last], 10, "the viewer has the last frame")
            wait_until(lambda: recorded_seqs(cluster, monitor.session_id)[-1:] == [last], 10, "the last frame on disk")

            recorded = recorded_seqs(cluster, monitor.session_id)
            assert new_writer != writer
            assert recorded == list(range(1, last + 1)), "one file, seq continuous: nothing lost, nothing twice"
            assert set(monitor.acked) <= set(recorded), "every acknowledged frame is recorded"
            assert monitor.acked == sorted(set(monitor.acked))
            assert viewer.seqs == sorted(set(viewer.seqs)), "no frame reached the viewer twice"
            assert viewer.seqs[-1] == last

            late = Viewer(cluster.url, monitor.session_id)  # through nginx, on whichever process
            viewers.append(late)
            wait_until(lambda: late.seqs[:1] == [1], 10, "the setup for a new viewer")
            print(f"handover: writer {writer} killed after seq {monitor.acked[killed_at - 1]}, "
                  f"{new_writer} wrote on to seq {last}; recorded {len(recorded)} frames, "
                  f"lost 0, duplicated 0; monitor errors while it reconnected: {len(monitor.errors)}")
        finally:
            for each in viewers:
                close_sync_client(each.client)
            monitor.stop()


def test_a_replay_whose_process_dies_is_restarted_by_a_process_with_viewers_of_it(tmp_path):
    from tests.replay_helpers import new_recording

    recording_id, _path = new_recording(tmp_path / "recordings", laps=20, frames_per_lap=60)
    token = "replay-takeover-test-token"
    with Cluster(tmp_path, 2, "--cluster-lease-seconds", "2", nginx=False,
                 env={"RACEDASH_TEAM_TOKEN": token}) as cluster:
        runner, watcher = cluster.nodes["a"], cluster.nodes["b"]
        started = http_session().post(f"{runner.url}/api/recordings/{recording_id}/replay",
                                      json={"speed": 4}, headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert started.status_code == 201, started.text
        replay_id = started.json()["replay_id"]
        states: list[dict] = []
        seen: list[int] = []
        viewer = sync_client()
        viewer.on("replay_state", states.append)
        viewer.on("telemetry_update", lambda data: seen.append(data["seq"]))
        viewer.connect(watcher.url, wait_timeout=10)  # default transports: polling first
        try:
            joined = viewer.call("join_session", {"session_id": replay_id}, timeout=10)
            assert joined["ok"] and joined["replay"], joined
            wait_until(lambda: len(seen) >= 10, 20, "frames of the replay on the other process")
            runner.kill9()
            before = len(states)
            wait_until(lambda: any(s.get("status") == "playing" for s in states[before:]) and len(seen) > 0, 20,
                       "the replay restarted and playing again")
            restarted_at = len(seen)
            wait_until(lambda: len(seen) >= restarted_at + 10, 20, "frames after the restart")
            assert seen[restarted_at:] == sorted(set(seen[restarted_at:]))
            state = viewer.call("replay_control", {"replay_id": replay_id, "action": "pause"}, timeout=10)
            assert state["ok"] and state["state"]["status"] == "paused", "controls work on the restarted replay"
        finally:
            close_polling_client(viewer)
