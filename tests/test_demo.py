"""``racedash demo`` (a server and a simulated car in one command) and the simulator's CLI."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import uuid

import pytest

from racedash.cli import main
from racedash.simulator import SimulationOptions
from racedash.simulator.runner import demo, simulate
from tests.helpers import Client
from tests.procs import REPO, free_port

DASHBOARD = re.compile(r"(http://127\.0\.0\.1:\d+)/dashboard/([0-9a-f-]{36})")

# The subprocesses import racedash from this checkout, installed or not.
SUBPROCESS_ENV = {**os.environ, "PYTHONPATH": str(REPO)}


async def start_demo(tmp_path, *extra: str) -> tuple[asyncio.subprocess.Process, str, str, list[str]]:
    """Start ``racedash demo`` on a free port; returns the process, server URL, session id and stdout lines."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "racedash", "demo", "--port", "0", "--rate", "5",
        "--recordings-dir", str(tmp_path / "recordings"), *extra,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=tmp_path, env=SUBPROCESS_ENV,
    )
    lines: list[str] = []
    while True:
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        assert line, f"demo exited early: {lines}"
        lines.append(line)
        found = DASHBOARD.search(line)
        if found:
            return proc, found.group(1), found.group(2), lines


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
async def test_demo_serves_live_telemetry_and_stops_cleanly(tmp_path, clients, signum):
    proc, url, session_id, lines = await start_demo(tmp_path)
    try:
        assert f"demo serving on {url}" in lines[0]
        viewer = Client(url)
        clients.append(viewer)
        await viewer.connect()
        join = await viewer.call("join_session", {"session_id": session_id})
        assert join["ok"] is True
        frames = await viewer.wait_for("telemetry_update", count=3, timeout=10)
        assert {f["session_id"] for f in frames} == {session_id}
        assert frames[-1]["telemetry"]["player_name"]
        await viewer.close()
        clients.remove(viewer)
        proc.send_signal(signum)
        _, err = await asyncio.wait_for(proc.communicate(), 20)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0
    assert b"Traceback" not in err and b"Task was destroyed" not in err


async def test_demo_ends_its_output_with_the_banner_and_logs_no_requests(tmp_path):
    proc, url, session_id, lines = await start_demo(tmp_path)
    try:
        while "Ctrl-C" not in lines[-1]:
            lines.append((await asyncio.wait_for(proc.stdout.readline(), 10)).decode())
        # Pages a new user opens: none of them may add a log line at the default level.
        for path in ("/", f"/dashboard/{session_id}", "/static/css/app.css", "/nope", f"/login?token=x{session_id}"):
            await fetch_status(url + path)
        proc.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(proc.communicate(), 20)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    banner = [line.rstrip("\n") for line in lines]
    assert banner[0].startswith("racedash ") and banner[0].endswith(f"demo serving on {url}")
    assert banner[1].split() == ["dashboard:", f"{url}/dashboard/{session_id}"]
    assert banner[2].split() == ["status", "page:", f"{url}/"]
    assert banner[3].split()[:2] == ["team", "login:"] and banner[3].split()[2].startswith(f"{url}/login?token=")
    assert "Ctrl-C" in banner[4]
    assert out == b""  # nothing printed after the banner while it ran
    assert b"tornado.access" not in err
    assert session_id.encode() not in err  # the dashboard URL is the session's secret


async def fetch_status(url: str) -> int:
    from tornado.httpclient import AsyncHTTPClient

    client = AsyncHTTPClient()
    try:
        return (await client.fetch(url, raise_error=False)).code
    finally:
        client.close()


def test_demo_help_names_its_own_default_host(capsys):
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "Listens on 127.0.0.1 unless --host is given" in help_text
    host_line = help_text[help_text.rindex("--host STR"):].split("]")[0]
    assert "default 127.0.0.1" in host_line and "0.0.0.0" not in host_line


async def test_demo_in_process_serves_the_simulated_car(settings, clients):
    stop = asyncio.Event()
    servers, cars = [], []
    task = asyncio.create_task(
        demo(settings, SimulationOptions(rate=20, speedup=10, seed=4), stop=stop, on_ready=servers.append, announce=cars.append)
    )
    try:
        async def announced() -> None:
            while not cars:
                await asyncio.sleep(0.02)

        await asyncio.wait_for(announced(), 10)
        [server], [car] = servers, cars
        assert car.dashboard_url == f"{server.url}/dashboard/{car.session_id}"
        viewer = Client(server.url)
        clients.append(viewer)
        await viewer.connect()
        await viewer.call("join_session", {"session_id": car.session_id})
        assert (await viewer.wait_for("setup_update"))[0]["session_id"] == car.session_id
        await viewer.wait_for("telemetry_update", count=3)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
    assert not car.sio.connected


async def test_demo_keeps_serving_after_the_cars_finish(settings):
    stop = asyncio.Event()
    cars = []
    task = asyncio.create_task(
        demo(settings, SimulationOptions(rate=50, speedup=500, laps=1, seed=4), stop=stop, announce=cars.append)
    )

    async def finished() -> None:
        while not (cars and cars[0].model.finished and not cars[0].sio.connected):
            await asyncio.sleep(0.02)

    await asyncio.wait_for(finished(), 20)
    assert not task.done(), "the server stays up for the dashboards"
    stop.set()
    await asyncio.wait_for(task, 10)


async def test_simulate_waiting_for_an_absent_server_stops_on_sigint(tmp_path):
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "racedash", "simulate", "--url", f"http://127.0.0.1:{free_port()}",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=SUBPROCESS_ENV,
    )
    try:
        line = await asyncio.wait_for(proc.stderr.readline(), 20)
        assert b"cannot reach" in line
        proc.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(proc.communicate(), 20)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0
    assert b"Traceback" not in err and b"Unclosed" not in err


async def test_a_failing_car_ends_simulate_with_its_error(server, monkeypatch):
    from racedash.simulator.model import StintModel

    def broken(self, dt):
        raise RuntimeError("model broke")

    monkeypatch.setattr(StintModel, "step", broken)
    with pytest.raises(RuntimeError, match="model broke"):
        await asyncio.wait_for(simulate(server.url, SimulationOptions(rate=20, seed=1), announce=lambda m: None), 10)


def test_simulate_dry_run_prints_the_laps(capsys):
    assert main(["simulate", "--dry-run", "--laps", "3", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert "seed 1" in out
    assert len(re.findall(r"^\s+\d+\s+\d:\d\d\.\d{3}", out, flags=re.M)) == 3


@pytest.mark.parametrize(
    "argv",
    [
        ["simulate", "--cars", "2", "--session-id", str(uuid.uuid4())],
        ["simulate", "--session-id", "not-a-uuid"],
        ["simulate", "--publish-token", "abc"],
        ["simulate", "--rate", "0"],
        ["simulate", "--speedup", "-1"],
        ["demo", "--laps", "0"],
        ["demo", "--port", "not-a-port"],
    ],
)
def test_bad_simulator_arguments_are_clean_cli_errors(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert "racedash" in capsys.readouterr().err
