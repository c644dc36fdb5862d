"""A rich progress bar implementing the library's ``ProgressSink``."""
from __future__ import annotations

from rich.progress import Progress

from compress.cli.common import console, progress_columns


class RichProgress:
    """One bar, reused for each epoch/stage; use as a context manager around a job."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._progress = Progress(*progress_columns(), console=console, transient=False, disable=not enabled)
        self._task = None

    def __enter__(self) -> "RichProgress":
        self._progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self._progress.stop()

    def start(self, description: str, total: int) -> None:
        if self._task is not None:
            self._progress.remove_task(self._task)
        self._task = self._progress.add_task(description, total=total, info="")

    def advance(self, n: int = 1, info: str = "") -> None:
        if self._task is None:
            self._task = self._progress.add_task("preparing", total=None, info="")
        self._progress.update(self._task, advance=n, info=info)

    def stop(self) -> None:
        # The bar stays on screen as the last epoch's record until the next stage replaces it.
        if self._task is not None:
            self._progress.refresh()
