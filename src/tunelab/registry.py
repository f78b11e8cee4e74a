"""One small registry per extension point, and the one place each name is written.

A ``Registry`` maps names to objects; a lookup of an unknown name fails with the valid names
and a did-you-mean. The extension points a config names (data sources, model sources,
samplers, pruners, optimizers, schedules, poolings, heads, ensemble methods, metrics) and
the kinds a stored file or a config section names (predictor kinds, trackers) are declared
here, each name with the ``module:attribute`` that implements it, so that the config's
checks list the valid names without importing torch, pandas or Optuna, and an object is
imported the first time it is used. Where users' code relies on the type of a name, the
names are a ``Literal`` written here once; the config's fields use it and the registry is
built from it (``_lazy``), so the two cannot differ. Plug-ins that register themselves
(techniques, ladder stages) use ``register``.

Example::

    DATA_SOURCES.names()                 # ['csv', 'hfds', 'images', ...]: no import
    DATA_SOURCES.get("csv")              # imports tunelab.data.files, returns load_csv
    DATA_SOURCES.get("cvs")              # ConfigError: ... Did you mean 'csv'?
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Generic, Literal, TypeVar, get_args

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


def _lazy(names: Any, target: str) -> dict[str, str]:
    """``{name: target with {name} filled in}`` for each name of the ``Literal`` ``names``:
    the implementation of a name is the attribute named after it."""
    return {name: target.format(name=name) for name in get_args(names)}


# -- training: train.optimizer, train.schedule, train.metric ---------------------------------

OptimizerName = Literal["sgd", "adam", "adamw", "rmsprop"]
OPTIMIZERS: Registry[Callable[..., Any]] = Registry(
    "optimizer", lazy=_lazy(OptimizerName, "tunelab.training.optim:{name}")
)
ScheduleName = Literal["constant", "cosine", "onecycle", "step"]
SCHEDULES: Registry[Callable[..., float]] = Registry(
    "schedule", lazy=_lazy(ScheduleName, "tunelab.training.schedules:{name}_lr")
)

# in the order the config's messages list them (classification first)
CLASSIFICATION_METRICS = (
    "accuracy",
    "balanced_accuracy",
    "f1_macro",
    "log_loss",
    "roc_auc",
    "brier",
    "ece",
)
REGRESSION_METRICS = ("rmse", "mae", "r2")
METRICS = CLASSIFICATION_METRICS + REGRESSION_METRICS
METRIC_FUNCTIONS: Registry[Callable[..., float]] = Registry(
    "metric", lazy={name: f"tunelab.training.metrics:{name}" for name in METRICS}
)

# -- models: model.pooling, model.head --------------------------------------------------------

PoolingName = Literal["mean", "cls", "max"]
POOLINGS: Registry[Callable[..., Any]] = Registry(
    "pooling", lazy=_lazy(PoolingName, "tunelab.models.text:{name}_pool")
)
# heads fitted by scikit-learn on the frozen features; ``linear`` is trained by the loop
ClassicalHeadName = Literal["logistic", "hgb"]
HeadName = Literal["linear", ClassicalHeadName]
CLASSICAL_HEADS: Registry[Any] = Registry(
    "classical head", lazy=_lazy(ClassicalHeadName, "tunelab.models.classical:{name}_head")
)

# -- ensembles: ensemble.method (``none``: no ensemble) --------------------------------------

EnsembleMethodName = Literal["greedy", "mean", "weighted", "stacking"]
ENSEMBLE_METHODS: Registry[Callable[..., Any]] = Registry(
    "ensemble method", lazy=_lazy(EnsembleMethodName, "tunelab.ensembles.select:{name}")
)

# -- what a run stores and where it reports ----------------------------------------------------

# ``kind`` in predictor.json -> the loader of that kind
PREDICTOR_KINDS: Registry[Callable[..., Any]] = Registry(
    "predictor kind",
    lazy={
        "model": "tunelab.results.model_checks:load_model",
        "trees": "tunelab.results.trees:load_trees",
        "booster": "tunelab.results.boosters:load_booster",
        "ensemble": "tunelab.results.ensemble:load_ensemble",
    },
)
# a ``tracking:`` field -> the function that says how to start that tracker
TrackerName = Literal["mlflow", "tensorboard"]
TRACKERS: Registry[Callable[..., Any]] = Registry(
    "tracker", lazy=_lazy(TrackerName, "tunelab.tracking._{name}:start")
)
