"""``ensure_head(path)``: what the board application could call on every connect instead of its
add-if-missing pass.

    >>> import kanban_migrate
    >>> kanban_migrate.ensure_head("~/.hermes/kanban.db")   # doctest: +SKIP
    'current'

A board stamped at head is answered from its stamp with a read-only connection: nothing is
written, locked for writing or created beside it, and the standard library alone is imported.
Anything else happens under the application's own lock rules: its cross-process init lock
(``<db>.init.lock``, an exclusive ``flock`` every first connect of the application takes), the
busy timeout, and ``BEGIN IMMEDIATE`` for every write. Under the lock the stamp is read again
(another process may have done the work meanwhile), then:

* a board whose schema is already head's (the application made or upgraded it) and that has no
  data change pending is only stamped: no backup, nothing else changed;
* a missing or empty file becomes a new board at head (as the application's connect creates one);
* anything else goes through :func:`kanban_migrate.upgrade` (``quick_check``, backup, the chain).

Refusals are :class:`kanban_migrate.errors.KanbanMigrateError`; the one the application must
handle is :class:`~kanban_migrate.errors.CorruptBoard` (the board is damaged: call
:func:`kanban_migrate.recover`, README "Embedding"), and :class:`~kanban_migrate.errors.BoardBusy`
(retry later).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
import time
from pathlib import Path

from . import board as _board
from .errors import BoardBusy, KanbanMigrateError, MissingBoard
from .upgrading import HEAD, upgrade

INIT_LOCK_SUFFIX = ".init.lock"  # the application's cross-process init lock (spec section 1)
_POLL = 0.05


def read_stamp(path: str | os.PathLike, busy_timeout: float = _board.DEFAULT_BUSY_TIMEOUT) -> str | None:
    """The revision a board is stamped with, read-only; None when it has no stamp.

    Raises MissingBoard / NotABoard for what cannot be a board, sqlite3.Error for what SQLite
    cannot read."""
    return _stamp_of(_board.check_file(path), busy_timeout)


def _stamp_of(bf: _board.BoardFile, busy_timeout: float) -> str | None:
    conn = _board.open_ro(bf, busy_timeout=busy_timeout)
    try:
        return _board.read_revision(conn)
    finally:
        conn.close()


def _at_head_quickly(path: str, busy_timeout: float) -> bool:
    """The every-connect question, at the least cost: a regular file with a SQLite header, stamped
    at head. Anything unusual answers False and is left to the careful path (``check_file``)."""
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode) or st.st_size < 512:
            return False
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            header = os.read(fd, 100)
        finally:
            os.close(fd)
        if not header.startswith(_board.MAGIC) or len(header) < 100:
            return False
        bf = _board.BoardFile(Path(path), st.st_size, header, Path(path + "-wal"), Path(path + "-shm"))
        return _stamp_of(bf, busy_timeout) == HEAD
    except (OSError, sqlite3.Error):
        return False


@contextlib.contextmanager
def init_lock(path: Path, timeout: float):
    """The application's ``<db>.init.lock``: an exclusive ``flock``, polled until ``timeout``.

    The application gives up after 10 s and goes on without it; a migration must not, so a lock
    still held after ``timeout`` is a refusal (exit 4). A lock file made here gets the board's
    access (owner included), so the application can still open it."""
    import fcntl

    from .backup import inherit_access

    lock = path.with_name(path.name + INIT_LOCK_SUFFIX)
    made = not lock.exists()
    fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        if made and path.exists():
            inherit_access(lock, path)
            made = False
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise BoardBusy(f"another process holds {lock.name} (it is initialising or upgrading the board)",
                                    "retry when it is done, or with a longer busy timeout", path=str(path)) from None
                time.sleep(_POLL)
        try:
            yield
        finally:
            if made and path.exists():
                inherit_access(lock, path)  # the board was created meanwhile
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _read_stamp_rw(path: Path, busy_timeout: float) -> str | None:
    """The stamp through a read-write connection: a hot rollback journal left by a killed writer
    can only be rolled back by one (as the application's own connect does), not read past."""
    conn = sqlite3.connect(str(path), timeout=busy_timeout, isolation_level=None)
    try:
        conn.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        return _board.read_revision(conn)
    finally:
        conn.close()


def _data_changes_pending(conn: sqlite3.Connection) -> bool:
    """Would the revision chain change any row of a board whose schema is head's (spec section 5)?"""
    from .head import EVENT_KIND_RENAMES

    marks = ",".join("?" * len(EVENT_KIND_RENAMES))
    if conn.execute(f"SELECT 1 FROM task_events WHERE kind IN ({marks}) LIMIT 1",
                    tuple(EVENT_KIND_RENAMES)).fetchone():
        return True
    return conn.execute("SELECT 1 FROM tasks WHERE status = 'running' AND current_run_id IS NULL LIMIT 1"
                        ).fetchone() is not None


def only_needs_a_stamp(path: Path, busy_timeout: float) -> bool:
    """An unstamped board that is at head already, healthy, with no data change pending."""
    from .fingerprint import fingerprint
    from .head import expected
    from .schema import at_head, snapshot

    conn = _board.open_ro(_board.check_file(path), busy_timeout=busy_timeout)
    try:
        s = snapshot(conn)
        if not (fingerprint(s).is_kanban and at_head(s, expected())):
            return False
        if [r[0] for r in conn.execute("PRAGMA quick_check")] != ["ok"]:
            return False  # upgrade() refuses it with the reason
        return not _data_changes_pending(conn)
    finally:
        conn.close()


def stamp_head(path: Path, busy_timeout: float) -> None:
    """Write the head stamp with Alembic (one ``BEGIN IMMEDIATE`` transaction), nothing else."""
    from alembic import command
    from sqlalchemy.exc import DBAPIError

    from .migration import make_config, make_engine

    engine = make_engine(path, busy_timeout=busy_timeout)
    try:
        with engine.connect() as conn:
            command.stamp(make_config(connection=conn), "head")
    except DBAPIError as exc:
        raise _board.translate(exc.orig, str(path)) from None
    finally:
        engine.dispose()


def ensure_head(path: str | os.PathLike, *, busy_timeout: float = _board.DEFAULT_BUSY_TIMEOUT,
                create: bool = True) -> str:
    """Make sure the board at ``path`` is at head; returns what it took: ``"current"``,
    ``"stamped"``, ``"upgraded"`` or ``"created"`` (see the module docstring)."""
    if _at_head_quickly(os.path.expanduser(os.fspath(path)), busy_timeout):
        return "current"
    path = Path(path).expanduser()  # from here on: the careful path, which says what is wrong
    try:
        _board.check_file(path, allow_empty=True)  # refusals before anything is made beside it
    except MissingBoard:
        if not create:
            raise
        path.parent.mkdir(parents=True, exist_ok=True)
    with init_lock(path, busy_timeout):
        try:
            try:
                revision = read_stamp(path, busy_timeout)
            except sqlite3.Error:
                revision = _read_stamp_rw(path, busy_timeout)
        except (KanbanMigrateError, sqlite3.Error):
            revision = None
        else:
            if revision == HEAD:
                return "current"  # another process did it while we waited
            if revision is None and only_needs_a_stamp(path, busy_timeout):
                stamp_head(path, busy_timeout)
                return "stamped"
        result = upgrade(path, create=create, busy_timeout=busy_timeout)
        return "current" if result.status == "current" else result.status
