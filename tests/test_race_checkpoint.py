"""A race model saved as JSON and restored goes on exactly as the original; a saved state that does not fit is not used."""

from __future__ import annotations

import copy
import uuid
from pathlib import Path

import orjson
import pytest

from racedash.race import RaceModel
from racedash.race.alerts import AlertOptions
from racedash.race.checkpoint import CheckpointError, model_from_state, model_state
from racedash.race.model import RaceOptions
from racedash.recording.format import Header, encode_event, encode_header
from racedash.recording.race import MAX_STATE_BYTES, build_model, model_state_path, save_model_state
from racedash.simulator.model import SETUP
from tests.test_race_model import simulated

# Limits the simulated car crosses, so that temperature alerts are armed and raised along the way
# (half a second of monitor time: the stream below runs at 10x).
OPTIONS = RaceOptions(alerts=AlertOptions(tyre_temp_max_c=93.0, brake_temp_max_c=500.0, over_seconds=0.5))


def eventful_stream() -> list[tuple[int, str, dict]]:
    """(seq, kind, payload): 12 laps at 10x with a stop and a driver change, a setup change, a puncture, two outages."""
    _, frames = simulated(laps=12, speedup=10)  # lap_time runs 10 times as fast as the monitor's clock
    frames = copy.deepcopy(frames)
    telemetry = [p["telemetry"] for kind, p in frames if kind != SETUP]
    lap3 = [t for t in telemetry if t["lap"] == 3]
    for t in lap3[len(lap3) // 2:]:
        t["tire_pressures"]["fl"] -= 60.0  # a puncture

    def frame_in(lap: int, lap_time: float) -> int:
        return next(i for i, (kind, p) in enumerate(frames) if kind != SETUP and p["telemetry"]["lap"] == lap
                    and p["telemetry"]["lap_time"] > lap_time)

    short, long = frame_in(5, 10), frame_in(7, 40)  # 6 s of monitor time within lap 5; 30 s across lap 7's line
    kept = frames[:short] + frames[short + 12:long] + frames[long + 60:]
    return [(seq, kind, payload) for seq, (kind, payload) in enumerate(kept, 1)]


def roundtrip(model: RaceModel) -> RaceModel:
    return model_from_state(orjson.loads(orjson.dumps(model_state(model))), model.options)


def test_a_restored_model_goes_on_exactly_as_the_original():
    stream = eventful_stream()
    whole = RaceModel(OPTIONS)
    events = [orjson.dumps(whole.feed(seq, kind, payload)) for seq, kind, payload in stream]
    tables = orjson.dumps(whole.tables())
    assert len(whole.pit_stops) == 1 and whole.driver_changes and whole.setup_changes
    assert {a["kind"] for a in whole.alerts} >= {"pressure_loss", "fuel_window", "brake_hot"}
    assert any(row["incomplete"] for row in whole.laps)

    # Saved at every other frame: 40 frames later the restored model is in the very state of the
    # original (the temperature timers, the pressure history, the lap and stop in progress...).
    window = 40
    at_cut, ahead = RaceModel(OPTIONS), RaceModel(OPTIONS)
    for seq, kind, payload in stream[:window]:
        ahead.feed(seq, kind, payload)
    for cut in range(1, len(stream) - window):
        at_cut.feed(*stream[cut - 1])
        ahead.feed(*stream[cut + window - 1])
        if cut % 2:
            continue
        restored = roundtrip(at_cut)
        for seq, kind, payload in stream[cut:cut + window]:
            assert orjson.dumps(restored.feed(seq, kind, payload)) == events[seq - 1], (cut, seq)
        assert orjson.dumps(model_state(restored)) == orjson.dumps(model_state(ahead)), cut

    # And to the end of the stream, from a few of them.
    for cut in range(1, len(stream), len(stream) // 5):
        restored = roundtrip(feed(stream[:cut]))
        for seq, kind, payload in stream[cut:]:
            assert orjson.dumps(restored.feed(seq, kind, payload)) == events[seq - 1], (cut, seq)
        assert orjson.dumps(restored.tables()) == tables, cut
        assert restored.frame_summary() == whole.frame_summary()


def feed(stream: list[tuple[int, str, dict]]) -> RaceModel:
    model = RaceModel(OPTIONS)
    for seq, kind, payload in stream:
        model.feed(seq, kind, payload)
    return model


def test_malformed_states_are_refused():
    _, frames = simulated(laps=3)
    model = RaceModel(OPTIONS)
    for seq, (kind, payload) in enumerate(frames, 1):
        model.feed(seq, kind, payload)
    good = orjson.loads(orjson.dumps(model_state(model)))
    assert model_from_state(good, OPTIONS).seq == model.seq

    def broken(change) -> dict:
        state = copy.deepcopy(good)
        change(state)
        return state

    bad = [
        None, [], {"version": 999},
        broken(lambda s: s.update(version=0)),
        broken(lambda s: s.pop("prev")),
        broken(lambda s: s.update(seq="12")),
        broken(lambda s: s.update(rate=float("nan"))),
        broken(lambda s: s["laps"][0].update(time="1:30")),
        broken(lambda s: s["laps"][0].update(clean=1)),
        broken(lambda s: s["laps"].append({"lap": 9})),
        broken(lambda s: s["prev"]["wear"].update(xx=1.0)),
        broken(lambda s: s["prev"].update(lap=1.5)),
        broken(lambda s: s["lap"]["tyre_temps"]["counts"].update(fl=1.5)),
        broken(lambda s: s["lap"].update(wear_used={})),
        broken(lambda s: s.update(slow_since=[1.0])),
        broken(lambda s: s.update(setup_values=[1])),
        broken(lambda s: s["alert_watch"].update(raised="fuel")),
        broken(lambda s: s["alert_watch"]["pressures"].update(fl=[[1.0]])),
        broken(lambda s: s["alert_watch"]["pressures"].pop("rr")),
        broken(lambda s: s["alert_watch"]["over_since"].update({"tyre:fl": "soon"})),
        broken(lambda s: s.update(stop={"seq": 1})),
    ]
    for state in bad:
        with pytest.raises(CheckpointError):
            model_from_state(state, OPTIONS)


# -- beside a recording ---------------------------------------------------------------------------
def write_stream(path: Path, stream: list[tuple[int, str, dict]], created: float = 1_700_000_000.0) -> None:
    lines = [encode_header(Header(session_id=path.stem, created=created, racedash_version="test"))]
    lines += [encode_event(created + seq * 0.5, seq, kind, payload) for seq, kind, payload in stream]
    path.write_bytes(b"".join(lines))


def save_state_at(path: Path, stream: list, upto: int, options: RaceOptions = OPTIONS) -> RaceModel:
    model = RaceModel(options)
    for seq, kind, payload in stream[:upto]:
        model.feed(seq, kind, payload)
    save_model_state(path, options, orjson.dumps(model_state(model)))
    return model


@pytest.fixture
def recording(tmp_path) -> tuple[Path, list]:
    _, frames = simulated(laps=4)
    stream = [(seq, kind, payload) for seq, (kind, payload) in enumerate(frames, 1)]
    path = tmp_path / f"{uuid.uuid4()}.jsonl"
    write_stream(path, stream)
    return path, stream


def rebuilt(path: Path) -> bytes:
    return orjson.dumps(build_model(path, OPTIONS, resume=False)[0].tables())


def test_a_rebuild_starts_from_the_saved_state_and_reads_only_the_frames_after_it(recording, caplog):
    path, stream = recording
    save_state_at(path, stream, len(stream) - 25)
    caplog.set_level("INFO", logger="racedash.recording.race")
    model, identity, _ = build_model(path, OPTIONS)
    assert orjson.dumps(model.tables()) == rebuilt(path)
    assert identity["session_id"] == path.stem
    assert f"from its state saved at seq {len(stream) - 25} and the 25 frames after it" in caplog.text

    # A torn last line (a crash mid-write) changes nothing.
    with open(path, "ab") as f:
        f.write(b'{"t":1,"seq":99999,"kind":"tele')
    assert orjson.dumps(build_model(path, OPTIONS)[0].tables()) == rebuilt(path)


def test_a_saved_state_that_does_not_fit_the_recording_is_not_used(recording, caplog):
    path, stream = recording
    truth = rebuilt(path)
    state_path = model_state_path(path)
    caplog.set_level("INFO", logger="racedash.recording.race")

    def used() -> bool:
        caplog.clear()
        result = orjson.dumps(build_model(path, OPTIONS)[0].tables())
        assert result == truth  # whatever the sidecar holds
        return "from its state saved" in caplog.text

    assert not used()  # none saved
    save_state_at(path, stream, 100)
    assert used()
    good = state_path.read_bytes()

    state_path.write_bytes(b"{not json")
    assert not used()
    state_path.write_bytes(b'{"format": "racedash-race-tables"}')
    assert not used()
    state_path.write_bytes(good.replace(b'"version":1', b'"version":7'))
    assert not used()
    state_path.write_bytes(good.replace(b'"created":1700000000.0', b'"created":1700000001.0'))
    assert not used()  # another recording of the same name (deleted and started again)
    save_state_at(path, stream, 100, RaceOptions(recent_laps=3))
    assert not used()  # made with other options
    # A state counting frames the file does not hold (cut short since): the file is the truth.
    longer = stream + [(len(stream) + i, kind, payload) for i, (_, kind, payload) in enumerate(stream[-40:], 1)]
    save_state_at(path, longer, len(longer))
    assert not used()
    state_path.unlink()
    state_path.symlink_to(path)
    assert not used()  # never read through a link
    state_path.unlink()
    state_path.write_bytes(good)
    assert used()
    with open(state_path, "r+b") as f:
        f.truncate(MAX_STATE_BYTES + 1)  # sparse: nothing is read past the bound
    assert not used()


def test_a_state_that_cannot_be_saved_is_only_logged(tmp_path, caplog):
    missing = tmp_path / f"{uuid.uuid4()}.jsonl"  # its recording is gone (deleted meanwhile)
    save_model_state(missing, OPTIONS, orjson.dumps(model_state(RaceModel(OPTIONS))))
    assert not model_state_path(missing).exists()
    assert "could not save the race model state" in caplog.text
