"""Replay: re-emit a recording into its own room on its original schedule (docs/protocol.md, "Replay")."""

from racedash.replay.manager import ReplayManager
from racedash.replay.player import Replay, ReplayOptions
from racedash.replay.timing import Clock, LoopClock, Schedule

__all__ = ["Clock", "LoopClock", "Replay", "ReplayManager", "ReplayOptions", "Schedule"]
