"""Teams in one sqlite file in the state directory (``teams.sqlite3``, mode 0600).

``racedash team …`` writes it; every server process reading the same state
directory reads it, and sqlite's locking keeps writers and readers apart. A
running server notices a change without re-reading the table on every request:
:meth:`SqliteTeamBackend.version` is the database's *file change counter*
(4 bytes of its header that sqlite increments on every commit in its default
rollback-journal mode), read with one ``pread``. No connection is held open: a
reader connects only to reload after a change.
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from pathlib import Path

from racedash.recording.files import make_directory, open_regular
from racedash.teams.model import TeamError, TeamRecord, TeamStoreError

DB_NAME = "teams.sqlite3"
FILE_MODE = 0o600
DIRECTORY_MODE = 0o700
_CHANGE_COUNTER = 24  # offset of the file change counter in a sqlite database header

_SCHEMA = """
CREATE TABLE IF NOT EXISTS teams (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE COLLATE NOCASE,
    login_hash TEXT NOT NULL UNIQUE,
    publish_hash TEXT NOT NULL UNIQUE,
    created REAL NOT NULL,
    rotated REAL
)
"""


def db_path(state_dir: Path) -> Path:
    return Path(state_dir) / DB_NAME


class SqliteTeamBackend:
    """The teams table. ``create``: make the file (and the state directory) if missing, as the CLI does.

    A server uses ``create=False``: it never writes, and with no file there are
    no teams (the single-team default) until ``racedash team add`` makes one,
    which its next lookup notices.
    """

    def __init__(self, path: Path, *, create: bool = False, timeout: float = 5.0) -> None:
        self.path = Path(path)
        self._create = create
        self._timeout = timeout
        self._ready = False

    def version(self) -> object | None:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise TeamStoreError(f"cannot read the team store {self.path}: {exc.strerror or exc}") from None
        try:
            # The inode too: a file replaced by another (a restore) may have the same counter.
            return os.fstat(fd).st_ino, os.pread(fd, 4, _CHANGE_COUNTER)
        except OSError as exc:
            raise TeamStoreError(f"cannot read the team store {self.path}: {exc.strerror or exc}") from None
        finally:
            os.close(fd)

    def _connect(self) -> sqlite3.Connection:
        try:
            if self._create and not self._ready:
                make_directory(self.path.parent, directory_mode=DIRECTORY_MODE)
                # Created 0600 by us (sqlite would follow the umask), never through a link;
                # sqlite gives its journal the database file's mode.
                open_regular(self.path, "ab", file_mode=FILE_MODE).close()
            mode = "rwc" if self._create else "rw"
            conn = sqlite3.connect(
                f"file:{self.path}?mode={mode}", uri=True, timeout=self._timeout, isolation_level=None,
            )
        except (OSError, sqlite3.Error) as exc:
            raise TeamStoreError(f"cannot open the team store {self.path}: {getattr(exc, 'strerror', None) or exc}") from None
        if self._create and not self._ready:
            try:
                conn.execute(_SCHEMA)
            except sqlite3.Error as exc:
                conn.close()
                raise TeamStoreError(f"cannot use the team store {self.path}: {exc}") from None
            self._ready = True
        return conn

    def load(self) -> list[TeamRecord]:
        if not self._create and not self.path.exists():
            return []
        with closing(self._connect()) as conn:
            try:
                rows = conn.execute(
                    "SELECT id, name, created, login_hash, publish_hash, rotated FROM teams ORDER BY created, name"
                ).fetchall()
            except sqlite3.OperationalError as exc:
                if "no such table" in str(exc):
                    return []  # made by a `team add` that has not committed its table yet
                raise TeamStoreError(f"cannot read the team store {self.path}: {exc}") from None
            except sqlite3.Error as exc:
                raise TeamStoreError(f"cannot read the team store {self.path}: {exc}") from None
        return [TeamRecord(*row) for row in rows]

    def add(self, record: TeamRecord) -> None:
        try:
            self._write(
                "INSERT INTO teams (id, name, created, login_hash, publish_hash, rotated) VALUES (?, ?, ?, ?, ?, ?)",
                (record.id, record.name, record.created, record.login_hash, record.publish_hash, record.rotated),
            )
        except sqlite3.IntegrityError:
            raise TeamError(f"a team named {record.name!r} already exists") from None

    def update(self, team_id: str, *, login_hash: str | None, publish_hash: str | None, rotated: float) -> None:
        self._write(
            "UPDATE teams SET login_hash = COALESCE(?, login_hash), publish_hash = COALESCE(?, publish_hash), "
            "rotated = ? WHERE id = ?",
            (login_hash, publish_hash, rotated, team_id),
        )

    def remove(self, team_id: str) -> None:
        self._write("DELETE FROM teams WHERE id = ?", (team_id,))

    def _write(self, sql: str, parameters: tuple) -> None:
        with closing(self._connect()) as conn:
            try:
                conn.execute("BEGIN IMMEDIATE")  # one writer at a time, across processes
                try:
                    conn.execute(sql, parameters)
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            except sqlite3.IntegrityError:
                raise  # the caller words it (a name taken)
            except sqlite3.Error as exc:
                raise TeamStoreError(f"cannot write the team store {self.path}: {exc}") from None
