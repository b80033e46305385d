"""``recover()``: the README's steps as named methods of one run.

Every step works on files the run made; a run that does not finish removes exactly those (never a
folder it did not create) and leaves the board as it was. In place, the board's lock is held from
the in-use check through the swap, and the swap is one rename (:mod:`.swap`). A failure of the
machine (disk full, file-size limit, read-only folder, a name too long) is one line and exit 5.
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

from ..backup import inherit_access
from ..board import DEFAULT_BUSY_TIMEOUT, MAGIC, check_sidecars, sidecar, uri
from ..errors import (BoardBusy, EnvironmentFailure, ExitCode, KanbanMigrateError, MissingBoard, NotABoard,
                      Refused, UsageError)
from . import swap
from .files import (Made, copy_sparse, environment_cause, fsync_file, identity, make_dirs, make_work, place_new,
                    present, temp_path, work_name)
from .final import (check_final, count_board, final_checkpoint, follow_marks, header_problems, missing_tasks,
                    read_header, verify_healthy, verify_rebuilt)
from .report import RecoverReport

BUSY_HINT = "stop the board's processes (gateways, dispatcher, workers) first, or pass --output"
FIX_HINT = "fix it (free space, raise the file-size limit, fix the folder's permissions) and rerun"


def _chained_cause(exc: BaseException) -> str | None:
    """The machine's failure behind ``exc``, if one is in its chain of causes."""
    seen = exc
    while seen is not None:
        cause = environment_cause(seen)
        if cause:
            return cause
        seen = seen.__cause__ or seen.__context__
    return None


def _check_input(path: Path, shown: str) -> None:
    try:
        st = path.stat()
    except FileNotFoundError:
        raise MissingBoard("no such file", "check the path", path=shown) from None
    except OSError as exc:
        raise NotABoard(f"cannot read: {exc.strerror}", "check the path and its permissions", path=shown) from None
    if path.is_dir():
        raise NotABoard("is a directory, not a board file", "pass the kanban.db file inside it", path=shown)
    if not path.is_file():
        raise NotABoard("is not a regular file", "pass the kanban.db file itself", path=shown)
    if st.st_size == 0:
        raise Refused("empty file (0 bytes): there is nothing to recover",
                      "a new board can be made with 'kanban-migrate upgrade --create'", path=shown)
    check_sidecars(Path(os.path.realpath(path)), shown)  # a FIFO or device there: refused, never opened


def _check_targets(board: Path, out: Path | None, dump: Path | None) -> None:
    """--output and --dump name new files: never the board, never each other, never an existing file."""
    for opt, p in (("--output", out), ("--dump", dump)):
        if p is None:
            continue
        if os.path.lexists(p):
            raise UsageError("the path exists; it is never overwritten", f"pass a new path to {opt}", path=str(p))
        if os.path.realpath(p) in {str(board) + s for s in ("", "-wal", "-shm", "-journal")}:
            raise UsageError("is the board itself", f"pass a new path to {opt}", path=str(p))
    if out is not None and dump is not None and os.path.realpath(out) == os.path.realpath(dump):
        raise UsageError("--output and --dump name the same file", "pass two different paths", path=str(out))


def _name_max(folder: Path) -> int:
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255


def _hot(journal: Path) -> bool:
    """A rollback journal SQLite has not rolled back yet (present, with a header)."""
    try:
        with open(journal, "rb") as fh:
            return any(fh.read(28))
    except FileNotFoundError:
        return False


class _Steps:
    """The run's progress as ``progress(done, total, label)`` calls (a bar's fraction): copy,
    triage, the final check and delivery; a salvage adds its engine's phases, the load and the
    revision chain once triage has asked for it."""

    BASE = 4  # copy, triage, final check, deliver

    def __init__(self, progress=None):
        self.progress, self.done, self.total = progress, 0, self.BASE
        self._phases_at: int | None = None

    def __call__(self, label: str) -> None:
        self.done = min(self.done + 1, self.total)
        self._tell(label)

    def grow(self, steps: int) -> None:
        self.total += steps

    def phase(self, done: int, total: int, label: str) -> None:
        """The salvage engine's ``progress`` callback: its phases inside the run's steps."""
        if self._phases_at is None:
            self._phases_at = self.done
            self.grow(total)
        self.done = self._phases_at + done
        self._tell(f"salvage: {label}")

    def finish(self, label: str) -> None:
        self.done = self.total
        self._tell(label)

    def _tell(self, label: str) -> None:
        if self.progress is not None:
            self.progress(self.done, self.total, label)


class _Run:
    """One recover run: its options, the files it made, the lock it holds, its report."""

    def __init__(self, board: Path, shown: str, out: Path | None, dump: Path | None, keep_workdir: bool,
                 progress=None):
        self.board, self.shown, self.out, self.dump_to = board, shown, out, dump
        self.keep_workdir = keep_workdir
        self.steps = _Steps(progress)
        self.report = RecoverReport(shown)
        self.made = Made()
        self.lock = None
        self.journal: swap.Journal | None = None
        self.committed = False
        self.delivered: list[Path] = []
        self.work: Path | None = None
        self.snap = None
        self.dump_tmp: Path | None = None
        self.out_tmp: Path | None = None
        self.image: Path | None = None
        self.aside_tmp: dict[str, Path] = {}
        self.salvage_from: Path | None = None  # the copy the salvage reads, when not the forensic one

    @property
    def in_place(self) -> bool:
        return self.out is None

    # --- step 0: refuse to race the application ------------------------------------------------
    def claim(self, assume_idle: bool, busy_timeout: float) -> None:
        from .inuse import BoardLock, open_by, shm_held, unprovable

        if not self.in_place:
            return
        longest = swap.aside_path(self.board, "0" * 16).name + "-journal"
        limit = _name_max(self.board.parent)
        if len(os.fsencode(longest)) > limit:  # as upgrade refuses a name too long for its backup
            raise Refused(f"its name is {len(os.fsencode(self.board.name))} bytes, too long for the copy of the "
                          f"original kept beside it (<board>.corrupt.<hash>.bak; the folder allows {limit} per name)",
                          "rename the board to a shorter name, or recover to a new file with --output; "
                          "nothing was changed", path=self.shown)
        if not assume_idle:
            why = unprovable(self.board)
            if why:
                raise BoardBusy(f"cannot prove the board idle: {why}",
                                "recover to a new file with --output, or pass --assume-idle if nothing uses it",
                                path=self.shown)
        lock = BoardLock(self.board)
        try:
            taken = lock.acquire(wait=busy_timeout)
        except OSError as exc:
            cause = environment_cause(exc) or exc.strerror
            raise EnvironmentFailure(f"cannot open the board to lock it ({cause})",
                                     "check the permissions, or recover to a new file with --output",
                                     path=self.shown) from None
        if not taken:
            raise BoardBusy(f"the board is in use (another process held a lock on it for longer than --busy-timeout "
                            f"{busy_timeout:g} s)", BUSY_HINT, path=self.shown)
        self.lock = lock
        pids = open_by(self.board)
        if pids:
            raise BoardBusy(f"the board is in use (open in process {', '.join(map(str, pids[:5]))})",
                            BUSY_HINT, path=self.shown)
        if shm_held(self.board):
            raise BoardBusy("the board is in use (another process holds a lock on it)", BUSY_HINT, path=self.shown)

    # --- step 1: where the work goes ------------------------------------------------------------
    def prepare(self, workdir: Path | None) -> None:
        board = self.board
        base = Path(workdir).absolute() if workdir is not None else (
            board.parent if self.in_place else self.out.parent)
        for target in (self.out, self.dump_to):
            if target is not None:
                make_dirs(target.parent, self.made)
        work = work_name(base)
        planned: list[Path] = [work]
        if self.out is not None:
            self.out_tmp = temp_path(self.out.parent, "out")
            planned.append(self.out_tmp)
        if self.dump_to is not None:
            self.dump_tmp = temp_path(self.dump_to.parent, "sql")
            planned.append(self.dump_tmp)
        if self.in_place:
            image_files = swap.image_names(board)
            self.image = image_files[0]
            self.aside_tmp = {s: temp_path(board.parent, f"aside{s}") for s in swap.ASIDE_SUFFIXES}
            planned += [*image_files, *self.aside_tmp.values()]
            if swap.journal_path(board).exists():
                raise BoardBusy("another recover's swap journal is beside the board",
                                f"remove {swap.journal_path(board)} if no recover runs", path=self.shown)
            keep = [work] if self.keep_workdir else []
            self.journal = swap.Journal(board, self.made, planned, keep)
            self.journal.write()  # before anything it lists is made
        self.work = make_work(work, board, self.made)

    # --- step 2: the copy every later step works on --------------------------------------------
    def copy(self, busy_timeout: float) -> None:
        from .inuse import users
        from .snapshot import consistent_snapshot, forensic_copy

        snap = None
        if not self.in_place and users(self.board):
            snap = consistent_snapshot(self.board, self.work, busy_timeout=busy_timeout, shown=self.shown)
            if snap is not None:
                self.report.snapshot = "sqlite-backup"
        self.snap = snap or forensic_copy(self.board, self.work, shown=self.shown)
        self.steps("copied")

    # --- step 3: checkpoint and triage on a copy of the copy -----------------------------------
    def triage(self) -> Path | None:
        from .triage import index_only, integrity_lines

        report, copy = self.report, self.snap.copy
        wal = sidecar(copy, "-wal")
        has_magic = read_header(copy)[:16] == MAGIC
        if wal.exists():
            from ..salvage import wal_summary

            try:
                summary = wal_summary(wal)
                report.wal_frames = summary.committed_frames
                report.wal_commits = summary.has_uncheckpointed_commits
            except Exception as exc:  # noqa: BLE001 - a damaged WAL is just not used
                report.notes.append(f"the WAL could not be read: {exc}")
        trial = self.work / "checkpointed.db"
        for suffix in ("", "-wal", "-journal"):
            if sidecar(copy, suffix).exists():
                copy_sparse(sidecar(copy, suffix), sidecar(trial, suffix))
                inherit_access(sidecar(trial, suffix), self.board)
        lines, error, ckpt = integrity_lines(trial) if has_magic else (None, "no SQLite header", None)
        if present(sidecar(copy, "-journal")) and not _hot(sidecar(trial, "-journal")):
            # SQLite rolled the interrupted transaction back on the trial copy: the pages in the
            # main file were half-written and uncommitted; the salvage reads the rolled-back copy
            self.salvage_from = trial
            report.notes.append("a hot journal was found: the interrupted transaction was rolled back first")
        if ckpt is not None and ckpt[0] == 1:
            report.notes.append("the WAL checkpoint was blocked; the salvage reads the WAL itself")
            lines, error = None, "checkpoint blocked"
        if lines == [] and error is None:
            if header_problems(trial):
                return self._rewrite(trial)
            report.mode = "wal-only" if report.wal_commits else "healthy"
            return trial
        if lines and index_only(lines):
            conn = sqlite3.connect(str(trial), isolation_level=None)
            try:
                conn.execute("REINDEX")
            finally:
                conn.close()
            again, error, _ = integrity_lines(trial)
            if again == [] and error is None and not header_problems(trial):
                report.mode = "reindex"
                return trial
        return None

    def _rewrite(self, trial: Path) -> Path | None:
        """Every page reads clean but the header disagrees with the file (``verify`` says so, e.g. a
        file extended or cut outside SQLite): SQLite's backup API writes the pages it reads into a
        new file of the true size, byte for byte otherwise. None (salvage) when that is not enough."""
        fixed = self.work / "rewritten.db"
        os.close(os.open(fixed, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        inherit_access(fixed, self.board)
        src = sqlite3.connect(uri(trial, mode="ro"), uri=True)
        dest = sqlite3.connect(str(fixed), isolation_level=None)
        try:
            src.backup(dest)
        except sqlite3.DatabaseError:
            return None
        finally:
            dest.close()
            src.close()
        from .triage import integrity_lines

        if header_problems(fixed) or integrity_lines(fixed)[:2] != ([], None):
            return None
        self.report.mode = "resized"
        return fixed

    # --- step 4: salvage and rebuild -----------------------------------------------------------
    def salvage(self, include_freelist: bool, time_limit: float) -> Path:
        from ..salvage import salvage
        from ..upgrading import upgrade
        from .load import load
        from .shapes import known_shapes

        report, copy = self.report, self.salvage_from or self.snap.copy
        report.mode = "salvage"
        self.steps.grow(2)  # the load and the revision chain; the engine adds its phases
        wal = sidecar(copy, "-wal")
        result = salvage(copy, wal if wal.exists() else False, include_freelist=include_freelist,
                         time_limit=time_limit, shapes=known_shapes(), workdir=self.work, progress=self.steps.phase)
        report.pages_unreadable, report.timed_out = result.pages_unreadable, result.timed_out
        staging = self.work / "rebuilt.db"
        os.close(os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        inherit_access(staging, self.board)  # SQLite keeps a file's access; its -wal/-shm follow it
        try:
            placed = load(result, staging, report, known_shapes())
        finally:
            result.close()  # the spool and the file the rows streamed from
        self.steps("loaded")
        if not placed:
            raise Refused("nothing could be recovered: no readable row of any table",
                          "the file holds no SQLite pages kanban-migrate can read; the input was left as it was",
                          path=self.shown)
        if self.dump_tmp is not None:
            self._write_dump(staging)
        try:
            upgrade(staging, backup=False)
        except KanbanMigrateError as exc:  # about a work file of this run: say what it means here
            cause = _chained_cause(exc) or environment_cause(sqlite3.OperationalError(exc.message))
            if cause:
                raise EnvironmentFailure(f"{cause}; nothing was changed", FIX_HINT, path=self.shown) from None
            raise Refused(f"the rebuilt board could not be taken to head ({exc.message}); nothing was changed",
                          "please report this", path=self.shown) from None
        self.steps("at head")
        if report.freelist_rows:
            follow_marks(staging)
        report.missing_tasks = missing_tasks(staging)
        return staging

    def _write_dump(self, staging: Path) -> None:
        from ..salvage.dump import dump_database

        conn = sqlite3.connect(uri(staging, mode="ro"), uri=True)
        try:
            fd = os.open(self.dump_tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            self.made.add(self.dump_tmp)
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fp:
                dump_database(conn, fp, title=f"salvage of {os.path.abspath(self.shown)!r} by kanban-migrate "
                                              "recover (the salvaged tables before the revision chain)")
                fp.flush()
                os.fsync(fp.fileno())
        finally:
            conn.close()
        inherit_access(self.dump_tmp, self.board)

    # --- step 5: the result must be whole before anything is delivered -------------------------
    def finalize(self, db: Path) -> None:
        final_checkpoint(db, new_board=self.report.mode == "salvage")
        problem = check_final(db, integrity=False)  # verify below runs integrity_check on these bytes
        if problem:
            raise Refused(f"the rebuilt board failed its final check ({problem}); nothing was swapped",
                          "please report this", path=self.shown)
        verify_rebuilt(db, self.shown, self.report)
        count_board(db, self.report)
        self.steps("checked")

    # --- step 6: deliver -----------------------------------------------------------------------
    def deliver(self, db: Path) -> None:
        if self.dump_tmp is not None and not self.dump_tmp.exists():
            self.report.notes.append("no SQL dump was written: the board needed no salvage")
        if self.dump_tmp is not None and self.report.dump is None and self.dump_tmp.exists():
            place_new(self.dump_tmp, self.dump_to)
            self.made.forget(self.dump_tmp)
            self.made.add(self.dump_to)
            self.delivered.append(self.dump_to)
            self.report.dump = str(self.dump_to)
        if self.out is not None:
            self._deliver_output(db)
        else:
            self._swap(db)
        self.steps.finish("delivered")

    def _deliver_output(self, db: Path) -> None:
        tmp = self.out_tmp
        self.made.add(tmp)
        copied = True
        if not self.keep_workdir:  # a kept work folder must not share the recovered board's inode
            try:
                os.link(db, tmp)  # the very bytes verify checked
                copied = False
            except OSError:
                pass
        if copied:
            copy_sparse(db, tmp)
        fsync_file(tmp)
        problem = check_final(tmp, integrity=copied)
        if problem:
            raise Refused(f"the recovered board's final bytes fail their check ({problem}); nothing was written",
                          "please report this", path=self.shown)
        inherit_access(tmp, self.board)
        place_new(tmp, self.out)
        self.made.forget(tmp)
        self.made.add(self.out)
        self.delivered.append(self.out)
        self.report.output = str(self.out)

    def _swap(self, db: Path) -> None:
        board = self.board
        final = swap.aside_path(board, self.snap.digest)
        fresh = [] if present(final) else [sidecar(final, s) for s in swap.ASIDE_SUFFIXES
                                             if present(sidecar(self.snap.copy, s))]
        self.journal.write(aside=[str(p) for p in fresh], identity=identity(board))
        image_wal = swap.build_image(db, board, self.image, self.made)
        aside, created = swap.make_aside(board, self.snap.copy, self.snap.digest, self.made, self.aside_tmp)
        self.delivered += created
        self._wal_mode = read_header(db)[18:20] == b"\x02\x02"
        self.journal.write(phase="ready", image_wal=str(image_wal), aside=[str(p) for p in created],
                           wal=self._wal_mode)
        swap.commit(board, image_wal)
        self.committed = True
        self.made.forget(image_wal)
        self.report.original = str(aside)
        self.report.output = str(board)
        self._aside = aside

    # --- the end: keep what was delivered, remove the rest --------------------------------------
    def cleanup(self) -> None:
        for p in self.delivered:
            self.made.forget(p)
        if self.keep_workdir and self.work is not None:
            self.made.forget(self.work)
            self.report.workdir = str(self.work)
            parent = self.work.parent
            while parent in self.made.paths:
                self.made.forget(parent)
                parent = parent.parent
        self.made.remove_all()
        if self.journal is not None:
            self.journal.close()
        self.release()
        if self.committed:
            if not swap.checkpoint(self.board, wal=self._wal_mode):
                self.report.notes.append("the rebuilt board is in its -wal until the application's next checkpoint")
            swap.finish(self.board, self._aside)

    def abandon(self) -> None:
        """The run stops before its swap: remove everything it made; the board is as it was."""
        if self.committed:
            self.cleanup()
            return
        self.made.remove_all()
        if self.journal is not None:
            self.journal.close()
        self.release()

    def release(self) -> None:
        if self.lock is not None:
            self.lock.release()
            self.lock = None


def recover(
    path: str | os.PathLike,
    *,
    output: str | os.PathLike | None = None,
    dump: str | os.PathLike | None = None,
    include_freelist: bool = False,
    time_limit: float = 600.0,
    workdir: str | os.PathLike | None = None,
    keep_workdir: bool = False,
    busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
    assume_idle: bool = False,
    progress=None,
) -> RecoverReport:
    """Recover the board at ``path`` (README, "recover"). Returns a report whose ``code`` is 0
    (everything readable recovered) or 1 (rebuilt, but rows were lost); raises a refusal (exit 2,
    3, 4 or 5) where nothing was changed. ``busy_timeout``: how long to wait for another process's
    lock on the board (in place: the board's lock; with ``--output``: the read of a live board).
    ``progress(done, total, label)`` is called as each step ends (the total grows once, when a
    salvage is needed)."""
    started = time.perf_counter()
    shown = str(path)
    _check_input(Path(path), shown)
    board = Path(os.path.realpath(path))
    swap.settle(board, shown)
    out = Path(os.path.abspath(output)) if output is not None else None
    dump_to = Path(os.path.abspath(dump)) if dump is not None else None
    _check_targets(board, out, dump_to)
    run = _Run(board, shown, out, dump_to, keep_workdir, progress)
    report = run.report
    try:
        run.claim(assume_idle, busy_timeout)
        run.prepare(Path(workdir) if workdir is not None else None)
        run.copy(busy_timeout)
        result_db = run.triage()
        run.steps("triaged")
        if report.mode == "healthy" and run.in_place:
            count_board(result_db, report)
            run.cleanup()
            verify_healthy(board, report, busy_timeout)
            run.steps.finish("nothing to recover")
            report.seconds = time.perf_counter() - started
            return report
        if result_db is None:
            result_db = run.salvage(include_freelist, time_limit)
        run.finalize(result_db)
        run.deliver(result_db)
        run.cleanup()
    except KanbanMigrateError:
        run.abandon()
        raise
    except FileExistsError as exc:
        run.abandon()
        raise UsageError("the path exists now; it is never overwritten", "pass a new path",
                         path=exc.filename or shown) from None
    except BaseException as exc:
        run.abandon()
        cause = environment_cause(exc)
        if cause is None:
            raise
        raise EnvironmentFailure(f"{cause}; nothing was changed" if not run.committed else cause,
                                 FIX_HINT, path=shown) from None
    report.code = int(ExitCode.PENDING) if report.rows_lost else int(ExitCode.OK)
    report.seconds = time.perf_counter() - started
    return report
