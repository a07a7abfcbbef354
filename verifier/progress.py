"""Progress of a run on a terminal: a rich progress bar on stderr; silent in CI and when not a TTY."""

from __future__ import annotations

import os
import sys

from verifier.runner import Progress


class Bar(Progress):
    """A rich bar with the last finished unit as its label."""

    def __init__(self):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.bar = Progress(TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), console=Console(stderr=True), transient=True)
        self.task = None

    def start(self, total: int) -> None:
        self.bar.start()
        self.task = self.bar.add_task("starting", total=total)

    def advance(self, label: str) -> None:
        if self.task is not None:
            self.bar.update(self.task, advance=1, description=label[:60])

    def note(self, message: str) -> None:
        self.bar.console.print(message, markup=False, highlight=False)

    def stop(self) -> None:
        self.bar.stop()


class Quiet(Progress):
    """No bar; notes go to stderr as plain lines."""

    def note(self, message: str) -> None:
        print(message, file=sys.stderr)

    def stop(self) -> None:
        pass


def for_terminal() -> Bar | Quiet:
    """A bar when stderr is an interactive terminal and CI is not set; otherwise quiet."""
    if sys.stderr.isatty() and not os.environ.get("CI"):
        return Bar()
    return Quiet()
