"""Socket.IO packets whose JSON is decoded by orjson.

python-socketio decodes every inbound event with the standard ``json``
module; orjson parses the same text several times faster. Where orjson
refuses what ``json`` accepts (NaN and Infinity, lone surrogates, huge
exponents) the standard parser decides, and so it does for any text with a
run of 19 or more digits, since orjson turns integers beyond 64 bits into
floats without a word. So every payload decodes exactly as before and
validation still reports the bad values with a clear error. Given to the server as its ``serializer``: only
racedash's server uses it, nothing module-wide changes.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson
import socketio.packet


_MAYBE_BEYOND_64_BITS = re.compile(r"\d{19}")


class _FastJson:
    """The ``dumps``/``loads`` pair python-socketio asks of a json module."""

    dumps = staticmethod(json.dumps)  # acks and errors only; frames are encoded by racedash.fanout

    @staticmethod
    def loads(text: str, **kwargs: Any) -> Any:
        if _MAYBE_BEYOND_64_BITS.search(text) is None:
            try:
                return orjson.loads(text)
            except orjson.JSONDecodeError:
                pass
        return json.loads(text, **kwargs)


class FastJsonPacket(socketio.packet.Packet):
    json = _FastJson
