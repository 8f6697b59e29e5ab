"""How racedash plugs into engine.io's Tornado transport: what one connection costs.

A public broadcast brings thousands of viewers to one process, each holding a
connection that is idle between frames. engine.io's Tornado driver gives every
connection objects sized for a busy one; racedash replaces the heavy ones with
smaller equivalents, per server (engine.io's driver table is copied, nothing
module-wide is patched):

* :class:`LeanQueue` stands in for ``asyncio.Queue`` as engine.io's send queue
  and the Tornado handler's receive queue. ``asyncio.Queue`` allocates four
  deques (about 2.5 KB) up front; an idle connection's queues are empty. Its
  ``get`` is a plain future, so engine.io's ``wait_for(queue.get(), ...)``
  parks no extra task per idle connection.
* :func:`translate_request` builds the WSGI-style environ engine.io and
  python-socketio read, without defining a new class per request (2.5 KB
  each, kept alive by the environ python-socketio stores for every
  connection), without constant entries nobody reads, with interned keys.
* :class:`WebSocketHook` keeps each websocket's Tornado handler by engine.io
  sid (the fan-out writes to it), drops what only the handshake needed, and
  sets ``TCP_NODELAY``: neither Tornado nor engine.io does, and Nagle's
  algorithm with delayed ACKs holds small frames back by tens of milliseconds.
* :class:`PingWheel` sends every connection's heartbeat pings from one task
  instead of a task per connection re-created every ping interval.
* :class:`WebSocketDriver` runs each websocket from Tornado's callbacks
  instead of engine.io's reader and writer tasks: an idle connection keeps
  no task, timer or future of its own waiting, and a heartbeat creates none.
* :func:`receive_frames` (``OneReadProtocol``) reads a websocket's frames with
  one pending read per connection instead of Tornado's read per frame piece,
  which made the stream re-register with the selector for every message.
* :func:`socketio_handler` negotiates permessage-deflate *without context
  takeover*: every message is compressed on its own, so the fan-out compresses
  a frame once per room instead of once per viewer, and a browser connection
  keeps no zlib state (a persistent compressor is ~256 KB per connection).

One module per piece; tests/test_fanout.py pins the engine.io and Tornado
internals they rely on.
"""

from racedash.transport.driver import DirectSendQueue, DrivenSocket, WebSocketDriver
from racedash.transport.environ import RequestBody, translate_request
from racedash.transport.handler import (
    NoContextTakeoverProtocol,
    OneReadProtocol,
    socketio_handler,
    without_context_takeover,
)
from racedash.transport.pings import PingWheel
from racedash.transport.queues import LeanQueue
from racedash.transport.reader import receive_frames
from racedash.transport.websocket import WebSocketHook, forget_handshake

__all__ = [
    "DirectSendQueue",
    "DrivenSocket",
    "LeanQueue",
    "NoContextTakeoverProtocol",
    "OneReadProtocol",
    "PingWheel",
    "RequestBody",
    "WebSocketDriver",
    "WebSocketHook",
    "forget_handshake",
    "receive_frames",
    "socketio_handler",
    "translate_request",
    "without_context_takeover",
]
