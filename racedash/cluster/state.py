"""A session's state shared through Redis: its recent frames and who may write them.

Keys, all under the deployment's prefix ``p``:

* ``p s:<id>:frames`` — a Stream of the session's recent frames, entry id
  ``<seq>-0``, capped (``MAXLEN ~``) at the ring size: what a process taking a
  session up reads after the recording (frames the owner acknowledged but had
  not flushed to the file yet), and what fills a gap in the frame channel.
  One field, ``m``: the frame's message exactly as published on its channel
  (racedash.cluster.roombus), so the frame crosses to Redis once.
* ``p s:<id>:owner`` — the writer lease, ``<node>:<fencing token>``, with a TTL
  the owner renews. Only its holder stamps frames and appends to the recording.
* ``p s:<id>:fence`` — the counter the fencing tokens come from.

A frame enters the stream and its channel (``p f:<id>``) in one script, and only while
the writer's lease is still its own: a process that lost its lease (it
stalled past the TTL and another took over) can no longer add frames.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis import asyncio as aioredis

from racedash.sessions import Frame

# A lease found missing (Redis restarted empty, or it expired while Redis was away and nobody
# took it) is taken back by its holder: only another process's lease refuses.

# KEYS: owner, frames stream, frame channel.
# ARGV: lease, entry id (<seq>-0), maxlen, the frame's message, ttl ms.
_APPEND = """
local held = redis.call('GET', KEYS[1])
if held ~= ARGV[1] then
  if held then return 0 end
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[5])
end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], ARGV[2], 'm', ARGV[4])
redis.call('PUBLISH', KEYS[3], ARGV[4])
return 1
"""

# KEYS: owner, fence. ARGV: node, ttl ms. The lease if it is free or already this node's.
_ACQUIRE = """
local held = redis.call('GET', KEYS[1])
if held and string.sub(held, 1, string.len(ARGV[1]) + 1) ~= ARGV[1] .. ':' then return false end
local lease = ARGV[1] .. ':' .. redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], lease, 'PX', ARGV[2])
return lease
"""

# KEYS: owner. ARGV: lease, ttl ms (0: release).
_RENEW = """
local held = redis.call('GET', KEYS[1])
if ARGV[2] == '0' then
  if held == ARGV[1] then redis.call('DEL', KEYS[1]) end
  return 1
end
if held and held ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""


@dataclass(frozen=True)
class Keys:
    prefix: str

    def owner(self, session_id: str) -> str:
        return f"{self.prefix}s:{session_id}:owner"

    def fence(self, session_id: str) -> str:
        return f"{self.prefix}s:{session_id}:fence"

    def frames(self, session_id: str) -> str:
        return f"{self.prefix}s:{session_id}:frames"

    def room(self, room: str) -> str:
        return f"{self.prefix}room:{room}"

    def frame_channel(self, session_id: str) -> str:
        return f"{self.prefix}f:{session_id}"


class SharedState:
    def __init__(self, redis: aioredis.Redis, prefix: str, node: str, *, lease_ms: int = 5000, ring_frames: int = 1200) -> None:
        self.redis = redis
        self.keys = Keys(prefix)
        self.node = node
        self.lease_ms = lease_ms
        self.ring_frames = ring_frames
        self.append_script = redis.register_script(_APPEND)
        self._acquire = redis.register_script(_ACQUIRE)
        self._renew = redis.register_script(_RENEW)

    async def owner(self, session_id: str) -> str | None:
        held = await self.redis.get(self.keys.owner(session_id))
        return held.decode() if held is not None else None

    def is_mine(self, lease: str | None) -> bool:
        return lease is not None and lease.startswith(f"{self.node}:")

    async def acquire(self, session_id: str) -> str | None:
        """The writer lease (this node's), or None while another process holds it."""
        lease = await self._acquire(keys=[self.keys.owner(session_id), self.keys.fence(session_id)],
                                    args=[self.node, self.lease_ms])
        return lease.decode() if lease else None

    async def renew(self, leases: dict[str, str]) -> dict[str, bool]:
        """Extend every lease of ``leases`` (session id → lease); which are still this node's."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for session_id, lease in leases.items():
                await self._renew(keys=[self.keys.owner(session_id)], args=[lease, self.lease_ms], client=pipe)
            results = await pipe.execute()
        return {session_id: bool(ok) for session_id, ok in zip(leases, results)}

    async def release(self, session_id: str, lease: str) -> None:
        await self._renew(keys=[self.keys.owner(session_id)], args=[lease, 0])

    def append_args(self, session_id: str, lease: str, frame: Frame, message: bytes) -> tuple[list, list]:
        """(keys, args) of the fenced append of one frame (run by the room bus, in emit order).

        ``message``: the frame as its channel carries it (racedash.cluster.roombus), also the stream entry.
        """
        return (
            [self.keys.owner(session_id), self.keys.frames(session_id), self.keys.frame_channel(session_id)],
            [lease, b"%d-0" % frame.seq, self.ring_frames, message, self.lease_ms],
        )

    async def last_seq(self, session_id: str) -> int:
        """The seq of the stream's newest frame (0: none)."""
        entries = await self.redis.xrevrange(self.keys.frames(session_id), count=1)
        return int(entries[0][0].split(b"-", 1)[0]) if entries else 0

    async def frames_after(self, session_id: str, seq: int) -> list[Frame]:
        """The stream's frames with a seq above ``seq``, in order."""
        entries = await self.redis.xrange(self.keys.frames(session_id), min=f"({seq}-0" if seq > 0 else "-")
        return [frame_of(entry_id, fields) for entry_id, fields in entries]


def frame_of(entry_id: bytes, fields: dict[bytes, bytes]) -> Frame:
    message = fields.get(b"m")
    if message is not None:  # <origin>\nF\n<seq>\n<kind>\n<received>\n<tail_at>\n<JSON>
        _origin, _f, _seq, kind, received, tail_at, data_json = message.split(b"\n", 6)
        return Frame(seq=int(entry_id.split(b"-", 1)[0]), kind=kind.decode(), received=float(received),
                     data_json=data_json, tail_at=int(tail_at))
    # An entry of an earlier version: one field per part.
    return Frame(
        seq=int(entry_id.split(b"-", 1)[0]),
        kind=fields[b"k"].decode(),
        received=float(fields[b"t"]),
        data_json=fields[b"d"],
        tail_at=int(fields[b"a"]),
    )
