"""One small registry per extension point, and the one place each name is written.

A ``Registry`` maps names to objects; a lookup of an unknown name fails with the valid names
and a did-you-mean. The extension points a config names (data sources, model sources,
samplers, pruners) are declared here, each name with the ``module:attribute`` that
implements it, so that the config's checks list the valid names without importing torch,
pandas or Optuna, and an object is imported the first time it is used. Plug-ins that
register themselves (techniques, ladder stages) use ``register``.

Example::

    DATA_SOURCES.names()                 # ['csv', 'hfds', 'images', ...]: no import
    DATA_SOURCES.get("csv")              # imports tunelab.data.files, returns load_csv
    DATA_SOURCES.get("cvs")              # ConfigError: ... Did you mean 'csv'?
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Generic, TypeVar

from tunelab.errors import ConfigError

T = TypeVar("T")


def closest(name: str, valid: Iterable[str], *, n: int = 1) -> list[str]:
    """The names of ``valid`` closest to ``name`` (at most ``n``; none when nothing is
    close): what every did-you-mean in tunelab suggests."""
    return difflib.get_close_matches(name, list(valid), n=n)


def did_you_mean(name: str, valid: Iterable[str], *, n: int = 1) -> str:
    """`` Did you mean 'x'?`` for the closest of ``valid``, or ``""``."""
    close = closest(name, valid, n=n)
    if not close:
        return ""
    return f" Did you mean {' or '.join(repr(c) for c in close)}?"


class Registry(Generic[T]):
    """A name -> object mapping whose lookups fail with the list of valid names.

    Args:
        kind: what the names are, for messages ("data source").
        lazy: name -> ``"module:attribute"``, imported on first use.
    """

    def __init__(self, kind: str, *, lazy: Mapping[str, str] | None = None) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._lazy: dict[str, str] = dict(lazy or {})

    def register(self, name: str) -> Callable[[T], T]:
        def add(item: T) -> T:
            if name in self._items or name in self._lazy:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._items[name] = item
            return item

        return add

    def get(self, name: str, *, field: str | None = None) -> T:
        if name not in self._items and name in self._lazy:
            module, _, attribute = self._lazy[name].partition(":")
            self._items[name] = getattr(importlib.import_module(module), attribute)
        try:
            return self._items[name]
        except KeyError:
            raise ConfigError(self.unknown(name, field=field)) from None

    def unknown(self, name: str, *, field: str | None = None) -> str:
        where = f"{field}: " if field else ""
        return (
            f"{where}unknown {self.kind} {name!r}; valid: {', '.join(self.names())}."
            f"{did_you_mean(name, self.names())}"
        )

    def names(self) -> list[str]:
        return sorted({*self._items, *self._lazy})

    def __contains__(self, name: object) -> bool:
        return name in self._items or name in self._lazy

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


# -- the extension points a config names -----------------------------------------------------

# (typed loosely: the objects live in modules this one must not import; callers say what
# they get)
DATA_SOURCES: Registry[Callable[..., Any]] = Registry(
    "data source",
    lazy={
        "sklearn": "tunelab.data.sklearn_source:load_sklearn",
        "csv": "tunelab.data.files:load_csv",
        "parquet": "tunelab.data.files:load_parquet",
        "jsonl": "tunelab.data.files:load_jsonl",
        "npz": "tunelab.data.files:load_npz",
        "images": "tunelab.data.images:load_images",
        "hfds": "tunelab.data.hfds:load_hfds",
        "py": "tunelab.data.pysource:load_py",
    },
)
MODEL_SOURCES: Registry[Callable[..., Any]] = Registry(
    "model source",
    lazy={
        "builtin": "tunelab.models.builtin:load_builtin",
        "py": "tunelab.models.local:load_py",
        "file": "tunelab.models.local:load_file_weights",
        "hf": "tunelab.models.text:load_hf",
        "st": "tunelab.models.text:load_st",
        "timm": "tunelab.models.vision:load_timm",
        "torchvision": "tunelab.models.vision:load_torchvision",
        "sklearn": "tunelab.evaluation.trees:not_a_network",
        "lightgbm": "tunelab.evaluation.trees:not_a_network",
        "xgboost": "tunelab.evaluation.trees:not_a_network",
    },
)
MODEL_REBUILDERS: Registry[Callable[..., Any]] = Registry(
    "model rebuilder",
    lazy={
        "builtin": "tunelab.models.builtin:rebuild_builtin",
        "py": "tunelab.models.local:rebuild_py",
        "hf": "tunelab.models.text:rebuild_hf",
        "timm": "tunelab.models.vision:rebuild_timm",
        "torchvision": "tunelab.models.vision:rebuild_torchvision",
    },
)
SAMPLERS: Registry[Callable[..., Any]] = Registry(
    "sampler",
    lazy={
        name: f"tunelab.search.study:{name}_sampler"
        for name in ("tpe", "random", "grid", "cmaes", "qmc", "gp")
    },
)
PRUNERS: Registry[Callable[..., Any]] = Registry(
    "pruner",
    lazy={
        name: f"tunelab.search.study:{name}_pruner"
        for name in (
            "median",
            "percentile",
            "successive_halving",
            "hyperband",
            "wilcoxon",
            "none",
        )
    },
)
