"""Replay scheduling and seeking with a manual clock: exact emit times, re-anchoring, seek to lap."""

from __future__ import annotations

import uuid

import pytest

from racedash.replay.errors import InvalidControl, ReplayStopped, UnknownLap
from racedash.replay.index import open_index
from racedash.replay.player import ENDED, PAUSED, PLAYING, STOPPED, Replay, ReplayOptions
from racedash.replay.timing import Schedule
from tests.replay_helpers import KeepingBroadcaster, ManualClock, new_recording

T0 = 1_700_000_000.0


def test_schedule_is_one_absolute_formula():
    s = Schedule(anchor_time=100.0)
    assert s.due(5.0) == 105.0
    s.set_speed(4.0, now=102.0)  # position 2.0 at 102
    assert s.position(103.0) == 6.0 and s.due(10.0) == 104.0
    s.pause(103.0)
    assert s.position(500.0) == 6.0
    s.resume(200.0)
    assert s.due(6.0) == 200.0 and s.due(8.0) == 200.5
    s.seek(1.0, now=300.0)
    assert s.position(301.0) == 5.0
    with pytest.raises(ValueError):
        s.set_speed(32.0, now=0.0)
    with pytest.raises(ValueError):
        s.set_speed(0.1, now=0.0)


def make_replay(tmp_path, clock, *, speed=1.0, paused=False, options=ReplayOptions(), is_live=lambda: False, **stint):
    recording_id, path = new_recording(tmp_path, **stint)
    out = KeepingBroadcaster(clock)
    replay = Replay(
        replay_id=str(uuid.uuid4()),
        recording_id=recording_id,
        path=path,
        index=open_index(path),
        broadcaster=out,
        clock=clock,
        options=options,
        is_live=is_live,
        speed=speed,
        paused=paused,
    )
    replay.start()
    return replay, out


def telemetry_times(out):
    return [(t, d["telemetry"]["lap"], d["seq"]) for t, d in out.events("telemetry_update")]


async def finish(replay):
    if replay.status != STOPPED:
        await replay.stop()
    await replay.task


@pytest.mark.parametrize("speed", [0.25, 1.0, 2.0, 16.0])
async def test_frames_are_emitted_exactly_on_schedule(tmp_path, speed):
    clock = ManualClock(start=1000.0)
    replay, out = make_replay(tmp_path, clock, speed=speed, laps=2, frames_per_lap=5)
    await clock.advance(20.0 / speed)
    setups = out.events("setup_update")
    assert [t for t, _ in setups] == [1000.0]
    frames = telemetry_times(out)
    assert len(frames) == 10
    # Telemetry i was recorded 0.5 s * (i + 1) after the first event (the setup).
    assert [t for t, _lap, _seq in frames] == pytest.approx(
        [1000.0 + 0.5 * (i + 1) / speed for i in range(10)], abs=1e-9
    )
    assert [seq for *_x, seq in frames] == list(range(2, 12))
    assert replay.status == ENDED
    assert replay.state()["position"] == replay.state()["duration"] == 5.0
    await finish(replay)


async def test_pause_resume_and_speed_reanchor_the_schedule(tmp_path):
    clock = ManualClock(start=1000.0)
    replay, out = make_replay(tmp_path, clock, laps=2, frames_per_lap=10)
    await clock.advance_to(1002.25)  # frames at positions 0.5 .. 2.0 emitted
    assert [t for t, *_ in telemetry_times(out)] == [1000.5, 1001.0, 1001.5, 1002.0]
    state = await replay.pause()
    assert state["status"] == PAUSED and state["position"] == 2.25
    await clock.advance(10.0)
    assert len(telemetry_times(out)) == 4  # nothing while paused
    state = await replay.play()  # at 1012.25, position 2.25
    assert state["status"] == PLAYING
    await clock.advance_to(1013.1)  # position 3.1: frames 2.5 at 1012.5, 3.0 at 1013.0
    assert [t for t, *_ in telemetry_times(out)][4:] == pytest.approx([1012.5, 1013.0])
    state = await replay.set_speed(4.0)
    assert state["speed"] == 4.0 and state["position"] == pytest.approx(3.1)
    await clock.advance_to(1013.5)
    # From position 3.1 at 1013.1, four times faster: 3.5 -> 1013.2, 4.0 -> 1013.325, 4.5 -> 1013.45
    assert [t for t, *_ in telemetry_times(out)][6:] == pytest.approx([1013.2, 1013.325, 1013.45])
    await finish(replay)


async def test_seek_to_lap_sends_state_then_continues_from_there(tmp_path):
    clock = ManualClock(start=1000.0)
    replay, out = make_replay(
        tmp_path, clock, laps=4, frames_per_lap=10, options=ReplayOptions(history_seconds=2.0, history_frames=100)
    )
    await clock.advance_to(1001.2)
    assert [lap["lap"] for lap in replay.state()["laps"]] == [1, 2, 3, 4]
    assert [lap["t"] for lap in replay.state()["laps"]] == [0.5, 5.5, 10.5, 15.5]
    out.sent.clear()
    state = await replay.seek_lap(3)
    assert state["position"] == 10.5 and state["lap"] == 3 and state["status"] == PLAYING
    assert [event for _t, _to, event, _d in out.sent] == [
        "replay_state",
        "setup_update",
        "telemetry_history",
        "telemetry_update",
    ]
    history = out.events("telemetry_history")[0][1]["frames"]
    # Positions in (8.5, 10.5]: 9.0 .. 10.5, the last one starting lap 3.
    assert [f["telemetry"]["lap"] for f in history] == [2, 2, 2, 3]
    assert out.events("telemetry_update")[0][1]["telemetry"]["lap"] == 3
    out.sent.clear()
    await clock.advance(1.0)
    frames = telemetry_times(out)
    # Continues with the frame after the lap start, 0.5 s later, no duplicates.
    assert [t for t, *_ in frames] == pytest.approx([1001.7, 1002.2])
    assert [lap for _t, lap, _s in frames] == [3, 3]
    with pytest.raises(UnknownLap):
        await replay.seek_lap(9)
    await finish(replay)


async def test_seek_while_paused_stays_paused_and_clamps(tmp_path):
    clock = ManualClock()
    replay, out = make_replay(tmp_path, clock, paused=True, laps=2, frames_per_lap=10)
    await clock.advance(5.0)
    assert telemetry_times(out) == []
    state = await replay.seek(1e9)
    assert state["position"] == state["duration"] == 10.0 and state["status"] == PAUSED
    assert out.events("telemetry_update")[-1][1]["seq"] == 21
    state = await replay.seek(-5)
    assert state["position"] == 0.0
    assert out.events("telemetry_history")[-1][1]["frames"] == []
    await finish(replay)


async def test_play_after_end_starts_over(tmp_path):
    clock = ManualClock(start=0.0)
    replay, out = make_replay(tmp_path, clock, laps=1, frames_per_lap=4)
    await clock.advance(3.0)
    assert replay.status == ENDED and len(telemetry_times(out)) == 4
    await replay.play()
    assert replay.status == PLAYING
    await clock.advance(3.0)
    assert [seq for *_x, seq in telemetry_times(out)] == [2, 3, 4, 5, 2, 3, 4, 5]
    await finish(replay)


async def test_replay_state_is_periodic_and_on_every_change(tmp_path):
    clock = ManualClock(start=0.0)
    replay, out = make_replay(tmp_path, clock, paused=True, laps=1, frames_per_lap=4,
                              options=ReplayOptions(state_interval=2.0))
    await clock.advance(5.0)
    assert [t for t, _ in out.events("replay_state")] == [0.0, 2.0, 4.0]
    await replay.set_speed(2.0)
    assert out.events("replay_state")[-1] == (5.0, replay.state())
    await finish(replay)
    assert out.events("replay_state")[-1][1]["status"] == STOPPED


async def test_controls_are_validated_and_stop_is_final(tmp_path):
    clock = ManualClock()
    replay, _out = make_replay(tmp_path, clock, laps=1)
    for action, args in [("speed", {"speed": 32}), ("speed", {}), ("seek", {}), ("seek", {"time": 1, "lap": 2}),
                         ("rewind", {})]:
        with pytest.raises(InvalidControl):
            await replay.control(action, **args)
    state = await replay.control("stop")
    assert state["status"] == STOPPED and state["reason"] == "stopped"
    await replay.task
    with pytest.raises(ReplayStopped):
        await replay.control("play")


async def test_follow_mode_reads_a_growing_recording(tmp_path):
    from racedash.recording.format import encode_event
    from tests.replay_helpers import telemetry_frame

    clock = ManualClock(start=0.0)
    live = {"on": True}
    replay, out = make_replay(tmp_path, clock, laps=1, frames_per_lap=2, is_live=lambda: live["on"])
    await clock.advance(5.0)
    assert len(telemetry_times(out)) == 2 and replay.status == PLAYING
    # The recorder appends a new lap, the second line still half written.
    with open(replay.path, "ab") as f:
        f.write(encode_event(T0 + 6.0, 4, "telemetry", {"session_id": replay.recording_id, "telemetry": telemetry_frame(2)}))
        torn = encode_event(T0 + 6.5, 5, "telemetry", {"session_id": replay.recording_id, "telemetry": telemetry_frame(2)})
        f.write(torn[:20])
    await clock.advance(1.0)
    assert [lap for _t, lap, _s in telemetry_times(out)] == [1, 1, 2]
    assert replay.state()["duration"] == 6.0 and [l["lap"] for l in replay.state()["laps"]] == [1, 2]
    with open(replay.path, "ab") as f:
        f.write(torn[20:])
    await clock.advance(1.0)
    assert [s for _t, _lap, s in telemetry_times(out)] == [2, 3, 4, 5]
    live["on"] = False
    await clock.advance(1.0)
    assert replay.status == ENDED
    await finish(replay)
