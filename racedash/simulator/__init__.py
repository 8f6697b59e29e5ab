"""A simulated endurance stint published through the real monitor contract.

``model`` is the pure, seeded stint; ``setup_sheet`` the generated setup;
``publisher`` the monitor-like Socket.IO client; ``runner`` what the
``simulate`` and ``demo`` commands run.
"""

from racedash.simulator.model import LapRecord, Publication, StintConfig, StintModel, run_stint
from racedash.simulator.publisher import Fleet, SimulatedMonitor, SimulationOptions, build_monitors

__all__ = [
    "Fleet",
    "LapRecord",
    "Publication",
    "SimulatedMonitor",
    "SimulationOptions",
    "StintConfig",
    "StintModel",
    "build_monitors",
    "run_stint",
]
