"""The application's journal-mode rule (spec section 2, ``apply_wal_with_fallback``), on both sides
of the WAL-reset gate: in the pure rule, in ``upgrade``, ``upgrade --create`` and the fixtures."""

from __future__ import annotations

import sqlite3

import pytest

from support import pragma_rows, rows, sha256
from kanban_migrate import board, fixtures, history
from kanban_migrate.upgrading import upgrade

AFFECTED = [(3, 7, 0), (3, 40, 1), (3, 44, 5), (3, 45, 0), (3, 50, 6), (3, 51, 0), (3, 51, 2)]
SAFE = [(3, 6, 23), (3, 44, 6), (3, 44, 9), (3, 50, 7), (3, 50, 9), (3, 51, 3), (3, 53, 1), (4, 0, 0)]


def header_mode(path) -> str:
    """Header bytes 18/19: 2/2 is WAL, 1/1 a rollback journal."""
    with open(path, "rb") as fh:
        head = fh.read(20)
    return "wal" if head[18:20] == b"\x02\x02" else "rollback"


@pytest.mark.parametrize("version", AFFECTED)
def test_affected_versions(version):
    assert board.wal_reset_vulnerable(version)
    assert board.wal_reset_vulnerable(version[:2])  # (3, 40) reads as 3.40.0
    assert board.journal_mode_for("delete", version) is None  # kept in DELETE
    assert board.journal_mode_for("DELETE", version) is None
    assert board.journal_mode_for("truncate", version) == "delete"
    assert board.journal_mode_for("persist", version) == "delete"
    assert board.journal_mode_for("wal", version) is None  # never downgraded, never re-issued


@pytest.mark.parametrize("version", SAFE)
def test_safe_versions(version):
    assert not board.wal_reset_vulnerable(version)
    assert board.journal_mode_for("delete", version) == "wal"
    assert board.journal_mode_for("truncate", version) == "wal"
    assert board.journal_mode_for("wal", version) is None
    assert board.journal_mode_for("WAL", version) is None


def test_an_unreadable_mode_is_left_alone():
    for version in (AFFECTED[1], SAFE[-2]):
        assert board.journal_mode_for(None, version) is None
        assert board.journal_mode_for("", version) is None


def test_the_default_version_is_the_running_library(monkeypatch):
    monkeypatch.setattr(sqlite3, "sqlite_version_info", (3, 51, 3))
    assert board.journal_mode_for("delete") == "wal"
    monkeypatch.setattr(sqlite3, "sqlite_version_info", (3, 40, 1))
    assert board.journal_mode_for("delete") is None


def traced_settings(path) -> tuple[str, list[str]]:
    conn = sqlite3.connect(path, isolation_level=None)
    seen: list[str] = []
    conn.set_trace_callback(seen.append)
    try:
        mode = board.apply_settings(conn, busy_timeout=5)
    finally:
        conn.close()
    return mode, [s for s in seen if "journal_mode" in s.lower()]


@pytest.mark.parametrize("version", [(3, 40, 1), (3, 51, 3)])
def test_journal_mode_wal_is_never_reissued_on_a_wal_board(tmp_path, monkeypatch, version, kanban_board):
    path = kanban_board("v7", tasks=5, journal_mode="wal", name="kanban.db")
    monkeypatch.setattr(sqlite3, "sqlite_version_info", version)
    mode, statements = traced_settings(path)
    assert mode == "wal"
    assert [s.strip().upper() for s in statements] == ["PRAGMA JOURNAL_MODE"]  # read, never set


def test_a_delete_board_is_only_read_under_an_affected_sqlite(tmp_path, monkeypatch, kanban_board):
    path = kanban_board("v7", tasks=5, journal_mode="delete", name="kanban.db")
    monkeypatch.setattr(sqlite3, "sqlite_version_info", (3, 40, 1))
    mode, statements = traced_settings(path)
    assert mode == "delete" and [s.strip().upper() for s in statements] == ["PRAGMA JOURNAL_MODE"]
    assert header_mode(path) == "rollback"


@pytest.mark.parametrize("version, expected", [((3, 40, 1), "delete"), ((3, 50, 4), "delete"),
                                               ((3, 50, 7), "wal"), ((3, 51, 3), "wal")])
def test_upgrade_of_a_delete_board_follows_the_gate(tmp_path, monkeypatch, version, expected, kanban_board):
    path = kanban_board("v0", tasks=40, journal_mode="delete", name="kanban.db")
    monkeypatch.setattr(sqlite3, "sqlite_version_info", version)
    result = upgrade(path)
    assert result.status == "upgraded"
    assert pragma_rows(path, "journal_mode") == [(expected,)]
    assert header_mode(path) == ("wal" if expected == "wal" else "rollback")
    if expected == "delete":
        assert not (tmp_path / "kanban.db-wal").exists() and not (tmp_path / "kanban.db-shm").exists()


@pytest.mark.parametrize("version", [(3, 40, 1), (3, 51, 3)])
def test_upgrade_keeps_a_wal_board_wal(tmp_path, monkeypatch, version, kanban_board):
    path = kanban_board("v2b", tasks=40, journal_mode="wal", name="kanban.db")
    monkeypatch.setattr(sqlite3, "sqlite_version_info", version)
    upgrade(path)
    assert pragma_rows(path, "journal_mode") == [("wal",)]


@pytest.mark.parametrize("version, expected", [((3, 40, 1), "delete"), ((3, 51, 3), "wal")])
def test_upgrade_of_a_truncate_board(tmp_path, monkeypatch, version, expected, kanban_board):
    path = kanban_board("v4", tasks=20, journal_mode="truncate", name="kanban.db")
    assert pragma_rows(path, "journal_mode") == [("delete",)]  # TRUNCATE is per connection...
    monkeypatch.setattr(sqlite3, "sqlite_version_info", version)
    upgrade(path)  # ...so the upgrade's connection sees a rollback-journal board
    assert pragma_rows(path, "journal_mode") == [(expected,)]


@pytest.mark.parametrize("version, expected", [((3, 40, 1), "delete"), ((3, 51, 3), "wal")])
@pytest.mark.parametrize("empty", [False, True])
def test_upgrade_create_follows_the_gate(tmp_path, monkeypatch, version, expected, empty):
    path = tmp_path / "new" / "kanban.db"
    if empty:
        path.parent.mkdir()
        path.write_bytes(b"")
    monkeypatch.setattr(sqlite3, "sqlite_version_info", version)
    result = upgrade(path, create=True)
    assert result.status == "created"
    assert pragma_rows(path, "journal_mode") == [(expected,)]
    assert header_mode(path) == ("wal" if expected == "wal" else "rollback")
    digest = sha256(path)
    assert upgrade(path).status == "current" and sha256(path) == digest


class NoWalFilesystem:
    """A connection on a filesystem that refuses WAL the way NFS/SMB do."""

    def __init__(self, conn, error="locking protocol"):
        self.conn, self.error, self.issued = conn, error, []

    def execute(self, sql, *args):
        self.issued.append(sql)
        if sql.replace(" ", "").lower() == "pragmajournal_mode=wal":
            raise sqlite3.OperationalError(self.error)
        return self.conn.execute(sql, *args)


@pytest.mark.parametrize("error", ["locking protocol", "not authorized", "disk I/O error"])
def test_wal_falls_back_to_delete_where_the_filesystem_refuses_it(tmp_path, error):
    conn = sqlite3.connect(tmp_path / "kanban.db", isolation_level=None)
    fake = NoWalFilesystem(conn, error)
    assert board.apply_journal_mode(fake, sqlite_version=(3, 51, 3)) == "delete"
    assert fake.issued[-1] == "PRAGMA journal_mode=DELETE"
    conn.close()


def test_other_errors_are_not_taken_for_a_filesystem_without_wal(tmp_path):
    conn = sqlite3.connect(tmp_path / "kanban.db", isolation_level=None)
    with pytest.raises(sqlite3.OperationalError, match="database is locked"):
        board.apply_journal_mode(NoWalFilesystem(conn, "database is locked"), sqlite_version=(3, 51, 3))
    conn.close()


def test_a_new_file_gets_the_mode_of_a_new_board(tmp_path):
    """recover's rebuilt board and ``upgrade --create`` start from an empty file."""
    for version, expected in (((3, 40, 1), "delete"), ((3, 51, 3), "wal")):
        conn = sqlite3.connect(tmp_path / f"new-{version[1]}.db", isolation_level=None)
        assert board.apply_journal_mode(conn, sqlite_version=version) == expected
        conn.close()


# ---- fixtures "made as the application makes them" ------------------------------------------------
def test_fixture_eras_follow_the_gate():
    steps = {name: s.steps for name, s in fixtures.shapes().items()}
    for version, fresh in (((3, 40, 1), "delete"), ((3, 51, 3), "wal")):
        # before the gate (July) the application put every board in WAL
        for shape in ("v0", "v1", "v2b", "v3", "v4", "v4-june", "drifted", "fork"):
            assert history.journal_mode_after(steps[shape], version) == "wal", shape
        # boards created by gated releases
        for shape in ("v5-july", "v5", "v6", "v7", "recipes", "notify-progress"):
            assert history.journal_mode_after(steps[shape], version) == fresh, shape
        # a WAL board of April opened by every later release is never downgraded
        assert history.journal_mode_after(steps["v1-upgraded"], version) == "wal"
        # a board an external tool seeded and the application never opened
        assert history.journal_mode_after(steps["reduced"], version) == "delete"


@pytest.mark.parametrize("version, expected", [((3, 40, 1), "delete"), ((3, 51, 3), "wal")])
def test_a_fresh_head_fixture_has_the_mode_of_its_sqlite(tmp_path, version, expected):
    info = fixtures.create(tmp_path / "kanban.db", "v7", tasks=10, sqlite_version=version)
    assert info.journal_mode == expected and header_mode(info.path) == ("wal" if expected == "wal" else "rollback")
    assert not (tmp_path / "kanban.db-wal").exists()  # checkpointed and closed
    assert pragma_rows(info.path, "journal_mode") == [(expected,)]
    assert len(rows(info.path, "tasks")) == 10
