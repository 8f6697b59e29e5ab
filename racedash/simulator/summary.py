"""A stint as a table: what ``racedash simulate --dry-run`` prints, no server needed."""

from __future__ import annotations

import random

from racedash.simulator.model import CORNERS, SETUP, Publication, StintConfig, StintModel, run_stint


def _lap_clock(seconds: float) -> str:
    minutes, rest = divmod(seconds, 60.0)
    return f"{int(minutes)}:{rest:06.3f}"


def stint_table(model: StintModel, published: list[Publication]) -> str:
    """One line per completed lap, then the setup changes."""
    car = model.car
    lines = [
        f"{car.name} at {model.track.name}, seed {model.config.seed}, drivers: {', '.join(car.drivers)}",
        f"{'lap':>3} {'time':>9} {'fuel@start':>10} {'fuel@end':>8} {'pos':>3}  "
        + " ".join(f"{'wear ' + c:>7}" for c in CORNERS)
        + "  driver / events",
    ]
    for lap in model.laps:
        events = ["out of the garage"] if lap.number == 1 else []
        if lap.stopped:
            events.append(f"stop: +{lap.refuel_l:.1f} L" + (", new tyres" if lap.new_tyres else ""))
        if lap.pit_in:
            events.append("in-lap")
        lines.append(
            f"{lap.number:>3} {_lap_clock(lap.lap_time):>9} {lap.fuel_start:>10.2f} {lap.fuel_end:>8.2f} {lap.position_end:>3}  "
            + " ".join(f"{lap.wear_end[c]:>7.3f}" for c in CORNERS)
            + f"  {lap.driver}"
            + (f" ({'; '.join(events)})" if events else "")
        )
    setups = [p for p in published if p.kind == SETUP]
    previous = None
    for pub in setups:
        values = pub.payload["setup"]["carSetup"]["garageValues"]
        current = {k: v["stringValue"] for k, v in values.items() if isinstance(v, dict) and "stringValue" in v}
        if previous is not None:
            changed = [f"{k} {previous[k]} -> {current[k]}" for k in current if current[k] != previous[k]]
            lines.append(f"setup change at {pub.payload['timestamp']}: {', '.join(changed)}")
        previous = current
    return "\n".join(lines)


def dry_run(seed: int | None, laps: int, dt: float) -> str:
    """Run a stint instantly and return its table; a missing seed is drawn (and shown)."""
    if seed is None:
        seed = random.SystemRandom().randrange(1_000_000)
    model, published = run_stint(StintConfig(seed=seed, laps=laps), dt=dt)
    return stint_table(model, published)
