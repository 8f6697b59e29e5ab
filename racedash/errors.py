"""racedash's exception hierarchy.

Errors are raised inside with a machine ``code`` and a human message and are
translated at the edge: an error ack to a Socket.IO client, an HTTP status to a
browser, a message and exit status on the command line. The codes are part of
the wire contract (see docs/protocol.md).
"""

from __future__ import annotations


class RacedashError(Exception):
    """Base class; ``code`` is the machine-readable error sent to clients."""

    code = "error"
    http_status = 400

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def to_ack(self) -> dict:
        return {"ok": False, "error": self.code, "message": self.message}


class InvalidPayload(RacedashError):
    """The payload is absent, not an object, or a field has the wrong type."""

    code = "invalid_payload"


class MissingField(InvalidPayload):
    code = "missing_field"


class WrongType(InvalidPayload):
    code = "wrong_type"


class InvalidSessionId(RacedashError):
    """The session id is not a well-formed UUID."""

    code = "invalid_session_id"


class NotPublisher(RacedashError):
    """The connection has no right to publish into this session."""

    code = "not_publisher"
    http_status = 403


class LimitExceeded(RacedashError):
    """A configured limit (size, rate, count) was exceeded."""

    code = "limit_exceeded"
    http_status = 429


class InternalError(RacedashError):
    code = "internal_error"
    http_status = 500


class UnknownRecording(RacedashError):
    """No recording exists for this (well-formed) session id."""

    code = "unknown_recording"
    http_status = 404
