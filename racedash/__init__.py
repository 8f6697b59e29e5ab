"""racedash: live race telemetry with record and replay."""

__version__ = "0.1.0"

__all__ = ["__version__"]
