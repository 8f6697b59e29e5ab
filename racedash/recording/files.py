"""Opening files under the recordings directory: regular files only, links never followed.

Whoever can plant a symlink or a FIFO named ``<id>.jsonl`` (another local
user, a restored backup) must not make racedash serve ``/etc/shadow`` as a
download, append frames to a file outside the directory, or block a worker on
a pipe. Every open here uses ``O_NOFOLLOW`` (a link as the last component is
refused) and ``O_NONBLOCK`` (a FIFO cannot block the open), then checks with
``fstat`` on the opened descriptor (no race with a swap) that it is a regular
file. Sidecars are replaced through a fresh temporary file and ``rename``,
which replaces a link instead of writing through it.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import tempfile
from pathlib import Path
from typing import BinaryIO

FILE_MODE = 0o640
DIRECTORY_MODE = 0o750

_READ = os.O_RDONLY
_APPEND = os.O_WRONLY | os.O_APPEND | os.O_CREAT


class NotARegularFile(OSError):
    def __init__(self, path: Path) -> None:
        super().__init__(errno.EINVAL, "not a regular file (a link, a pipe or a device)", str(path))


def open_regular(path: Path, mode: str = "rb", *, file_mode: int = FILE_MODE) -> BinaryIO:
    """``open(path, mode)`` for ``rb`` or ``ab`` (unbuffered), refusing links and non-regular files."""
    if mode not in ("rb", "ab"):
        raise ValueError(f"unsupported mode {mode!r}")
    flags = (_READ if mode == "rb" else _APPEND) | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, file_mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise NotARegularFile(path) from None
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotARegularFile(path)
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        return os.fdopen(fd, mode, buffering=-1 if mode == "rb" else 0)
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: Path) -> bytes:
    with open_regular(path) as f:
        return f.read()


def is_regular(path: Path) -> bool:
    """A regular file, not through a link (``lstat``)."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def replace_atomically(path: Path, data: bytes, *, file_mode: int = FILE_MODE) -> None:
    """Write ``data`` as ``path`` at once: a reader sees the old or the new file, never half, never through a link."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, file_mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def shown(path: Path) -> str:
    """A recording's file name as logs may show it: the id is the viewers' secret, so 8 characters of it."""
    name = Path(path).name
    stem, dot, rest = name.partition(".")
    return f"{stem[:8]}…{dot}{rest}" if len(stem) > 8 else name


def make_directory(path: Path, *, directory_mode: int = DIRECTORY_MODE) -> None:
    os.makedirs(path, mode=directory_mode, exist_ok=True)
