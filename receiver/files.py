"""The data directory and the store's files: readable and writable by their owner only.

They hold names, emails and phone numbers. The directory is created ``0700`` and every
file in it ``0600``; a directory or file found more open on start is narrowed, with a
log line. The SQLite file is created here, ``0600``, before SQLite opens it: SQLite gives
its ``-wal`` and ``-shm`` files the mode of the database file, whatever the umask.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger("receiver")

DIR_MODE = 0o700
FILE_MODE = 0o600
_SQLITE_SUFFIXES = ("", "-wal", "-shm", "-journal")


def _narrow(path: Path, mode: int, what: str) -> None:
    try:
        st = path.lstat()
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        return  # a link's target is someone else's decision
    current = stat.S_IMODE(st.st_mode)
    if current & 0o077:
        path.chmod(mode)
        log.warning("%s %s was mode %04o, readable by others: set to %04o", what, path, current, mode)


def _directory(path: Path, narrow: bool) -> None:
    if not path.exists():
        path.mkdir(mode=DIR_MODE, parents=True)
        path.chmod(DIR_MODE)  # mkdir's mode passes through the umask
    elif narrow:
        _narrow(path, DIR_MODE, "data directory")


def secure_store_files(data_dir: Path, sqlite_path: Path | None) -> None:
    """Create or narrow the data directory and every file in it, and the SQLite files
    wherever they are (not their directory, if it exists); create the SQLite database
    file ``0600`` if it does not exist."""
    _directory(data_dir, narrow=True)
    for entry in data_dir.iterdir():
        if entry.is_file() and not entry.is_symlink():
            _narrow(entry, FILE_MODE, "store file")
    if sqlite_path is None:
        return
    if sqlite_path.parent != data_dir:
        # Elsewhere: created 0700 when missing, but an existing directory is not ours to narrow.
        _directory(sqlite_path.parent, narrow=False)
        for suffix in _SQLITE_SUFFIXES:
            _narrow(sqlite_path.with_name(sqlite_path.name + suffix), FILE_MODE, "store file")
    if not sqlite_path.exists():
        os.close(os.open(sqlite_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
