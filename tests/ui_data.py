"""Telemetry and setups for the browser tests, built from the real samples in tests/data."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta, timezone

from tests.helpers import sample_setup, sample_telemetry_payloads

BASE_TIME = datetime(2025, 11, 22, 17, 0, 0, tzinfo=timezone.utc)
BRAKES_C = {"fl": 450.0, "fr": 460.0, "rl": 800.0, "rr": 150.0}  # against the 200–750 °C window: ok, ok, hot, cold


def iso(seconds: float) -> str:
    """The monitor's timestamp format: naive UTC plus Z."""
    return (BASE_TIME + timedelta(seconds=seconds)).replace(tzinfo=None).isoformat() + "Z"


def garage_frame(session_id: str) -> dict:
    """The first real sample: car in the garage, unknown temperatures and pressures, negative lap time."""
    telemetry = copy.deepcopy(sample_telemetry_payloads()[0]["telemetry"])
    telemetry["timestamp"] = iso(-30.0)  # before the stint() frames
    return {"session_id": session_id, "telemetry": telemetry}


def lap_seconds(lap: int) -> float:
    return 90.0 + 0.5 * lap  # lap 1 is the best: 1:30.500


def stint(session_id: str, first_lap: int, last_lap: int, *, per_lap: int = 4, fuel_per_lap: float = 3.0,
          start_fuel: float = 60.0, position: int = 3) -> list[dict]:
    """``telemetry_update`` payloads for laps first_lap..last_lap: ``per_lap`` frames per lap,
    the first one 0.1 s after the line; fuel falls by ``fuel_per_lap`` per lap."""
    template = sample_telemetry_payloads()[0]["telemetry"]
    frames = []
    t0 = sum(lap_seconds(n) for n in range(1, first_lap))
    for lap in range(first_lap, last_lap + 1):
        length = lap_seconds(lap)
        for k in range(per_lap):
            into = 0.1 + k * (length / per_lap)
            done = lap - 1 + k / per_lap
            tel = copy.deepcopy(template)
            tel.update(
                timestamp=iso(t0 + into),
                lap=lap,
                position=position,
                lap_time=into,
                fuel=round(start_fuel - fuel_per_lap * done, 4),
                fuel_capacity=75.0,
                tire_temps={"fl": 86.0, "fr": 88.0, "rl": 60.0, "rr": 104.0},
                tire_pressures={"fl": 175.0, "fr": 176.0, "rl": 150.0, "rr": 172.0},
                tire_wear={"fl": 0.9, "fr": 0.88, "rl": 0.35, "rr": 0.1},
                brake_temps={c: t + 273.15 for c, t in BRAKES_C.items()},  # Kelvin, as the monitor sends them
                engine_water_temp=88.0,
                speed=200.0 + k,
                gear=5,
                rpm=7800.0,
            )
            frames.append({"session_id": session_id, "telemetry": tel})
        t0 += length
    return frames


def pit_stop(session_id: str, lap: int, *, fuel_per_lap: float = 3.0, start_fuel: float = 60.0, refuel: float = 30.0,
             position: int = 3) -> list[dict]:
    """A pit stop at the end of ``lap``, carrying on from ``stint(..., last_lap=lap)``'s last frame:
    stopped (speed 0), refuelled by ``refuel`` litres, rolling down the pit lane, then back at speed,
    3 s apart (lap_time counting on: the stop is part of the lap). The race model
    (racedash/race/model.py) sees a stop in a frame under 1 km/h on a timed lap, its service in
    fuel going up by more than 0.3 L between frames, and its end in the first frame above 65 km/h.
    Its last frame is before the next lap's first stint() frame."""
    last = stint(session_id, lap, lap, fuel_per_lap=fuel_per_lap, start_fuel=start_fuel, position=position)[-1]
    fuel = last["telemetry"]["fuel"]
    t = (datetime.fromisoformat(last["telemetry"]["timestamp"].rstrip("Z")).replace(tzinfo=timezone.utc) - BASE_TIME)
    steps = [(0.0, fuel), (0.0, fuel), (0.0, fuel + refuel), (40.0, fuel + refuel), (150.0, fuel + refuel)]
    frames = []
    for k, (speed, litres) in enumerate(steps, start=1):
        tel = copy.deepcopy(last["telemetry"])
        tel.update(timestamp=iso(t.total_seconds() + 3.0 * k), lap_time=last["telemetry"]["lap_time"] + 3.0 * k,
                   speed=speed, fuel=round(litres, 4), gear=0 if speed == 0 else 2)
        frames.append({"session_id": session_id, "telemetry": tel})
    return frames


def setup_payload(session_id: str, setup: dict | None = None, seconds: float = 0.0) -> dict:
    return {"session_id": session_id, "timestamp": iso(seconds), "setup": setup if setup is not None else sample_setup()}


def changed_setup() -> dict:
    """The sample setup with the brake balance moved one click and the front-left pressure raised."""
    setup = sample_setup()
    values = setup["carSetup"]["garageValues"]
    values["VM_BRAKE_BALANCE"].update(stringValue="56.0:44.0", value=12)
    values["WM_PRESSURE-W_FL"].update(stringValue="138 kPa", value=values["WM_PRESSURE-W_FL"]["value"] + 3)
    return setup
