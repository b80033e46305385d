"""Benchmark ``kanban-migrate verify`` against the PRAGMA it is built around.

On a board with ~1,000,000 events (``fixtures.create(..., tasks=170000)``: 6 events per task),
upgraded to head and cached under ``bench/_work/``, this times, alternating, several rounds:

* ``kanban-migrate verify BOARD``        vs ``python -c`` running ``PRAGMA quick_check``
* ``kanban-migrate verify --full BOARD`` vs ``python -c`` running ``PRAGMA integrity_check``

and prints the medians and their ratios (target: <= 1.3 each). Every timing is a fresh
subprocess, so interpreter start-up is in both sides of each ratio. The CPU time (user + system)
of each side is printed too: on a shared machine it moves less than the wall-clock time, and
``verify`` on 2 cores cannot take less wall-clock time than about half its CPU time.

    .venv/bin/python bench/verify.py [--rounds 5] [--tasks 170000]
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

    from kanban_migrate.migration import make_config, make_engine

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


def _time(cmd: list[str]) -> tuple[float, float]:
    """(wall-clock seconds, CPU seconds: user + system) of one run of ``cmd``."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    dt = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{cmd} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return dt, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)


def _verify_cmd(path: Path, *extra: str) -> list[str]:
    code = (
        "import sys;from kanban_migrate.verifying.cli import verify_command;"
        "verify_command.main(sys.argv[1:], prog_name='kanban-migrate verify')"
    )
    return [sys.executable, "-c", code, *extra, str(path)]


def digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--tasks", type=int, default=170_000)
    ap.add_argument("--build-only", action="store_true")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every run's time")
    args = ap.parse_args(argv)

    path = build(args.tasks)
    if args.build_only:
        print(path)
        return 0
    import sqlite3

    conn = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)
    events = conn.execute("SELECT count(*) FROM task_events").fetchone()[0]
    conn.close()
    before = digest(path)
    size = path.stat().st_size
    print(f"board: {path.name}, {size / 1e6:.0f} MB, {events:,} events; {args.rounds} rounds")

    pairs = {
        "quick": (_verify_cmd(path), [sys.executable, "-c", ANCHOR.format(pragma="quick_check"), str(path)]),
        "full": (_verify_cmd(path, "--full"), [sys.executable, "-c", ANCHOR.format(pragma="integrity_check"), str(path)]),
    }
    times: dict[str, dict[str, list[tuple[float, float]]]] = {k: {"verify": [], "anchor": []} for k in pairs}
    load = os.getloadavg()[0]
    # warm the page cache once so that the first measured run is not an outlier
    _time(pairs["quick"][1])
    for r in range(args.rounds):
        for name, (verify_cmd, anchor_cmd) in pairs.items():
            order = [("verify", verify_cmd), ("anchor", anchor_cmd)]
            if r % 2:
                order.reverse()
            for label, cmd in order:
                times[name][label].append(_time(cmd))
    after = digest(path)
    side = [p.name for p in path.parent.glob(path.name + "-*")]

    ok = True
    print(f"{'':8} {'verify (s)':>11} {'anchor (s)':>11} {'ratio':>7}  {'CPU verify':>10} {'CPU anchor':>10}  anchor")
    for name, label in (("quick", "PRAGMA quick_check"), ("full", "PRAGMA integrity_check")):
        v = statistics.median(t for t, _ in times[name]["verify"])
        a = statistics.median(t for t, _ in times[name]["anchor"])
        vc = statistics.median(c for _, c in times[name]["verify"])
        ac = statistics.median(c for _, c in times[name]["anchor"])
        ratio = v / a
        ok &= ratio <= 1.3
        flag = "verify --full" if name == "full" else "verify"
        print(f"{flag:14} {v:>9.2f} {a:>11.2f} {ratio:>7.2f}  {vc:>10.2f} {ac:>10.2f}  {label}")
        if args.verbose:
            print("    verify runs: " + ", ".join(f"{t:.2f}" for t, _ in times[name]["verify"]))
            print("    anchor runs: " + ", ".join(f"{t:.2f}" for t, _ in times[name]["anchor"]))
    print(f"load average (1 min) before / after: {load:.2f} / {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    print("board unchanged" if before == after and not side else f"BOARD CHANGED: sidecars {side}")
    print("target <= 1.3x: " + ("met" if ok else "NOT met"))
    return 0 if ok and before == after else 1


if __name__ == "__main__":
    sys.exit(main())
