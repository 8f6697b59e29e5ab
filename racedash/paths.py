"""Where the UI's templates and static files are, in a checkout or an installed wheel."""

from __future__ import annotations

import sys
from pathlib import Path

_CHECKOUT = Path(__file__).resolve().parent.parent
_INSTALLED = Path(sys.prefix) / "share" / "racedash"


def _asset_dir(name: str) -> Path:
    for root in (_CHECKOUT, _INSTALLED):
        candidate = root / name
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"racedash's {name}/ directory is missing from {_CHECKOUT} and {_INSTALLED}")


def static_dir() -> Path:
    return _asset_dir("static")


def templates_dir() -> Path:
    return _asset_dir("templates")
