"""Progress bars for long steps, on a terminal only (callers never show them with --json, --quiet
or when the output is piped)."""

from __future__ import annotations


class progress_bar:
    """A rich progress bar on standard error, shown on a terminal only (never in --json or when
    piped: callers decide); ``advance(label)`` moves it on."""

    def __init__(self, description: str, total: int):
        self.description, self.total = description, total

    def __enter__(self):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[label]}"), TimeElapsedColumn(),
                                 console=Console(stderr=True), transient=True)
        self.progress.start()
        self.task = self.progress.add_task(self.description, total=self.total, label="")

        def advance(label: str = "", *, completed: int | None = None, total: int | None = None) -> None:
            """One step on; or ``completed`` steps in all, of ``total`` when the total became known."""
            self.progress.update(self.task, advance=1 if completed is None else None, completed=completed,
                                 total=total, label=label)

        return advance

    def __exit__(self, *exc):
        self.progress.stop()
        return False
