"""Per-lap exports of a recording (laps.csv, laps.json): the pure cell formatting, then a real server."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import datetime

import orjson
import pytest

from racedash.race import RaceModel
from racedash.race.export import (
    COLUMN_NAMES,
    csv_chunks,
    flag_cell,
    lap_cells,
    lap_time_cell,
    number_cell,
    text_cell,
    time_cell,
)
from racedash.race.units import CORNERS
from racedash.simulator.model import SETUP, StintConfig, run_stint
from tests.helpers import Client, wait_until
from tests.recording_support import api, fetch, recorded_seqs, write_recording

INJECTED_NAME = '=HYPERLINK("x")'
UNKNOWN_TEMP = -273.15  # the game's "no reading"


# -- cells ------------------------------------------------------------------------------
def test_numbers_are_plain_decimals_and_anything_else_is_empty():
    assert number_cell(98.42) == "98.42"
    assert number_cell(3) == "3"
    assert number_cell(0.0) == "0" and number_cell(-0.0) == "0"
    assert number_cell(0.0001) == "0.0001"  # never exponent notation
    assert number_cell(-1.5) == "-1.5"  # a number, not text: no injection prefix
    assert number_cell(1763820024.0) == "1763820024"
    for unknown in (None, True, False, "3", float("nan"), float("inf"), {}, [1]):
        assert number_cell(unknown) == "", unknown


def test_booleans_are_1_or_0_and_unknown_is_empty():
    assert (flag_cell(True), flag_cell(False)) == ("1", "0")
    for unknown in (None, 1, 0, "true"):
        assert flag_cell(unknown) == "", unknown


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_text_that_a_spreadsheet_would_run_is_prefixed(start):
    assert text_cell(f"{start}1+1") == f"'{start}1+1"


def test_plain_text_is_kept_and_non_text_is_empty():
    assert text_cell("Inês Costa") == "Inês Costa"
    assert text_cell("a=b") == "a=b"  # only the first character makes a formula
    assert text_cell("") == ""
    for not_text in (None, 3, ["=1"], {"name": "=1"}):
        assert text_cell(not_text) == "", not_text


def test_lap_times_as_timing_screens_show_them():
    assert lap_time_cell(98.42) == "1:38.420"
    assert lap_time_cell(59.9996) == "1:00.000"  # rounded to the millisecond before splitting
    assert lap_time_cell(5.0) == "0:05.000"
    assert lap_time_cell(3600.5) == "60:00.500"
    for unknown in (None, -1.0, "98.4", True):
        assert lap_time_cell(unknown) == "", unknown


def test_times_are_iso_utc_with_z():
    assert time_cell(1763820024.0) == "2025-11-22T14:00:24.000Z"
    assert time_cell(1763820024.1604) == "2025-11-22T14:00:24.160Z"
    for unknown in (None, "2025-11-22T14:00:24Z", 1e300, float("nan")):
        assert time_cell(unknown) == "", unknown


def lap_row(**changes) -> dict:
    row = {
        "lap": 3, "time": 98.356, "start_fuel": 22.799, "end_fuel": 19.786, "fuel_used": 3.013, "fuel_added": 0.0,
        "in_lap": False, "out_lap": False, "pit_lap": False, "incomplete": False, "clean": True, "stint": 1,
        "driver": "Tomas Costa", "position": 10, "tyres_changed": False,
        "tyre_temp_avg": {"fl": 92.87, "fr": 89.89, "rl": 93.85},
        "tyre_temp_max": {"fl": 97.87, "fr": 94.89, "rl": 96.76},
        "pressure_avg": {"fl": 162.96, "fr": 164.04, "rl": 160.96, "rr": 167.13},
        "wear_used": {"fl": 0.0128, "fr": 0.0115, "rl": 0.0127, "rr": 0.0111},
        "brake_temp_avg": {"fl": 420.95, "fr": 413.01, "rl": 351.96, "rr": 345.86},
        "brake_temp_max": {"fl": 614.22, "fr": 597.75, "rl": 471.02, "rr": 458.37},
        "start_t": 1763820238.0, "end_t": 1763820336.0, "seq": 170,
    }
    row.update(changes)
    return row


def test_column_names_are_unique_and_documented_in_order():
    assert len(COLUMN_NAMES) == len(set(COLUMN_NAMES)) == 16 + 6 * 4 + 2
    assert COLUMN_NAMES[:3] == ("lap", "time_s", "lap_time") and COLUMN_NAMES[-2:] == ("start_time", "end_time")
    assert COLUMN_NAMES[16:22] == ("tyre_temp_avg_c_fl", "tyre_temp_max_c_fl", "pressure_avg_kpa_fl", "wear_used_fl",
                                   "brake_temp_avg_c_fl", "brake_temp_max_c_fl")


def test_a_lap_row_as_cells():
    cells = dict(zip(COLUMN_NAMES, lap_cells(lap_row())))
    assert cells["lap"] == "3" and cells["time_s"] == "98.356" and cells["lap_time"] == "1:38.356"
    assert cells["fuel_used_l"] == "3.013" and cells["fuel_added_l"] == "0"
    assert (cells["clean"], cells["in_lap"], cells["tyres_changed"]) == ("1", "0", "0")
    assert cells["driver"] == "Tomas Costa" and cells["position"] == "10" and cells["stint"] == "1"
    assert cells["pressure_avg_kpa_rr"] == "167.13" and cells["wear_used_fl"] == "0.0128"
    assert cells["tyre_temp_avg_c_rr"] == "" and cells["tyre_temp_max_c_rr"] == ""  # a corner with no reading
    assert cells["start_time"] == "2025-11-22T14:03:58.000Z" and cells["end_time"] == "2025-11-22T14:05:36.000Z"


def test_an_unseen_lap_is_all_empty_cells_but_its_number_and_flags():
    unseen = lap_row(time=None, start_fuel=None, end_fuel=None, fuel_used=None, incomplete=True, clean=False,
                     driver=None, position=None, tyre_temp_avg={}, tyre_temp_max={}, pressure_avg={}, wear_used={},
                     brake_temp_avg={}, brake_temp_max={}, start_t=None, end_t=None)
    cells = dict(zip(COLUMN_NAMES, lap_cells(unseen)))
    known = {"lap", "fuel_added_l", "in_lap", "out_lap", "pit_lap", "incomplete", "clean", "stint", "tyres_changed"}
    assert {name for name, cell in cells.items() if cell} == known
    assert cells["incomplete"] == "1"


def test_values_of_the_wrong_kind_never_become_text():
    # The tables may come from a sidecar file: a tampered one must not smuggle a formula into a number column.
    row = lap_row(lap="=1+1", time="=cmd", stint=[1], driver={"x": "=1"}, position=True, clean="yes",
                  pressure_avg="=1", brake_temp_max={"fl": "=1"}, start_t="=1")
    cells = dict(zip(COLUMN_NAMES, lap_cells(row)))
    for name in ("lap", "time_s", "lap_time", "stint", "driver", "position", "clean", "pressure_avg_kpa_fl",
                 "brake_temp_max_c_fl", "start_time"):
        assert cells[name] == "", name
    assert not any(cell.startswith(("=", "+", "@")) for cell in cells.values())


def test_csv_comes_in_chunks_that_parse_back_whole():
    laps = [lap_row(lap=n, driver=INJECTED_NAME if n == 7 else f"Driver, \"{n}\"\n") for n in range(1, 451)]
    chunks = list(csv_chunks(laps, rows_per_chunk=200))
    assert len(chunks) == 3
    assert chunks[0].startswith(",".join(COLUMN_NAMES) + "\r\n")
    rows = list(csv.DictReader(io.StringIO("".join(chunks))))
    assert [row["lap"] for row in rows] == [str(n) for n in range(1, 451)]
    assert rows[6]["driver"] == "'" + INJECTED_NAME and rows[0]["driver"] == 'Driver, "1"\n'


def test_no_laps_is_the_header_alone():
    assert list(csv_chunks([])) == [",".join(COLUMN_NAMES) + "\r\n"]


# -- through a real server ------------------------------------------------------------------
@pytest.fixture
def settings(settings):
    # A simulated stint is published as fast as acks come back: well over the per-connection rate limit.
    return settings.replace(events_per_second=100_000.0, event_burst=100_000.0)


def simulated_stint(laps: int = 6):
    """The simulator's stint as the monitor would send it, with three things a real one can have:
    a driver name a spreadsheet would run, a tyre that never reads a temperature, and an outage
    across the line from lap 3 to 4 (frames lost: laps 3 and 4 incomplete, lap 3 untimed)."""
    sim, published = run_stint(StintConfig(seed=3, laps=laps), dt=2.0)
    frames = []
    for p in published:
        if p.kind == SETUP:
            frames.append((SETUP, {"timestamp": p.payload["timestamp"], "setup": p.payload["setup"]}))
            continue
        telemetry = dict(p.payload, player_name=INJECTED_NAME)
        telemetry["tire_temps"] = dict(telemetry["tire_temps"], rr=UNKNOWN_TEMP)
        frames.append(("telemetry", {"telemetry": telemetry}))
    line = next(i for i, (kind, payload) in enumerate(frames) if kind != SETUP and payload["telemetry"]["lap"] == 4)
    del frames[line - 4:line + 6]  # 20 s of monitor time: well beyond the 5 s gap, on both sides of the line
    return sim, frames


# Where each CSV column's value is in a lap row of laps.json: a key, or (key, corner).
SOURCES = {
    "lap": "lap", "time_s": "time", "lap_time": "time", "start_fuel_l": "start_fuel", "end_fuel_l": "end_fuel",
    "fuel_used_l": "fuel_used", "fuel_added_l": "fuel_added", "in_lap": "in_lap", "out_lap": "out_lap",
    "pit_lap": "pit_lap", "incomplete": "incomplete", "clean": "clean", "stint": "stint", "driver": "driver",
    "position": "position", "tyres_changed": "tyres_changed", "start_time": "start_t", "end_time": "end_t",
    **{f"{prefix}_{corner}": (key, corner) for corner in CORNERS for key, prefix in (
        ("tyre_temp_avg", "tyre_temp_avg_c"), ("tyre_temp_max", "tyre_temp_max_c"),
        ("pressure_avg", "pressure_avg_kpa"), ("wear_used", "wear_used"),
        ("brake_temp_avg", "brake_temp_avg_c"), ("brake_temp_max", "brake_temp_max_c"))},
}


def json_value(lap: dict, column: str):
    source = SOURCES[column]
    return lap[source] if isinstance(source, str) else lap[source[0]].get(source[1])


async def publish(server, clients, frames) -> str:
    monitor = Client(server.url)
    clients.append(monitor)
    await monitor.connect()
    session_id = (await monitor.call("request_session_id", {}))["session_id"]
    for kind, payload in frames:
        event = "setup_data" if kind == SETUP else "telemetry_update"
        ack = await monitor.call(event, {"session_id": session_id, **payload})
        assert ack["ok"], ack
    path = server.app.store.path_for(session_id)
    await server.app.recorder.flush(session_id)
    await wait_until(lambda: len(recorded_seqs(path)) == len(frames))
    return session_id


@pytest.fixture
def stint():
    return simulated_stint()


async def test_laps_csv_and_json_of_a_simulated_stint(server, clients, stint):
    sim, frames = stint
    session_id = await publish(server, clients, frames)

    status, headers, body = await api(server, f"/api/recordings/{session_id}/laps.json")
    assert status == 200 and headers["Cache-Control"] == "no-store"
    assert headers["Content-Type"] == "application/json; charset=utf-8"
    export = orjson.loads(body)
    assert export["ok"] and export["recording_id"] == session_id and export["columns"] == list(COLUMN_NAMES)
    # The rows exactly as the race model gives them for the frames sent.
    model = RaceModel()
    for seq, (kind, payload) in enumerate(frames, 1):
        model.feed(seq, kind, payload)
    assert export["laps"] == orjson.loads(orjson.dumps(model.laps))
    assert export["stints"] == orjson.loads(orjson.dumps(model.stints()))
    assert export["pit_stops"] == orjson.loads(orjson.dumps(model.pit_stops))

    status, headers, body = await api(server, f"/api/recordings/{session_id}/laps.csv")
    assert status == 200 and headers["Cache-Control"] == "no-store"
    assert headers["Content-Type"] == "text/csv; charset=utf-8"
    assert headers["Content-Disposition"] == f'attachment; filename="{session_id}-laps.csv"'
    reader = csv.DictReader(io.StringIO(body.decode("utf-8"), newline=""))
    rows = list(reader)
    assert reader.fieldnames == list(COLUMN_NAMES)
    assert [row["lap"] for row in rows] == [str(lap["lap"]) for lap in export["laps"]] == ["1", "2", "3", "4", "5"]

    truth = {lap.number: lap for lap in sim.laps}
    complete = [row for row in rows if row["incomplete"] == "0"]
    assert [row["lap"] for row in complete] == ["1", "2", "5"]
    for row in complete:
        assert float(row["time_s"]) == pytest.approx(truth[int(row["lap"])].lap_time, abs=0.05), row["lap"]
        minutes, seconds = row["lap_time"].split(":")
        assert int(minutes) * 60 + float(seconds) == pytest.approx(float(row["time_s"]), abs=0.0005)
        assert float(row["fuel_used_l"]) > 0
    # Unknown values are empty cells, and only they: cell by cell against the JSON.
    assert set(SOURCES) == set(COLUMN_NAMES)
    for row, lap in zip(rows, export["laps"]):
        for column in COLUMN_NAMES:
            assert (row[column] == "") == (json_value(lap, column) is None), (lap["lap"], column)
    # Among them: the untimed lap, the unseen line, the tyre with no reading.
    lap3, lap4 = rows[2], rows[3]
    assert lap3["incomplete"] == lap4["incomplete"] == "1" and lap3["clean"] == "0"
    assert lap3["time_s"] == lap3["lap_time"] == lap3["end_fuel_l"] == lap3["fuel_used_l"] == ""
    assert lap4["start_fuel_l"] == lap4["fuel_used_l"] == ""
    assert all(row[f"tyre_temp_{kind}_c_rr"] == "" for row in rows for kind in ("avg", "max"))
    assert all(row["tyre_temp_avg_c_fl"] and row["pressure_avg_kpa_rr"] and row["brake_temp_max_c_rl"] for row in rows)
    # The driver name a spreadsheet would have run is text; the JSON keeps it as sent.
    assert {row["driver"] for row in rows} == {"'" + INJECTED_NAME}
    assert {lap["driver"] for lap in export["laps"]} == {INJECTED_NAME}
    assert rows[0]["out_lap"] == "1" and rows[1]["clean"] == "1" and rows[0]["position"] == "10"
    for row, lap in zip(rows, export["laps"]):
        start = datetime.fromisoformat(row["start_time"].replace("Z", "+00:00"))
        assert row["start_time"].endswith("Z") and start.timestamp() == pytest.approx(lap["start_t"], abs=0.001)

    # The routes before the catch-all leave the others as they were.
    status, _, body = await api(server, f"/api/recordings/{session_id}.jsonl")
    assert status == 200 and len(body.splitlines()) == len(frames) + 1
    status, _, body = await api(server, f"/api/recordings/{session_id}")
    assert status == 200 and orjson.loads(body)["recording"]["session_id"] == session_id


async def test_csv_is_streamed_not_sized_up_front(server, settings):
    settings.recordings_dir.mkdir(parents=True, exist_ok=True)
    session_id = str(uuid.uuid4())
    write_recording(server.app.store.path_for(session_id), session_id, 3000, lap_every=5)
    status, headers, body = await api(server, f"/api/recordings/{session_id}/laps.csv")
    assert status == 200 and "Content-Length" not in headers and headers.get("Transfer-Encoding") == "chunked"
    rows = list(csv.DictReader(io.StringIO(body.decode("utf-8"), newline="")))
    laps = orjson.loads((await api(server, f"/api/recordings/{session_id}/laps.json"))[2])["laps"]
    assert len(rows) == len(laps) > 500  # several chunks
    assert [row["lap"] for row in rows] == [str(lap["lap"]) for lap in laps]


@pytest.mark.parametrize("export", ["laps.csv", "laps.json"])
async def test_exports_are_team_only(server, settings, export):
    settings.recordings_dir.mkdir(parents=True, exist_ok=True)
    session_id = str(uuid.uuid4())
    write_recording(server.app.store.path_for(session_id), session_id, 3)
    path = f"/api/recordings/{session_id}/{export}"
    for token in (None, "not-the-team-token"):
        status, headers, body = await fetch(server.url + path, token=token)
        assert status == 401 and orjson.loads(body)["error"] == "http_401", token
        assert headers["Cache-Control"] == "no-store", token
        assert session_id.encode() not in body
    assert (await api(server, path))[0] == 200


@pytest.mark.parametrize("export", ["laps.csv", "laps.json"])
async def test_unknown_malformed_and_traversing_ids_are_unknown_recordings(server, settings, export):
    settings.recordings_dir.mkdir(parents=True, exist_ok=True)
    planted = str(uuid.uuid4())  # a valid recording just outside the recordings dir, where a traversal would land
    write_recording(settings.recordings_dir.parent / f"{planted}.jsonl", planted, 3)
    attempts = [
        str(uuid.uuid4()), "nope", f"{uuid.uuid4()}.jsonl",
        "..%2F..%2Fetc%2Fpasswd", "%2e%2e%2f%2e%2e%2fetc%2fpasswd", "..%5C..%5Cetc%5Cpasswd",
        f"..%2F{planted}", f"%252e%252e%252f{planted}", f"{planted}%00",
    ]
    for attempt in attempts:
        status, headers, body = await api(server, f"/api/recordings/{attempt}/{export}")
        assert status == 404 and orjson.loads(body)["error"] == "unknown_recording", attempt
        assert headers["Cache-Control"] == "no-store", attempt
    assert not list(settings.recordings_dir.parent.glob("*.race.json"))  # nothing was read outside


async def test_an_unreadable_recording_is_an_unknown_recording(server, settings):
    settings.recordings_dir.mkdir(parents=True, exist_ok=True)
    session_id = str(uuid.uuid4())
    server.app.store.path_for(session_id).write_bytes(b"not a recording header\n")
    for export in ("laps.csv", "laps.json"):
        status, _, body = await api(server, f"/api/recordings/{session_id}/{export}")
        assert status == 404 and orjson.loads(body)["error"] == "unknown_recording", export
