"""Runs an engine.io websocket from Tornado's callbacks, without a reader and a writer task per connection.

engine.io's ``_websocket_handler`` keeps two tasks per websocket. The reader
wraps every wait for a message in a new task and ``wait_for`` (a timer, a
waiter and a coroutine each time); the writer waits on the send queue with
``wait_for`` too. While a connection is idle those waiting objects live on,
and each heartbeat replaces them: 47 objects per connection still alive
after a round, every 25 s (``python -m benchmarks.memprofile --heartbeat``).
With thousands of viewers they filled CPython's young generation (the old
ones die as the new are made, so its allocation count hardly moves), and
collecting it took tens of milliseconds: the live stream's latency tail.
Here nothing waits per connection:

* a message is handled from Tornado's ``on_message`` callback: a pong right
  there, anything else by ``AsyncSocket.receive`` in a task that lives while
  that packet (and any that arrived behind it, kept in order) is handled;
* a packet engine.io sends is written at once (:class:`DirectSendQueue`, put
  where engine.io keeps its send queue), as one frame built by racedash;
* closing the engine.io socket, however it happens (client close packet,
  ping timeout found by engine.io's service task, server disconnect), closes
  the websocket (:class:`DrivenSocket`), and the websocket's end closes the
  engine.io socket, as engine.io's handler does when its reader stops.

The polling-to-websocket upgrade (the probe exchange) still awaits its two
packets, as engine.io's handler does; only then does the driver take over.
tests/test_fanout.py pins the engine.io internals this follows.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any

import engineio.async_socket
import engineio.exceptions
import engineio.packet
import tornado.iostream

from racedash.transport.frames import message_frame, send_now

log = logging.getLogger(__name__)

# What an upgraded engine.io v4 client may send; the probe exchange ("2probe", "5") is over
# before the driver reads. UPGRADE is kept because engine.io answers a late one harmlessly.
CLIENT_PACKET_TYPES = frozenset(
    {engineio.packet.CLOSE, engineio.packet.PONG, engineio.packet.MESSAGE, engineio.packet.UPGRADE}
)


class DrivenSocket(engineio.async_socket.AsyncSocket):
    """An engine.io socket run by a :class:`WebSocketDriver`: once it is closed, its websocket closes too."""

    driver: WebSocketDriver | None = None

    async def close(self, wait: bool = True, abort: bool = False, reason: Any = None) -> None:
        await super().close(wait=wait, abort=abort, reason=reason)
        if self.closed and self.driver is not None:
            self.driver.close_transport()


class DirectSendQueue:
    """Stands where engine.io keeps a socket's send queue: a packet put is a packet written."""

    __slots__ = ("_driver",)
    # asyncio.Queue's count of unfinished items, which racedash.fanout reads: a
    # packet is written before put returns, so nothing is ever unfinished.
    _unfinished_tasks = 0

    def __init__(self, driver: WebSocketDriver) -> None:
        self._driver = driver

    def put_nowait(self, packet: Any) -> None:
        self._driver.send(packet)

    async def put(self, packet: Any) -> None:
        self._driver.send(packet)

    def get_nowait(self) -> Any:
        raise asyncio.QueueEmpty  # never holds anything

    def task_done(self) -> None:
        raise ValueError("task_done() called too many times")

    async def join(self) -> None:
        return None


class WebSocketDriver:
    """Runs one engine.io socket's websocket from its Tornado handler's callbacks (see module doc)."""

    __slots__ = ("socket", "handler", "_inbox", "_receiving", "_done", "_closing")

    def __init__(self, socket: Any, handler: Any) -> None:
        self.socket = socket
        self.handler = handler
        self._inbox: deque[str | bytes] | None = None  # not None while a packet is being handled
        self._receiving: asyncio.Task[None] | None = None
        self._done: asyncio.Future[None] | None = None
        self._closing = False

    async def run(self, ws: Any) -> None:
        """engine.io's ``_websocket_handler``: returns when the websocket has ended and the socket is closed."""
        socket = self.socket
        if socket.connected:
            if not await self._upgrade(ws):
                return
        else:
            socket.connected = True
            socket.upgraded = True
        self._done = asyncio.get_running_loop().create_future()
        self._take_over()
        if socket.closed:  # closed while the upgrade was going on (its ping timed out, say)
            self.close_transport()
        try:
            await self._done
        finally:
            self.handler.driver = None
        await socket.close(wait=False, abort=True, reason=socket.server.reason.TRANSPORT_CLOSE)
        socket.driver = None

    # -- upgrade from long-polling --------------------------------------------------------
    async def _upgrade(self, ws: Any) -> bool:
        """The probe exchange of an upgrade, as engine.io does it; False (websocket closed) if it fails."""
        socket = self.socket
        socket.upgrading = True  # the polling transport answers NOOP from now on
        try:
            probe = await self._next_packet(ws)
            if probe is None or probe.packet_type != engineio.packet.PING or probe.data != "probe":
                log.info("%s: failed websocket upgrade, no probe", socket.sid)
                self.close_transport()
                return False
            await ws.send(engineio.packet.Packet(engineio.packet.PONG, data="probe").encode())
            await socket.queue.put(engineio.packet.Packet(engineio.packet.NOOP))  # ends the pending long-poll
            upgrade = await self._next_packet(ws)
            if upgrade is None or upgrade.packet_type != engineio.packet.UPGRADE:
                log.info("%s: failed websocket upgrade, no upgrade packet", socket.sid)
                socket.upgraded = False
                self.close_transport()
                return False
            socket.upgraded = True
            return True
        finally:
            socket.upgrading = False

    async def _next_packet(self, ws: Any) -> Any:
        server = self.socket.server
        try:
            message = await asyncio.wait_for(ws.wait(), server.ping_interval + server.ping_timeout)
        except (OSError, asyncio.TimeoutError):
            return None
        return self._decode(message)

    def _take_over(self) -> None:
        socket, handler = self.socket, self.handler
        queued = socket.queue
        socket.queue = DirectSendQueue(self)
        if type(socket) is engineio.async_socket.AsyncSocket:
            # engine.io's own class with one method extended, as for Tornado's protocol
            # in racedash.transport.handler: engine.io creates its sockets itself.
            socket.__class__ = DrivenSocket
        socket.driver = self
        # What engine.io queued before (the OPEN packet, or what came during the
        # upgrade) goes first, in order.
        while True:
            try:
                packet = queued.get_nowait()
            except asyncio.QueueEmpty:
                break
            self.send(packet)
        handler.driver = self
        received = handler.receive_queue
        while True:
            try:
                message = received.get_nowait()
            except asyncio.QueueEmpty:
                break
            if message is None:  # Tornado already reported the close
                self.transport_closed()
                break
            self.on_message(message)

    # -- engine.io -> client ----------------------------------------------------------------
    def send(self, packet: Any) -> None:
        """Write one engine.io packet now (``None``, engine.io's "stop writing", closes the websocket)."""
        if packet is None:
            self.close_transport()
            return
        connection = self.handler.ws_connection
        if connection is None or connection.is_closing():
            return  # the websocket is ending; its on_close closes the socket
        try:
            send_now(connection.stream, message_frame(connection, packet.encode()))
        except tornado.iostream.StreamClosedError:
            pass  # as above: Tornado reports the close

    # -- client -> engine.io ----------------------------------------------------------------
    def on_message(self, message: str | bytes) -> None:
        """One websocket message from the client, in arrival order (Tornado's ``on_message``)."""
        if self._closing:
            return
        if self._inbox is not None:
            self._inbox.append(message)  # behind the packet being handled
            return
        packet = self._accept(message)
        if packet is None:
            return
        if packet.packet_type == engineio.packet.PONG:
            # All AsyncSocket.receive does with a pong, without a task per heartbeat.
            self.socket.schedule_ping()
            return
        self._inbox = deque()
        self._receiving = asyncio.get_running_loop().create_task(self._receive_in_order(packet))

    async def _receive_in_order(self, packet: Any) -> None:
        socket = self.socket
        try:
            while packet is not None and not self._closing:
                try:
                    await socket.receive(packet)
                except engineio.exceptions.SocketIsClosedError:
                    self.close_transport()
                    return
                except Exception:  # noqa: BLE001 - as engine.io: log, and keep the connection
                    log.exception("%s: error handling a packet", socket.sid)
                packet = self._accept(self._inbox.popleft()) if self._inbox else None
        finally:
            self._inbox = None
            self._receiving = None

    def _decode(self, message: str | bytes) -> Any:
        """The engine.io packet in ``message``, or None (and the websocket closed) if it is refused."""
        if len(message) > self.socket.server.max_http_buffer_size:
            log.info("%s: packet of %d bytes is too large, closing", self.socket.sid, len(message))
            self.close_transport()
            return None
        try:
            return engineio.packet.Packet(encoded_packet=message)
        except Exception:  # noqa: BLE001 - whatever a client sends must not escape
            log.info("%s: undecodable packet, closing", self.socket.sid)
            self.close_transport()
            return None

    def _accept(self, message: str | bytes) -> Any:
        """Like :meth:`_decode`, for an upgraded connection: also refuses what a client never sends."""
        packet = self._decode(message)
        if packet is not None and packet.packet_type not in CLIENT_PACKET_TYPES:
            # engine.io logs these and goes on (types past NOOP even fail in its log
            # line); a client that breaks the protocol is closed instead, so that it
            # cannot fill the log one packet at a time.
            log.info("%s: packet type %s is not one a client sends, closing", self.socket.sid, packet.packet_type)
            self.close_transport()
            return None
        return packet

    # -- the end --------------------------------------------------------------------------------
    def close_transport(self) -> None:
        """Close the websocket (a close frame; Tornado aborts it if the client does not answer)."""
        if self._closing:
            return
        self._closing = True
        self.handler.close()

    def transport_closed(self) -> None:
        """The websocket has ended (Tornado's ``on_close``): let :meth:`run` close the socket."""
        self._closing = True
        if self._done is not None and not self._done.done():
            self._done.set_result(None)
