"""A predictor folder's files, read as untrusted input.

A predictor folder (a run's ``final/``) is what a user copies to a server, mails or
downloads. Before anything in it is parsed, ``check_folder`` walks it: every symbolic link
must resolve inside it (so nothing is read from elsewhere), every entry must be a plain file
or folder (reading a FIFO would wait forever), and it may hold at most ``MAX_ENTRIES``
entries. Each file is read only after its size is checked against the limit for its kind,
and JSON is parsed strictly: UTF-8, no key given twice, nesting the parser can follow.

The limits are far above anything tunelab writes, so no setting changes them:

| file | limit |
|---|---|
| ``predictor.json`` | 64 MiB |
| ``forest.npz`` | 2 GiB, also its arrays unpacked |
| ``model.safetensors`` | 64 GiB (16 billion float32 weights) |
| a file of ``tokenizer/`` or ``backbone/`` | 64 MiB |
"""

from __future__ import annotations

import json
import math
import os
import stat
import zipfile
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from tunelab.errors import FatalError
from tunelab.results.rundir import MANIFEST

MIB = 1 << 20
GIB = 1 << 30
JSON_LIMIT = 64 * MIB
FOREST_LIMIT = 2 * GIB
WEIGHTS_LIMIT = 64 * GIB
SUPPORT_FILE_LIMIT = 64 * MIB
MAX_ENTRIES = 10_000
DAMAGED = "the predictor is damaged: train or save it again"


def check_folder(folder: Path) -> None:
    """Refuse a predictor folder with a link leading out of it, a special file, or too many
    entries. Links inside it are allowed (they stay in the folder)."""
    root = resolved(folder)
    count = 0
    for current, dirs, files in os.walk(folder):  # links are not followed, but checked here
        for name in [*dirs, *files]:
            count += 1
            if count > MAX_ENTRIES:
                raise FatalError(
                    f"{folder} holds more than {MAX_ENTRIES} files and folders; a predictor "
                    "folder holds a few per model: it is not a predictor tunelab wrote"
                )
            _check_entry(Path(current, name), root, folder)


def _check_entry(path: Path, root: Path, folder: Path) -> None:
    try:
        info = path.lstat()
    except OSError as exc:
        raise FatalError(f"{path} cannot be read ({exc.strerror or exc}); {DAMAGED}") from None
    if stat.S_ISLNK(info.st_mode):
        target = resolved(path)
        if not target.is_relative_to(root):
            raise FatalError(
                f"{path} is a symbolic link to {target}, outside the predictor folder "
                f"{folder}; a predictor reads only its own files: copy the file in instead"
            )
    elif not (stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode)):
        raise FatalError(
            f"{path} is not a regular file (a FIFO, socket or device); a predictor folder "
            "holds only files and folders: remove it"
        )


def resolved(path: Path) -> Path:
    """``path`` with every symbolic link followed; a link loop is refused."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # RuntimeError: a loop, before Python 3.13
        raise FatalError(f"{path} is a symbolic link that leads in a loop; {DAMAGED}") from None


def inside(path: Path, folder: Path) -> bool:
    """Whether ``path`` resolves to ``folder`` itself or a place in it."""
    return resolved(path).is_relative_to(resolved(folder))


def checked_size(path: Path, limit: int, kind: str) -> int:
    """The size of the regular file ``path``, refused when missing or above ``limit``."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise FatalError(
            f"{path} does not exist; the predictor is incomplete: train or save it again"
        ) from None
    except OSError as exc:
        raise FatalError(f"{path} cannot be read ({exc.strerror or exc}); {DAMAGED}") from None
    if not stat.S_ISREG(info.st_mode):
        raise FatalError(f"{path} is not a regular file; {DAMAGED}")
    if info.st_size > limit:
        raise FatalError(
            f"{path} is {info.st_size:,} bytes, more than the {size_text(limit)} a {kind} may "
            f"have; it is not a file tunelab wrote: train or save the predictor again"
        )
    return info.st_size


def size_text(size: int) -> str:
    return f"{size // GIB} GiB" if size >= GIB else f"{size // MIB} MiB"


def read_json(path: Path, *, kind: str = MANIFEST, limit: int = JSON_LIMIT) -> Any:
    """A JSON file, parsed strictly: at most ``limit`` bytes, UTF-8, no key twice."""
    checked_size(path, limit, kind)
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FatalError(
            f"{path} is not UTF-8 text (byte {exc.start} is {exc.object[exc.start]:#04x}); "
            f"{DAMAGED}"
        ) from None
    except OSError as exc:
        raise FatalError(f"{path} cannot be read ({exc.strerror or exc}); {DAMAGED}") from None
    try:
        return json.loads(text, object_pairs_hook=lambda pairs: _unique_keys(path, pairs))
    except json.JSONDecodeError as exc:
        raise FatalError(f"{path} is not valid JSON ({exc}); {DAMAGED}") from None
    except RecursionError:
        raise FatalError(f"{path} nests its JSON too deeply to read; {DAMAGED}") from None


def _unique_keys(path: Path, pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            # json keeps the last one silently; which one the writer meant is unknown
            raise FatalError(f"{path}: the key {key!r} is given twice in one object; {DAMAGED}")
        found[key] = value
    return found


def first_non_finite(value: Any, *, skip: Iterable[str] = ()) -> tuple[str, float] | None:
    """The first NaN or infinite number in parsed JSON, as (its path, e.g.
    ``encoder.numeric[2].scale``, the number), or None. Top-level keys in ``skip`` are not
    searched."""
    skipped = set(skip)
    stack: list[tuple[str, Any]] = (
        [(str(k), v) for k, v in reversed(value.items()) if k not in skipped]
        if isinstance(value, dict)
        else [("", value)]
    )
    while stack:  # not recursive: the nesting is as deep as the file makes it
        where, item = stack.pop()
        if isinstance(item, float) and not np.isfinite(item):
            return where, item
        if isinstance(item, dict):
            stack.extend((f"{where}.{k}", v) for k, v in reversed(item.items()))
        elif isinstance(item, list):
            stack.extend((f"{where}[{i}]", v) for i, v in reversed(list(enumerate(item))))
    return None


def read_npz(path: Path, names: tuple[str, ...], *, limit: int, kind: str) -> dict[str, np.ndarray]:
    """The arrays ``names`` of an ``.npz`` file, no more and no fewer, never unpickled;
    each array's header is checked against the data it holds before the data is read."""
    checked_size(path, limit, kind)
    try:
        with zipfile.ZipFile(path) as bundle:
            members = {info.filename: info for info in bundle.infolist()}
            problem = _npz_problem(bundle, members, names, limit)
        if problem:
            raise FatalError(f"{path}: {problem}; {DAMAGED}")
        with np.load(path, allow_pickle=False) as saved:
            return {name: np.asarray(saved[name]) for name in names}
    except (
        OSError,
        ValueError,
        KeyError,
        EOFError,
        RuntimeError,
        NotImplementedError,
        zipfile.BadZipFile,
        zlib.error,
    ) as exc:
        raise FatalError(
            f"{path} is not a readable {kind} ({type(exc).__name__}: {exc}); {DAMAGED}"
        ) from None


def _npz_problem(
    bundle: zipfile.ZipFile,
    members: dict[str, zipfile.ZipInfo],
    names: tuple[str, ...],
    limit: int,
) -> str | None:
    expected = {f"{name}.npy" for name in names}
    if set(members) != expected:
        missing, extra = sorted(expected - set(members)), sorted(set(members) - expected)
        return f"its arrays differ from a forest's (missing {missing}, unexpected {extra})"
    if sum(info.file_size for info in members.values()) > limit:
        return f"its arrays unpacked take more than {size_text(limit)}"
    for name, info in members.items():
        with bundle.open(info) as handle:
            version = np.lib.format.read_magic(handle)
            reader = (
                np.lib.format.read_array_header_1_0
                if version == (1, 0)
                else np.lib.format.read_array_header_2_0
            )
            shape, _, dtype = reader(handle)
        if dtype.hasobject:
            return f"array {name[:-4]!r} holds Python objects, which tunelab never unpickles"
        if math.prod(shape) * dtype.itemsize > info.file_size:
            return f"array {name[:-4]!r} declares shape {shape}, more data than it holds"
    return None
