"""racedash.transport.driver: websockets run from Tornado's callbacks, through a real server.

What a user could see fail: the upgrade from long-polling, frames in order,
the three ways a connection ends (client, server, heartbeat), bad packets
closing only their own connection, packets handled in arrival order. And the
reason the driver exists: an idle connection keeps no task or timer waiting.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import aiohttp
import engineio.packet
import pytest

import racedash
from racedash.transport.driver import DirectSendQueue, DrivenSocket
from tests.helpers import Client
from tests.test_fanout import eio_sid_of, eventually, session_with_viewers, telemetry


def ws_url(server) -> str:
    return server.url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket"


async def open_raw(http: aiohttp.ClientSession, server) -> aiohttp.ClientWebSocketResponse:
    """A raw engine.io websocket, connected to the default namespace."""
    ws = await http.ws_connect(ws_url(server))
    assert (await ws.receive_str(timeout=5)).startswith("0")
    await ws.send_str("40")
    assert (await ws.receive_str(timeout=5)).startswith("40")
    return ws


async def closed(ws: aiohttp.ClientWebSocketResponse) -> bool:
    """True once the server has closed ``ws`` (whatever else it sent first is skipped)."""
    while True:
        msg = await ws.receive(timeout=5)
        if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
            return True


async def test_a_client_upgraded_from_polling_is_driven_and_gets_every_frame(server, clients):
    """python-socketio's default (the monitor's): long-polling first, then the websocket upgrade."""
    monitor, session_id, _ = await session_with_viewers(server, clients, 0)
    viewer = Client(server.url)
    clients.append(viewer)
    await viewer.sio.connect(server.url, wait_timeout=5)
    eio = server.app.sio.eio
    await eventually(lambda: viewer.sio.transport() == "websocket")
    sock = eio.sockets[eio_sid_of(server, viewer)]
    await eventually(lambda: isinstance(sock, DrivenSocket))
    assert isinstance(sock.queue, DirectSendQueue)
    await viewer.call("join_session", {"session_id": session_id})
    n = 100
    for i in range(n):
        await monitor.emit("telemetry_update", telemetry(session_id, i))
    received = await viewer.wait_for("telemetry_update", n, timeout=10)
    assert [u["telemetry"]["lap"] for u in received] == list(range(n))
    await viewer.close()
    await eventually(lambda: sock.sid not in eio.sockets)
    assert sock.sid not in server.app.transport.handlers


async def _upgrade_fails_and_polling_goes_on(server, exchange) -> None:
    """Open a long-polling session, run ``exchange(ws)`` on its upgrade websocket, check polling still works."""
    eio = server.app.sio.eio
    base = server.url + "/socket.io/?EIO=4&transport=polling"
    async with aiohttp.ClientSession() as http:
        async with http.get(base) as response:
            sid = engineio.packet.Packet(encoded_packet=await response.text()).data["sid"]
        async with http.ws_connect(ws_url(server) + "&sid=" + sid) as ws:
            await exchange(ws)
            assert await closed(ws)
        sock = eio.sockets[sid]
        assert sock.connected and not sock.upgraded and not sock.upgrading
        async with http.post(base + "&sid=" + sid, data="40") as response:
            assert response.status == 200
        async with http.get(base + "&sid=" + sid) as response:
            # the namespace's answer (after the NOOP that ended the poll during a probe)
            assert "40" in await response.text(), "the polling transport stopped working"


async def test_a_failed_upgrade_closes_the_websocket_and_keeps_polling(server):
    async def wrong_probe(ws) -> None:
        await ws.send_str("2not-a-probe")

    await _upgrade_fails_and_polling_goes_on(server, wrong_probe)


async def test_an_upgrade_without_its_upgrade_packet_closes_the_websocket_and_keeps_polling(server):
    async def no_upgrade_packet(ws) -> None:
        await ws.send_str("2probe")
        assert await ws.receive_str(timeout=5) == "3probe"
        await ws.send_str("4not-the-upgrade")

    await _upgrade_fails_and_polling_goes_on(server, no_upgrade_packet)


async def test_a_failing_handler_keeps_the_connection(server, caplog):
    caplog.set_level("INFO", logger="racedash.transport.driver")
    eio = server.app.sio.eio
    async with aiohttp.ClientSession() as http:
        ws = await open_raw(http, server)
        sock = next(iter(eio.sockets.values()))
        receive = sock.receive
        failed = []

        async def fail_once(pkt):
            if not failed:
                failed.append(pkt)
                raise RuntimeError("a handler's bug")
            await receive(pkt)

        sock.receive = fail_once
        await ws.send_str('42["nothing",1]')  # its handling fails: logged
        await eventually(lambda: failed)
        await ws.send_str('421["request_session_id",{}]')
        messages = [await ws.receive_str(timeout=5)]
        while not messages[-1].startswith("431["):  # the monitor's event comes before the ack
            messages.append(await ws.receive_str(timeout=5))
        assert any('"session_id_assigned"' in m for m in messages)
        assert caplog.text.count("error handling a packet") == 1
        await ws.close()


async def test_direct_send_queue_writes_what_is_put_and_never_holds_anything():
    import types

    written = []
    queue = DirectSendQueue(types.SimpleNamespace(send=written.append))
    queue.put_nowait("a")
    await queue.put("b")
    await queue.join()  # returns at once: nothing is ever unfinished
    assert written == ["a", "b"] and queue._unfinished_tasks == 0
    with pytest.raises(asyncio.QueueEmpty):
        queue.get_nowait()
    with pytest.raises(ValueError):
        queue.task_done()


async def test_client_disconnect_closes_the_socket(server, clients):
    _, _, (viewer,) = await session_with_viewers(server, clients, 1)
    eio = server.app.sio.eio
    sid = eio_sid_of(server, viewer)
    await viewer.close()
    await eventually(lambda: sid not in eio.sockets and sid not in server.app.transport.handlers)


async def test_server_disconnect_reaches_the_client_at_once(server, clients):
    _, _, (viewer,) = await session_with_viewers(server, clients, 1)
    eio = server.app.sio.eio
    sid = eio_sid_of(server, viewer)
    await server.app.sio.disconnect(viewer.sio.get_sid("/"))
    await eventually(lambda: not viewer.sio.connected, 2)
    await eventually(lambda: sid not in eio.sockets and sid not in server.app.transport.handlers)


async def test_an_engineio_close_packet_ends_the_connection(server):
    eio = server.app.sio.eio
    async with aiohttp.ClientSession() as http:
        ws = await open_raw(http, server)
        assert len(eio.sockets) == 1
        await ws.send_str("1")  # engine.io CLOSE
        assert await closed(ws)
    await eventually(lambda: not eio.sockets)


@pytest.mark.parametrize(
    "message",
    ["x", "", "4" + "x" * 2_000_000, "0", "2", "6", "7", "9{}"],
    ids=["bad-type", "empty", "too-large", "open", "ping", "noop", "no-such-type", "no-such-type-with-data"],
)
async def test_a_bad_packet_closes_only_its_own_connection(server, clients, message):
    monitor, session_id, (viewer,) = await session_with_viewers(server, clients, 1)
    async with aiohttp.ClientSession() as http:
        ws = await open_raw(http, server)
        await ws.send_str(message)
        assert await closed(ws)
    for i in range(10):
        await monitor.emit("telemetry_update", telemetry(session_id, i))
    received = await viewer.wait_for("telemetry_update", 10)
    assert [u["telemetry"]["lap"] for u in received] == list(range(10))
    assert monitor.sio.connected and viewer.sio.connected


async def test_packets_behind_a_slow_one_are_handled_in_arrival_order(server):
    eio = server.app.sio.eio
    async with aiohttp.ClientSession() as http:
        ws = await open_raw(http, server)
        sock = next(iter(eio.sockets.values()))
        handled = []
        receive = sock.receive

        async def slow_receive(pkt):
            if not handled:
                await asyncio.sleep(0.05)  # the first packet keeps its task busy
            handled.append(pkt.encode())
            await receive(pkt)

        sock.receive = slow_receive
        burst = ['42["nothing",1]', '42["nothing",2]', "3", '42["nothing",3]', '42["nothing",4]']
        for message in burst:
            await ws.send_str(message)
        await eventually(lambda: len(handled) == len(burst))
        assert handled == burst
        await ws.close()


# The server package by its own path: a checkout may itself be in a folder named "racedash",
# and then every test file's path would contain "/racedash/" too.
SERVER_CODE = ("/tornado/", "/engineio/async_server.py", "/engineio/async_socket.py",
               str(Path(racedash.__file__).resolve().parent) + os.sep)


def _waiting_objects() -> tuple[int, int]:
    """The server's tasks and live timers: what idle connections keep waiting.

    The clients run in this process too; their tasks and timers are told
    apart by the code they run (aiohttp's timers are its session timeouts).
    """
    server_tasks = [
        t for t in asyncio.all_tasks() if any(part in t.get_coro().cr_code.co_filename for part in SERVER_CODE)
    ]
    timers = [
        h
        for h in asyncio.get_running_loop()._scheduled
        if not h.cancelled() and not _module_of(h._callback).startswith("aiohttp")
    ]
    return len(server_tasks), len(timers)


def _module_of(callback) -> str:
    owner = getattr(callback, "__self__", None)
    return type(owner).__module__ if owner is not None else getattr(callback, "__module__", "")


async def answer_pings(ws: aiohttp.ClientWebSocketResponse) -> None:
    async for msg in ws:
        if msg.data == "2":
            await ws.send_str("3")


@pytest.mark.parametrize(
    "settings_changes", [{"websocket_driver": True}, {"websocket_driver": False}], ids=["driver", "engineio"]
)
async def test_idle_connections_keep_no_task_or_timer_of_their_own(server_with, settings_changes):
    """The driver's point: per connection, only Tornado's request task and engine.io's open task wait.

    engine.io's own handler (the comparison, so this test can fail) keeps a
    reader and a writer task and two wait_for timers for each connection, and
    heartbeats re-create them.
    """
    server = server_with
    eio = server.app.sio.eio
    eio.ping_interval, eio.ping_timeout = 0.2, 1.0
    n = 20
    async with aiohttp.ClientSession() as http:
        sockets = [await open_raw(http, server) for _ in range(1)]
        await asyncio.sleep(0.1)
        tasks_before, timers_before = _waiting_objects()
        sockets += [await open_raw(http, server) for _ in range(n)]
        readers = [asyncio.ensure_future(answer_pings(ws)) for ws in sockets]
        await asyncio.sleep(0.7)  # a few heartbeat rounds
        # What connections *keep*, over a few looks: the driver's at its fewest, so that a packet being
        # handled at one moment (its short-lived task, on a loaded machine) is not counted as kept;
        # engine.io's at its most, since each heartbeat replaces its reader's task and timer and one
        # look may fall between the old one's end and the new one's start.
        looks = []
        for _ in range(6):
            looks.append(_waiting_objects())
            await asyncio.sleep(0.05)
        pick = min if settings_changes["websocket_driver"] else max
        tasks, timers = pick(t for t, _ in looks), pick(t for _, t in looks)
        assert len(eio.sockets) == n + 1, "a connection answering its pings was dropped"
        for ws in sockets:
            await ws.close()
        await asyncio.gather(*readers)
    # A little slack for the server's own few tasks and timers (pings, the service task).
    if settings_changes["websocket_driver"]:
        assert tasks - tasks_before <= 2 * n + 2
        assert timers - timers_before <= 2
    else:
        assert tasks - tasks_before >= 4 * n - 2
        assert timers - timers_before >= 2 * n - 2


def test_the_driver_is_switched_off_on_unverified_versions(monkeypatch, caplog):
    """It does what engine.io's handler does as of the verified versions; any other version keeps engine.io's."""
    import socketio

    from racedash.transport import websocket

    monkeypatch.setattr(websocket, "versions_verified", lambda: False)
    hook = websocket.WebSocketHook(socketio.AsyncServer(async_mode="tornado").eio)
    assert hook.driven is False
    assert "websocket driver disabled" in caplog.text


async def test_binary_attachments_reach_the_handlers(server, clients):
    """Socket.IO sends bytes as a binary websocket message after the event's text part."""
    client = Client(server.url)
    clients.append(client)
    await client.connect()
    answer = await client.sio.call("request_session_id", {"blob": b"\x00\x01\x02"}, timeout=5)
    assert answer["ok"] is True
    assert client.sio.connected
