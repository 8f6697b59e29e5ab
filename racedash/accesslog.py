"""Tornado's per-request log line, off by default and never carrying a secret.

At the default level a request is logged only when the server failed it (5xx):
one line per request drowns what matters (the start banner, a disk problem).
With ``access_log`` on (or ``--log-level debug``) every request is logged, but
the line holds the path without its query string (``/login?token=…`` carries
the team token) and every session id cut to its first 8 characters: a
dashboard URL is its session's secret.
"""

from __future__ import annotations

import logging
import re
from typing import Callable

import tornado.web

access_log = logging.getLogger("tornado.access")

_SESSION_ID = re.compile(r"([0-9a-fA-F]{8})-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def redact_path(uri: str) -> str:
    """The request path as it may be logged: no query, ids shortened."""
    path = uri.split("?", 1)[0]
    return _SESSION_ID.sub(r"\1…", path)


def make_log_function(enabled: bool) -> Callable[[tornado.web.RequestHandler], None]:
    def log_request(handler: tornado.web.RequestHandler) -> None:
        status = handler.get_status()
        if status >= 500:
            level = logging.ERROR
        elif not enabled:
            return
        elif status >= 400:
            level = logging.WARNING
        else:
            level = logging.INFO
        request = handler.request
        access_log.log(
            level,
            "%d %s %s (%s) %.2fms",
            status,
            request.method,
            redact_path(request.uri or ""),
            request.remote_ip,
            1000.0 * request.request_time(),
        )

    return log_request
