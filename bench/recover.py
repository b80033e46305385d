"""Benchmark: `kanban-migrate recover` against SQLite's own `.recover`, on the same damaged copies
of a ~100 MB board, in one run: rows put back into the right table unchanged by each, rows each
leaves in lost_and_found, and the wall-time ratio (target: at least as many rows as `.recover` in
every case, more where `.recover` leaves rows in lost_and_found, time within 2x).

    python bench/recover.py                  # ~100 MB board (34,000 tasks)
    python bench/recover.py --tasks 3000     # a quick look

The anchor is a SQLite shell built from the amalgamation that the npm package `sqlite3` bundles
(`npm pack sqlite3`; `deps/sqlite-autoconf-*.tar.gz` holds shell.c and sqlite3.c), compiled with
-DSQLITE_ENABLE_DBPAGE_VTAB so that `.recover` works (Debian's SQLite lacks sqlite_dbpage). It is
a benchmark tool only: built under bench/_anchor/ (git-ignored), never a runtime dependency.
The anchor's time is `.recover | sqlite3 new.db` (salvage and rebuild); ours is the whole
`recover --output` (forensic copy, triage, salvage, rebuild at head, verify).
"""

from __future__ import annotations

import argparse
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

import corruption as C  # noqa: E402  (the tests' seeded corruption generator)
from _common import BIN, cached_board, env_without_hermes, work_dir  # noqa: E402

from kanban_migrate import fixtures, head  # noqa: E402

ANCHOR_DIR = HERE / "_anchor"
KEYS = {"tasks": ("id",), "task_links": ("parent_id", "child_id"),
        "kanban_notify_subs": ("task_id", "platform", "chat_id", "thread_id")}
TABLES = ("tasks", "task_events", "task_comments", "task_links", "task_runs", "kanban_notify_subs")


def build_anchor() -> Path:
    exe = ANCHOR_DIR / "sqlite3-anchor"
    if exe.exists():
        return exe
    ANCHOR_DIR.mkdir(parents=True, exist_ok=True)
    subprocess.run(["npm", "pack", "sqlite3", "--silent"], cwd=ANCHOR_DIR, check=True, stdout=subprocess.DEVNULL)
    tgz = sorted(ANCHOR_DIR.glob("sqlite3-*.tgz"))[-1]
    subprocess.run(["tar", "xzf", tgz.name], cwd=ANCHOR_DIR, check=True)
    amalgamation = sorted((ANCHOR_DIR / "package" / "deps").glob("sqlite-autoconf-*.tar.gz"))[-1]
    subprocess.run(["tar", "xzf", str(amalgamation)], cwd=ANCHOR_DIR, check=True)
    src = sorted(ANCHOR_DIR.glob("sqlite-autoconf-*/"))[-1]
    subprocess.run(["gcc", "-O2", "-DSQLITE_ENABLE_DBPAGE_VTAB", "-DSQLITE_THREADSAFE=0",
                    "-DSQLITE_OMIT_LOAD_EXTENSION", "shell.c", "sqlite3.c", "-lm", "-o", str(exe)],
                   cwd=src, check=True)
    return exe


def rows_of(path: Path, table: str) -> list[dict]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    conn.text_factory = lambda b: b.decode("utf-8", "replace")
    try:
        return [dict(r) for r in conn.execute(f'SELECT * FROM "{table}"')]
    except sqlite3.Error:
        return []
    finally:
        conn.close()


def lost_count(path: Path) -> int:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT COUNT(*) FROM lost_and_found").fetchone()[0]
    except sqlite3.Error:
        return 0
    finally:
        conn.close()


def unchanged(recovered: Path, truth: dict[str, dict], renamed: bool) -> int:
    """Rows of the truth found in their own table with every original column unchanged (for our
    board, at head, the chain's documented data changes are allowed: renamed event kinds, and
    current_run_id set where a running task had no run)."""
    n = 0
    for table in TABLES:
        want = truth[table]
        for r in rows_of(recovered, table):
            k = tuple(r.get(c) for c in KEYS.get(table, ("id",)))
            w = want.get(k)
            if w is None:
                continue
            ok = True
            for col, value in w.items():
                got = r.get(col)
                if renamed and table == "task_events" and col == "kind":
                    value = head.EVENT_KIND_RENAMES.get(value, value)
                if renamed and table == "tasks" and col == "current_run_id" and value is None:
                    continue  # the chain points a running task without a run at its new run
                if got != value:
                    ok = False
                    break
            n += ok
    return n


CASES = {
    "table leaf overwritten": lambda b, r: [C.overwrite_leaf(b, "task_events", r) for _ in range(3)],
    "interior page zeroed": lambda b, r: C.zero_interior(b, "task_events", r),
    "table root zeroed": lambda b, r: C.zero_root(b, "task_events", r),
    "schema page damaged": lambda b, r: C.damage_schema_page(b, r),
    "truncated to half": lambda b, r: C.truncate_half(b, r),
    "bit flips": lambda b, r: C.bit_flips(b, r, 200),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=34_000)
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()
    anchor = build_anchor()
    src = cached_board(f"recover-v2b-{args.tasks}.db", lambda p: fixtures.create(p, "v2b", tasks=args.tasks, seed=9))
    truth = {}
    for table in TABLES:
        truth[table] = {tuple(r[c] for c in KEYS.get(table, ("id",))): r for r in rows_of(src, table)}
    total = sum(len(v) for v in truth.values())
    work = work_dir() / "recover"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    env = env_without_hermes()
    print(f"board: v2b, {args.tasks:,} tasks, {src.stat().st_size / 1e6:.0f} MB, {total:,} rows in "
          f"{len(TABLES)} tables; anchor: {subprocess.run([str(anchor), '--version'], capture_output=True, text=True).stdout.split()[0]} .recover")
    print(f"{'case':24} {'.recover rows':>13} {'lost&found':>10} {'ours rows':>10} {'lost&found':>10} "
          f"{'.recover s':>10} {'ours s':>8} {'ratio':>6}")
    ratios = []
    for case, damage in CASES.items():
        damaged = work / "damaged.db"
        shutil.copyfile(src, damaged)
        damage(damaged, random.Random(f"bench-{case}"))
        t_anchor, t_ours = [], []
        for _ in range(args.rounds):
            out_a = work / "anchor-out.db"
            out_a.unlink(missing_ok=True)
            t0 = time.perf_counter()
            p1 = subprocess.Popen([str(anchor), str(damaged), ".recover"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            subprocess.run([str(anchor), str(out_a)], stdin=p1.stdout, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            p1.wait()
            t_anchor.append(time.perf_counter() - t0)
            out_o = work / "ours-out.db"
            out_o.unlink(missing_ok=True)
            t0 = time.perf_counter()
            proc = subprocess.run([str(BIN), "recover", "--output", str(out_o), "--workdir", str(work / "w"), str(damaged)],
                                  capture_output=True, text=True, env=env)
            t_ours.append(time.perf_counter() - t0)
            if proc.returncode not in (0, 1):
                print(f"  ours failed ({proc.returncode}): {proc.stderr.strip()}")
        a_rows = unchanged(out_a, truth, renamed=False)
        o_rows = unchanged(out_o, truth, renamed=True) if out_o.exists() else 0
        ta, to = statistics.median(t_anchor), statistics.median(t_ours)
        ratios.append(to / ta)
        print(f"{case:24} {a_rows:13,} {lost_count(out_a):10,} {o_rows:10,} {lost_count(out_o) if out_o.exists() else 0:10,} "
              f"{ta:10.2f} {to:8.2f} {to / ta:5.2f}x")
    print(f"time ratio: median {statistics.median(ratios):.2f}x, worst {max(ratios):.2f}x (target <= 2x)")


if __name__ == "__main__":
    main()
