"""Benchmark ``kanban-migrate verify`` against the PRAGMA it is built around, and a live writer's
wait beside it.

On a board with ~1,000,000 events (``fixtures.create(..., tasks=170000)``: 6 events per task,
about 550 MB), upgraded to head and cached under ``bench/_work/``, this times, alternating,
several rounds:

* ``kanban-migrate verify BOARD``         vs ``python -c`` running ``PRAGMA integrity_check``
* ``kanban-migrate verify --quick BOARD`` vs ``python -c`` running ``PRAGMA quick_check``

and prints the medians and their ratios (target: <= 1.3 each). Every timing is a fresh
subprocess, so interpreter start-up is in both sides of each ratio. Modules run compiled, as an
installed package's do (pip compiles them at install; here they are compiled once into
``bench/_work/pycache`` even where ``PYTHONDONTWRITEBYTECODE`` is set), and a first untimed run
of each command warms the page cache and what ``verify`` keeps of head (:mod:`kanban_migrate.headfacts`). The CPU time (user + system)
of each side is printed too: on a shared machine it moves less than the wall-clock time, and
``verify`` on 2 cores cannot take less wall-clock time than about half its CPU time.

``--writer`` measures what ``verify`` costs the application instead: a copy of the board in
DELETE journal mode (the mode the application keeps new boards in on SQLite 3.7.0-3.51.2), a
writer process with the application's connection settings (busy_timeout 120 s, synchronous=FULL,
...) committing a task and an event in a loop, and the longest wait of one commit (BEGIN IMMEDIATE
to COMMIT) while ``verify`` runs; side by side: no verify at all, and today's ``verify`` taken
from git (``--before REF``, default the last commit before the read policy of :mod:`.access`),
alternating. Target: under one second.

    .venv/bin/python bench/verify.py [--rounds 5] [--tasks 170000] [--priority] [--against REF]
    .venv/bin/python bench/verify.py --writer [--rounds 3] [--before REF]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORK = HERE / "_work"
ROOT = HERE.parent


def board_path(tasks: int, seed: int = 1) -> Path:
    return WORK / f"verify-v7-{tasks}-s{seed}.db"


def build(tasks: int, seed: int = 1) -> Path:
    """The cached benchmark board (built once: a v1-upgraded fixture taken to head)."""
    path = board_path(tasks, seed)
    if path.exists():
        return path
    WORK.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".building")
    for p in WORK.glob(tmp.name + "*"):
        p.unlink()
    sys.path.insert(0, str(ROOT))
    from kanban_migrate import fixtures

    t0 = time.perf_counter()
    info = fixtures.create(tmp, "v1-upgraded", tasks=tasks, seed=seed)
    print(f"built {info.rows} in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    t0 = time.perf_counter()
    _upgrade(tmp)
    print(f"upgraded to head in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    for p in WORK.glob(tmp.name + ".pre-upgrade.*.bak"):
        p.unlink()
    import sqlite3

    conn = sqlite3.connect(tmp)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    for suffix in ("-wal", "-shm"):
        p = Path(str(tmp) + suffix)
        if p.exists():
            p.unlink()
    tmp.rename(path)
    return path


def _upgrade(path: Path) -> None:
    try:
        from kanban_migrate.upgrading import upgrade
    except ImportError:
        upgrade = None
    if upgrade is not None:
        upgrade(path, backup=False)
        return
    from alembic import command

    from kanban_migrate.upgrading.chain import make_config, make_engine

    eng = make_engine(path)
    with eng.connect() as c:
        command.upgrade(make_config(connection=c), "head")
    eng.dispose()


ANCHOR = (
    "import sqlite3,sys;"
    "c=sqlite3.connect('file:'+sys.argv[1]+'?mode=ro&immutable=1',uri=True);"
    "r=c.execute('PRAGMA {pragma}').fetchall();"
    "sys.exit(0 if r==[('ok',)] else 1)"
)


#: With --priority: the niceness both sides run at (root may go below 0).
PRIORITY = -20


#: The environment of every timed command: compiled modules kept under bench/_work (see above).
ENV = {**{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
       "PYTHONPYCACHEPREFIX": str(WORK / "pycache")}


def _time(cmd: list[str], priority: bool = False, env: dict | None = None) -> tuple[float, float]:
    """(wall-clock seconds, CPU seconds: user + system) of one run of ``cmd`` (in bench/_work: not
    the repository, whose kanban_migrate would come before an ``env`` PYTHONPATH)."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    WORK.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env or ENV, cwd=WORK,
                          preexec_fn=(lambda: os.nice(PRIORITY)) if priority else None)
    dt = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{cmd} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return dt, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)


def parallel_cores(cmd: list[str], priority: bool) -> float:
    """How many cores two runs of ``cmd`` got: their time one after the other over their time side
    by side (about 2.0 on two free cores, 1.0 when the machine has only one to give)."""
    nice = (lambda: os.nice(PRIORITY)) if priority else None
    t0 = time.perf_counter()
    for _ in range(2):
        subprocess.run(cmd, stdout=subprocess.DEVNULL, preexec_fn=nice)
    serial = time.perf_counter() - t0
    t0 = time.perf_counter()
    procs = [subprocess.Popen(cmd, stdout=subprocess.DEVNULL, preexec_fn=nice) for _ in range(2)]
    for p in procs:
        p.wait()
    return serial / (time.perf_counter() - t0)


def _verify_cmd(path: Path, *extra: str) -> list[str]:
    code = "import sys;from kanban_migrate.cli import main;sys.exit(main(['verify', *sys.argv[1:]]))"
    return [sys.executable, "-c", code, *extra, str(path)]


def digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


# ---- a live writer beside verify ----------------------------------------------------------------------
#: The last commit before verify read DELETE boards from watched immutable reads and snapshots.
BEFORE = "cf96592"

WRITER = r"""
import json, os, sqlite3, sys, time
path, out, stop = sys.argv[1], sys.argv[2], sys.argv[3]
conn = sqlite3.connect(path, timeout=120, isolation_level=None)
from kanban_migrate.board import APP_PRAGMAS  # the application's settings
for p in ("busy_timeout=120000", "foreign_keys=ON", *APP_PRAGMAS):
    conn.execute("PRAGMA " + p)
marks, n = [], 0
while not os.path.exists(stop):
    n += 1
    tid = f"t_w{n:07d}"
    t0 = time.time()
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO tasks (id, title, body, status, created_at) VALUES (?, ?, ?, 'todo', ?)",
                 (tid, f"live {n}", "x" * 2000, int(t0)))
    conn.execute("INSERT INTO task_events (task_id, kind, payload, created_at) VALUES (?, 'created', ?, ?)",
                 (tid, json.dumps({"n": n}), int(t0)))
    conn.execute("COMMIT")
    marks.append((t0, time.time() - t0))
    time.sleep(0.01)
conn.close()
json.dump(marks, open(out, "w"))
"""


def delete_copy(path: Path) -> Path:
    """The board in DELETE journal mode, cached beside it."""
    import sqlite3

    dest = path.with_name(path.stem + "-delete.db")
    if not dest.exists():
        tmp = dest.with_name(dest.name + ".building")
        subprocess.run(["cp", "--reflink=auto", str(path), str(tmp)], check=True)
        conn = sqlite3.connect(tmp)
        conn.execute("PRAGMA journal_mode=DELETE")
        conn.close()
        tmp.rename(dest)
    return dest


def before_tree(ref: str) -> Path | None:
    """``kanban_migrate`` as it was at ``ref``, extracted under bench/_work (None without git)."""
    dest = WORK / f"before-{ref}"
    if (dest / "kanban_migrate").is_dir():
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    try:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "kanban_migrate", "alembic"],
                                 check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"today's verify ({ref}) not available from git: {exc}", file=sys.stderr)
        return None
    return dest


def one_writer_run(board: Path, cmd: list[str] | None, env: dict | None = None) -> tuple[float, float, int]:
    """(longest commit wait while ``cmd`` ran, its wall-clock time, commits meanwhile) on a fresh
    copy of ``board``; without ``cmd``, 3 s of the writer alone."""
    import json

    live = WORK / "writer-live.db"
    for suffix in ("", "-journal", "-wal", "-shm"):
        Path(str(live) + suffix).unlink(missing_ok=True)
    subprocess.run(["cp", "--reflink=auto", str(board), str(live)], check=True)
    marks, stop = WORK / "writer-marks.json", WORK / "writer-stop"
    stop.unlink(missing_ok=True)
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(live), str(marks), str(stop)])
    time.sleep(1.0)  # the writer is committing
    t0 = time.time()
    if cmd is None:
        time.sleep(3.0)
    else:
        # cwd: not the repository, whose kanban_migrate would come before PYTHONPATH's
        proc = subprocess.run([*cmd, str(live)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              env=env, cwd=WORK)
        if proc.returncode not in (0, 1):
            raise SystemExit(f"{cmd} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    t1 = time.time()
    time.sleep(0.3)
    stop.write_text("stop")
    writer.wait(timeout=300)
    waits = [(start, w) for start, w in json.loads(marks.read_text()) if start + w >= t0 and start <= t1]
    stop.unlink(missing_ok=True)
    for suffix in ("", "-journal"):
        Path(str(live) + suffix).unlink(missing_ok=True)
    return max(w for _, w in waits), t1 - t0, len(waits)


def writer_bench(path: Path, rounds: int, ref: str) -> int:
    board = delete_copy(path)
    print(f"board: {board.name}, {board.stat().st_size / 1e6:.0f} MB, DELETE journal mode; {rounds} rounds; "
          "writer: a task and an event per commit, 10 ms apart")
    runs: dict[str, tuple[list[str] | None, dict | None]] = {"no verify (the writer alone)": (None, None)}
    tree = before_tree(ref)
    if tree is not None:
        env = {**os.environ, "PYTHONPATH": str(tree)}
        runs[f"today's verify --full ({ref})"] = (_verify_cmd(Path(), "--full")[:-1], env)
    runs["verify"] = (_verify_cmd(Path())[:-1], None)
    runs["verify --quick"] = (_verify_cmd(Path(), "--quick")[:-1], None)
    results: dict[str, list[tuple[float, float, int]]] = {k: [] for k in runs}
    for r in range(rounds):
        order = list(runs.items()) if r % 2 == 0 else list(reversed(runs.items()))
        for name, (cmd, env) in order:
            results[name].append(one_writer_run(board, cmd, env))
    print(f"{'':34} {'writer max wait (s)':>20} {'median of rounds':>17} {'verify (s)':>11} {'commits':>8}")
    ok = True
    for name, res in results.items():
        worst = max(w for w, _, _ in res)
        med = statistics.median(w for w, _, _ in res)
        secs = statistics.median(t for _, t, _ in res)
        commits = statistics.median(c for _, _, c in res)
        if name.startswith("verify"):
            ok &= worst < 1.0
        print(f"{name:34} {worst:>20.3f} {med:>17.3f} {secs:>11.2f} {commits:>8.0f}")
    print("target < 1 s: " + ("met" if ok else "NOT met"))
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--tasks", type=int, default=170_000)
    ap.add_argument("--build-only", action="store_true")
    ap.add_argument("--writer", action="store_true", help="a live writer's longest wait on a DELETE-mode copy")
    ap.add_argument("--priority", action="store_true",
                    help=f"run both sides at niceness {PRIORITY} (root): on a shared machine, other work then does "
                         "not decide the ratio")
    ap.add_argument("--before", default=BEFORE, help="the git commit whose verify is today's")
    ap.add_argument("--compare-before", action="store_true",
                    help="time today's verify (--before) too: its default (quick_check) and its --full")
    ap.add_argument("--against", metavar="REF", default=None,
                    help="time the verify of git REF too, with the same options (e.g. a branch point)")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every run's time")
    args = ap.parse_args(argv)

    path = build(args.tasks)
    if args.build_only:
        print(path)
        return 0
    if args.writer:
        return writer_bench(path, args.rounds, args.before)
    import sqlite3

    conn = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)
    events = conn.execute("SELECT count(*) FROM task_events").fetchone()[0]
    conn.close()
    before = digest(path)
    size = path.stat().st_size
    print(f"board: {path.name}, {size / 1e6:.0f} MB, {events:,} events; {args.rounds} rounds")

    pairs = {
        "quick": (_verify_cmd(path, "--quick"), [sys.executable, "-c", ANCHOR.format(pragma="quick_check"), str(path)]),
        "full": (_verify_cmd(path), [sys.executable, "-c", ANCHOR.format(pragma="integrity_check"), str(path)]),
    }
    ref = args.against or args.before
    tree = before_tree(ref) if args.compare_before or args.against else None
    old_env = {**ENV, "PYTHONPATH": str(tree), "PYTHONPYCACHEPREFIX": str(WORK / f"pycache-{ref}")} if tree else None
    if args.against:
        old_cmds = {name: verify_cmd for name, (verify_cmd, _anchor) in pairs.items()}
    else:  # the verify of --before: quick_check was its default, integrity_check its --full
        old_cmds = {"quick": _verify_cmd(path), "full": _verify_cmd(path, "--full")}
    times: dict[str, dict[str, list[tuple[float, float]]]] = {k: {"verify": [], "anchor": [], "before": []}
                                                               for k in pairs}
    load = os.getloadavg()[0]
    # warm the page cache, the compiled modules and head's facts: the first measured run is no outlier
    for name, (verify_cmd, anchor_cmd) in pairs.items():
        _time(anchor_cmd, args.priority)
        _time(verify_cmd, args.priority)
        if tree:
            _time(old_cmds[name], args.priority, old_env)
    for r in range(args.rounds):
        for name, (verify_cmd, anchor_cmd) in pairs.items():
            order = [("verify", verify_cmd, None), ("anchor", anchor_cmd, None)]
            if tree:
                order.append(("before", old_cmds[name], old_env))
            if r % 2:
                order.reverse()
            for label, cmd, env in order:
                times[name][label].append(_time(cmd, args.priority, env))
    after = digest(path)
    side = [p.name for p in path.parent.glob(path.name + "-*")]
    cores = parallel_cores(pairs["quick"][1], args.priority)

    ok = True
    print(f"{'':8} {'verify (s)':>11} {'anchor (s)':>11} {'ratio':>7}  {'CPU verify':>10} {'CPU anchor':>10}  anchor")
    for name, label in (("quick", "PRAGMA quick_check"), ("full", "PRAGMA integrity_check")):
        v = statistics.median(t for t, _ in times[name]["verify"])
        a = statistics.median(t for t, _ in times[name]["anchor"])
        vc = statistics.median(c for _, c in times[name]["verify"])
        ac = statistics.median(c for _, c in times[name]["anchor"])
        ratio = v / a
        ok &= ratio <= 1.3
        flag = "verify" if name == "full" else "verify --quick"
        print(f"{flag:14} {v:>9.2f} {a:>11.2f} {ratio:>7.2f}  {vc:>10.2f} {ac:>10.2f}  {label}")
        if times[name]["before"]:
            b = statistics.median(t for t, _ in times[name]["before"])
            bc = statistics.median(c for _, c in times[name]["before"])
            what = (f"verify{' --quick' if name == 'quick' else ''} at {ref}" if args.against
                    else f"today's verify{' --full' if name == 'full' else ''} ({ref})")
            print(f"{'':14} {b:>9.2f} {a:>11.2f} {b / a:>7.2f}  {bc:>10.2f} {ac:>10.2f}  <- {what}")
        if args.verbose:
            print("    verify runs: " + ", ".join(f"{t:.2f}" for t, _ in times[name]["verify"]))
            print("    anchor runs: " + ", ".join(f"{t:.2f}" for t, _ in times[name]["anchor"]))
    print(f"load average (1 min) before / after: {load:.2f} / {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs; "
          f"two anchors side by side ran {cores:.2f}x as fast as one after the other (2.00: two free cores, "
          "which verify's second thread needs)")
    print("board unchanged" if before == after and not side else f"BOARD CHANGED: sidecars {side}")
    print("target <= 1.3x: " + ("met" if ok else "NOT met"))
    return 0 if ok and before == after else 1


if __name__ == "__main__":
    sys.exit(main())
