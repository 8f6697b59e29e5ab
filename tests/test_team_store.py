"""Teams, piece by piece: the sqlite store, the server's cached directory, the monitor's key,
logins and cookies, and the team in a recording's header and summary."""

from __future__ import annotations

import logging
import os
import stat
import uuid
from pathlib import Path

import orjson
import pytest
import tornado.web

from racedash.auth import ADMIN, COOKIE_NAME, TeamAccess
from racedash.errors import NotPublisher
from racedash.recording.format import Header, decode_header, encode_header
from racedash.recording.summary import Summary, load_summary, read_sidecar, sidecar_path
from racedash.sessions import Session
from racedash.teams import (
    MonitorTeams,
    SqliteTeamBackend,
    TeamAdmin,
    TeamDirectory,
    TeamError,
    TeamKeyRequired,
    TeamStoreError,
    UnknownTeam,
    db_path,
)
from racedash.teams.monitors import key_in_query


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def admin(state_dir: Path) -> TeamAdmin:
    """What `racedash team …` uses: its own backend, creating the store."""
    return TeamAdmin(SqliteTeamBackend(db_path(state_dir), create=True))


@pytest.fixture
def directory(state_dir: Path) -> TeamDirectory:
    """What a running server uses: another backend on the same file, never creating it."""
    return TeamDirectory(SqliteTeamBackend(db_path(state_dir)))


# --- the store ------------------------------------------------------------------------------
def test_a_server_never_creates_the_store_and_sees_no_team_without_it(directory, state_dir):
    assert not directory.configured() and directory.teams() == []
    assert directory.by_login_token("anything") is None and directory.by_publish_key("anything") is None
    assert not state_dir.exists()


def test_the_store_keeps_digests_only_in_a_private_file(admin, state_dir):
    record, credentials = admin.add("  Red   Racing ")
    assert record.name == "Red Racing" and len(record.id) == 12
    path = db_path(state_dir)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(state_dir).st_mode) == 0o700
    raw = path.read_bytes()
    assert credentials.login_token.encode() not in raw and credentials.publish_key.encode() not in raw
    assert record.login_hash.encode() in raw


def test_names_are_unique_regardless_of_case_and_checked(admin):
    admin.add("Red")
    with pytest.raises(TeamError, match="already exists"):
        admin.add("RED")
    for bad in ("", "   ", "x" * 65, "tab\tname\x00"):
        with pytest.raises(TeamError):
            admin.add(bad)
    with pytest.raises(TeamError, match="no team named"):
        admin.remove("Blue")
    assert [r.name for r in admin.list()] == ["Red"]


def test_a_running_server_sees_add_rotate_and_remove_at_once(admin, directory):
    assert not directory.configured()
    red, red_credentials = admin.add("Red")
    blue, blue_credentials = admin.add("Blue")
    assert directory.by_login_token(red_credentials.login_token).id == red.id
    assert directory.by_publish_key(blue_credentials.publish_key).id == blue.id
    # A login token is never a publish key, nor the reverse.
    assert directory.by_publish_key(red_credentials.login_token) is None
    assert directory.by_login_token(red_credentials.publish_key) is None

    _, new = admin.rotate("red", login=False, publish=True)
    assert new.login_token is None
    assert directory.by_publish_key(red_credentials.publish_key) is None
    assert directory.by_publish_key(new.publish_key).id == red.id
    assert directory.by_login_token(red_credentials.login_token).id == red.id  # not rotated

    _, new_login = admin.rotate("Red", login=True, publish=False)
    assert directory.by_login_token(red_credentials.login_token) is None
    assert directory.by_login_token(new_login.login_token).id == red.id

    admin.remove("Blue")
    assert directory.get(blue.id) is None and directory.by_publish_key(blue_credentials.publish_key) is None
    assert [t.name for t in directory.teams()] == ["Red"]
    with pytest.raises(TeamError, match="nothing to rotate"):
        admin.rotate("Red", login=False, publish=False)


def test_lookups_do_not_reload_an_unchanged_store(admin, directory, monkeypatch):
    _, credentials = admin.add("Red")
    assert directory.by_login_token(credentials.login_token) is not None
    loads = []
    monkeypatch.setattr(directory.backend, "load", lambda: loads.append(1) or [])
    for _ in range(50):
        assert directory.by_login_token(credentials.login_token) is not None
    assert loads == []


def test_an_unreadable_store_fails_closed_and_is_logged_once(admin, directory, state_dir, caplog):
    _, credentials = admin.add("Red")
    assert directory.by_login_token(credentials.login_token) is not None
    db_path(state_dir).write_bytes(b"this is not a sqlite database" * 200)
    clock = [0.0]
    directory._clock = lambda: clock[0]
    with caplog.at_level(logging.ERROR, logger="racedash.teams.directory"):
        for _ in range(3):
            assert directory.by_login_token(credentials.login_token) is None
            clock[0] += 5
    assert len([r for r in caplog.records if "team store" in r.getMessage()]) == 1
    with pytest.raises(TeamStoreError):
        admin.add("Blue")


def test_oversized_or_empty_secrets_are_no_team(admin, directory):
    admin.add("Red")
    assert directory.by_login_token("") is None and directory.by_publish_key("x" * 10_000) is None


# --- the monitor's key -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("query", "key"),
    [
        (None, ""), ("", ""), ("transport=polling&EIO=4", ""),
        ("team=abc&transport=polling&EIO=4", "abc"), ("EIO=4&team=a%2Fb", "a/b"),
        ("team=", None), ("team=a&team=b", None), ("team=" + "k" * 201, None), ("team=a&team=a", "a"),
    ],
)
def test_the_key_is_read_from_the_handshake_query(query, key):
    assert key_in_query(query) == key


def session(team: str | None = None, next_seq: int = 1) -> Session:
    return Session(id=str(uuid.uuid4()), publish_token="t", created=0.0, next_seq=next_seq, team=team)


def test_a_session_takes_its_first_publishers_team_then_keeps_it(admin, directory):
    red, red_credentials = admin.add("Red")
    blue, blue_credentials = admin.add("Blue")
    monitors = MonitorTeams(directory)
    monitors.bind("red", f"team={red_credentials.publish_key}&EIO=4")
    monitors.bind("blue", f"team={blue_credentials.publish_key}")
    monitors.bind("plain", "EIO=4")
    fresh = session()
    monitors.claim(fresh, "red")
    assert fresh.team == red.id
    monitors.claim(fresh, "red")
    with pytest.raises(NotPublisher, match="another team"):
        monitors.claim(fresh, "blue")
    with pytest.raises(NotPublisher):
        monitors.claim(fresh, "plain")
    # Resumed from a recording (frames published before): its team is fixed, even if it has none.
    with pytest.raises(NotPublisher):
        monitors.claim(session(team=None, next_seq=41), "red")
    monitors.claim(session(team=None, next_seq=41), "plain")
    assert monitors.team_of("plain") is None


def test_bad_rotated_and_missing_keys_are_refused_with_their_codes(admin, directory):
    _, credentials = admin.add("Red")
    monitors = MonitorTeams(directory, required=True)
    monitors.bind("bad", "team=guess")
    monitors.bind("malformed", "team=a&team=b")
    monitors.bind("plain", "")
    monitors.bind("red", f"team={credentials.publish_key}")
    monitors.check_connection("bad")  # a well-formed key is looked up when it is used
    with pytest.raises(UnknownTeam):
        monitors.team_of("bad")
    with pytest.raises(UnknownTeam):
        monitors.check_connection("bad")  # remembered: no second lookup
    with pytest.raises(UnknownTeam):
        monitors.check_connection("malformed")
    with pytest.raises(TeamKeyRequired) as refused:
        monitors.check_connection("plain")
    assert refused.value.code == "team_key_required" and "?team=" in refused.value.message
    assert monitors.team_of("red") is not None
    admin.rotate("Red", login=False)
    with pytest.raises(UnknownTeam, match="rotated"):
        monitors.team_of("red")
    monitors.forget("red")
    with pytest.raises(TeamKeyRequired):
        monitors.check_connection("red")  # forgotten: a new connection under that sid would have no key


# --- logins and cookies ---------------------------------------------------------------------------
def signed(access: TeamAccess, value: str) -> str:
    return tornado.web.create_signed_value(access.cookie_secret, COOKIE_NAME, value).decode()


def test_team_logins_and_their_cookies(admin, directory):
    red, credentials = admin.add("Red")
    access = TeamAccess("admin-token", b"k" * 32, directory)
    assert access.login("admin-token") is ADMIN and ADMIN.sees(red.id) and ADMIN.sees(None)
    principal = access.login(credentials.login_token)
    assert principal.team_id == red.id and principal.name == "Red" and not principal.admin
    assert principal.sees(red.id) and not principal.sees(None) and not principal.sees("0" * 12)
    assert access.login("guess") is None and access.login(None) is None

    cookie = signed(access, access.cookie_for(principal))
    assert access.principal_of_cookie(cookie) == principal
    assert access.principal_of_environ({"HTTP_COOKIE": f"{COOKIE_NAME}={cookie}"}) == principal
    assert access.principal_of_cookie(signed(access, access.cookie_for(ADMIN))) is ADMIN
    # Forged: another team's id with this digest, or a digest of our own making.
    assert access.principal_of_cookie(signed(access, access.cookie_for(principal).replace(red.id, "0" * 12))) is None
    assert access.principal_of_cookie(signed(access, f"team:{red.id}:" + "0" * 32)) is None
    assert access.principal_of_cookie(signed(access, "team:../../x:y")) is None
    # A new login token logs the team's browsers out; so does removing the team.
    _, new = admin.rotate("Red", login=True, publish=False)
    assert access.principal_of_cookie(cookie) is None
    fresh = signed(access, access.cookie_for(access.login(new.login_token)))
    assert access.principal_of_cookie(fresh).team_id == red.id
    admin.remove("Red")
    assert access.principal_of_cookie(fresh) is None


def test_without_teams_access_is_as_before(directory):
    access = TeamAccess("the-token", b"k" * 32, directory)
    assert access.is_token("the-token") and not access.is_token("other")
    assert access.cookie_for(ADMIN) == access.cookie_value
    assert access.scope_label(ADMIN) is None


# --- the team in recordings ----------------------------------------------------------------------------
def test_the_header_names_the_team_only_when_there_is_one():
    plain = encode_header(Header(session_id="s", created=1.0, racedash_version="1"))
    assert b"team" not in plain and decode_header(plain).team is None
    tagged = encode_header(Header(session_id="s", created=1.0, racedash_version="1", team="0123456789ab"))
    assert orjson.loads(tagged)["team"] == "0123456789ab" and decode_header(tagged).team == "0123456789ab"


@pytest.mark.parametrize("team", [5, ["0123456789ab"], {"a": 1}, "../../etc", "X" * 5000, True, ""])
def test_a_tampered_team_in_the_header_is_no_team(team):
    line = orjson.dumps({"format": "racedash-recording", "version": 1, "session_id": "s", "created": 1.0,
                         "team": team}) + b"\n"
    assert decode_header(line).team is None


def write_recording(path: Path, team: str | None) -> None:
    header = encode_header(Header(session_id=path.stem, created=1.0, racedash_version="1", team=team))
    line = orjson.dumps({"t": 2.0, "seq": 1, "kind": "telemetry", "data": {"telemetry": {"lap": 1}}}) + b"\n"
    path.write_bytes(header + line)


def test_the_summary_carries_the_team_and_is_checked_against_the_header(tmp_path):
    path = tmp_path / f"{uuid.uuid4()}.jsonl"
    write_recording(path, "0123456789ab")
    summary = load_summary(path)
    assert summary.team == "0123456789ab" and summary.public(live=False)["team"] == "0123456789ab"
    assert orjson.loads(sidecar_path(path).read_bytes())["team"] == "0123456789ab"
    # A sidecar claiming another team than the header's is not believed: rebuilt from the file.
    forged = orjson.loads(sidecar_path(path).read_bytes())
    sidecar_path(path).write_bytes(orjson.dumps({**forged, "team": "ffffffffffff"}))
    assert load_summary(path).team == "0123456789ab"
    sidecar_path(path).write_bytes(orjson.dumps({**forged, "team": 12}))
    assert read_sidecar(path) is None and load_summary(path).team == "0123456789ab"


def test_a_sidecar_written_before_teams_reads_as_no_team(tmp_path):
    path = tmp_path / f"{uuid.uuid4()}.jsonl"
    write_recording(path, None)
    old = orjson.loads(load_summary(path).to_sidecar())
    del old["team"]
    sidecar_path(path).write_bytes(orjson.dumps(old))
    cached = read_sidecar(path)
    assert isinstance(cached, Summary) and cached.team is None
    assert load_summary(path).frames == 1


def test_the_start_banner_calls_the_server_token_the_admin_login_once_teams_exist():
    from types import SimpleNamespace

    from racedash.banner import login_label, start_banner

    with_teams = SimpleNamespace(teams=SimpleNamespace(configured=lambda: True))
    without = SimpleNamespace(teams=SimpleNamespace(configured=lambda: False))
    assert login_label(with_teams) == "admin login"
    assert login_label(without) == login_label(SimpleNamespace(teams=None)) == "team login"
    banner = start_banner("server", "http://h:5000", login_url="http://h:5000/login?token=t",
                          login_label=login_label(with_teams))
    assert "admin login: http://h:5000/login?token=t" in banner
