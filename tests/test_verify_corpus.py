"""verify on the SQLite Forensic Corpus: no file/integrity error on the 77 well-formed files,
at least 61 of the 64 anti-forensic files flagged, no crash, hang or change on any file.

The corpus files are not kanban boards: schema, revision and data findings on them are expected
and not looked at here.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from pathlib import Path

import pytest

from kanban_migrate.verifying import verify

CORPUS = Path(__file__).resolve().parents[2] / "shared/corpora/sqlite-forensic-corpus-v2.0"
pytestmark = pytest.mark.skipif(not CORPUS.is_dir(), reason=f"SQLite Forensic Corpus not found at {CORPUS}")

WELL_FORMED = sorted(CORPUS.glob("0*/*.db")) if CORPUS.is_dir() else []
ANTI_FORENSIC = sorted(CORPUS.glob("1*/*_antifor.db")) if CORPUS.is_dir() else []
PER_FILE_SECONDS = 20


def _verify_copy(src: Path, tmp_path: Path, *, full: bool):
    dst = tmp_path / src.name
    shutil.copyfile(src, dst)
    before = hashlib.sha256(dst.read_bytes()).hexdigest()
    started = time.monotonic()
    report = verify(dst, full=full, busy_timeout=1)
    elapsed = time.monotonic() - started
    assert hashlib.sha256(dst.read_bytes()).hexdigest() == before, f"{src.name} changed"
    assert sorted(p.name for p in tmp_path.iterdir()) == [src.name], f"{src.name}: sidecars created"
    assert elapsed < PER_FILE_SECONDS, f"{src.name} took {elapsed:.1f}s"
    dst.unlink()
    return report


def _flagged(report) -> bool:
    return any(f.check in ("file", "integrity") and f.severity == "error" for f in report.findings)


def test_corpus_is_complete():
    assert (len(WELL_FORMED), len(ANTI_FORENSIC)) == (77, 64)


@pytest.mark.parametrize("full", [False, True], ids=["quick", "full"])
def test_well_formed_files_have_no_file_or_integrity_error(tmp_path, full):
    bad = {}
    for src in WELL_FORMED:
        report = _verify_copy(src, tmp_path, full=full)
        errs = [f.message for f in report.findings if f.check in ("file", "integrity") and f.severity == "error"]
        if errs:
            bad[src.name] = errs
    assert not bad


@pytest.mark.parametrize("full,floor", [(False, 60), (True, 61)], ids=["quick", "full"])
def test_anti_forensic_files_are_flagged(tmp_path, full, floor):
    missed = [src.name for src in ANTI_FORENSIC if not _flagged(_verify_copy(src, tmp_path, full=full))]
    flagged = len(ANTI_FORENSIC) - len(missed)
    assert flagged >= floor, f"flagged {flagged}/64; missed {missed}"


def test_truncated_size_file_is_caught_by_the_size_check(tmp_path):
    (src,) = [p for p in ANTI_FORENSIC if p.name == "19-01_antifor.db"]
    report = _verify_copy(src, tmp_path, full=True)
    assert any(f.check == "file" and f.severity == "error" and "page size" in f.message for f in report.findings)
