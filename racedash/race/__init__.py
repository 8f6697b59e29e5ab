"""The race model: what an engineer reasons with, derived once on the server from a session's stream.

``model`` (pure, incremental: laps, stints, pit stops, driver and setup
changes), ``strategy`` (fuel and pace arithmetic), ``alerts``, ``units`` (what
the monitor's numbers mean), ``setupdiff``. See docs/protocol.md, "Race model".
"""

from racedash.race.model import EVENT_NAMES, RaceModel, RaceOptions, events_after, tables_until

__all__ = ["EVENT_NAMES", "RaceModel", "RaceOptions", "events_after", "tables_until"]
