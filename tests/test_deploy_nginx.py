"""The shipped nginx site (deploy/nginx/racedash.conf), run for real in front of a racedash process."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time

import pytest
import requests
import socketio
import urllib3

from tests.helpers import sample_telemetry_payloads
from tests.procs import REPO, ServerProcess, close_sync_client, free_port

pytestmark = pytest.mark.slow


def render(port: int, upstream: str, cert, key) -> str:
    site = (REPO / "deploy" / "nginx" / "racedash.conf").read_text()
    for name, value in {"@@SERVER_NAME@@": "localhost", "@@LISTEN@@": f"127.0.0.1:{port}", "@@CERT@@": str(cert),
                        "@@KEY@@": str(key), "@@UPSTREAM@@": upstream}.items():
        site = site.replace(name, value)
    assert "@@" not in site
    return site


@pytest.fixture
def proxied(tmp_path):
    """(https URL of nginx, the racedash process behind it)."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    server = ServerProcess(recordings_dir=tmp_path / "recordings", env={"RACEDASH_TRUST_PROXY_HEADERS": "true"}).start()
    port = free_port()
    for d in ("logs", "tmp"):
        (tmp_path / d).mkdir()
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        f"error_log {tmp_path}/logs/error.log;\nevents {{}}\nhttp {{\naccess_log {tmp_path}/logs/access.log;\n"
        + "".join(f"{k}_temp_path {tmp_path}/tmp/{k};\n" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        + render(port, f"127.0.0.1:{server.port}", cert, key) + "\n}\n"
    )
    proc = subprocess.Popen([nginx, "-p", str(tmp_path), "-c", str(conf), "-g", f"daemon off; pid {tmp_path}/nginx.pid;"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"https://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                requests.get(url + "/healthz", verify=False, timeout=1)
                break
            except requests.ConnectionError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"nginx did not start: {proc.stdout.read() if proc.stdout else ''}")
                time.sleep(0.05)
        yield url, server
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()
        server.stop()
        server.kill9()


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
@pytest.mark.parametrize("transport", ["websocket", "polling"])
def test_dashboard_and_socketio_through_nginx(proxied, transport):
    urllib3.disable_warnings()
    url, _ = proxied
    page = requests.get(url + "/dashboard/6f1c2d9e-0000-4000-8000-000000000000", verify=False, timeout=5)
    assert page.status_code == 200 and "data-session-id" in page.text
    health = requests.get(url + "/healthz", verify=False, timeout=5).json()
    assert health["ready"] is True

    def client() -> socketio.Client:
        # The test's self-signed certificate; trust_env off, or REQUESTS_CA_BUNDLE overrides verify=False.
        session = requests.Session()
        session.trust_env = False
        session.verify = False
        return socketio.Client(reconnection=False, http_session=session, ssl_verify=False)

    monitor, viewer = client(), client()
    got = threading.Event()
    received: list = []

    @viewer.on("telemetry_update")
    def on_telemetry(data):
        received.append(data)
        got.set()

    try:
        monitor.connect(url, transports=[transport])
        viewer.connect(url, transports=[transport])
        assert monitor.transport() == transport and viewer.transport() == transport
        assigned = monitor.call("request_session_id", {}, timeout=5)
        assert assigned["dashboard_url"].startswith("https://")  # X-Forwarded-Proto reached racedash
        session_id = assigned["session_id"]
        assert viewer.call("join_session", {"session_id": session_id}, timeout=5)["ok"]
        ack = monitor.call("telemetry_update", {**sample_telemetry_payloads()[0], "session_id": session_id}, timeout=5)
        assert ack["ok"], ack
        assert got.wait(5) and received[0]["session_id"] == session_id
    finally:
        close_sync_client(monitor)
        close_sync_client(viewer)
