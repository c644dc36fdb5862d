"""Name → object registries (methods, losses, models, runners...), as timm and torchdistill do."""
from __future__ import annotations

import difflib
from typing import Callable, Generic, Iterator, TypeVar

from compress.errors import UserInputError

T = TypeVar("T")


class Registry(Generic[T]):
    """A named mapping filled with the ``@REGISTRY.register("name")`` decorator.

    Keys are kebab-case as typed on the CLI; lookups accept ``_`` for ``-``.
    An unknown name raises ``UserInputError`` listing the known ones.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    @staticmethod
    def _norm(name: str) -> str:
        return name.strip().lower().replace("_", "-")

    def register(self, name: str) -> Callable[[T], T]:
        key = self._norm(name)

        def deco(obj: T) -> T:
            if key in self._items and self._items[key] is not obj:
                raise RuntimeError(f"{self.kind} '{key}' is registered twice")
            self._items[key] = obj
            return obj

        return deco

    def add(self, name: str, obj: T) -> None:
        self.register(name)(obj)

    def get(self, name: str) -> T:
        key = self._norm(name)
        if key not in self._items:
            close = difflib.get_close_matches(key, self._items, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise UserInputError(
                f"Unknown {self.kind} '{name}'. Known: {', '.join(sorted(self._items))}.{hint}"
            )
        return self._items[key]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._norm(name) in self._items

    def names(self) -> list[str]:
        return sorted(self._items)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)
