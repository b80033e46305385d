"""Benchmark: `kanban-migrate recover` against SQLite's own `.recover`, on the same damaged copies
of a ~100 MB board, in one run: rows put back into the right table unchanged by each, rows each
leaves in lost_and_found, the wall-time ratio and the peak RSS of each side (targets: at least as
many rows as `.recover` in every case, time <= 1.0x, peak RSS <= 300 MB whatever the board's size).

    python bench/recover.py                  # ~100 MB board (34,000 tasks) + a 64 MiB repeated-leaf file
    python bench/recover.py --big            # + a ~390 MB board (v7, 120,000 tasks, 20 random pages overwritten)
    python bench/recover.py --tasks 3000     # a quick look

The boards are built once and cached (the 390 MB one under $KM_BENCH_CACHE, default
/tmp/kanban-migrate-bench, outside the repository).

The anchor is a SQLite shell built from the amalgamation that the npm package `sqlite3` bundles
(`npm pack sqlite3`; `deps/sqlite-autoconf-*.tar.gz` holds shell.c and sqlite3.c), compiled with
-DSQLITE_ENABLE_DBPAGE_VTAB so that `.recover` works (Debian's SQLite lacks sqlite_dbpage). It is
a benchmark tool only: built under bench/_anchor/ (git-ignored), never a runtime dependency.
The anchor's time is `.recover | sqlite3 new.db` (salvage and rebuild); ours is the whole
`recover --output` (forensic copy, triage, salvage, rebuild at head, verify).
"""

from __future__ import annotations

import argparse
import os
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


PEAK = [sys.executable, str(HERE / "_peak_rss.py")]


def measured(cmd: list[str], rss_file: Path) -> list[str]:
    """``cmd`` run under the launcher that writes its peak RSS to ``rss_file``."""
    return [*PEAK, str(rss_file), *cmd]


def peak(rss_file: Path) -> tuple[int, float]:
    """(peak RSS in bytes, CPU seconds) written by the launcher."""
    try:
        rss, cpu = rss_file.read_text().split()
        return int(rss), float(cpu)
    except (OSError, ValueError):
        return 0, 0.0


def anchor_recover(anchor: Path, damaged: Path, out: Path) -> tuple[float, int, float]:
    """`.recover | sqlite3 new.db`: seconds, the larger peak RSS of the two processes, and their
    CPU seconds together."""
    r1, r2 = out.with_suffix(".rss1"), out.with_suffix(".rss2")
    t0 = time.perf_counter()
    p1 = subprocess.Popen(measured([str(anchor), str(damaged), ".recover"], r1), stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL)
    p2 = subprocess.Popen(measured([str(anchor), str(out)], r2), stdin=p1.stdout, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
    p1.stdout.close()
    p2.wait()
    p1.wait()
    (m1, c1), (m2, c2) = peak(r1), peak(r2)
    return time.perf_counter() - t0, max(m1, m2), c1 + c2


def ours_recover(damaged: Path, out: Path, workdir: Path, env: dict) -> tuple[float, int, float, str]:
    rss = out.with_suffix(".rss")
    t0 = time.perf_counter()
    proc = subprocess.run(measured([str(BIN), "recover", "--output", str(out), "--workdir", str(workdir), str(damaged)], rss),
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    elapsed = time.perf_counter() - t0
    msg = "" if proc.returncode in (0, 1) else f"ours failed ({proc.returncode}): {proc.stderr.strip()[-300:]}"
    return elapsed, *peak(rss), msg


def big_board() -> Path:
    """The ~390 MB board (v7 fixture, 120,000 tasks), built once outside the repository."""
    cache = Path(os.environ.get("KM_BENCH_CACHE", "/tmp/kanban-migrate-bench"))
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / "recover-v7-120000.db"
    if not path.exists():
        tmp = path.with_suffix(".building")
        tmp.unlink(missing_ok=True)
        fixtures.create(tmp, "v7", tasks=120_000, seed=9)
        for suffix in ("-wal", "-shm"):
            Path(str(tmp) + suffix).unlink(missing_ok=True)
        tmp.rename(path)
    return path


CASES = {
    "table leaf overwritten": lambda b, r: [C.overwrite_leaf(b, "task_events", r) for _ in range(3)],
    "interior page zeroed": lambda b, r: C.zero_interior(b, "task_events", r),
    "table root zeroed": lambda b, r: C.zero_root(b, "task_events", r),
    "schema page damaged": lambda b, r: C.damage_schema_page(b, r),
    "truncated to half": lambda b, r: C.truncate_half(b, r),
    "bit flips": lambda b, r: C.bit_flips(b, r, 200),
}
BIG_CASES = {"390 MB: 20 pages overwritten": lambda b, r: C.overwrite_random_pages(b, r, 20)}


def truth_of(board: Path) -> dict[str, dict]:
    return {table: {tuple(r[c] for c in KEYS.get(table, ("id",))): r for r in rows_of(board, table)}
            for table in TABLES}



def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=34_000)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--big", action="store_true", help="add the ~390 MB board (v7, 120,000 tasks)")
    ap.add_argument("--only", help="run only the cases whose name contains this text")
    args = ap.parse_args()
    anchor = build_anchor()
    src = cached_board(f"recover-v2b-{args.tasks}.db", lambda p: fixtures.create(p, "v2b", tasks=args.tasks, seed=9))
    work = work_dir() / "recover"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    env = env_without_hermes()
    truth = truth_of(src)
    total = sum(len(v) for v in truth.values())
    print(f"board: v2b, {args.tasks:,} tasks, {src.stat().st_size / 1e6:.0f} MB, {total:,} rows in "
          f"{len(TABLES)} tables; anchor: {subprocess.run([str(anchor), '--version'], capture_output=True, text=True).stdout.split()[0]} .recover")
    plan = [(case, src, damage, None) for case, damage in CASES.items()]
    plan.append(("64 MiB repeated leaf page", src, None, 64 << 20))
    if args.big:
        plan += [(case, big_board(), damage, None) for case, damage in BIG_CASES.items()]
    if args.only:
        plan = [p for p in plan if args.only in p[0]]
    print(f"{'case':30} {'.recover rows':>13} {'lost&found':>10} {'ours rows':>10} {'lost&found':>10} "
          f"{'.recover s':>10} {'ours s':>8} {'ratio':>6} {'cpu ratio':>9} {'.recover MB':>11} {'ours MB':>8}")
    ratios, cpu_ratios, peaks = [], [], []
    for case, board, damage, repeated in plan:
        if board is not src:
            truth = truth_of(board)
            src = board
        damaged = work / "damaged.db"
        damaged.unlink(missing_ok=True)
        if repeated:
            C.repeated_leaf(board, damaged, "task_events", repeated, random.Random(f"bench-{case}"))
        else:
            shutil.copyfile(board, damaged)
            damage(damaged, random.Random(f"bench-{case}"))
        t_anchor, t_ours, m_anchor, m_ours, c_anchor, c_ours = [], [], [], [], [], []
        for i in range(args.rounds):
            out_a = work / "anchor-out.db"
            out_o = work / "ours-out.db"
            out_a.unlink(missing_ok=True)
            out_o.unlink(missing_ok=True)

            def a():
                t, m, c = anchor_recover(anchor, damaged, out_a)
                t_anchor.append(t)
                m_anchor.append(m)
                c_anchor.append(c)

            def o():
                t, m, c, msg = ours_recover(damaged, out_o, work / "w", env)
                t_ours.append(t)
                m_ours.append(m)
                c_ours.append(c)
                if msg:
                    print("  " + msg)
            for step in ((a, o) if i % 2 == 0 else (o, a)):
                step()
        a_rows = unchanged(out_a, truth, renamed=False)
        o_rows = unchanged(out_o, truth, renamed=True) if out_o.exists() else 0
        ta, to = statistics.median(t_anchor), statistics.median(t_ours)
        ca, co = statistics.median(c_anchor), statistics.median(c_ours)
        if not repeated:   # the anchor refuses a file without a header at once: no time to compare with
            ratios.append(to / ta)
            cpu_ratios.append(co / ca)
        peaks.append(max(m_ours))
        print(f"{case:30} {a_rows:13,} {lost_count(out_a):10,} {o_rows:10,} {lost_count(out_o) if out_o.exists() else 0:10,} "
              f"{ta:10.2f} {to:8.2f} {to / ta:5.2f}x {co / ca:8.2f}x {max(m_anchor) / 1e6:11.0f} {max(m_ours) / 1e6:8.0f}",
              flush=True)
    if ratios:
        print(f"time ratio (boards): median {statistics.median(ratios):.2f}x, worst {max(ratios):.2f}x (target <= 1.0x); "
              f"CPU-time ratio: median {statistics.median(cpu_ratios):.2f}x, worst {max(cpu_ratios):.2f}x")
    print(f"peak RSS of ours: worst {max(peaks) / 1e6:.0f} MB (target <= 300 MB)")


if __name__ == "__main__":
    main()
