"""Benchmark: `kanban-migrate upgrade --all` on a home of 200 small legacy boards, one board at a
time (`--jobs 1`) against one process per core (`--jobs N`), alternating in one run; and the
read-only `kanban-migrate boards --json` listing of the same home.

    python bench/fleet.py                      # 200 boards of 50 tasks, 3 rounds
    python bench/fleet.py --boards 60 --rounds 2

The home (default board, named, archived and per-profile boards of every historical shape) is
built once and cached under bench/_work/; every timed run gets a fresh copy, made outside the
timing, so each run upgrades the same 200 legacy boards and takes their pre-upgrade backups.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import BIN, alternate, env_without_hermes, report, timed, work_dir  # noqa: E402

from kanban_migrate import fixtures  # noqa: E402


def layout(n: int) -> list[str]:
    """Where the ``n`` boards go: the default board, then named : archived : per-profile as 6:2:2."""
    rels = ["kanban.db"]
    archived = profiles = (n - 1) // 5
    named = n - 1 - archived - profiles
    rels += [f"kanban/boards/board-{i:03d}/kanban.db" for i in range(named)]
    rels += [f"kanban/boards/_archived/old-{i:03d}-{1777000000 + i}/kanban.db" for i in range(archived)]
    rels += [f"profiles/profile-{i:03d}/kanban.db" for i in range(profiles)]
    return rels


def build_home(dest: Path, boards: int, tasks: int) -> None:
    shapes = list(fixtures.shapes())
    sources = dest.parent / f"{dest.name}.sources"
    sources.mkdir(parents=True, exist_ok=True)
    for i, rel in enumerate(layout(boards)):
        shape, seed = shapes[i % len(shapes)], 1 + i % 3
        src = sources / f"{shape}-{seed}.db"
        if not src.exists():
            fixtures.create(src, shape, tasks=tasks, seed=seed)
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, target)
    shutil.rmtree(sources)


def cached_home(boards: int, tasks: int) -> Path:
    """The pristine home, built once under bench/_work/."""
    path = work_dir() / f"fleet-home-{boards}x{tasks}"
    if not path.exists():
        tmp = path.with_name(path.name + ".building")
        shutil.rmtree(tmp, ignore_errors=True)
        build_home(tmp, boards, tasks)
        tmp.rename(path)
    return path


def fresh_home(src: Path, dest: Path) -> Path:
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(src, dest)
    return dest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--boards", type=int, default=200)
    ap.add_argument("--tasks", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="N (default: the core count)")
    args = ap.parse_args()

    src = cached_home(args.boards, args.tasks)
    home = work_dir() / "fleet-home"
    env = env_without_hermes()
    size = sum(p.stat().st_size for p in src.rglob("kanban.db"))
    print(f"home: {args.boards} legacy boards of {args.tasks} tasks ({size / 1e6:.1f} MB), "
          f"{len(fixtures.shapes())} shapes; {os.cpu_count()} cores; jobs N = {args.jobs}")

    def upgrade_all(jobs: int) -> float:
        fresh_home(src, home)
        return timed([str(BIN), "upgrade", "--all", "--home", str(home), "--jobs", str(jobs)], env)

    one, many = alternate(args.rounds, lambda: upgrade_all(1), lambda: upgrade_all(args.jobs))
    ratio = report(f"upgrade --all, {args.boards} boards", f"--jobs {args.jobs}", many, "--jobs 1", one, None)
    print(f"  speed-up --jobs {args.jobs} over --jobs 1: {1 / ratio:.2f}x "
          f"({statistics.median(one) / args.boards * 1000:.0f} ms per board at --jobs 1)")

    # The read-only listing, on the legacy home and on the upgraded one.
    fresh_home(src, home)
    legacy = [timed([str(BIN), "boards", "--json", "--home", str(home)], env) for _ in range(args.rounds)]
    timed([str(BIN), "upgrade", "--all", "--quiet", "--home", str(home)], env)
    current = [timed([str(BIN), "boards", "--json", "--home", str(home)], env) for _ in range(args.rounds)]
    noop = [timed([str(BIN), "upgrade", "--all", "--quiet", "--home", str(home)], env) for _ in range(args.rounds)]
    for title, runs in ((f"boards --json, {args.boards} legacy boards", legacy),
                        (f"boards --json, the same at head (+{args.boards} backups)", current),
                        ("upgrade --all --quiet, every board at head (fast path)", noop)):
        print(f"{title:56} median {statistics.median(runs):7.3f} s   runs {', '.join(f'{t:.3f}' for t in runs)}")
    shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
