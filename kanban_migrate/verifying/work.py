"""How the ``data`` check's jobs are shared by threads, each on its own read-only connection.

SQLite releases the GIL while a statement runs, so threads give real parallelism. Three kinds of
thread take jobs from one :class:`Work`: the integrity thread once its PRAGMA is done, the main
thread once the schema is checked, and :func:`data_threads` more on machines with more than two
cores. What a job does is decided elsewhere (:mod:`.scan`, :mod:`.invariants`).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from dataclasses import dataclass
from typing import Callable

#: Threads that already take jobs whatever the core count: the integrity thread and the main thread.
BUSY_THREADS = 2


@dataclass
class Job:
    """A unit of work: run it on a connection. ``cost`` orders the work (largest first, so that the
    longest jobs start early and the threads end together); ``kind`` says what it may run beside
    (see :class:`Work`)."""

    name: str
    run: Callable[[sqlite3.Connection], None]
    cost: int = 0
    kind: str = "scan"  # "parse", "light" or "scan"


class Work:
    """The data jobs, taken by several threads (each with its own connection).

    SQLite counts every allocation under one process-wide mutex, so two queries that allocate
    per row slow each other down. ``json_valid`` allocates several times per value: two halves of
    the JSON pass over task_events take 0.31 s side by side and 0.25 s one after the other. So:

    * ``parse`` jobs (JSON passes) never run beside each other; they go first, beside the
      integrity PRAGMA (which allocates little);
    * ``light`` jobs (short values without JSON, index walks that copy nothing) slow nothing
      down: while a parse job runs, the other threads take them first;
    * ``scan`` jobs (long rows, printf on long text) slow a parse job down and are slowed by
      it by about a third: they wait for the light jobs while a parse job runs, and else go
      before them (the small light jobs end the work, so that the threads end together).
    """

    KINDS = ("parse", "light", "scan")

    def __init__(self):
        self._cv = threading.Condition()
        self._jobs: dict[str, list[Job]] = {k: [] for k in self.KINDS}
        self._parsing = False
        self._closed = False
        self._abandoned = False

    def put(self, jobs) -> None:
        with self._cv:
            if self._abandoned:
                return
            for job in jobs:
                self._jobs[job.kind].append(job)
            self._cv.notify_all()

    def abandon(self) -> None:
        """Drop the jobs not yet taken (the board changed: the findings would be dropped anyway)."""
        with self._cv:
            for jobs in self._jobs.values():
                jobs.clear()
            self._closed = self._abandoned = True
            self._cv.notify_all()

    def close(self) -> None:
        """No more jobs: a worker that finds nothing to do ends."""
        with self._cv:
            self._closed = True
            self._cv.notify_all()

    def take(self) -> Job | None:
        with self._cv:
            while True:
                parse, light, scan = self._jobs["parse"], self._jobs["light"], self._jobs["scan"]
                if parse and not self._parsing:
                    self._parsing = True
                    return parse.pop(0)
                for jobs in (light, scan) if self._parsing else (scan, light):
                    if jobs:
                        return jobs.pop(0)
                if self._closed and not parse:
                    return None
                self._cv.wait()  # only parse jobs left, and one runs

    def done(self, job: Job) -> None:
        with self._cv:
            if job.kind == "parse":
                self._parsing = False
                self._cv.notify_all()

    def drain(self, conn: sqlite3.Connection) -> None:
        """Take and run jobs on ``conn`` until there are none left."""
        while True:
            job = self.take()
            if job is None:
                return
            try:
                job.run(conn)
            finally:
                self.done(job)


def data_threads() -> int:
    """Threads that take data jobs besides the :data:`BUSY_THREADS`: one per core beyond them. On
    two cores more threads only share the same CPU time (measured: no faster, more CPU time)."""
    return max(0, (os.cpu_count() or BUSY_THREADS) - BUSY_THREADS)


class Crew:
    """The threads of one check: started here, joined by :meth:`join` whatever happened.

    ``connect()`` opens a new read-only connection (:meth:`.access.Watcher.connect`); ``prepare(conn)``
    readies one for the jobs (:func:`.invariants.prepare`)."""

    def __init__(self, connect, work: Work, prepare):
        self.connect, self.work, self.prepare = connect, work, prepare
        self.threads: list[threading.Thread] = []

    def start(self, name: str, opener=None) -> None:
        """A thread that takes jobs on a connection of its own: ``opener()`` (which may do a first
        task of its own on it) or a plain ``connect()``; no connection (None), no jobs."""
        th = threading.Thread(target=self._worker, args=(opener or self._connect,), name=name, daemon=True)
        th.start()
        self.threads.append(th)

    def _connect(self) -> sqlite3.Connection | None:
        try:
            return self.connect()
        except sqlite3.Error:
            return None  # the other threads take the jobs

    def _worker(self, opener) -> None:
        conn = opener()
        if conn is None:
            return
        try:
            self.drain(conn)
        finally:
            conn.close()

    def drain(self, conn: sqlite3.Connection) -> None:
        """Take jobs on ``conn`` (this thread's) until there are none."""
        self.prepare(conn)
        self.work.drain(conn)

    def join(self) -> None:
        self.work.close()  # stopped early: the workers end once the jobs already queued are done
        for th in self.threads:
            th.join()
