"""One small registry per extension point (data sources, model sources, ...).

Names are looked up with a clear error that lists the valid ones::

    DATA_SOURCES = Registry[DataLoaderFn]("data source")

    @DATA_SOURCES.register("csv")
    def load_csv(...): ...
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from tunelab.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """A name -> object mapping whose lookups fail with the list of valid names."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(item: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._items[name] = item
            return item

        return add

    def get(self, name: str, *, field: str | None = None) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise ConfigError(self.unknown(name, field=field)) from None

    def unknown(self, name: str, *, field: str | None = None) -> str:
        valid = ", ".join(sorted(self._items))
        close = difflib.get_close_matches(name, list(self._items), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        where = f"{field}: " if field else ""
        return f"{where}unknown {self.kind} {name!r}; valid: {valid}.{hint}"

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))
