"""The versions of the stack whose internals racedash.transport and racedash.fanout were verified against."""

from __future__ import annotations

from importlib import metadata

VERIFIED_VERSIONS = {"python-socketio": "5.18.1", "python-engineio": "4.15.1", "tornado": "6.6.1"}


def installed_versions() -> dict[str, str]:
    return {name: metadata.version(name) for name in VERIFIED_VERSIONS}


def versions_verified() -> bool:
    return installed_versions() == VERIFIED_VERSIONS
