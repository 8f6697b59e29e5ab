"""racedash.transport and racedash.packets: the lean per-connection objects, on their own.

The end-to-end behaviour (every frame, in order, through real servers and
clients, compressed or not) is in tests/test_fanout.py and tests/test_live.py.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from racedash.packets import FastJsonPacket
from racedash.transport import LeanQueue, RequestBody, without_context_takeover


async def test_lean_queue_is_fifo_and_counts_unfinished_items():
    queue = LeanQueue()
    for item in ("a", "b", "c"):
        await queue.put(item)
    assert len(queue._items) == 3 and queue._unfinished_tasks == 3
    assert [await queue.get(), queue.get_nowait(), await queue.get()] == ["a", "b", "c"]
    with pytest.raises(asyncio.QueueEmpty):
        queue.get_nowait()
    assert queue._items is None, "an emptied queue keeps no deque"
    for _ in range(3):
        queue.task_done()
    with pytest.raises(ValueError):
        queue.task_done()


async def test_lean_queue_hands_an_item_to_a_waiting_getter():
    queue = LeanQueue()
    getter = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    queue.put_nowait("x")
    assert await getter == "x"
    assert queue._items is None


async def test_lean_queue_skips_getters_cancelled_by_a_timeout():
    queue = LeanQueue()
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(queue.get(), 0.01)
    queue.put_nowait("kept")  # not handed to the abandoned future
    assert await asyncio.wait_for(queue.get(), 1) == "kept"


async def test_lean_queue_join_waits_for_task_done():
    queue = LeanQueue()
    await queue.join()  # nothing unfinished: returns at once
    queue.put_nowait(1)
    joined = asyncio.ensure_future(queue.join())
    await asyncio.sleep(0.01)
    assert not joined.done()
    queue.get_nowait()
    queue.task_done()
    await asyncio.wait_for(joined, 1)


def test_lean_queue_is_unbounded_only():
    with pytest.raises(ValueError):
        LeanQueue(maxsize=1)


async def test_request_body_reads_once_or_in_parts():
    body = RequestBody(b"abcdef")
    assert await body.read(2) == b"ab"
    assert await body.read() == b"cdef"
    assert await body.read() == b""
    assert await RequestBody(None).read() == b""


def test_deflate_offers_get_no_context_takeover():
    offers = [("x-webkit-deflate-frame", {}), ("permessage-deflate", {"client_max_window_bits": "15"})]
    assert without_context_takeover(offers) == [
        ("x-webkit-deflate-frame", {}),
        (
            "permessage-deflate",
            {"client_max_window_bits": "15", "server_no_context_takeover": None, "client_no_context_takeover": None},
        ),
    ]


@pytest.mark.parametrize(
    "text",
    [
        '["telemetry_update",{"lap":3,"fuel":27.5,"name":"Zoë","ok":true,"none":null}]',
        '["e",{"n":1180591620717411303424}]',  # beyond 64 bits: stays an exact integer
        '["e",{"n":-9223372036854775809}]',
        '["e",{"x":NaN,"y":Infinity}]',  # json accepts these; validation refuses them later
        '["e",{"big":1e400}]',
        '["e","\\ud800"]',  # a lone surrogate
        '["e",{"a":1,"a":2}]',
        '["e",0.1234567890123456789]',
    ],
)
def test_packet_json_decodes_exactly_as_the_standard_library(text):
    decoded = FastJsonPacket.json.loads(text)
    expected = json.loads(text)
    assert repr(decoded) == repr(expected)
    assert [type(v) for v in _leaves(decoded)] == [type(v) for v in _leaves(expected)]


def test_packet_json_refuses_what_the_standard_library_refuses():
    with pytest.raises(ValueError):
        FastJsonPacket.json.loads('["e",{')


def _leaves(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from _leaves(v)
    elif isinstance(value, list):
        for v in value:
            yield from _leaves(v)
    else:
        yield value


DROPPED_CONSTANTS = {
    "wsgi.errors", "wsgi.version", "wsgi.async", "wsgi.multithread", "wsgi.multiprocess", "wsgi.run_once",
    "SERVER_SOFTWARE", "RAW_URI", "SERVER_PROTOCOL", "REMOTE_PORT", "SERVER_NAME", "SERVER_PORT",
}


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_environ_has_what_engineio_builds_but_its_constants(method):
    import types

    import engineio.async_drivers.tornado as driver
    from tornado.httputil import HTTPHeaders, HTTPServerRequest, RequestStartLine

    from racedash.transport import translate_request

    headers = HTTPHeaders(
        {
            "Host": "racedash.lan:5000", "Origin": "http://racedash.lan:5000", "Cookie": "a=b",
            "Content-Type": "text/plain;charset=UTF-8", "Content-Length": "5", "X-Forwarded-Proto": "https",
            "Upgrade": "websocket", "Connection": "Upgrade",
        }
    )
    start = RequestStartLine(method, "/socket.io/?EIO=4&transport=polling", "HTTP/1.1")
    request = HTTPServerRequest(start_line=start, headers=headers, body=b"40abc")
    request.remote_ip = "192.168.1.20"
    handler = types.SimpleNamespace(request=request)
    ours, theirs = translate_request(handler), driver.translate_request(handler)
    assert set(theirs) - set(ours) == DROPPED_CONSTANTS
    assert set(ours) == set(theirs) - DROPPED_CONSTANTS
    for key in ours:
        if key == "wsgi.input":
            assert await ours[key].read() == await theirs[key].read() == b"40abc"
        elif key == "REMOTE_ADDR":
            assert ours[key] == "192.168.1.20"  # engine.io says 127.0.0.1 for everyone
        else:
            assert ours[key] == theirs[key], key


# -- heartbeat: one ping task per server -----------------------------------------------------
async def test_pings_keep_answering_clients_and_drop_silent_ones(server, clients):
    import aiohttp
    import engineio.packet

    from tests.helpers import Client

    eio = server.app.sio.eio
    eio.ping_interval, eio.ping_timeout = 0.2, 0.4
    alive = Client(server.url)
    clients.append(alive)
    await alive.connect()
    alive_socket = next(iter(eio.sockets.values()))
    sent_to_alive = []
    send = alive_socket.send

    async def counting_send(pkt):
        sent_to_alive.append(pkt.packet_type)
        await send(pkt)

    alive_socket.send = counting_send
    async with aiohttp.ClientSession() as http:
        ws_url = server.url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket"
        async with http.ws_connect(ws_url) as silent:
            assert (await silent.receive_str(timeout=5)).startswith("0")
            await silent.send_str("40")
            assert len(eio.sockets) == 2
            assert (await silent.receive_str(timeout=5)).startswith("40")
            assert await silent.receive_str(timeout=1) == "2"  # pinged one interval after connecting
            await asyncio.sleep(1.2)  # it never answers: closed after the ping timeout, like engine.io does
            assert (await silent.receive(timeout=1)).type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    assert len(eio.sockets) == 1
    assert alive.sio.connected, "the client that answered its pings was dropped"
    assert sent_to_alive.count(engineio.packet.PING) >= 3, "the answering client was not pinged every interval"
    # No per-connection ping task: one task sends them all.
    assert not [t for t in asyncio.all_tasks() if "_send_ping" in getattr(t.get_coro(), "__qualname__", "")]
    assert len([t for t in asyncio.all_tasks() if t.get_name() == "engineio-pings"]) <= 1


async def test_a_failing_ping_does_not_stop_the_others(server, clients, caplog):
    from tests.helpers import Client

    eio = server.app.sio.eio
    eio.ping_interval, eio.ping_timeout = 0.1, 1.0
    viewers = [await Client(server.url).connect() for _ in range(2)]
    clients.extend(viewers)
    broken = next(iter(eio.sockets.values()))

    async def fail(pkt):
        raise RuntimeError("this connection's queue is broken")

    broken.send = fail
    await asyncio.sleep(0.5)
    assert "ping to" in caplog.text
    assert len(server.app.transport.pings) >= 1
    assert all(v.sio.connected for v in viewers)


async def test_pings_stop_with_the_server(io_loop, settings):
    from racedash.server import RacedashServer
    from tests.helpers import Client

    srv = await RacedashServer(settings).start()
    client = await Client(srv.url).connect()
    assert len(srv.app.transport.pings) == 1
    await client.close()
    await srv.stop()
    assert len(srv.app.transport.pings) == 0
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "engineio-pings"]


async def test_pings_due_together_leave_the_loop_free_between_batches():
    """Viewers that connected together are pinged together: the live stream must not wait for all of them."""
    import types

    from racedash.transport import PingWheel

    sent: list[int] = []
    progress_when_others_ran: list[int] = []

    class Socket:
        closing = closed = False

        def __init__(self, sid: int) -> None:
            self.sid = sid

        async def send(self, pkt) -> None:
            sent.append(self.sid)  # a driven websocket writes at once: no suspension here

    n = PingWheel.BATCH * 4
    wheel = PingWheel(types.SimpleNamespace(ping_interval=0.01))
    for sid in range(n):
        wheel.schedule(Socket(sid))

    def other_work() -> None:  # a callback per loop turn, as the live stream's would be
        progress_when_others_ran.append(len(sent))
        if len(sent) < n:
            asyncio.get_running_loop().call_soon(other_work)

    asyncio.get_running_loop().call_soon(other_work)
    for _ in range(100):
        if len(sent) == n:
            break
        await asyncio.sleep(0.005)
    await wheel.close()
    assert sent == list(range(n)), "pings out of order or lost"
    assert any(0 < done < n for done in progress_when_others_ran), "the loop did nothing else until every ping was out"
