"""A generated car setup with the shape of the game's "car setup overview".

The payload mirrors the real one: ``carSetup.garageValues`` maps a setting key
to ``{key, stringValue, value, minValue, maxValue, available, ...}`` (plus two
non-setting entries, ``gearGraph`` and ``symmetric``, as the game sends them),
next to ``currentWeather``, ``racePosition``, ``teamInfo`` and friends. The
values are racedash's own, drawn from a seeded random generator; the stored
index ``value`` and the displayed ``stringValue`` always agree, because both
come from one formatter per setting.
"""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass
from typing import Callable

Formatter = Callable[[int], str]
CORNERS = ("FL", "FR", "RL", "RR")


@dataclass(frozen=True)
class SettingSpec:
    key: str
    max_value: int
    fmt: Formatter
    default: tuple[int, int]  # the seeded value is drawn from this inclusive range
    available: bool = True
    caption: str | None = None


def _const(text: str) -> Formatter:
    return lambda v: text


def _choices(*names: str) -> Formatter:
    return lambda v: names[min(v, len(names) - 1)]


def _plain(offset: int = 1) -> Formatter:
    return lambda v: str(v + offset)


def _soft(v: int) -> str:
    return "1 (soft)" if v == 0 else str(v + 1)


def brake_balance_text(v: int) -> str:
    front = 45.0 + 0.5 * v
    return f"{front:.1f}:{100 - front:.1f}"


def brake_balance_front(v: int) -> float:
    """Share of braking force on the front axle for setting index ``v``."""
    return (45.0 + 0.5 * v) / 100


def pressure_kpa(v: int) -> float:
    return 130.0 + v


_GEARS = ("2.62 (9.01)", "2.04 (7.02)", "1.70 (5.85)", "1.44 (4.95)", "1.26 (4.33)", "1.13 (3.89)", "1.03 (3.54)")


def _specs(fuel_capacity: float, burn_per_lap: float) -> list[SettingSpec]:
    na = _const("N/A")
    specs = [
        SettingSpec("VM_ANTILOCKBRAKESYSTEMMAP", 1, na, (0, 0)),
        SettingSpec("VM_ANTILOCK_BRAKES", 1, na, (0, 0)),
        SettingSpec("VM_BRAKE_BALANCE", 45, brake_balance_text, (16, 22)),
        SettingSpec("VM_BRAKE_DUCTS", 5, _choices("Open", "20%", "40%", "60%", "80%", "Closed"), (0, 2)),
        SettingSpec("VM_BRAKE_DUCTS_REAR", 5, _choices("Open", "20%", "40%", "60%", "80%", "Closed"), (1, 3)),
        SettingSpec("VM_BRAKE_MIGRATION", 6, lambda v: f"{v * 0.5:.1f}% F", (1, 4)),
        SettingSpec(
            "VM_BRAKE_PRESSURE", 81, lambda v: f"{40 + v} kgf ({round((40 + v) / 1.2)}%)", (40, 60), caption="MAX PEDAL FORCE"
        ),
    ]
    specs += [SettingSpec(f"VM_CHASSIS_ADJ_{i:02d}", 1, na, (0, 0)) for i in range(12)]
    specs += [
        SettingSpec("VM_DIFF_COAST", 19, lambda v: f"{5 + 5 * v}%", (6, 12)),
        SettingSpec("VM_DIFF_POWER", 19, lambda v: f"{5 + 5 * v}%", (4, 9)),
        SettingSpec("VM_DIFF_PRELOAD", 61, lambda v: f"{5 * v} Nm", (6, 14)),
        SettingSpec("VM_DIFF_PUMP", 1, na, (0, 0)),
        SettingSpec("VM_ELECTRIC_MOTOR_MAP", 1, na, (0, 0)),
        SettingSpec("VM_ENGINE_BOOST", 1, na, (0, 0)),
        SettingSpec("VM_ENGINE_BRAKEMAP", 1, na, (0, 0)),
        SettingSpec("VM_ENGINE_MIXTURE", 2, _choices("Full", "Race", "Lean"), (0, 1)),
    ]
    for axle, wing in (("FRONT", "Standard"), ("REAR", None)):
        specs += [
            SettingSpec(f"VM_{axle}_3RD_FASTBUMP", 12, _soft, (0, 3)),
            SettingSpec(f"VM_{axle}_3RD_FASTREBOUND", 12, _soft, (0, 3)),
            SettingSpec(f"VM_{axle}_3RD_PACKERS", 26, lambda v: f"{v * 0.1:.1f} cm", (0, 12)),
            SettingSpec(f"VM_{axle}_3RD_SLOWBUMP", 12, _soft, (0, 4)),
            SettingSpec(f"VM_{axle}_3RD_SLOWREBOUND", 12, _soft, (0, 4)),
            SettingSpec(f"VM_{axle}_3RD_SPRING", 16, _plain(0), (1, 7)),
            SettingSpec(f"VM_{axle}_3RD_TENDERSPRING", 1, _const("Detached"), (0, 0)),
            SettingSpec(f"VM_{axle}_3RD_TENDERSPRINGTRAVEL", 1, _const("Detached"), (0, 0)),
            SettingSpec(f"VM_{axle}_ANTISWAY", 17 if axle == "FRONT" else 13, lambda v: f"P{v}", (4, 10)),
            SettingSpec(f"VM_{axle}_DIFF_COAST", 1, _const("0%"), (0, 0)),
            SettingSpec(f"VM_{axle}_DIFF_POWER", 1, _const("0%"), (0, 0)),
            SettingSpec(f"VM_{axle}_DIFF_PRELOAD", 1, _const("1"), (0, 0)),
            SettingSpec(f"VM_{axle}_DIFF_PUMP", 1, _const("0%"), (0, 0)),
            SettingSpec(f"VM_{axle}_TIRE_COMPOUND", 2, _choices("Soft", "Medium", "Hard"), (1, 1)),
            SettingSpec(f"VM_{axle}_TOEIN", 33, lambda v: f"{(v - 16) * 0.06:.2f} deg", (12, 18)),
            SettingSpec(f"VM_{axle}_TOEOFFSET", 1, na, (0, 0)),
            SettingSpec(f"VM_{axle}_WHEEL_TRACK", 1, _const("Non-adjustable"), (0, 0)),
            SettingSpec(
                f"VM_{axle}_WING", 18 if wing is None else 1, _const(wing) if wing else (lambda v: f"P{v + 1}"), (0, 0) if wing else (8, 14)
            ),
        ]
    specs += [
        SettingSpec(
            "VM_FUEL_CAPACITY", 1, _const(f"{fuel_capacity:.1f}L ({fuel_capacity / burn_per_lap:.1f} laps)"), (0, 0)
        ),
        SettingSpec("VM_FUEL_LEVEL", 100, lambda v: f"{v / 100:.2f}", (40, 60)),
    ]
    specs += [SettingSpec(f"VM_GEAR_{i + 1}", 1, _const(ratio), (0, 0)) for i, ratio in enumerate(_GEARS)]
    specs += [SettingSpec(f"VM_GEAR_{i}", 1, na, (0, 0), available=False) for i in (8, 9)]
    specs += [
        SettingSpec("VM_GEAR_AUTODOWNSHIFT", 1, _choices("Off", "On"), (0, 0)),
        SettingSpec("VM_GEAR_AUTOUPSHIFT", 1, _choices("Off", "On"), (0, 0)),
        SettingSpec("VM_GEAR_FINAL", 1, _const("3.44:1"), (0, 0)),
        SettingSpec("VM_GEAR_REVERSE", 1, _const("2.38 (8.19)"), (0, 0)),
    ]
    specs += [SettingSpec(f"VM_GEAR_UPSHIFT_RPM_{i}", 1, na, (0, 0), available=False) for i in range(1, 9)]
    specs += [
        SettingSpec("VM_HANDBRAKE_PRESSURE", 1, na, (0, 0)),
        SettingSpec("VM_HANDFRONTBRAKE_PRESSURE", 1, _const("0%"), (0, 0)),
        SettingSpec("VM_LEFT_CASTER", 1, _const("Non-adjustable"), (0, 0)),
        SettingSpec("VM_LEFT_FENDER_FLARE", 1, na, (0, 0), caption="FENDER FLARE"),
        SettingSpec("VM_LEFT_TRACK_BAR", 1, na, (0, 0)),
        SettingSpec("VM_NUM_PITSTOPS", 4, _const(" "), (0, 0)),
    ]
    specs += [SettingSpec(f"VM_PITSTOP_{i}", 116, na, (98, 98)) for i in (1, 2, 3)]
    specs += [
        SettingSpec("VM_OIL_RADIATOR", 5, _choices("No tape", "20%", "40%", "60%", "80%", "100%"), (0, 1), caption="OIL RAD"),
        SettingSpec("VM_RATIO_SET", 2, _choices("Short", "Medium", "Long"), (1, 2)),
        SettingSpec("VM_REGEN_LEVEL", 1, na, (0, 0)),
        SettingSpec("VM_REV_LIMITER", 1, _const("9,000"), (0, 0)),
        SettingSpec("VM_RIGHT_CASTER", 1, _const("Non-adjustable"), (0, 0)),
        SettingSpec("VM_RIGHT_FENDER_FLARE", 1, na, (0, 0), caption="FENDER FLARE"),
        SettingSpec("VM_RIGHT_TRACK_BAR", 1, na, (0, 0)),
        SettingSpec("VM_STEER_LOCK", 1, _const("380 (14.0) deg"), (0, 0), caption="STEER LOCK"),
        SettingSpec("VM_TORQUE_SPLIT", 1, _const(" 0.0:100.0"), (0, 0)),
        SettingSpec("VM_TRACTIONCONTROLMAP", 12, _plain(0), (4, 8)),
        SettingSpec("VM_TRACTIONCONTROLPOWERCUTMAP", 12, _plain(0), (4, 8)),
        SettingSpec("VM_TRACTIONCONTROLSLIPANGLEMAP", 12, _plain(0), (4, 8)),
        SettingSpec("VM_TRACTION_CONTROL", 1, _const("Available"), (0, 0)),
        SettingSpec("VM_VIRTUAL_ENERGY", 1, na, (0, 0)),
        SettingSpec("VM_WATER_RADIATOR", 5, _choices("No tape", "20%", "40%", "60%", "80%", "100%"), (0, 1), caption="WATER RAD"),
        SettingSpec("VM_WEIGHT_DISTRIB", 1, _const("Non-adjustable"), (0, 0)),
        SettingSpec("VM_WEIGHT_LATERAL", 1, _const("Non-adjustable"), (0, 0)),
        SettingSpec("VM_WEIGHT_VERTICAL", 1, _const("Non-adjustable"), (0, 0)),
        SettingSpec("VM_WEIGHT_WEDGE", 1, na, (0, 0)),
    ]
    for c in CORNERS:
        front = c.startswith("F")
        specs += [
            SettingSpec(f"WM_BRAKEDISC-W_{c}", 1, _const("3.60 cm" if front else "3.20 cm"), (0, 0)),
            SettingSpec(f"WM_BRAKEPAD-W_{c}", 1, _const("1"), (0, 0)),
            SettingSpec(f"WM_CAMBER-W_{c}", 31 if front else 21, lambda v: f"{-4.0 + 0.1 * v:.1f} deg", (10, 20)),
            SettingSpec(f"WM_COMPOUND-W_{c}", 2, _choices("Soft", "Medium", "Hard"), (1, 1)),
            SettingSpec(f"WM_FASTBUMP-W_{c}", 12, _soft, (0, 4)),
            SettingSpec(f"WM_FASTREBOUND-W_{c}", 12, _soft, (0, 4)),
            SettingSpec(f"WM_PACKERS-W_{c}", 21 if front else 26, lambda v: f"{v * 0.1:.1f} cm", (0, 8)),
            SettingSpec(f"WM_PRESSURE-W_{c}", 36, lambda v: f"{pressure_kpa(v):.0f} kPa", (2, 8)),
            SettingSpec(f"WM_RIDEHEIGHT-W_{c}", 31 if front else 26, lambda v: f"{4.0 + 0.1 * v:.1f} cm", (8, 20)),
            SettingSpec(f"WM_SLOWBUMP-W_{c}", 12, _soft, (0, 4)),
            SettingSpec(f"WM_SLOWREBOUND-W_{c}", 12, _soft, (0, 4)),
            SettingSpec(f"WM_SPRING-W_{c}", 10 if front else 9, _plain(1), (2, 6)),
            SettingSpec(f"WM_SRUBBER-W_{c}", 1, _const("Detached"), (0, 0)),
            SettingSpec(f"WM_TENDERSPRING-W_{c}", 1, _const("Detached"), (0, 0)),
            SettingSpec(f"WM_TENDERSPRINGTRAVEL-W_{c}", 1, _const("Detached"), (0, 0)),
        ]
    return specs


def _name_bytes(name: str, width: int = 32) -> list[int]:
    """The game reports driver names as NUL-padded byte arrays; so do we."""
    raw = list(name.encode("utf-8")[: width - 1])
    return raw + [0] * (width - len(raw))


class SetupSheet:
    """A car's setup: seeded values, changes counted, rendered as the game's JSON."""

    def __init__(
        self,
        rng: random.Random,
        *,
        vehicle_name: str,
        team_name: str,
        driver_names: list[str],
        fuel_capacity: float,
        burn_per_lap: float,
        gear_top_kmh: tuple[float, ...],
    ) -> None:
        self._specs = {s.key: s for s in _specs(fuel_capacity, burn_per_lap)}
        self.values = {key: rng.randint(*spec.default) for key, spec in self._specs.items()}
        self._saved = {key: self.text(key) for key in self._specs}
        self._changes = {key: 0 for key in self._specs}
        self.vehicle_name = vehicle_name
        self.team_name = team_name
        self.driver_names = driver_names
        self._gear_top_kmh = gear_top_kmh
        self._extra = {
            "presets": [{"translated": p, "unTranslated": p} for p in ("fast", "balanced", "safe")],
            "forecast_sky": [rng.randint(0, 2) for _ in range(5)],
            "wind": [rng.randint(3, 15) for _ in range(5)],
        }

    def text(self, key: str) -> str:
        return self._specs[key].fmt(self.values[key])

    def change(self, key: str, delta: int) -> tuple[str, str]:
        """Move ``key`` by ``delta`` steps within its range; returns (old, new) display text."""
        spec = self._specs[key]
        old = self.text(key)
        self.values[key] = min(max(self.values[key] + delta, 0), spec.max_value)
        self._changes[key] += 1
        return old, self.text(key)

    def can_move(self, key: str, delta: int) -> bool:
        return 0 <= self.values[key] + delta <= self._specs[key].max_value

    def payload(
        self, *, ambient_c: float, track_c: float, position: int, time_of_day_s: float
    ) -> dict:
        """The setup JSON as the game's API returns it (a fresh object every call)."""
        garage = {}
        for key, spec in self._specs.items():
            entry = {
                "available": spec.available,
                "diffComparisonValue": 0,
                "isFreeSetting": True,
                "key": key,
                "lastSavedStringValue": self._saved[key],
                "maxValue": spec.max_value,
                "minValue": 0,
                "numChangesValue": self._changes[key],
                "stringValue": self.text(key),
                "value": self.values[key],
            }
            if spec.caption:
                entry["caption"] = spec.caption
            garage[key] = entry
        tops = list(self._gear_top_kmh)
        garage["gearGraph"] = {
            # per forward gear: shift rpm, and the rpm it lands on in the next gear (as the game does)
            "kiloRPM": [0.0, 0.0]
            + [v for g in range(1, len(tops)) for v in (9.0, round(9.0 * tops[g - 1] / tops[g], 3))]
            + [0.0] * 4,
            "numForwardGears": len(tops) - 1,
            "topSpeed": tops + [0.0] * 2,
            "unit": "kph",
        }
        garage["symmetric"] = True
        return copy.deepcopy(
            {
                "carPresetSetups": {"presets": self._extra["presets"]},
                "carSetup": {"garageValues": garage},
                "currentWeather": {
                    "airPressure": 99.0,
                    "ambientTempKelvin": ambient_c + 273.15,
                    "cloudCoverage": 0.1,
                    "humidity": 0.55,
                    "lightLevel": 0.8,
                    "rainIntensity": 0.0,
                    "raining": 0.0,
                    "trackTempKelvin": track_c + 273.15,
                },
                "racePosition": {
                    "gapToFirstInClassLaps": 0,
                    "gapToFirstInClassTime": 0.0,
                    "gapToLastInClassLaps": 0,
                    "gapToLastInClassTime": 0.0,
                    "placeInClass": position,
                    "placeOverall": position,
                },
                "sessionTime": {"timeOfDay": time_of_day_s},
                "teamInfo": {
                    "driverNames": [_name_bytes(n) for n in self.driver_names],
                    "teamName": self.team_name,
                    "vehicleName": self.vehicle_name,
                },
                "weatherForecast": {
                    "nodes": {
                        "Duration": [30] * 5,
                        "Humidity": [55] * 5,
                        "RainChance": [0] * 5,
                        "Sky": self._extra["forecast_sky"],
                        "StartTime": [540 + 30 * i for i in range(5)],
                        "Temperature": [round(ambient_c) + (i // 2) for i in range(5)],
                        "WindDirection": [5] * 5,
                        "WindSpeed": self._extra["wind"],
                    }
                },
            }
        )
