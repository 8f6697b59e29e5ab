"""The accuracy harness through replays: each scenario's recording, replayed from the start,
after a seek to a random lap, and to a late joiner, checked against the simulator's truth.

The live views of the same scenarios are in tests/test_race_accuracy.py. Recordings are
written as the recorder writes them, with receive times compressed so a 22-lap stint
replays in about a second at 16x; the race model times laps by the monitor's own
timestamps and lap clock, so the race facts are those of the stint as published.
"""

from __future__ import annotations

import random
import uuid

import pytest

from tests.race_harness import Stream, check_against_truth, laps_from_events, simulated_stream
from tests.replay_helpers import connect, write_recording
from tests.test_replay_race import control, start_paused, wait_for_state

COMPRESS = 100.0
T0 = 1_700_000_000.0


def scenario(name: str) -> tuple[Stream, set[int]]:
    """The stream of a scenario and the messages it loses (indices), as the recording would hold it."""
    if name == "1x":
        return simulated_stream(speedup=1, laps=12), set()
    if name in ("10x", "100x"):
        return simulated_stream(speedup=int(name[:-1]), laps=22), set()
    stream = simulated_stream(speedup=1, laps=14)
    if name == "silent 30 s":
        start = stream.index_where(lap=5, lap_time_over=30.0)
        return stream, set(range(start, start + 60))  # 2 Hz: 30 s of the monitor's clock
    # "server killed": the recording stops mid-lap 7 and resumes 8 s of monitor time later
    # (what a kill -9, a restart and the monitor's reconnection leave in the file).
    cut = stream.index_where(lap=7, lap_time_over=50.0)
    resume = cut
    while stream.seconds_between(cut, resume) < 8.0:
        resume += 1
    return stream, set(range(cut, resume))


def recording_of(directory, stream: Stream, lost: set[int]) -> str:
    session_id = str(uuid.uuid4())
    frames = []
    t = T0
    for i, (event, body) in enumerate(stream.messages):
        t += 0.5 / COMPRESS
        if i in lost:
            continue
        kind = "setup" if event == "setup_data" else "telemetry"
        frames.append((t, kind, {"session_id": session_id, **body}))
    write_recording(directory / f"{session_id}.jsonl", frames)
    return session_id


def final_fuel(stream: Stream) -> float:
    return next(body["telemetry"]["fuel"] for event, body in reversed(stream.messages) if event == "telemetry_update")


@pytest.fixture
def settings(settings):
    return settings.replace(replay_state_interval=0.5)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["1x", "10x", "100x", "silent 30 s", "server killed"])
async def test_replays_of_every_scenario_give_the_true_laps(server, clients, settings, name):
    stream, lost = scenario(name)
    skipped = {stream.lap_of(i) for i in lost} - {None}
    recording_id = recording_of(settings.recordings_dir, stream, lost)

    # From the start, at 16x: the tables a viewer builds from what the room told it.
    viewer, replay_id = await start_paused(server, clients, recording_id)
    start_tables = viewer.events["race_tables"][0]
    await control(viewer, replay_id, "play")
    await wait_for_state(viewer, "ended", timeout=30)
    played = {**start_tables, "laps": laps_from_events(start_tables, viewer.log)}
    played["pit_stops"] = [data for event, data in viewer.log if event == "pit_stop"]
    played["driver_changes"] = [data for event, data in viewer.log if event == "driver_change"]
    played["setup_changes"] = [data for event, data in viewer.log if event == "setup_change"]

    # A late joiner of the ended replay, and a seek back to a random lap.
    late = await connect(server, clients, team=False)
    assert (await late.call("join_session", {"session_id": replay_id}))["ok"]
    [joined] = await late.wait_for("race_tables")
    check_against_truth(stream, joined, fuel_now=final_fuel(stream), skipped=skipped)
    assert [row["lap"] for row in played["laps"]] == [row["lap"] for row in joined["laps"]]
    assert [row["time"] for row in played["laps"]] == [row["time"] for row in joined["laps"]]
    assert [s["lap"] for s in played["pit_stops"]] == [s["lap"] for s in joined["pit_stops"]]
    assert [c["to"] for c in played["driver_changes"]] == [c["to"] for c in joined["driver_changes"]]
    assert [c["changes"] for c in played["setup_changes"]] == [c["changes"] for c in joined["setup_changes"]]

    lap = random.Random(name).randint(3, joined["laps"][-1]["lap"])
    viewer.log.clear()
    await control(viewer, replay_id, "seek", lap=lap)
    sought = (await viewer.wait_for("race_tables", 2))[-1]  # the first came when it joined
    # Exactly the laps completed before that lap began, as the whole recording has them.
    assert sought["laps"] == [row for row in joined["laps"] if row["seq"] <= sought["seq"]]
    assert [row["lap"] for row in sought["laps"]] == [row["lap"] for row in joined["laps"] if row["lap"] < lap]
