"""Progress reporting seam: the library calls these hooks; the CLI renders them with rich."""
from __future__ import annotations

from typing import Protocol


class ProgressSink(Protocol):
    def start(self, description: str, total: int) -> None: ...

    def advance(self, n: int = 1, info: str = "") -> None: ...

    def stop(self) -> None: ...


class NullProgress:
    """Silent sink used by library callers and tests."""

    def start(self, description: str, total: int) -> None:
        pass

    def advance(self, n: int = 1, info: str = "") -> None:
        pass

    def stop(self) -> None:
        pass
