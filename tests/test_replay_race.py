"""The race model in replay rooms: the recording's race facts, told as live, at the replay's position.

Through a real server and real Socket.IO clients, on a recording of the
simulator's stint (seed 7, 10 laps: laps, a setup change, a driver change
and a pit stop). The expected facts are the recording's own race
tables (``load_tables``, without its sidecar: an independent scan).
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import orjson
import pytest

from racedash.config import Settings
from racedash.race import EVENT_NAMES, RaceModel, RaceOptions, events_after
from racedash.racefeed import wire_event
from racedash.recording.format import encode_event
from racedash.recording.race import load_tables
from racedash.replay.player import RaceTables
from racedash.simulator.model import SETUP, Publication, StintConfig, run_stint
from tests.helpers import Client, wait_until
from tests.race_harness import Stream, check_against_truth
from tests.replay_helpers import connect, write_recording

# The recording's receive clock runs this much faster than the simulated one, so that
# 18 minutes of stint replay in ~2 s at 16x. The race model times laps by the monitor's
# own timestamps and lap clock, never by receive times: the race facts are unchanged.
COMPRESS = 30.0
T0 = 1_700_000_000.0
FRAME_EVENTS = ("setup_update", "telemetry_update")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # A monitor here publishes a whole stint in about a second.
    return settings.replace(replay_state_interval=0.5, events_per_second=5000.0, event_burst=5000.0)


def simulated_stint() -> list[Publication]:
    _sim, published = run_stint(StintConfig(seed=7, laps=10), dt=2.0)
    return published


def stream_messages(published: list[Publication]) -> list[tuple[str, dict]]:
    """The stint as (event, payload) pairs, as tests/race_harness.py checks them."""
    return [("setup_data", p.payload) if p.kind == SETUP else ("telemetry_update", {"telemetry": p.payload})
            for p in published]


def wire_payload(session_id: str, publication: Publication) -> dict:
    """What the monitor publishes (and the recorder keeps) for one simulated message."""
    if publication.kind == SETUP:
        return {"session_id": session_id, **publication.payload}
    return {"session_id": session_id, "telemetry": publication.payload}


def simulated_recording(directory: Path) -> tuple[str, Path]:
    session_id = str(uuid.uuid4())
    frames = [(T0 + p.sim_time / COMPRESS, p.kind, wire_payload(session_id, p)) for p in simulated_stint()]
    return session_id, write_recording(directory / f"{session_id}.jsonl", frames)


def full_tables(server, path: Path) -> dict:
    """The recording's race tables as they reach a client (JSON)."""
    return orjson.loads(orjson.dumps(load_tables(path, server.app.replays.race_options, use_sidecar=False)))


def expected_events(tables: dict, replay_id: str, after_seq: int = 0) -> list[tuple[str, dict]]:
    """The events of the frames after ``after_seq`` as live tells them (a pit stop with its in-lap's row)."""
    told = []
    for event in events_after(tables, after_seq, tables["seq"]):
        if event["event"] == "pit_stop":
            event = {**event, "amended_laps": [row for row in tables["laps"] if row["lap"] == event["entry_lap"]]}
        told.append(wire_event(replay_id, event))
    return told


def pit_stops_told(full: dict, replay_id: str) -> list[dict]:
    return [data for name, data in expected_events(full, replay_id) if name == "pit_stop"]


def race_events(log: list[tuple[str, dict]]) -> list[tuple[str, dict]]:
    return [(name, data) for name, data in log if name in EVENT_NAMES]


def after_last(log: list[tuple[str, dict]], name: str) -> list[tuple[str, dict]]:
    """What the client received after the last ``name`` (e.g. since a seek's race_tables)."""
    last = max(i for i, (event, _data) in enumerate(log) if event == name)
    return log[last + 1 :]


def assert_each_right_after_its_frame(log: list[tuple[str, dict]], late: tuple[str, ...] = ()) -> None:
    """Every race event follows the frame that caused it, before any later frame (``late``: or after it)."""
    frame_seq = None
    for name, data in log:
        if name in FRAME_EVENTS:
            frame_seq = data["seq"]
        elif name in late:
            assert frame_seq is not None and data["seq"] <= frame_seq, (name, data["seq"], frame_seq)
        elif name in EVENT_NAMES:
            assert data["seq"] == frame_seq, (name, data["seq"], frame_seq)


def laps_in(tables: dict, upto_seq: int) -> list[dict]:
    return [row for row in tables["laps"] if row["seq"] <= upto_seq]


async def wait_for_state(client: Client, status: str, timeout: float = 10) -> dict:
    """The first replay_state with this status the client has received (since its log was last cleared)."""
    def found():
        return next((s for name, s in client.log if name == "replay_state" and s["status"] == status), None)

    return await wait_until(found, timeout)


async def start_paused(server, clients, recording_id: str) -> tuple[Client, str]:
    """A replay started paused at 16x, and a viewer in its room."""
    viewer = await connect(server, clients)  # team: only the team may start replays of recordings
    ack = await viewer.call("replay_start", {"recording_id": recording_id, "paused": True, "speed": 16})
    assert ack["ok"], ack
    replay_id = ack["replay_id"]
    assert (await viewer.call("join_session", {"session_id": replay_id}))["ok"]
    return viewer, replay_id


async def control(client: Client, replay_id: str, action: str, **fields) -> dict:
    ack = await client.call("replay_control", {"replay_id": replay_id, "action": action, **fields})
    assert ack["ok"], ack
    return ack["state"]


async def test_a_replay_tells_the_race_events_as_playback_passes_them(server, clients, settings):
    recording_id, path = simulated_recording(settings.recordings_dir)
    full = full_tables(server, path)
    assert [row["lap"] for row in full["laps"]] == list(range(1, 10))
    assert full["pit_stops"] and full["setup_changes"] and full["driver_changes"]
    viewer, replay_id = await start_paused(server, clients, recording_id)
    # Joined at the start, before any frame: nothing has happened yet.
    [joined] = viewer.events["race_tables"]
    assert joined["session_id"] == replay_id and joined["seq"] == 0
    assert joined["laps"] == joined["pit_stops"] == joined["setup_changes"] == joined["alerts"] == []
    assert joined["strategy"]["fuel"] is None and joined["strategy"]["fuel_per_lap"] is None  # not the end's
    await control(viewer, replay_id, "play")
    await wait_for_state(viewer, "ended")

    told = race_events(viewer.log)
    assert told == expected_events(full, replay_id)
    # And those are the simulator's truth (laps within 0.05 s, every stop, driver and setup change).
    sim, _ = run_stint(StintConfig(seed=7, laps=10), dt=2.0)
    check_against_truth(Stream(sim, stream_messages(simulated_stint())), full)
    laps = [data["lap"] for name, data in told if name == "lap_completed"]
    assert laps == full["laps"]  # every lap, its number and time, in order, once
    assert [lap["lap"] for lap in laps] == list(range(1, 10))
    [stop] = [data for name, data in told if name == "pit_stop"]
    stints = stop.pop("stints")  # the stint table as it stood then: laps 1-8 (stint 1)
    assert stop == {"session_id": replay_id, **full["pit_stops"][0], "amended_laps": [full["laps"][7]]}
    assert [s["stint"] for s in stints] == [1] and stints[0]["last_lap"] == 8
    assert full["laps"][7]["lap"] == 8 and full["laps"][7]["in_lap"]  # the simulated car pitted at the end of lap 8
    assert [data for name, data in told if name == "setup_change"] == [
        {"session_id": replay_id, **c} for c in full["setup_changes"]
    ]
    assert_each_right_after_its_frame(viewer.log)
    assert len(viewer.events["race_tables"]) == 1  # playing through sends no tables, only events
    # Each replayed frame carries the strategy as of that frame, as live frames do: the same
    # figures a live viewer saw, computed from the laps done by then.
    frames = viewer.events["telemetry_update"]
    assert all("race" in f for f in frames)
    live = RaceModel(server.app.replays.race_options)
    summaries = {}
    for seq, p in enumerate(simulated_stint(), start=1):
        live.feed(seq, p.kind, wire_payload(recording_id, p))
        if p.kind != SETUP:
            summaries[seq] = live.frame_summary()
    # Except between the in-lap's line and the stop: live did not know yet that lap 8 was the
    # in-lap and counted it; the replay knows the whole recording and leaves it out.
    in_lap, stop = full["laps"][7], full["pit_stops"][0]
    unsure = range(in_lap["seq"], stop["seq"])
    assert [f["race"] for f in frames if f["seq"] not in unsure] == [summaries[f["seq"]] for f in frames if f["seq"] not in unsure]
    assert {f["race"]["car_state"] for f in frames} >= {"on_track", "in_pit"}


async def test_a_seek_sends_the_tables_up_to_the_position_then_a_new_pass(server, clients, settings):
    recording_id, path = simulated_recording(settings.recordings_dir)
    full = full_tables(server, path)
    viewer, replay_id = await start_paused(server, clients, recording_id)

    # Lap 5 starts with the frame that completes lap 4: laps 1-4 are the tables there.
    viewer.log.clear()
    await control(viewer, replay_id, "seek", lap=5)
    tables = (await viewer.wait_for("race_tables", 2))[-1]
    at = [data for name, data in viewer.log if name == "telemetry_update"][-1]
    assert at["telemetry"]["lap"] == 5 and tables["seq"] == at["seq"]
    assert tables["laps"] == full["laps"][:4]
    assert tables["setup_changes"] == full["setup_changes"]  # changed during lap 4
    assert tables["pit_stops"] == [] and tables["driver_changes"] == []
    after_history = [name for name, _data in after_last(viewer.log, "telemetry_history")]
    assert after_history[:2] == ["telemetry_update", "race_tables"]  # the tables close the state, before any frame
    assert tables["strategy"]["fuel"] == pytest.approx(at["telemetry"]["fuel"])  # worked out at the position
    await control(viewer, replay_id, "play")
    await wait_for_state(viewer, "ended")
    assert race_events(after_last(viewer.log, "race_tables")) == expected_events(full, replay_id, tables["seq"])
    assert_each_right_after_its_frame(viewer.log)

    # Back to lap 3 (the replay had ended): laps 1-2, and lap 3 onwards told again, once each.
    viewer.log.clear()
    state = await control(viewer, replay_id, "seek", lap=3)
    assert state["status"] == "paused"
    tables = (await viewer.wait_for("race_tables", 3))[-1]
    assert tables["laps"] == full["laps"][:2] and tables["setup_changes"] == []
    await control(viewer, replay_id, "play")
    await wait_for_state(viewer, "ended")
    again = race_events(after_last(viewer.log, "race_tables"))
    assert again == expected_events(full, replay_id, tables["seq"])
    assert [data["lap"]["lap"] for name, data in again if name == "lap_completed"] == list(range(3, 10))
    assert_each_right_after_its_frame(viewer.log)


async def test_a_late_joiner_gets_the_tables_as_they_stand(server, clients, settings):
    recording_id, path = simulated_recording(settings.recordings_dir)
    full = full_tables(server, path)
    first, replay_id = await start_paused(server, clients, recording_id)
    await control(first, replay_id, "play")
    await first.wait_for("lap_completed", 3, timeout=10)
    late = await connect(server, clients, team=False)  # watching needs only the id
    join = await late.call("join_session", {"session_id": replay_id})
    assert join["ok"] and join["state"]["status"] == "playing"
    [tables] = await late.wait_for("race_tables")
    names = [name for name, _data in late.log]
    assert names[:5] == ["replay_state", "setup_update", "telemetry_history", "telemetry_update", "race_tables"]
    assert tables["seq"] == late.log[3][1]["seq"]  # the last frame played when it joined
    await wait_for_state(first, "ended")
    await wait_for_state(late, "ended")

    # What the first viewer had learnt up to that frame is what the late one was given.
    first_laps = [data["lap"] for data in first.events["lap_completed"] if data["seq"] <= tables["seq"]]
    assert len(first_laps) >= 3
    assert tables["laps"] == first_laps == laps_in(full, tables["seq"])
    # From there on the room tells both the same, the late one nothing it was already given.
    assert race_events(late.log) == expected_events(full, replay_id, tables["seq"])
    assert tables["laps"] + [data["lap"] for data in late.events["lap_completed"]] == full["laps"]
    assert race_events(first.log)[-len(race_events(late.log)) :] == race_events(late.log)


def pit_stop_began(published: list[Publication]) -> int:
    """The seq of the frame where the stint's pit stop began (its row's ``started_seq``)."""
    model = RaceModel()
    for seq, p in enumerate(published, start=1):
        for event in model.feed(seq, p.kind, wire_payload("x", p)):
            if event["event"] == "pit_stop":
                # Known only some frames later, once the car has left: its row carries that frame's seq.
                assert event["started_seq"] < event["seq"] == seq
                return event["started_seq"]
    raise AssertionError("the stint has no pit stop")


async def test_a_timeshift_tells_the_laps_recorded_after_it_started(server, clients, settings):
    """A growing recording: the race tables are extended as the replay follows the file."""
    monitor = await connect(server, clients, team=False)
    session_id = (await monitor.call("request_session_id", {}))["session_id"]
    published = simulated_stint()
    split = next(i for i, p in enumerate(published) if p.kind != SETUP and p.payload["lap"] == 3)
    stop_began = pit_stop_began(published)

    sent = 0

    async def publish(upto: int, gap: float = 0.002) -> int:
        """Publish the stint up to frame seq ``upto``; returns it."""
        nonlocal sent
        for p in published[sent:upto]:
            event = "setup_data" if p.kind == SETUP else "telemetry_update"
            ack = await monitor.call(event, wire_payload(session_id, p))
            sent += 1
            assert ack == {"ok": True, "seq": sent}  # the server numbers them as the stint does
            await asyncio.sleep(gap)
        return sent

    await publish(split, gap=0)  # laps 1 and 2: lap 1 completed
    assert await server.app.recorder.flush(session_id)
    viewer = await connect(server, clients, team=False)
    ack = await viewer.call("timeshift_start", {"session_id": session_id, "time": 0, "speed": 16})
    assert ack["ok"] and ack["state"]["live"] is True, ack
    replay_id = ack["replay_id"]
    assert (await viewer.call("join_session", {"session_id": replay_id}))["ok"]
    # The stint goes on while the replay follows it; the replay plays the stop's first frames
    # before the car has left (before anyone can know it was a pit stop).
    mid_stop = await publish(stop_began + 5)
    await wait_until(lambda: any(d["seq"] == mid_stop for n, d in viewer.log if n == "telemetry_update"))
    await publish(len(published))
    assert await server.app.recorder.flush(session_id)
    full = full_tables(server, settings.recordings_dir / f"{session_id}.jsonl")
    assert [row["lap"] for row in full["laps"]] == list(range(1, 10))
    [tables] = viewer.events["race_tables"]
    expected = expected_events(full, replay_id, tables["seq"])
    await wait_until(lambda: len(race_events(viewer.log)) >= len(expected))

    # The join's tables plus the events after them: every lap once, as the whole file's tables have it.
    told = race_events(viewer.log)
    laps = tables["laps"] + [data["lap"] for name, data in told if name == "lap_completed"]

    def timing(rows: list[dict]) -> list[tuple]:
        # A lap row is told as it stood when its frame was played (as live): a later pit stop may
        # still amend its in-lap flag. Number, time, fuel and seq are final at once.
        return [(row["lap"], row["time"], row["fuel_used"], row["seq"]) for row in rows]

    assert timing(laps) == timing(full["laps"])
    # A pit stop's row carries the seq where the stop began. This replay played that frame before the
    # stop was in the file (the car had not left yet): it is told once the tables learn it, still once.
    in_stream_order = sorted(told, key=lambda event: event[1]["seq"])
    assert [name for name, _data in in_stream_order] == [name for name, _data in expected]
    [stop] = [data for name, data in told if name == "pit_stop"]
    assert [stop] == pit_stops_told(full, replay_id) and stop["started_seq"] == stop_began
    assert stop["amended_laps"][0]["in_lap"]  # told unamended with its frame: the stop amends it, as live
    frames_before_it = [d["seq"] for n, d in viewer.log[: viewer.log.index(("pit_stop", stop))] if n in FRAME_EVENTS]
    assert frames_before_it[-1] > mid_stop
    assert_each_right_after_its_frame(viewer.log, late=("pit_stop",))
    await control(viewer, replay_id, "stop")


def test_race_tables_of_a_finished_recording_that_grows_again(tmp_path):
    """A replay started on a finished recording whose session resumes: its tables extend too."""
    session_id = str(uuid.uuid4())
    published = simulated_stint()
    frames = [(T0 + p.sim_time, p.kind, wire_payload(session_id, p)) for p in published]
    mid_stop = pit_stop_began(published) + 5
    path = write_recording(tmp_path / f"{session_id}.jsonl", frames[:200])

    def append(first_seq: int, upto_seq: int) -> None:
        with open(path, "ab") as f:
            for seq in range(first_seq, upto_seq + 1):
                t, kind, data = frames[seq - 1]
                f.write(encode_event(t, seq, kind, data))

    def scanned() -> dict:
        return orjson.loads(orjson.dumps(load_tables(path, race.options, use_sidecar=False)))

    def as_json(tables: dict) -> dict:
        return orjson.loads(orjson.dumps(tables))

    race = RaceTables.load(path, RaceOptions(), growing=False)
    assert as_json(race.tables) == scanned() and race.covers(200) and not race.covers(201)
    append(201, mid_stop)
    added = race.extend()  # from the sidecar's tables: the model is built by one scan
    assert race.covers(mid_stop) and as_json(race.tables) == scanned()
    assert added == events_after(race.tables, 200, mid_stop)
    append(mid_stop + 1, len(frames))
    added = race.extend()  # then fed only the lines added
    assert as_json(race.tables) == scanned()
    assert [row["lap"] for row in race.tables["laps"]] == list(range(1, 10))
    # The pit stop was under way at the cut: learnt now, with the frame where it began.
    [stop] = [event for event in added if event["event"] == "pit_stop"]
    assert stop["started_seq"] < mid_stop < stop["seq"] and added.count(stop) == 1
    everything = race.events(0, race.tables["seq"])
    assert everything == events_after(race.tables, 0, race.tables["seq"])
    in_lap = race.tables["laps"][7]
    assert in_lap["lap"] == 8 and [e["amended_laps"] for e in everything if e["event"] == "pit_stop"] == [[in_lap]]
    assert race.events(race.tables["seq"], race.tables["seq"] + 100) == []
