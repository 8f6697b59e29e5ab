import pytest

from racedash.recording.format import (
    Header,
    RecordingFormatError,
    decode_event,
    decode_header,
    encode_event,
    encode_header,
)


def test_header_round_trip():
    header = Header(session_id="6f1c2d9e-4b7a-4e2f-9c1d-3a5b7e9f0a12", created=1763831805.16043, racedash_version="0.1.0")
    assert decode_header(encode_header(header)) == header


def test_event_round_trip_keeps_payload_exactly():
    data = {"session_id": "x", "telemetry": {"lap_time": -2.758984327316284, "tire_temps": {"fl": -273.15}, "extra": [1, "a"]}}
    event = decode_event(encode_event(1763831805.160431, 7, "telemetry", data))
    assert event.t == 1763831805.160431 and event.seq == 7 and event.kind == "telemetry" and event.data == data


@pytest.mark.parametrize(
    "line",
    [
        b'{"t": 1.0, "seq": 1, "kind": "telemetry", "data": {}}',  # torn: no newline
        b'{"t": 1.0, "seq": 1, "kind": "tele\n',  # cut mid-object
        b'{"t": 1.0, "seq": 1, "kind": "annotation", "data": {}}\n',  # unknown kind
        b"[1, 2]\n",
        b'{"t": "x", "seq": 1, "kind": "telemetry", "data": {}}\n',
        b'{"t": 1.0, "seq": 1, "kind": "telemetry", "data": 5}\n',
    ],
)
def test_bad_lines_decode_to_none(line):
    assert decode_event(line) is None


@pytest.mark.parametrize(
    "line",
    [
        b"",
        b"not json\n",
        b'{"format": "other"}\n',
        b'{"format": "racedash-recording", "version": 99}\n',
        b'{"format": "racedash-recording", "version": 1}\n',
        b'{"format": "racedash-recording", "version": 1, "session_id": "x", "created": 1.0}',
    ],
)
def test_bad_headers_raise(line):
    with pytest.raises(RecordingFormatError):
        decode_header(line)
