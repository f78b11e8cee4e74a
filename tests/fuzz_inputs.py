"""Broken inputs for tests/test_fuzz.py: configs and data files that tunelab must refuse.

Everything is generated from a seeded ``random.Random``, so the same cases come back on every
run. A case is the files of one working directory (a config, perhaps data) and the command to
run there; ``names`` is what the error message must mention (a field, a file, a value).
Configs start from the valid examples in ``examples/`` (and a small tabular one) and break one
thing each: a wrong type, a value out of range, an unknown or misspelt key, a missing field, a
bad search space, a bad name or path, or broken YAML.
"""

from __future__ import annotations

import io
import json
import math
import random
import re
import traceback
import types
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types
import numpy as np
import pandas as pd
import yaml
from click.testing import Result
from pydantic import BaseModel

from tunelab.config import RunConfig

REPO = Path(__file__).resolve().parents[1]
SEED = 20240607
CONFIG = "config.yaml"
OUT = "out"
# every train case: one short epoch on one thread, quietly, into ./out
TRAIN_ARGS = ("--out", OUT, "--set", "train.epochs=1", "--set", "train.threads=1", "-q")

Command = Literal["check", "train"]


@dataclass(frozen=True)
class Case:
    """One broken input: the files of a fresh working directory and the command to run.

    Attributes:
        id: a short readable name (the pytest id).
        command: ``check`` or ``train`` (train gets ``TRAIN_ARGS`` too).
        files: relative path -> contents, written before the command runs.
        names: text the error message must hold (case-insensitive).
        args: more command-line arguments (``--set`` overrides).
        config: the path given to the command.
        folders: empty folders to create (an empty ``images:`` folder, a config that is one).
        out_is_the_runs: whether ``./out`` belongs to the run (False: it holds the user's own
            files, which must stay as they are).
    """

    id: str
    command: Command
    files: dict[str, bytes]
    names: str
    args: tuple[str, ...] = ()
    config: str = CONFIG
    folders: tuple[str, ...] = field(default=())
    out_is_the_runs: bool = True


def assert_exit_two(result: Result, names: list[str]) -> None:
    """The command ended like a user mistake: exit 2 through tunelab's own error path, no
    traceback, one error message (``N problems`` listing N), naming each of ``names``
    (case-insensitive)."""
    output = result.output
    crash = ""
    if result.exc_info is not None and not isinstance(result.exception, SystemExit):
        crash = "".join(traceback.format_exception(*result.exc_info))
    assert result.exit_code == 2 and not crash, f"exit {result.exit_code}\n{output}\n{crash}"
    assert "Traceback" not in output, output
    assert "Usage:" not in output, output  # click's own exit 2 would be a test mistake
    label = re.search(r"^(config error|data error|error): (.+)", output, re.MULTILINE)
    assert label, output
    count = re.match(r"(\d+) problems? in ", label.group(2))
    if count:
        listed = re.findall(r"^  - \S", output, re.MULTILINE)
        assert len(listed) == int(count.group(1)), output
    for name in names:
        assert name.lower() in output.lower(), f"the message should name {name!r}:\n{output}"


def dump(config: dict[str, Any]) -> bytes:
    return yaml.safe_dump(config, sort_keys=False).encode()


def example_configs() -> dict[str, dict[str, Any]]:
    """The valid starting points: every example config and a small tabular one."""
    bases = {
        path.stem: yaml.safe_load(path.read_text(encoding="utf-8"))
        for path in sorted((REPO / "examples").glob("*.yaml"))
    }
    bases["small"] = small_config()
    return bases


def small_config(**data: Any) -> dict[str, Any]:
    """A config that trains in about a second on ``data.csv`` (see ``valid_table``)."""
    return {
        "name": "fuzz",
        "seed": 0,
        "data": {"source": "csv:data.csv", "target": "label", **data},
        "model": {"source": "builtin:mlp", "width": 4, "depth": 1},
        "train": {"epochs": 1, "batch_size": 16, "threads": 1, "device": "cpu"},
    }


# -- configs broken one field at a time, from the schema ---------------------------------------


def leaf_fields() -> Iterator[tuple[str, Any, list[Any]]]:
    """(dotted name, annotation, constraints) of every field a config sets, nested sections
    (``ensemble.bagging``) included."""
    yield from _fields_of(RunConfig, "")


def _fields_of(model: type[BaseModel], prefix: str) -> Iterator[tuple[str, Any, list[Any]]]:
    for name, info in model.model_fields.items():
        dotted = f"{prefix}{name}"
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield dotted, annotation, []
            yield from _fields_of(annotation, f"{dotted}.")
        else:
            yield dotted, annotation, [*info.metadata, *_inner_constraints(annotation)]


def _inner_constraints(annotation: Any) -> list[Any]:
    """The bounds of an ``Annotated`` type inside an optional one (``Rate | None``)."""
    found = []
    for kind in get_args(annotation):
        if get_origin(kind) is Annotated:
            for extra in get_args(kind)[1:]:
                found += list(getattr(extra, "metadata", [extra]))
    return found


def _without_none(annotation: Any) -> list[Any]:
    kinds = [annotation]
    if get_origin(annotation) in (Union, types.UnionType):
        kinds = [arg for arg in get_args(annotation) if arg is not type(None)]
    return [get_args(k)[0] if get_origin(k) is Annotated else k for k in kinds]


def wrong_type(annotation: Any, rng: random.Random) -> Any:
    """A value of a type the field cannot take."""
    kinds = _without_none(annotation)
    first = kinds[0]
    origin = get_origin(first)
    if isinstance(first, type) and issubclass(first, BaseModel):
        return rng.choice(["yes", 3, [1, 2]])
    if origin is Literal:
        return f"{get_args(first)[0]}{rng.choice(['x', '_', 'zz'])}"  # a wrong enum value
    if first is bool:
        return rng.choice(["maybe", "sometimes", [True]])
    if first in (int, float):
        return rng.choice(["ten", "fast", [1, 2], {"value": 1}])
    if first is str:
        return rng.choice([{"nested": 1}, [1, 2], ["a", "b"]])
    if origin in (list, tuple):
        return rng.choice(["32x32", 7, {"a": 1}])
    if origin is dict:
        return rng.choice([[1, 2], "a=1", 5])
    raise AssertionError(f"no wrong value for {annotation}")


def out_of_range(annotation: Any, constraints: list[Any]) -> list[Any]:
    """Values just past each bound, and NaN and infinities for floats."""
    kinds = _without_none(annotation)
    is_int = int in kinds and float not in kinds
    values: list[Any] = []
    for bound in constraints:
        if isinstance(bound, annotated_types.Ge):
            values.append(bound.ge - (1 if is_int else 0.5))
        elif isinstance(bound, annotated_types.Gt):
            values.append(bound.gt if is_int else -abs(bound.gt) - 0.25)
        elif isinstance(bound, annotated_types.Le):
            values.append(bound.le + (1 if is_int else 0.5))
        elif isinstance(bound, annotated_types.Lt):
            values.append(bound.lt)
        elif isinstance(bound, annotated_types.MinLen):
            values.append("")
    if float in kinds:  # bounded or not, a float field takes only finite numbers
        values += [math.nan, math.inf, -math.inf]
    return values


def set_field(config: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    """A deep copy of ``config`` with ``dotted`` set to ``value``."""
    copy: dict[str, Any] = json.loads(json.dumps(config))
    node = copy
    *parents, leaf = dotted.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value
    return copy


def drop_field(config: dict[str, Any], dotted: str) -> dict[str, Any]:
    copy: dict[str, Any] = json.loads(json.dumps(config))
    node = copy
    *parents, leaf = dotted.split(".")
    for part in parents:
        node = node[part]
    del node[leaf]
    return copy


def schema_cases(rng: random.Random) -> list[Case]:
    """For every field: a wrong type, and each bound crossed (NaN and infinities for floats)."""
    bases = example_configs()
    names = sorted(bases)
    cases: list[Case] = []
    for dotted, annotation, constraints in leaf_fields():
        base = bases[rng.choice(names)]
        values = [wrong_type(annotation, rng), *out_of_range(annotation, constraints)]
        for i, value in enumerate(values):
            broken = set_field(base, dotted, value)
            cases.append(Case(f"{dotted}-{i}", "check", {CONFIG: dump(broken)}, names=dotted))
    return cases


# -- configs broken by hand: keys, required fields, search spaces, names, YAML -----------------


def _misspelt(name: str, rng: random.Random) -> str:
    i = rng.randrange(len(name) - 1)
    swapped = name[:i] + name[i + 1] + name[i] + name[i + 2 :]
    return swapped if swapped != name else name + name[-1]


def key_cases(rng: random.Random) -> list[Case]:
    """Misspelt and unknown keys in every section, and required fields left out."""
    base = small_config()
    cases = []
    for dotted, annotation, _ in leaf_fields():
        section, _, leaf = dotted.rpartition(".")
        if not section or (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            continue
        if section.count(".") == 0 and rng.random() < 0.5:
            wrong = f"{section}.{_misspelt(leaf, rng)}"
            value = 1 if rng.random() < 0.5 else "x"
            broken = set_field(base, wrong, value)
            cases.append(Case(f"misspelt-{dotted}", "check", {CONFIG: dump(broken)}, names=wrong))
    for section in ("data", "model", "train", "search", "cv", "ensemble", "tracking"):
        wrong = f"{section}.{rng.choice(['colour', 'verbose', 'extra_option', 'flag'])}"
        cases.append(
            Case(
                f"unknown-{wrong}", "check", {CONFIG: dump(set_field(base, wrong, 1))}, names=wrong
            )
        )
    for top in ("trainer", "optimizer", "learning_rate", "max_epochs", "dataset"):
        cases.append(Case(f"unknown-top-{top}", "check", {CONFIG: dump({**base, top: 1})}, top))
    for required in ("data", "model", "data.source", "model.source"):
        broken = drop_field(base, required)
        cases.append(Case(f"missing-{required}", "check", {CONFIG: dump(broken)}, required))
    return cases


def _with_space(space: dict[str, Any], **data: Any) -> bytes:
    return dump({**small_config(**data), "search": {"space": space}})


SPACE_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("low-above-high", {"train.lr": {"type": "float", "low": 0.1, "high": 0.01}}, "low < high"),
    ("low-equals-high", {"model.depth": {"type": "int", "low": 2, "high": 2}}, "low < high"),
    ("no-bounds", {"train.lr": {"type": "float"}}, "low < high"),
    ("no-high", {"model.width": {"type": "int", "low": 4}}, "low < high"),
    ("empty-choices", {"train.optimizer": {"type": "categorical", "choices": []}}, "choices"),
    ("no-choices", {"train.optimizer": {"type": "categorical"}}, "choices"),
    (
        "choices-not-list",
        {"train.optimizer": {"type": "categorical", "choices": "adam"}},
        "choices",
    ),
    ("log-zero-low", {"train.lr": {"type": "float", "low": 0, "high": 1, "log": True}}, "log"),
    ("log-negative", {"train.lr": {"type": "float", "low": -1, "high": 1, "log": True}}, "log"),
    (
        "log-with-step",
        {"train.lr": {"type": "float", "low": 0.1, "high": 1, "log": True, "step": 0.1}},
        "log",
    ),
    ("step-zero", {"model.width": {"type": "int", "low": 4, "high": 8, "step": 0}}, "step"),
    ("step-negative", {"model.width": {"type": "int", "low": 4, "high": 8, "step": -2}}, "step"),
    ("bad-type", {"train.lr": {"type": "bool", "low": 0.1, "high": 1}}, "type"),
    ("no-type", {"train.lr": {"low": 0.1, "high": 1}}, "type"),
    (
        "unknown-key",
        {"train.lr": {"type": "float", "low": 0.1, "high": 1, "scale": "log"}},
        "scale",
    ),
    ("spec-not-mapping", {"train.lr": [0.1, 1]}, "train.lr"),
    ("spec-scalar", {"train.lr": 0.01}, "train.lr"),
    ("not-a-field", {"train.learning_rate": {"type": "float", "low": 0.1, "high": 1}}, "train.lr"),
    ("section-name", {"train": {"type": "float", "low": 0.1, "high": 1}}, "'train'"),
    ("unknown-section", {"foo.bar": {"type": "int", "low": 1, "high": 3}}, "foo.bar"),
    ("data-source", {"data.source": {"type": "categorical", "choices": ["csv:a.csv"]}}, "data"),
    ("data-target", {"data.target": {"type": "categorical", "choices": ["a", "b"]}}, "data"),
    ("data-test-size", {"data.test_size": {"type": "float", "low": 0.1, "high": 0.3}}, "data"),
    ("name", {"name": {"type": "categorical", "choices": ["a", "b"]}}, "name"),
    ("cv-folds", {"cv.folds": {"type": "int", "low": 2, "high": 5}}, "cv.folds"),
    ("search-n-trials", {"search.n_trials": {"type": "int", "low": 2, "high": 5}}, "search"),
    ("ladder-folds", {"ladder.folds": {"type": "int", "low": 2, "high": 5}}, "ladder"),
    ("tracking", {"tracking.mlflow": {"type": "categorical", "choices": ["a"]}}, "tracking"),
    (
        "image-size-tabular",
        {"data.image_size": {"type": "categorical", "choices": [[8, 8]]}},
        "image",
    ),
    ("max-length-tabular", {"data.max_length": {"type": "int", "low": 8, "high": 16}}, "text"),
    (
        "when-unknown",
        {
            "train.momentum": {
                "type": "float",
                "low": 0.1,
                "high": 0.9,
                "when": {"train.optim": "sgd"},
            }
        },
        "train.optim",
    ),
    (
        "when-not-mapping",
        {"train.lr": {"type": "float", "low": 0.1, "high": 1, "when": "x"}},
        "when",
    ),
    ("nan-bounds", {"train.lr": {"type": "float", "low": math.nan, "high": 1}}, "train.lr"),
    ("string-bounds", {"train.lr": {"type": "float", "low": "small", "high": 1}}, "low"),
]


def space_cases() -> list[Case]:
    cases = [
        Case(f"space-{name}", "check", {CONFIG: _with_space(space)}, names=names)
        for name, space, names in SPACE_CASES
    ]
    whole = {**small_config(), "search": {"space": [{"train.lr": 0.1}]}}
    cases.append(Case("space-a-list", "check", {CONFIG: dump(whole)}, names="search.space"))
    return cases


BAD_VALUES: list[tuple[str, str, Any, str]] = [
    # (id, dotted field, value, what the message names)
    ("name-dotdot", "name", "..", "name"),
    ("name-dot", "name", ".", "name"),
    ("name-slash", "name", "a/b", "name"),
    ("name-backslash", "name", "a\\b", "name"),
    ("name-empty", "name", "", "name"),
    ("name-dash", "name", "-rf", "name"),
    ("name-hidden", "name", ".hidden", "name"),
    ("name-space", "name", "my run", "name"),
    ("name-absolute", "name", "/tmp/x", "name"),
    ("name-number", "name", 123, "name"),
    ("name-null", "name", None, "name"),
    ("seed-float", "seed", 1.5, "seed"),
    ("seed-text", "seed", "zero", "seed"),
    ("source-no-prefix", "data.source", "data.csv", "data.source"),
    ("source-empty-value", "data.source", "csv:", "data.source"),
    ("source-bad-prefix", "data.source", "cvs:data.csv", "csv"),
    ("source-empty", "data.source", "", "data.source"),
    ("source-null", "data.source", None, "data.source"),
    ("model-no-prefix", "model.source", "mlp", "model.source"),
    ("model-bad-prefix", "model.source", "bultin:mlp", "builtin"),
    ("model-empty-value", "model.source", "file:", "model.source"),
    ("architecture-prefix", "model.architecture", "hf:bert", "model.architecture"),
    ("test-source-sklearn", "data.test_source", "sklearn:iris", "data.test_source"),
    ("test-source-bad", "data.test_source", "test.csv", "data.test_source"),
    ("split-mapping", "data.split", {"test": "test"}, "data.split"),
    ("split-keys", "data.split", {"train": "a", "valid": "b"}, "data.split"),
    ("device", "train.device", "gpu", "train.device"),
    ("device-tpu", "train.device", "tpu:0", "train.device"),
    ("metric", "train.metric", "acc", "train.metric"),
    ("monitor", "early_stopping.monitor", "loss", "early_stopping.monitor"),
    ("ensemble-metric", "ensemble.metric", "f1_score", "ensemble.metric"),
    ("sampler", "search.sampler", "bayes", "search.sampler"),
    ("pruner", "search.pruner", "asha", "search.pruner"),
    ("storage-plain", "search.storage", "mydb", "storage 'mydb'"),
    ("storage-password", "search.storage", "postgresql://u:secret@h/db", "password"),
    ("artifacts-url", "search.artifacts", "s3://bucket/x", "search.artifacts"),
    ("rungs-twice", "ladder.rungs", ["tuned", "tuned"], "ladder.rungs"),
    ("lr-zero", "train.lr", 0, "train.lr"),
    ("lr-negative", "train.lr", -0.1, "train.lr"),
    ("lr-huge", "train.lr", 1e300, "train.lr"),
    ("lr-bool", "train.lr", True, "train.lr"),
    ("lr-nan", "train.lr", math.nan, "train.lr"),
    ("lr-inf", "train.lr", math.inf, "train.lr"),
    ("lr-text", "train.lr", "1e-3x", "train.lr"),
    ("epochs-negative", "train.epochs", -5, "train.epochs"),
    ("epochs-zero", "train.epochs", 0, "train.epochs"),
    ("epochs-float", "train.epochs", 2.5, "train.epochs"),
    ("epochs-inf", "train.epochs", math.inf, "train.epochs"),
    ("batch-size-zero", "train.batch_size", 0, "train.batch_size"),
    ("head-needs-probe", "model.head", "logistic", "finetuning.strategy"),
    ("image-size-one", "data.image_size", [32], "data.image_size"),
    ("image-size-three", "data.image_size", [32, 32, 3], "data.image_size"),
    ("features-string", "data.features", "a,b", "data.features"),
    ("options-list", "data.options", ["a"], "data.options"),
    ("budget-zero", "budget", 0, "budget"),
    ("budget-negative", "budget", -60, "budget"),
]


def value_cases() -> list[Case]:
    base = small_config()
    return [
        Case(f"value-{name}", "check", {CONFIG: dump(set_field(base, dotted, value))}, names)
        for name, dotted, value, names in BAD_VALUES
    ]


SMALL_YAML = dump(small_config()).decode()

RAW_TEXTS: list[tuple[str, bytes, str]] = [
    # (id, file contents, what the message names)
    ("empty-file", b"", "data"),
    ("only-comment", b"# nothing here\n", "data"),
    ("whitespace", b"   \n\n  \n", "data"),
    ("top-list", b"- data\n- model\n", "mapping"),
    ("top-string", b"just a sentence\n", "mapping"),
    ("top-number", b"42\n", "mapping"),
    ("top-null-doc", b"null\n", "data"),
    ("two-documents", SMALL_YAML.encode() + b"---\nname: second\n", "YAML"),
    ("duplicate-top", SMALL_YAML.encode() + b"name: again\n", "twice"),
    (
        "duplicate-nested",
        SMALL_YAML.replace("  epochs: 1\n", "  epochs: 1\n  epochs: 3\n").encode(),
        "'epochs' appears twice",
    ),
    ("duplicate-section", SMALL_YAML.encode() + b"train:\n  lr: 0.1\n", "'train' appears twice"),
    ("tab-indent", SMALL_YAML.replace("  epochs", "\tepochs").encode(), "YAML"),
    ("bad-indent", SMALL_YAML.replace("  epochs: 1", "     epochs: 1").encode(), "YAML"),
    ("unclosed-bracket", b"name: x\ndata: {source: csv:data.csv\nmodel: {}\n", "YAML"),
    ("unclosed-quote", b"name: 'x\ndata: {}\n", "YAML"),
    ("stray-colon", b"name: x: y: z\n", "YAML"),
    ("python-tag", b"name: !!python/object:os.system ls\n", "YAML"),
    ("unknown-tag", b"name: !secret x\n", "YAML"),
    ("unhashable-key", b"[a, b]: 1\n", "YAML"),
    ("undefined-alias", b"name: *missing\n", "YAML"),
    ("numeric-key", SMALL_YAML.encode() + b"1: 2\n", "the key 1 is not a field name"),
    (
        "null-key",
        SMALL_YAML.replace("  epochs: 1\n", "  epochs: 1\n  ~: 2\n").encode(),
        "train: the key None is not a field",
    ),
    ("section-null", b"name: x\ndata:\nmodel:\n", "data"),
    ("section-list", b"name: x\ndata: [csv:a.csv]\nmodel: {source: builtin:mlp}\n", "data"),
    ("section-string", b"name: x\ndata: csv:a.csv\nmodel: {source: builtin:mlp}\n", "data"),
    ("nul-bytes", b"name: x\x00\x00\ndata: {}\n", "YAML"),
    ("control-chars", b"name: \x07\x1b[31mred\n", "YAML"),
    ("latin-1", "name: caf\u00e9\n".encode("latin-1"), "UTF-8"),
    ("utf-16", SMALL_YAML.encode("utf-16"), "config.yaml"),
    ("huge-int", SMALL_YAML.replace("epochs: 1", "epochs: " + "9" * 5000).encode(), "line 11"),
    ("huge-float", SMALL_YAML.replace("seed: 0", "seed: 1.0e400").encode(), "seed"),
    ("seed-inf", SMALL_YAML.replace("seed: 0", "seed: .inf").encode(), "seed"),
    ("seed-nan", SMALL_YAML.replace("seed: 0", "seed: .nan").encode(), "seed"),
    ("deep-nesting", b"name: " + b"[" * 2000 + b"]" * 2000 + b"\n", "config.yaml"),
]


def raw_text_cases(rng: random.Random) -> list[Case]:
    cases = [
        Case(f"yaml-{name}", "check", {CONFIG: text}, names) for name, text, names in RAW_TEXTS
    ]
    for i in range(6):  # binary garbage of several sizes
        garbage = bytes(rng.randrange(256) for _ in range(rng.choice([3, 64, 700, 5000])))
        cases.append(Case(f"yaml-garbage-{i}", "check", {CONFIG: garbage}, names="config.yaml"))
    return cases


def path_cases() -> list[Case]:
    """The config path itself: missing, a folder, an image."""
    small = dump(small_config())
    return [
        Case("path-missing", "check", {}, names="missing.yaml", config="missing.yaml"),
        Case("path-folder", "check", {"conf/a.yaml": small}, names="conf", config="conf"),
        Case("path-empty-folder", "check", {}, names="conf", config="conf", folders=("conf",)),
        Case(
            "path-png",
            "check",
            {"c.png": b"\x89PNG\r\n\x1a\n" + bytes(40)},
            "c.png",
            config="c.png",
        ),
    ]


OVERRIDES: list[tuple[str, tuple[str, ...], str]] = [
    ("no-equals", ("--set", "train.lr"), "train.lr"),
    ("empty-key", ("--set", "=3"), "=3"),
    ("into-a-value", ("--set", "train.lr.x=1"), "train.lr"),
    ("into-a-set-value", ("--set", "train.epochs.x=1"), "'epochs' is not a section"),
    ("into-a-value-top", ("--set", "seed.x=1"), "'seed'"),
    ("section-to-number", ("--set", "data=5"), "data"),
    ("unknown", ("--set", "train.lrr=0.1"), "train.lrr"),
    ("epochs-zero", ("--set", "train.epochs=0"), "train.epochs"),
    ("lr-text", ("--set", "train.lr=fast"), "train.lr"),
    ("nan", ("--set", "train.lr=.nan"), "train.lr"),
    ("name-dotdot", ("--set", "name=.."), "name"),
    ("space", ("--set", "search.space={data.source: {type: categorical, choices: [a]}}"), "data"),
]


def override_cases() -> list[Case]:
    small = dump(small_config())
    return [
        Case(f"set-{name}", "check", {CONFIG: small}, names=names, args=args)
        for name, args, names in OVERRIDES
    ]


def config_cases() -> list[Case]:
    """Every broken config run through ``tunelab check``."""
    rng = random.Random(SEED)
    return [
        *schema_cases(rng),
        *key_cases(rng),
        *space_cases(),
        *value_cases(),
        *raw_text_cases(rng),
        *path_cases(),
        *override_cases(),
    ]


# -- data files --------------------------------------------------------------------------------


def valid_table(rng: random.Random, rows: int = 40) -> pd.DataFrame:
    """Two numeric columns, one categorical, a binary ``label``: ``small_config`` trains on it."""
    return pd.DataFrame(
        {
            "a": [round(rng.gauss(0, 1), 3) for _ in range(rows)],
            "b": [round(rng.uniform(0, 10), 3) for _ in range(rows)],
            "c": [rng.choice(["red", "green", "blue"]) for _ in range(rows)],
            "label": [i % 2 for i in range(rows)],
        }
    )


def valid_arrays(rng: random.Random, rows: int = 40) -> dict[str, np.ndarray]:
    """Signals (N, 1, 16) and a binary target ``y``."""
    generator = np.random.default_rng(rng.randrange(2**32))
    return {
        "X": generator.normal(size=(rows, 1, 16)).astype(np.float32),
        "y": np.arange(rows) % 2,
    }


def csv_bytes(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode()


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    # a parquet column has one type: numbers mixed with text are stored as text
    frame = frame.apply(lambda c: c.map(str, na_action="ignore") if c.dtype == object else c)
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def jsonl_bytes(frame: pd.DataFrame) -> bytes:
    return frame.to_json(orient="records", lines=True).encode()


def npz_bytes(**arrays: Any) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _changed(frame: pd.DataFrame, change: Callable[[pd.DataFrame], None]) -> pd.DataFrame:
    copy = frame.copy()
    change(copy)
    return copy


def _set_cells(column: str, rows: list[int], value: Any) -> Callable[[pd.DataFrame], None]:
    def change(frame: pd.DataFrame) -> None:
        if frame[column].dtype != object and not isinstance(value, float):
            frame[column] = frame[column].astype(object)
        frame.loc[rows, column] = value

    return change


def broken_tables(rng: random.Random) -> list[tuple[str, pd.DataFrame, dict[str, Any], str]]:
    """(id, table, data settings, what the message names): tables any format can hold."""
    table = valid_table(rng)
    rows = sorted(rng.sample(range(len(table)), 3))
    return [
        ("inf-feature", _changed(table, _set_cells("a", rows, math.inf)), {}, "'a'"),
        ("minus-inf-feature", _changed(table, _set_cells("b", rows[:1], -math.inf)), {}, "'b'"),
        ("stray-text", _changed(table, _set_cells("b", rows[:1], "oops")), {}, "'b'"),
        ("label-all-nan", table.assign(label=math.nan), {}, "target"),
        ("label-some-nan", _changed(table, _set_cells("label", rows, math.nan)), {}, "target"),
        (
            "label-inf",
            table.assign(label=table["a"]).pipe(
                lambda t: _changed(t, _set_cells("label", rows[:1], math.inf))
            ),
            {},
            "target",
        ),
        ("label-blank", _changed(table, _set_cells("label", rows, " ")), {}, "target"),
        ("single-class", table.assign(label=1), {}, "one class"),
        (
            "one-row-classes",
            table.assign(label=[f"kind{i}" for i in range(len(table))]),
            {},
            "class",
        ),
        ("no-target-column", table.drop(columns="label"), {}, "label"),
        ("only-target", table[["label"]], {}, "feature"),
        ("huge-target", table.assign(label=table["a"] * 1e300), {"task": "regression"}, "float32"),
        ("text-regression", table.assign(label=table["c"]), {"task": "regression"}, "numeric"),
        (
            "binary-three",
            table.assign(label=[i % 3 for i in range(len(table))]),
            {"task": "binary"},
            "binary",
        ),
        ("bad-features", table, {"features": ["a", "z"]}, "'z'"),
        ("features-target", table, {"features": ["a", "label"]}, "data.features"),
        ("bad-categorical", table, {"categorical": ["colour"]}, "colour"),
        ("bad-group", table, {"group_column": "patient"}, "patient"),
        (
            "group-nan",
            table.assign(g=[math.nan] * 5 + list(range(35))),
            {"group_column": "g"},
            "group",
        ),
        ("one-group", table.assign(g=1), {"group_column": "g"}, "group"),
        ("text-blank", table.assign(t=["ok"] * 38 + ["", " "]), {"text_column": "t"}, "'t'"),
        ("text-image-modality", table, {"text_column": "c", "modality": "image"}, "data.modality"),
        ("table-signal", table, {"modality": "signal"}, "data.modality"),
        ("two-rows", table.head(2), {}, "class"),
    ]


def table_cases(rng: random.Random) -> list[Case]:
    cases = []
    writers = {"csv": csv_bytes, "parquet": parquet_bytes, "jsonl": jsonl_bytes}
    for name, frame, data, names in broken_tables(rng):
        # JSON has no infinities (pandas writes null, a missing cell)
        usable = sorted(f for f in writers if not (f == "jsonl" and "inf" in name))
        every = name in ("inf-feature", "label-all-nan", "single-class")
        # the same break in every format for a few, one format drawn for the rest
        for fmt in usable if every else [rng.choice(usable)]:
            config = small_config(source=f"{fmt}:data.{fmt}", **data)
            files = {CONFIG: dump(config), f"data.{fmt}": writers[fmt](frame)}
            cases.append(Case(f"{fmt}-{name}", "train", files, names=names))
    return cases


def _file_case(name: str, fmt: str, content: bytes, names: str, **data: Any) -> Case:
    config = small_config(source=f"{fmt}:data.{fmt}", **data)
    return Case(f"{fmt}-{name}", "train", {CONFIG: dump(config), f"data.{fmt}": content}, names)


def raw_file_cases(rng: random.Random) -> list[Case]:
    """Files that are not what their prefix says: empty, garbage, wrong format, bad text."""
    garbage = bytes(rng.randrange(256) for _ in range(2000))
    table = valid_table(rng)
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("notes.txt", "hello")
    cases = []
    for fmt in ("csv", "parquet", "jsonl", "npz"):
        cases.append(_file_case("empty", fmt, b"", names=f"data.{fmt}"))
        cases.append(_file_case("garbage", fmt, garbage, names=f"data.{fmt}"))
    return [
        *cases,
        _file_case("header-only", "csv", b"a,b,c,label\n", names="rows"),
        _file_case("blank-lines", "csv", b"\n\n\n", names="data.csv"),
        _file_case("ragged", "csv", csv_bytes(table) + b"1,2,3,4,5,6,7\n", names="data.csv"),
        _file_case("latin-1", "csv", "a,label\ncaf\u00e9,1\n".encode("latin-1") * 20, "data.csv"),
        _file_case("utf-16", "csv", csv_bytes(table).decode().encode("utf-16"), names="data.csv"),
        _file_case("parquet-bytes", "csv", parquet_bytes(table), names="data.csv"),
        _file_case("csv-bytes", "parquet", csv_bytes(table), names="data.parquet"),
        _file_case("zero-rows", "parquet", parquet_bytes(table.head(0)), names="rows"),
        _file_case("bad-line", "jsonl", jsonl_bytes(table) + b"{not json\n", names="data.jsonl"),
        _file_case("arrays", "jsonl", b"[1, 2, 3]\n[4, 5, 6]\n", names="label"),
        _file_case("zip-not-npz", "npz", zipped.getvalue(), names="data.npz"),
        _file_case("csv-as-npz", "npz", csv_bytes(table), names="data.npz"),
    ]


def array_cases(rng: random.Random) -> list[Case]:
    """npz archives whose arrays are broken."""
    good = valid_arrays(rng)
    x, y = good["X"], good["y"]
    with_nan = x.copy()
    with_nan[3, 0, 5] = math.nan
    with_inf = x.copy()
    with_inf[7, 0, 1] = math.inf
    y_nan = y.astype(float)
    y_nan[[2, 9]] = math.nan
    y_inf = rng.random() + np.arange(len(y), dtype=float)
    y_inf[4] = -math.inf
    broken: list[tuple[str, dict[str, Any], str]] = [
        ("nan-inputs", {"X": with_nan, "y": y}, "NaN"),
        ("inf-inputs", {"X": with_inf, "y": y}, "infinite"),
        ("nan-target", {"X": x, "y": y_nan}, "target"),
        ("inf-target", {"X": x, "y": y_inf}, "target"),
        ("all-nan-target", {"X": x, "y": np.full(len(y), math.nan)}, "target"),
        ("short-target", {"X": x, "y": y[:-5]}, "shape"),
        ("long-target", {"X": x[:10], "y": y}, "shape"),
        ("target-2d", {"X": x, "y": np.stack([y, y], axis=1)}, "shape"),
        ("no-inputs", {"features": x, "y": y}, "inputs"),
        ("no-target", {"X": x, "labels": y}, "target"),
        ("no-arrays", {}, "no arrays"),
        ("scalar-inputs", {"X": np.float32(1.0), "y": y}, "shape"),
        ("inputs-1d", {"X": x[:, 0, 0], "y": y}, "shape"),
        ("inputs-5d", {"X": x.reshape(len(y), 1, 1, 1, 16), "y": y}, "shape"),
        ("string-inputs", {"X": np.array([["a"] * 4] * len(y)), "y": y}, "numbers"),
        ("single-class", {"X": x, "y": np.zeros(len(y))}, "one class"),
        ("zero-rows", {"X": x[:0], "y": y[:0]}, "rows"),
        ("one-row", {"X": x[:1], "y": y[:1]}, "class"),
        ("bad-groups", {"X": x, "y": y, "g": np.arange(5)}, "groups"),
        ("complex-inputs", {"X": x.astype(np.complex64), "y": y}, "real numbers"),
    ]
    cases = []
    for name, arrays, names in broken:
        data = {"group_column": "g"} if "g" in arrays else {}
        cases.append(_file_case(name, "npz", npz_bytes(**arrays), names, **data))
    objects = io.BytesIO()
    np.savez(objects, X=np.array([{"a": 1}] * 4, dtype=object), y=np.arange(4))
    cases.append(_file_case("object-inputs", "npz", objects.getvalue(), names="pickle"))
    return cases


def image_cases() -> list[Case]:
    """``images:`` folders without usable images."""
    config = dump(small_config(source="images:pics"))
    return [
        Case("images-missing", "train", {CONFIG: config}, names="pics"),
        Case("images-empty", "train", {CONFIG: config}, names="pics", folders=("pics",)),
        Case("images-a-file", "train", {CONFIG: config, "pics": b"x"}, names="pics"),
        Case(
            "images-garbage",
            "train",
            {CONFIG: config, "pics/cat/a.png": b"not a png", "pics/dog/b.png": b"\x89PNG"},
            names="a.png",
        ),
        Case(
            "images-one-class",
            "train",
            {CONFIG: config, **{f"pics/cat/{i}.png": _png(i) for i in range(6)}},
            names="class",
        ),
        Case(
            "images-no-classes",
            "train",
            {CONFIG: config, **{f"pics/{i}.png": _png(i) for i in range(6)}},
            names="pics",
        ),
    ]


def _png(seed: int) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (seed * 40 % 256, 0, 0)).save(buffer, format="PNG")
    return buffer.getvalue()


def data_cases() -> list[Case]:
    """Every broken data file run through ``tunelab train``."""
    rng = random.Random(SEED + 1)
    return [*table_cases(rng), *raw_file_cases(rng), *array_cases(rng), *image_cases()]


# -- configs that check accepts but that cannot train ------------------------------------------


def train_config_cases() -> list[Case]:
    """Settings only a run can judge: missing files, metrics that do not fit the task."""
    table = csv_bytes(valid_table(random.Random(SEED + 2)))

    def case(name: str, names: str, *, args: tuple[str, ...] = (), **sections: Any) -> Case:
        config = small_config()
        for section, values in sections.items():
            config[section] = (
                {**config.get(section, {}), **values} if isinstance(values, dict) else values
            )
        files = {CONFIG: dump(config), "data.csv": table}
        return Case(f"train-{name}", "train", files, names=names, args=args)

    return [
        case("missing-csv", "nothere.csv", data={"source": "csv:nothere.csv"}),
        case("csv-is-folder", "directory", data={"source": "csv:."}),
        case("missing-test-source", "test.csv", data={"test_source": "csv:test.csv"}),
        case("missing-model-file", "w.safetensors", model={"source": "file:w.safetensors"}),
        case("unknown-builtin", "resnet", model={"source": "builtin:resnet"}),
        case("missing-py-model", "nomodule", model={"source": "py:nomodule:build"}),
        case("missing-py-data", "nomodule", data={"source": "py:nomodule:load"}),
        case(
            "metric-for-regression",
            "train.metric",
            data={"task": "regression"},
            train={"metric": "roc_auc"},
        ),
        case(
            "monitor-for-regression",
            "early_stopping.monitor",
            data={"task": "regression"},
            early_stopping={"monitor": "accuracy"},
        ),
        case("no-target", "data.target", data={"target": None}),
        case("device-cuda-99", "train.device", train={"device": "cuda:99"}),
        case("test-size-huge", "test_size", data={"test_size": 0.99}),
        case("seed-negative", "seed", seed=-1),
        case("seed-huge", "seed", seed=2**70),
        # finite but absurd: the weights become NaN, which the evaluation refuses
        case("weight-decay-huge", "diverged", regularization={"weight_decay": 1e300}),
        case("l1-huge", "diverged", regularization={"l1": 1e300}),
        Case(
            "train-out-is-a-file",
            "train",
            {CONFIG: dump(small_config()), "data.csv": table, OUT: b"my notes"},
            names=OUT,
            out_is_the_runs=False,
        ),
        Case(
            "train-out-holds-other-files",
            "train",
            {
                CONFIG: dump(small_config()),
                "data.csv": table,
                f"{OUT}/thesis.tex": b"years of work",
            },
            names=OUT,
            out_is_the_runs=False,
        ),
    ]
