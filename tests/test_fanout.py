"""The fast fan-out (racedash/fanout.py) through a real server and real clients.

Three kinds of test:
* guards that fail loudly when an upgrade of python-socketio, python-engineio
  or Tornado changes the internals the direct path relies on;
* order and no-loss through the direct path, through the engine.io fallback
  and through a mix of both, plus compressed (permessage-deflate) viewers;
* slow consumers: a raw websocket viewer that stops reading costs bounded
  memory, gets the latest state when it reads again or is disconnected, and
  the other viewers are not affected.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import socket
import struct
from pathlib import Path

import aiohttp
import engineio.async_drivers.tornado
import engineio.async_server
import engineio.async_socket
import engineio.base_socket
import engineio.payload
import orjson
import pytest
import socketio.async_manager
import socketio.base_manager
import tornado.iostream
import tornado.web
import tornado.websocket

from racedash import fanout
from racedash.broadcast import SocketIOBroadcaster
from racedash.fanout import FanoutBroadcaster, encode_event, websocket_frame
from tests.helpers import Client, pop_server_frame, raw_websocket, sample_setup, sample_telemetry_payloads

ROOT = Path(__file__).resolve().parents[1]


# -- guards on the internals ------------------------------------------------------------
def test_installed_versions_are_the_verified_ones():
    assert fanout.installed_versions() == fanout.VERIFIED_VERSIONS, (
        "python-socketio/python-engineio/tornado changed: re-verify racedash/fanout.py against the "
        "new internals, then update VERIFIED_VERSIONS, the pins in setup.py and the fingerprints below"
    )


def test_setup_py_pins_the_verified_versions():
    text = (ROOT / "setup.py").read_text()
    for name, version in fanout.VERIFIED_VERSIONS.items():
        assert f'"{name}=={version}"' in text


# What the direct path relies on, by source fingerprint. If one of these changes,
# read the new code: the ordering rule in fanout.py's docstring must still hold
# (the writer calls task_done before writing, with no await in between; the
# Tornado driver's send is synchronous; room membership is rooms[ns][room]).
FINGERPRINTS = {
    "engineio AsyncSocket.poll": (engineio.async_socket.AsyncSocket.poll, "826f58a9f3"),
    "engineio AsyncSocket._websocket_handler": (engineio.async_socket.AsyncSocket._websocket_handler, "27f120df4d"),
    "engineio AsyncSocket.send": (engineio.async_socket.AsyncSocket.send, "0437276ccb"),
    "engineio tornado WebSocket": (engineio.async_drivers.tornado.WebSocket, "0266f30227"),
    "socketio basic_enter_room": (socketio.base_manager.BaseManager.basic_enter_room, "3f509586d2"),
    "socketio AsyncManager.emit": (socketio.async_manager.AsyncManager.emit, "01ccd5b82b"),
    "tornado WebSocketProtocol13.write_message": (tornado.websocket.WebSocketProtocol13.write_message, "e085015d2f"),
    "tornado BaseIOStream.write": (tornado.iostream.BaseIOStream.write, "359435fb31"),
    # send_now: an empty _write_buffer means Tornado holds nothing unsent; IOStream sends with socket.send.
    "tornado BaseIOStream._handle_write": (tornado.iostream.BaseIOStream._handle_write, "c8c2c5ebdc"),
    "tornado IOStream.write_to_fd": (tornado.iostream.IOStream.write_to_fd, "d84acfd03a"),
    # Shared deflate frames: a compressor without context takeover keeps no zlib object.
    "tornado _PerMessageDeflateCompressor": (tornado.websocket._PerMessageDeflateCompressor, "330ebb9749"),
    "tornado WebSocketProtocol13._accept_connection": (tornado.websocket.WebSocketProtocol13._accept_connection, "3f09d01442"),
    "tornado WebSocketProtocol13._parse_extensions_header": (tornado.websocket.WebSocketProtocol13._parse_extensions_header, "fc400fd6cb"),
    "tornado WebSocketHandler.get_websocket_protocol": (tornado.websocket.WebSocketHandler.get_websocket_protocol, "12e467619d"),
    # racedash.transport: the lean queue, environ and handshake clean-up.
    "tornado RequestHandler._break_cycles": (tornado.web.RequestHandler._break_cycles, "d2b48979c2"),
    "engineio AsyncServer.create_queue": (engineio.async_server.AsyncServer.create_queue, "5ff5673a0c"),
    "engineio BaseSocket.__init__": (engineio.base_socket.BaseSocket.__init__, "8532b631a4"),
    "engineio AsyncSocket.close": (engineio.async_socket.AsyncSocket.close, "faa2e93902"),
    # racedash.transport.PingWheel: one task sends what _send_ping would, when schedule_ping asks.
    "engineio AsyncSocket.schedule_ping": (engineio.async_socket.AsyncSocket.schedule_ping, "fe31663915"),
    "engineio AsyncSocket._send_ping": (engineio.async_socket.AsyncSocket._send_ping, "67db82a704"),
    "engineio AsyncServer.start_background_task": (engineio.async_server.AsyncServer.start_background_task, "c873562535"),
    "engineio tornado translate_request": (engineio.async_drivers.tornado.translate_request, "8a4822d6b3"),
    "engineio tornado get_tornado_handler": (engineio.async_drivers.tornado.get_tornado_handler, "54f7f834cc"),
    # racedash.transport.driver does what _websocket_handler (above) does, around these.
    "engineio AsyncSocket.receive": (engineio.async_socket.AsyncSocket.receive, "a91ae36ec2"),
    "engineio AsyncSocket.handle_get_request": (engineio.async_socket.AsyncSocket.handle_get_request, "05eaae9f0a"),
    "engineio AsyncSocket._upgrade_websocket": (engineio.async_socket.AsyncSocket._upgrade_websocket, "820b83efe9"),
    "engineio AsyncSocket.check_ping_timeout": (engineio.async_socket.AsyncSocket.check_ping_timeout, "77616d5ca7"),
    "engineio AsyncServer._service_task": (engineio.async_server.AsyncServer._service_task, "b6358bda51"),
    # racedash.transport.reader mirrors _receive_frame and hands messages to _handle_message;
    # one partial read keeps the stream's read interest (_handle_events).
    "tornado WebSocketProtocol13._receive_frame": (tornado.websocket.WebSocketProtocol13._receive_frame, "1f0ef857d4"),
    "tornado WebSocketProtocol13._receive_frame_loop": (tornado.websocket.WebSocketProtocol13._receive_frame_loop, "f97f48daf5"),
    "tornado WebSocketProtocol13._handle_message": (tornado.websocket.WebSocketProtocol13._handle_message, "61f43d09e0"),
    "tornado BaseIOStream._handle_events": (tornado.iostream.BaseIOStream._handle_events, "b9464803bd"),
}


def _fingerprint(obj) -> str:
    return hashlib.sha256(inspect.getsource(obj).encode()).hexdigest()[:10]


@pytest.mark.parametrize("name", sorted(FINGERPRINTS))
def test_relied_on_internals_are_unchanged(name):
    obj, expected = FINGERPRINTS[name]
    assert _fingerprint(obj) == expected, f"{name} changed: re-verify racedash/fanout.py"


def test_driver_send_never_suspends():
    """The writer's send must finish synchronously, or task_done would no longer mean "written"."""
    source = inspect.getsource(engineio.async_drivers.tornado.WebSocket.send)
    assert "await" not in source


def test_encoding_matches_python_socketio():
    data = {"session_id": "x", "telemetry": {"lap": 3, "name": "Zoë", "t": -273.15}, "seq": 7}
    ours = encode_event("telemetry_update", data)
    assert orjson.loads(ours[2:]) == ["telemetry_update", data]
    assert ours.startswith(b'42["telemetry_update",')
    huge = {"n": 10**30}  # beyond orjson's 64-bit integers: the standard encoder takes over
    assert encode_event("e", huge) == b'42["e",{"n":1000000000000000000000000000000}]'


def test_websocket_frame_lengths():
    for n in (0, 125, 126, 65535, 65536):
        frame = websocket_frame(b"x" * n)
        assert frame[0] == 0x81
        if n < 126:
            assert frame[1] == n and len(frame) == n + 2
        elif n <= 0xFFFF:
            assert frame[1] == 126 and struct.unpack("!H", frame[2:4])[0] == n
        else:
            assert frame[1] == 127 and struct.unpack("!Q", frame[2:10])[0] == n


# -- helpers -------------------------------------------------------------------------------
async def connect(server, clients, **options) -> Client:
    client = Client(server.url, **options)
    clients.append(client)
    return await client.connect()


async def session_with_viewers(server, clients, n_viewers: int):
    monitor = await connect(server, clients)
    session_id = (await monitor.call("request_session_id", {}))["session_id"]
    viewers = [await connect(server, clients) for _ in range(n_viewers)]
    for viewer in viewers:
        await viewer.call("join_session", {"session_id": session_id})
    return monitor, session_id, viewers


def telemetry(session_id: str, i: int, **extra) -> dict:
    frame = dict(sample_telemetry_payloads()[0]["telemetry"], lap=i, **extra)
    return {"session_id": session_id, "telemetry": frame}


def broadcaster(server) -> FanoutBroadcaster:
    b = server.app.broadcaster
    assert isinstance(b, FanoutBroadcaster)
    return b


def eio_sid_of(server, client: Client) -> str:
    return server.app.sio.manager.eio_sid_from_sid(client.sio.get_sid("/"), "/")


async def eventually(predicate, timeout: float = 5.0) -> None:
    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), timeout)


# -- order and no loss ---------------------------------------------------------------------
async def test_direct_path_delivers_every_frame_in_order(server, clients):
    monitor, session_id, viewers = await session_with_viewers(server, clients, 5)
    n = 300
    for i in range(n):  # no acks, like the monitor: frames pile up as fast as they can
        await monitor.emit("telemetry_update", telemetry(session_id, i))
    for viewer in viewers:
        received = await viewer.wait_for("telemetry_update", n, timeout=20)
        assert [u["telemetry"]["lap"] for u in received] == list(range(n))
        assert [u["seq"] for u in received] == list(range(1, n + 1))
    assert broadcaster(server).stats.direct >= n * len(viewers) // 2


async def test_long_polling_viewer_gets_every_frame_in_order(server, clients, monkeypatch):
    """A viewer behind a proxy that blocks websockets: every frame goes through engine.io's queue."""
    # A poll answers with everything queued. Browsers decode any number of packets
    # per poll; python-engineio's client refuses more than 16 and reconnects, and
    # a burst of 200 frames queues more than that between two polls.
    monkeypatch.setattr(engineio.payload.Payload, "max_decode_packets", 1000)
    monitor, session_id, _ = await session_with_viewers(server, clients, 0)
    viewer = Client(server.url)
    clients.append(viewer)
    await viewer.sio.connect(server.url, transports=["polling"], wait_timeout=5)
    await viewer.call("join_session", {"session_id": session_id})
    before = broadcaster(server).stats.fallback
    n = 200
    for i in range(n):
        await monitor.emit("telemetry_update", telemetry(session_id, i))
    received = await viewer.wait_for("telemetry_update", n, timeout=20)
    assert [u["telemetry"]["lap"] for u in received] == list(range(n))
    assert broadcaster(server).stats.fallback - before >= n
    # Closed from the server: engine.io leaves a client-closed poll pending, and
    # python-socketio's client would wait ~30 s for it.
    await server.app.sio.disconnect(viewer.sio.get_sid("/"))
    await eventually(lambda: not viewer.sio.connected, 5)


@pytest.mark.parametrize("settings_changes", [{"websocket_driver": False}, {"websocket_driver": True}], ids=["engineio-writer", "driver"])
async def test_mixed_direct_and_engineio_sends_never_reorder(server_with, clients, settings_changes):
    """Stock emits and the fan-out's direct writes interleave without reordering.

    With engine.io's writer task, stock emits wait on engine.io's queue and the
    fan-out must fall back while they are pending. With the websocket driver,
    engine.io's sends are written at once, so the direct path is always safe.
    """
    server = server_with
    _, session_id, viewers = await session_with_viewers(server, clients, 3)
    b = broadcaster(server)
    sio = server.app.sio
    eio_sids = [eio_sid_of(server, viewer) for viewer in viewers]
    before = b.stats.fallback
    n = 400
    for i in range(n):
        if i % 7 == 0:
            await sio.emit("mark", {"i": i}, room=session_id)  # python-socketio's own path
        elif i % 3 == 0:
            # What that path does per recipient, without yielding: a packet left on
            # engine.io's queue for the writer task, which has not run yet.
            for eio_sid in eio_sids:
                await sio.eio.send(eio_sid, "2" + orjson.dumps(["mark", {"i": i}]).decode())
        else:
            await b.to_room(session_id, "mark", {"i": i})
        if i % 50 == 0:
            await asyncio.sleep(0)  # let writer tasks run at times: both paths get exercised
    for viewer in viewers:
        received = await viewer.wait_for("mark", n, timeout=20)
        assert [m["i"] for m in received] == list(range(n))
    if settings_changes["websocket_driver"]:
        assert b.stats.fallback == before, "a driven websocket never needs the fallback"
    else:
        assert b.stats.fallback > before, "the fallback path was not exercised"
    assert b.stats.direct > 0


async def test_join_catch_up_and_live_frames_keep_order(server, clients):
    monitor, session_id, _ = await session_with_viewers(server, clients, 0)
    await monitor.call("setup_data", {"session_id": session_id, "timestamp": "2025-11-22T17:16:45.160430Z", "setup": sample_setup()})
    viewer = await connect(server, clients)
    joining = asyncio.create_task(viewer.call("join_session", {"session_id": session_id}))
    for i in range(50):
        await monitor.emit("telemetry_update", telemetry(session_id, i))
    await joining
    await eventually(lambda: len(viewer.events["telemetry_update"]) > 0 and viewer.events["telemetry_update"][-1]["telemetry"]["lap"] == 49, 10)
    seqs = [data["seq"] for event, data in viewer.log if event in ("setup_update", "telemetry_update")]
    assert seqs == sorted(set(seqs)), "frames arrived out of order or twice"
    assert viewer.log[0][0] == "setup_update"


async def test_fast_path_can_be_switched_off(io_loop, settings, clients):
    from racedash.server import RacedashServer

    srv = RacedashServer(settings.replace(fast_fanout=False))
    await srv.start()
    try:
        assert isinstance(srv.app.broadcaster, SocketIOBroadcaster)
        monitor, session_id, viewers = await session_with_viewers(srv, clients, 2)
        for i in range(20):
            await monitor.emit("telemetry_update", telemetry(session_id, i))
        for viewer in viewers:
            received = await viewer.wait_for("telemetry_update", 20)
            assert [u["telemetry"]["lap"] for u in received] == list(range(20))
    finally:
        for client in clients:
            await client.close()
        clients.clear()
        await srv.stop()


async def test_websockets_get_tcp_nodelay(server, clients):
    _, _, viewers = await session_with_viewers(server, clients, 1)
    handler = server.app.broadcaster._hook.handlers[eio_sid_of(server, viewers[0])]
    sock = handler.ws_connection.stream.socket
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1


async def test_compressed_viewer_gets_every_frame_in_order(server, clients):
    """Browsers negotiate permessage-deflate; the direct path compresses per connection."""
    monitor, session_id, _ = await session_with_viewers(server, clients, 0)
    ws_url = server.url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket"
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(ws_url, compress=15) as ws:
            assert ws.compress == 15, "permessage-deflate was not negotiated"
            # Without context takeover: one compressed frame per emit serves every such viewer.
            assert ws._response.headers["Sec-WebSocket-Extensions"].count("no_context_takeover") == 2
            assert ws.client_notakeover
            assert (await ws.receive_str(timeout=5)).startswith("0")
            await ws.send_str("40")
            assert (await ws.receive_str(timeout=5)).startswith("40")
            compressors = [h.ws_connection._compressor for h in broadcaster(server)._hook.handlers.values() if h.ws_connection._compressor]
            assert len(compressors) == 1 and compressors[0]._compressor is None, "a per-connection zlib state was kept"
            await ws.send_str("42" + orjson.dumps(["join_session", {"session_id": session_id}]).decode())
            before = broadcaster(server).stats.direct
            n = 50
            for i in range(n):
                await monitor.emit("telemetry_update", telemetry(session_id, i))
            laps = []
            while len(laps) < n:
                msg = await ws.receive_str(timeout=5)
                if msg == "2":
                    await ws.send_str("3")
                elif msg.startswith("42"):
                    event, data = orjson.loads(msg[2:])
                    if event == "telemetry_update":
                        laps.append(data["telemetry"]["lap"])
            assert laps == list(range(n))
            assert broadcaster(server).stats.direct - before >= n // 2


# -- slow consumers -----------------------------------------------------------------------
class RawViewer:
    """A websocket viewer on a plain socket with a tiny receive buffer, which can stop reading."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()

    @classmethod
    async def join(cls, url: str, session_id: str) -> "RawViewer":
        sock, rest = await raw_websocket(url, rcvbuf=4096)
        viewer = cls(sock)
        viewer.buf = rest
        assert (await viewer.next_text()).startswith("0")
        await viewer.send("40")
        assert (await viewer.next_text()).startswith("40")
        await viewer.send("42" + orjson.dumps(["join_session", {"session_id": session_id}]).decode())
        return viewer

    async def send(self, text: str) -> None:
        data = text.encode()
        assert len(data) < 126
        await asyncio.get_running_loop().sock_sendall(self.sock, bytes((0x81, 0x80 | len(data))) + b"\0\0\0\0" + data)

    async def next_text(self) -> str | None:
        """The next text frame; None at end of stream."""
        loop = asyncio.get_running_loop()
        while True:
            frame = self._parse()
            if frame is not None:
                return frame
            chunk = await loop.sock_recv(self.sock, 65536)
            if not chunk:
                return None
            self.buf += chunk

    def _parse(self) -> str | None:
        frame = pop_server_frame(self.buf)
        return frame[1].decode() if frame is not None else None

    async def events(self, name: str, until=lambda data: False, timeout: float = 10):
        """Read events named ``name`` until ``until(data)`` holds; returns them all."""
        got = []

        async def read() -> None:
            while True:
                text = await self.next_text()
                assert text is not None, "connection closed"
                if text == "2":
                    await self.send("3")
                elif text.startswith("42"):
                    event, data = orjson.loads(text[2:])
                    if event == name:
                        got.append(data)
                        if until(data):
                            return

        await asyncio.wait_for(read(), timeout)
        return got

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def settings(settings):
    # Small bounds so the tests fill them in milliseconds; the 60 s figure is the benchmark's.
    # The per-connection rate limit (security) would refuse these bursts: not what is tested here.
    return settings.replace(
        slow_consumer_max_bytes=64 * 1024,
        slow_consumer_disconnect_seconds=30.0,
        events_per_second=100_000.0,
        event_burst=100_000.0,
    )


PAD = "x" * 8000  # extra telemetry fields are kept: fills buffers faster


async def test_slow_viewer_costs_bounded_memory_then_gets_latest_state(server, clients):
    monitor, session_id, (good,) = await session_with_viewers(server, clients, 1)
    b = broadcaster(server)
    known = set(b._hook.handlers)
    slow = await RawViewer.join(server.url, session_id)
    try:
        await eventually(lambda: len(server.app.registry.get(session_id).viewer_sids) == 2)
        (slow_sid,) = set(b._hook.handlers) - known
        stream = b._hook.handlers[slow_sid].ws_connection.stream
        n = 600  # ~5 MB: far beyond the kernel's socket buffers for a 4 KB receive window
        peak = 0
        for i in range(n):
            await monitor.emit("telemetry_update", telemetry(session_id, i, padding=PAD))
            peak = max(peak, len(stream._write_buffer))
            if i % 20 == 0:
                await good.wait_for("telemetry_update", i + 1, timeout=10)
        received = await good.wait_for("telemetry_update", n, timeout=20)
        # The good viewer got everything, in order, while the other one lagged.
        assert [u["telemetry"]["lap"] for u in received] == list(range(n))
        assert slow_sid in b._lagging
        assert b.stats.conflated > 0
        frame_size = len(encode_event("telemetry_update", telemetry(session_id, 0, padding=PAD)))
        assert peak <= b.max_pending_bytes + frame_size + 16, f"unbounded buffer: {peak} bytes"

        # It reads again: it drains what was buffered, then the next emit brings it the latest state.
        await monitor.emit("telemetry_update", telemetry(session_id, n, padding=PAD))
        drained = asyncio.create_task(slow.events("telemetry_update", until=lambda d: d["telemetry"]["lap"] >= n + 1, timeout=20))
        await eventually(lambda: len(stream._write_buffer) <= b.max_pending_bytes // 4, 20)
        await monitor.emit("telemetry_update", telemetry(session_id, n + 1, padding=PAD))
        laps = [d["telemetry"]["lap"] for d in await drained]
        assert laps == sorted(laps) and len(laps) < n, "conflation should have skipped frames"
        assert laps[-2:] == [n, n + 1] or laps[-1] == n + 1
        assert b.stats.caught_up >= 1 and slow_sid not in b._lagging
    finally:
        slow.close()


async def test_slow_viewer_is_disconnected_after_the_grace_time(server, clients):
    b = broadcaster(server)
    b.lag_disconnect_seconds = 0.3
    monitor, session_id, (good,) = await session_with_viewers(server, clients, 1)
    slow = await RawViewer.join(server.url, session_id)
    try:
        await eventually(lambda: len(server.app.registry.get(session_id).viewer_sids) == 2)
        i = 0
        while b.stats.disconnected == 0:
            await monitor.emit("telemetry_update", telemetry(session_id, i, padding=PAD))
            i += 1
            await asyncio.sleep(0.002)  # paces the publisher: the grace time must elapse while it lags
            assert i < 20000, "the lagging viewer was never disconnected"
        # The server closed it: reading now drains to end of stream, and the session forgets it.
        await asyncio.wait_for(_read_to_eof(slow), 20)
        await eventually(lambda: len(server.app.registry.get(session_id).viewer_sids) == 1, 10)
        received = await good.wait_for("telemetry_update", i, timeout=10)
        assert [u["telemetry"]["lap"] for u in received] == list(range(i))
        assert not b._lagging
    finally:
        slow.close()


async def _read_to_eof(viewer: RawViewer) -> None:
    while await viewer.next_text() is not None:
        pass
