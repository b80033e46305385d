"""Shared helpers for the benchmarks: a cached work folder, alternating timed runs, medians."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

WORK = Path(__file__).resolve().parent / "_work"
BIN = Path(sys.executable).with_name("kanban-migrate")


def work_dir() -> Path:
    WORK.mkdir(parents=True, exist_ok=True)
    return WORK


def cached_board(name: str, build) -> Path:
    """A board built once (``build(path)``) and kept under bench/_work/."""
    path = work_dir() / name
    if not path.exists():
        tmp = path.with_suffix(".building")
        if tmp.exists():
            tmp.unlink()
        build(tmp)
        for suffix in ("-wal", "-shm"):
            Path(str(tmp) + suffix).unlink(missing_ok=True)
        tmp.rename(path)
    return path


def fresh_copy(src: Path, dest: Path) -> Path:
    for suffix in ("", "-wal", "-shm"):
        Path(str(dest) + suffix).unlink(missing_ok=True)
    for p in dest.parent.glob(dest.name + ".*.bak"):
        p.unlink()
    shutil.copyfile(src, dest)
    return dest


def timed(cmd: list[str], env: dict | None = None) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"benchmark command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr.decode()}")
    return elapsed


def alternate(pairs: int, a, b) -> tuple[list[float], list[float]]:
    """Run ``a()`` and ``b()`` alternately ``pairs`` times (a first, then b first, ...)."""
    ta, tb = [], []
    for i in range(pairs):
        if i % 2 == 0:
            ta.append(a())
            tb.append(b())
        else:
            tb.append(b())
            ta.append(a())
    return ta, tb


def report(title: str, ours_name: str, ours: list[float], anchor_name: str, anchor: list[float], target: float | None):
    mo, ma = statistics.median(ours), statistics.median(anchor)
    ratio = mo / ma if ma else float("inf")
    verdict = "" if target is None else (f"  (target <= {target:.2f}x: {'met' if ratio <= target else 'NOT met'})")
    print(f"{title}")
    print(f"  {ours_name:42} median {mo:8.3f} s   runs {', '.join(f'{t:.3f}' for t in ours)}")
    print(f"  {anchor_name:42} median {ma:8.3f} s   runs {', '.join(f'{t:.3f}' for t in anchor)}")
    print(f"  ratio {ratio:.2f}x{verdict}")
    return ratio


def env_without_hermes() -> dict:
    return {k: v for k, v in os.environ.items() if not k.startswith("HERMES")}
