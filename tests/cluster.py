"""Several racedash processes on one Redis behind the shipped nginx site (deploy/nginx/racedash-cluster.conf).

    with Cluster(tmp_path, nodes=3) as cluster:
        client.connect(cluster.url)          # https, through nginx
        cluster.nodes["b"].kill9()           # a process handle (tests.procs.ServerProcess)
        cluster.node_of(client.eio.sid)      # the name in a session id: the process that issued it

Each process is a real ``racedash serve`` on a free loopback port with its
own ``--node-name`` (a, b, c: the names the shipped site routes), the same
recordings and state directories (a shared volume), the same secret, and the
same Redis URL with a prefix of the cluster's own, whose keys are deleted when
the cluster stops. nginx runs the shipped site on a free loopback port with a
self-signed certificate; its access log records, per request, the sid in the
query and the process that served it (``routes()``).
"""

from __future__ import annotations

import re
import secrets
import shutil
import socket
import ssl
import subprocess
import time
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.procs import REPO, ServerProcess, free_port

SITE = REPO / "deploy" / "nginx" / "racedash-cluster.conf"
NODE_NAMES = ("a", "b", "c")  # the processes the shipped site names
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
# One line per request: the sid it carried ('-': none), status, method, transport, node hint ('-': none),
# the process(es) nginx tried.
ROUTE_LOG_FORMAT = (
    "log_format racedash_route '$arg_sid $status $request_method $arg_transport $arg_node $upstream_addr';"
)


def render_site(listen: str, nodes: dict[str, str], cert: Path, key: Path, template: str | None = None) -> str:
    """The shipped site with its placeholders filled; the lines of processes not in ``nodes`` deleted.

    The site names processes a, b and c, each on lines that say ``@@NODE_<X>@@``,
    ``racedash_<x>`` or ``racedash_<x>_first``: what its header tells an operator to
    delete for fewer processes.
    """
    site = SITE.read_text() if template is None else template
    unknown = set(nodes) - set(NODE_NAMES)
    if unknown:
        raise ValueError(f"the shipped site routes processes {NODE_NAMES}, not {sorted(unknown)}")
    absent = [n for n in NODE_NAMES if n not in nodes]
    lines = []
    for line in site.splitlines():
        code = line.split("#", 1)[0]  # comments name nodes too: only directives are deleted
        if any(f"@@NODE_{n.upper()}@@" in code or re.search(rf"\bracedash_{n}(?:_first)?\b", code) for n in absent):
            continue
        lines.append(line)
    site = "\n".join(lines) + "\n"
    values = {"@@SERVER_NAME@@": "localhost", "@@LISTEN@@": listen, "@@CERT@@": str(cert), "@@KEY@@": str(key)}
    values.update({f"@@NODE_{n.upper()}@@": address for n, address in nodes.items()})
    for name, value in values.items():
        site = site.replace(name, value)
    leftover = [line for line in site.splitlines() if "@@" in line.split("#", 1)[0]]
    assert not leftover, leftover
    return site


def self_signed(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return cert, key


def nginx_binary() -> str:
    return shutil.which("nginx") or "/usr/sbin/nginx"


class Nginx:
    """nginx in the foreground with its files under ``directory``, serving ``site`` (an http {} include)."""

    def __init__(self, directory: Path, site: str, port: int) -> None:
        self.directory = directory
        self.port = port
        for d in ("logs", "tmp"):
            (directory / d).mkdir(parents=True, exist_ok=True)
        self.access_log = directory / "logs" / "access.log"
        self.conf = directory / "nginx.conf"
        self.conf.write_text(
            f"error_log {directory}/logs/error.log;\nevents {{}}\nhttp {{\n{ROUTE_LOG_FORMAT}\n"
            f"access_log {self.access_log} racedash_route;\n"
            + "".join(f"{k}_temp_path {directory}/tmp/{k};\n" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
            + site + "\n}\n"
        )
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 10) -> "Nginx":
        self.process = subprocess.Popen(
            [nginx_binary(), "-p", str(self.directory), "-c", str(self.conf), "-g",
             f"daemon off; pid {self.directory}/nginx.pid;"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        deadline = time.monotonic() + timeout
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            if self.process.poll() is not None or time.monotonic() > deadline:
                output = self.output()
                self.stop()
                raise RuntimeError(f"nginx did not start: {output}")
            time.sleep(0.05)

    def output(self) -> str:
        text = ""
        if self.process is not None and self.process.poll() is not None and self.process.stdout is not None:
            text = self.process.stdout.read()
        error_log = self.directory / "logs" / "error.log"
        return text + (error_log.read_text() if error_log.exists() else "")

    @property
    def pid(self) -> int:
        """The master's; the worker that serves is its child (``worker_pids``)."""
        assert self.process is not None
        return self.process.pid

    def worker_pids(self) -> list[int]:
        path = Path(f"/proc/{self.pid}/task/{self.pid}/children")
        return [int(p) for p in path.read_text().split()] if path.exists() else []

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        if self.process.stdout is not None:
            self.process.stdout.close()


@dataclass(frozen=True)
class Route:
    """One request nginx logged: the sid and node hint in its query (None: none), and the process address(es) tried."""

    sid: str | None
    status: int
    method: str
    transport: str
    node: str | None
    upstream: str


def redis_reachable(url: str, timeout: float = 1.0) -> bool:
    parsed = urllib.parse.urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 6379), timeout) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith((b"+PONG", b"-NOAUTH"))
    except OSError:
        return False


def delete_redis_keys(url: str, prefix: str) -> int:
    """Delete every key under ``prefix`` (a test's own); the number deleted. redis-cli: no client library needed."""
    cli = shutil.which("redis-cli")
    if cli is None or not redis_reachable(url):
        return 0
    pattern = re.sub(r"([*?\[\]\\])", r"\\\1", prefix) + "*"
    keys = subprocess.run([cli, "-u", url, "--scan", "--pattern", pattern],
                          capture_output=True, text=True, timeout=30).stdout.split()
    for start in range(0, len(keys), 500):
        subprocess.run([cli, "-u", url, "del", *keys[start : start + 500]], capture_output=True, timeout=30, check=True)
    return len(keys)


class Cluster:
    """``nodes`` racedash processes (a, b, c) on one Redis, and the shipped nginx site in front.

    ``redis``: pass ``--redis-url``/``--redis-prefix`` to every process (a
    prefix of this cluster's own, its keys deleted at stop; the tests are
    skipped when Redis is not reachable). ``args`` go to every process,
    ``env`` to its environment. ``nginx=False``: the processes only.
    """

    def __init__(
        self,
        directory: Path,
        nodes: int = 3,
        *args: str,
        redis: bool = True,
        redis_url: str = DEFAULT_REDIS_URL,
        env: dict[str, str] | None = None,
        nginx: bool = True,
    ) -> None:
        if not 1 <= nodes <= len(NODE_NAMES):
            raise ValueError(f"1 to {len(NODE_NAMES)} processes (the shipped site names {NODE_NAMES})")
        self.directory = Path(directory)
        self.redis_url = redis_url if redis else ""
        self.redis_prefix = f"racedash-test-{secrets.token_hex(6)}:"
        self.secret = secrets.token_urlsafe(32)
        recordings = self.directory / "recordings"  # and the state dir beside it (tests.procs.ServerProcess)
        extra = ["--redis-url", self.redis_url, "--redis-prefix", self.redis_prefix] if redis else []
        environment = {"RACEDASH_SECRET": self.secret, "RACEDASH_TRUST_PROXY_HEADERS": "true", **(env or {})}
        self.nodes: dict[str, ServerProcess] = {
            name: ServerProcess("--node-name", name, *extra, *args, recordings_dir=recordings, env=environment)
            for name in NODE_NAMES[:nodes]
        }
        self.nginx: Nginx | None = None
        self._with_nginx = nginx
        self.url = ""

    def start(self) -> "Cluster":
        if self.redis_url and not redis_reachable(self.redis_url):
            import pytest  # only here: benchmarks use this module without pytest

            pytest.skip(f"Redis is not reachable at {self.redis_url}")
        try:
            with ThreadPoolExecutor(len(self.nodes)) as pool:  # each takes a second or two to start
                list(pool.map(lambda server: server.start(), self.nodes.values()))
            if self._with_nginx:
                port = free_port()
                cert, key = self_signed(self.directory)
                site = render_site(f"127.0.0.1:{port}", self.addresses(), cert, key)
                self.nginx = Nginx(self.directory / "nginx", site, port).start()
                self.url = f"https://127.0.0.1:{port}"
                self._wait_through_nginx()
        except BaseException:
            self.stop()
            raise
        return self

    def addresses(self) -> dict[str, str]:
        return {name: f"127.0.0.1:{server.port}" for name, server in self.nodes.items()}

    @staticmethod
    def node_of(sid: str) -> str:
        """The node name a session id carries ('' for an id without one)."""
        name, dot, _ = sid.partition(".")
        return name if dot else ""

    def name_of(self, upstream: str) -> str | None:
        """The node name of a process address as nginx logs it (the last one tried)."""
        last = upstream.split(",")[-1].strip()
        return next((name for name, address in self.addresses().items() if address == last), None)

    def routes(self) -> list[Route]:
        """Every request nginx logged so far (a websocket is logged when it closes)."""
        if self.nginx is None or not self.nginx.access_log.exists():
            return []
        routes = []
        for line in self.nginx.access_log.read_text().splitlines():
            sid, status, method, transport, node, upstream = line.split(" ", 5)
            routes.append(Route(None if sid == "-" else urllib.parse.unquote(sid), int(status), method, transport,
                                None if node == "-" else urllib.parse.unquote(node), upstream))
        return routes

    def _wait_through_nginx(self, timeout: float = 10) -> None:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # the cluster's own self-signed certificate
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(self.url + "/healthz/ready", timeout=2, context=context):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"nginx did not answer:\n{self.nginx.output() if self.nginx else ''}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        errors: list[BaseException] = []
        if self.nginx is not None:
            self.nginx.stop()
        for server in self.nodes.values():
            try:
                server.stop()
            except AssertionError as exc:  # it did not exit in time: still tear the rest down, then report it
                errors.append(exc)
            finally:
                server.kill9()
        if self.redis_url:
            delete_redis_keys(self.redis_url, self.redis_prefix)
        if errors:
            raise errors[0]

    def output(self) -> str:
        """Every process's output and nginx's error log, for a failing test's message."""
        parts = [f"--- racedash {name}\n{server.output}" for name, server in self.nodes.items()]
        if self.nginx is not None:
            parts.append(f"--- nginx\n{self.nginx.output()}")
        return "\n".join(parts)

    def __enter__(self) -> "Cluster":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
