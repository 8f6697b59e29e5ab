"""Replay errors: typed, with the machine codes clients see (docs/protocol.md, "Replay")."""

from __future__ import annotations

from racedash.errors import LimitExceeded, RacedashError, UnknownRecording

__all__ = [
    "BadRecording",
    "InvalidControl",
    "ReplayError",
    "ReplayStopped",
    "TeamAccessRequired",
    "TooManyReplays",
    "UnknownLap",
    "UnknownRecording",  # the recordings' own error, re-exported: one code, one class
    "UnknownReplay",
]


class ReplayError(RacedashError):
    code = "replay_error"


class BadRecording(ReplayError):
    """The recording's header is missing, unreadable or of another format or version."""

    code = "bad_recording"
    http_status = 422


class UnknownReplay(ReplayError):
    code = "unknown_replay"
    http_status = 404


class ReplayStopped(ReplayError):
    """The replay existed but was stopped (by a control or for lack of viewers)."""

    code = "replay_stopped"
    http_status = 410


class InvalidControl(ReplayError):
    """An unknown action, or a missing or out-of-range time, lap or speed."""

    code = "invalid_control"


class UnknownLap(ReplayError):
    code = "unknown_lap"
    http_status = 404


class TooManyReplays(LimitExceeded):
    code = "too_many_replays"


class TeamAccessRequired(ReplayError):
    """Replaying a recording is for the team (docs/security.md): log in first."""

    code = "team_required"
    http_status = 401
