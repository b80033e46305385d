"""Benchmark: ``kanban_migrate.ensure_head(path)`` on a board at head, in-process, per call, against
what the application does on every connect today, alternating in one run.

    python bench/ensure_head.py                # 5,000-task board, WAL and DELETE (target: well under 1 ms)

Anchors: the detection half of the application's add-if-missing pass (open the board, one
``PRAGMA table_info`` per kanban table, close: before it adds anything or runs its UPDATEs), and a
bare ``sqlite3.connect`` + ``SELECT version_num FROM alembic_version`` (the least any stamp check
can cost). Each sample is the mean of a batch of calls; the report gives the median sample.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import cached_board  # noqa: E402

from kanban_migrate import fixtures  # noqa: E402
from kanban_migrate.ensure import ensure_head  # noqa: E402
from kanban_migrate.fingerprint import KANBAN_TABLES  # noqa: E402
from kanban_migrate.upgrading import upgrade  # noqa: E402


def add_if_missing_probe(path: str) -> None:
    conn = sqlite3.connect(path, timeout=120, isolation_level=None)
    try:
        for table in KANBAN_TABLES:
            conn.execute(f"PRAGMA table_info({table})").fetchall()
    finally:
        conn.close()


def bare_stamp(path: str) -> None:
    conn = sqlite3.connect(path, timeout=120, isolation_level=None)
    try:
        conn.execute("SELECT version_num FROM alembic_version").fetchall()
    finally:
        conn.close()


def per_call(fn, path: str, batch: int) -> float:
    t0 = time.perf_counter()
    for _ in range(batch):
        fn(path)
    return (time.perf_counter() - t0) / batch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--batch", type=int, default=200)
    args = ap.parse_args()
    print(f"SQLite {sqlite3.sqlite_version}; board at head with {args.tasks:,} tasks; "
          f"{args.rounds} rounds of {args.batch} calls, alternating")
    for mode in ("wal", "delete"):
        def build(p, mode=mode):
            fixtures.create(p, "v1", tasks=args.tasks, seed=3, journal_mode=mode)
            upgrade(p, backup=False)

        path = str(cached_board(f"ensure-head-{mode}-{args.tasks}.db", build))
        assert ensure_head(path) == "current"
        contenders = {"ensure_head (answered from the stamp)": ensure_head,
                      "anchor: add-if-missing probe (table_info x7)": add_if_missing_probe,
                      "anchor: bare connect + SELECT stamp": bare_stamp}
        samples: dict[str, list[float]] = {name: [] for name in contenders}
        names = list(contenders)
        for r in range(args.rounds):
            for name in (names if r % 2 == 0 else names[::-1]):
                samples[name].append(per_call(contenders[name], path, args.batch))
        ours = statistics.median(samples[names[0]])
        print(f"{mode.upper()} board ({Path(path).stat().st_size / 1e6:.1f} MB)")
        for name in names:
            med = statistics.median(samples[name])
            print(f"  {name:46} median {med * 1e6:7.1f} us/call (best {min(samples[name]) * 1e6:6.1f})"
                  f"   ratio ours/this {ours / med:5.2f}x")
        print(f"  target: well under 1 ms per call: {'met' if ours < 0.5e-3 else 'NOT met'} ({ours * 1e3:.3f} ms median;"
              f" medians grow with the machine's load: run it on a quiet machine)")


if __name__ == "__main__":
    main()
