"""One function over many boards, in worker processes: what ``upgrade_many`` and ``verify_many``
share. Standard library only."""

from __future__ import annotations

import os
from typing import Callable, TypeVar

T = TypeVar("T")


def each(fn: Callable[[str], T], paths: list[str], *, jobs: int | None = None,
         on_done: Callable[[T], None] | None = None) -> list[T]:
    """``[fn(p) for p in paths]``, in the order of ``paths``; in up to ``jobs`` worker processes
    (default: the core count) when there is more than one path, so ``fn`` and its results must
    pickle. ``fn`` is expected to turn a board's failure into its result: one board never stops
    the others. ``on_done(result)`` is called in this process as each board finishes (progress)."""
    jobs = jobs or os.cpu_count() or 1
    results: list = [None] * len(paths)
    if jobs <= 1 or len(paths) <= 1:
        for i, p in enumerate(paths):
            results[i] = fn(p)
            if on_done:
                on_done(results[i])
        return results
    from concurrent.futures import ProcessPoolExecutor, as_completed

    with ProcessPoolExecutor(max_workers=min(jobs, len(paths))) as pool:
        futures = {pool.submit(fn, p): i for i, p in enumerate(paths)}
        for fut in as_completed(futures):
            results[futures[fut]] = fut.result()
            if on_done:
                on_done(results[futures[fut]])
    return results
