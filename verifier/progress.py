"""Progress of a run: the interface the runner reports to; on a terminal, a rich bar on stderr.

Silent in CI and when stderr is not a TTY.
"""

from __future__ import annotations

import os
import sys


class Progress:
    """Where a run reports how far it is; the CLI shows a bar on a terminal, nothing elsewhere."""

    def start(self, total: int) -> None:
        """`total` units of work lie ahead (cases × API variants, plus one per drift suite)."""

    def advance(self, label: str) -> None:
        """One unit is done."""

    def note(self, message: str) -> None:
        """A line worth telling the user."""


class Bar(Progress):
    """A rich bar with the last finished unit as its label."""

    def __init__(self):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as RichProgress

        self.bar = RichProgress(TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
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
