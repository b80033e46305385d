"""Sizes and ages as people read them: one definition for every table, line and JSON field.

Sizes are binary (1 KiB = 1024 bytes), as SQLite's page sizes are; ages are rounded down to the
largest whole unit. Standard library only.

    >>> human_size(512), human_size(1536), human_size(5 * 1024 ** 3)
    ('512 B', '1.5 KiB', '5.0 GiB')
    >>> human_age(59), human_age(7200)
    ('59 s ago', '2 h ago')
"""

from __future__ import annotations

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def human_size(n: int) -> str:
    size = float(n)
    for unit in _UNITS:
        if size < 1024 or unit == _UNITS[-1]:
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def human_age(seconds: float) -> str:
    s = int(seconds)
    if s < 60:
        return f"{s} s ago"
    if s < 3600:
        return f"{s // 60} min ago"
    if s < 86400:
        return f"{s // 3600} h ago"
    return f"{s // 86400} d ago"
