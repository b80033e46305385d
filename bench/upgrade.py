"""Benchmark: `kanban-migrate upgrade` on a large v0 board against a plain sqlite3 script that
issues the same statements, alternating in one run; and the no-op upgrade of a board at head
against a bare `python -c "import sqlite3"`.

    python bench/upgrade.py                 # 100,000 tasks / 600,000 events (issue target <= 1.25x)
    python bench/upgrade.py --tasks 5000    # a quick look

The anchor's statements are captured from a real upgrade of a copy (sqlite3's trace callback on
the migration connection: DDL, data changes, Alembic's own bookkeeping and the revision
transactions), so both sides do the same database work; everything else kanban-migrate does (the
process start, fingerprinting, the quick_check refusal gate, the lock probe) counts against it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import BIN, alternate, cached_board, env_without_hermes, fresh_copy, report, timed, work_dir  # noqa: E402

from kanban_migrate import fixtures  # noqa: E402
from kanban_migrate.upgrading import upgrade  # noqa: E402

ANCHOR = r"""
import json, sqlite3, sys
statements = json.load(open(sys.argv[2]))
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("PRAGMA busy_timeout=120000")
for sql in statements:
    conn.execute(sql).fetchall()
conn.close()
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--noop-rounds", type=int, default=20)
    args = ap.parse_args()

    src = cached_board(f"upgrade-v0-{args.tasks}.db",
                       lambda p: fixtures.create(p, "v0", tasks=args.tasks, seed=42))
    work = work_dir()
    ours_db, anchor_db = work / "ours.db", work / "anchor.db"

    # Capture the statements of one real upgrade.
    statements: list[str] = []
    fresh_copy(src, anchor_db)
    upgrade(anchor_db, backup=False, trace=statements.append)
    statements = [s for s in statements if s.strip()]
    script = work / "statements.json"
    script.write_text(json.dumps(statements))
    print(f"board: v0, {args.tasks:,} tasks, {args.tasks * 6:,} events, {src.stat().st_size / 1e6:.0f} MB; "
          f"{len(statements)} statements captured")

    env = env_without_hermes()

    def ours(no_backup=True):
        fresh_copy(src, ours_db)
        return timed([str(BIN), "upgrade", *(["--no-backup"] if no_backup else []), str(ours_db)], env)

    def anchor():
        fresh_copy(src, anchor_db)
        return timed([sys.executable, "-c", ANCHOR, str(anchor_db), str(script)], env)

    a, b = alternate(args.rounds, ours, anchor)
    report("upgrade v0 -> head (--no-backup)", "kanban-migrate upgrade --no-backup", a,
           "plain sqlite3, same statements", b, 1.25)
    a, b = alternate(args.rounds, lambda: ours(no_backup=False), anchor)
    report("upgrade v0 -> head (with the pre-upgrade backup)", "kanban-migrate upgrade", a,
           "plain sqlite3, same statements", b, None)

    # The no-op: a board at head, as an installer sees it on every run.
    fresh_copy(src, ours_db)
    upgrade(ours_db, backup=False)
    a, b = alternate(args.noop_rounds, lambda: timed([str(BIN), "upgrade", "--quiet", str(ours_db)], env),
                     lambda: timed([sys.executable, "-c", "import sqlite3"], env))
    report("no-op upgrade of a board at head", "kanban-migrate upgrade --quiet", a,
           'python -c "import sqlite3"', b, 4.0)


if __name__ == "__main__":
    main()
