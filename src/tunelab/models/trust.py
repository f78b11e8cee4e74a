"""Code named inside a file runs only when the user says so (``--trust-code``).

A ``py:`` architecture in the user's own config is the user's choice and runs as named. One
named inside a file (``predictor.json``'s model spec, a checkpoint's ``tunelab.spec``
metadata) may come from anyone who could write that file, so it is not imported, let alone
called, unless the user passes ``--trust-code`` (``trust_code=True`` in Python): Hugging
Face's ``trust_remote_code`` convention.

Even then, only what an architecture can be is called: an ``nn.Module`` class, or a Python
function (``def``, not a built-in or another callable) defined outside the standard library
and torch, and its result must be an ``nn.Module``. That refuses the usual ways to turn a
spec into a command (``os:system``, ``subprocess:getoutput``, ``builtins:eval``,
``torch:load``, ``torch.hub:load``), none of which builds a network; a standard-library
module is refused before it is imported. The file's options reach the function only as JSON
values (numbers, strings, lists, mappings). Trusting a file still means trusting it: a
function of your own or of an installed package is called with the file's arguments.
"""

from __future__ import annotations

import inspect
import json
import sys
from dataclasses import dataclass
from typing import Any

from torch import nn

from tunelab.errors import FatalError

# The standard library holds commands, files, pickles and eval, and no architecture; its
# modules are refused by name, before importing (importing ``antigravity`` opens a browser).
STANDARD_LIBRARY = frozenset(sys.stdlib_module_names) | {"builtins"}
# Packages whose functions are never architectures but load files: torch.load unpickles,
# torch.hub.load runs a hubconf.py. Their nn.Module classes (torch.nn.Linear) are fine.
FUNCTIONS_REFUSED_FROM = STANDARD_LIBRARY | {"torch"}


@dataclass(frozen=True)
class NamedInFile:
    """Where code named inside a file comes from, and whether the user trusts it.

    Attributes:
        path: the file that names the code (for messages).
        part: where in that file, e.g. "its tunelab.spec metadata".
        trusted: the user passed ``--trust-code``.
        fix: how to allow it, said after "if you trust that file, ".
    """

    path: str
    part: str
    trusted: bool
    fix: str


def allow_named_code(target: str, options: Any, where: NamedInFile) -> str:
    """Check, before anything is imported, that the user trusts the file and that the name
    is not in the standard library; returns the target as ``module:attribute``.

    Raises:
        FatalError: not trusted, a standard-library name, or options that are not an object.
    """
    if not where.trusted:
        raise FatalError(_untrusted_message(target, options, where))
    module_name, attr = _split(target, where)
    if module_name.split(".")[0] in STANDARD_LIBRARY:
        raise FatalError(_refused_message(target, "is in the standard library", where))
    if not isinstance(options, dict) or not all(isinstance(k, str) for k in options):
        raise FatalError(
            f"{where.path}: {where.part} gives the options of py:{target} as "
            f"{_short(options)}; they must be a JSON object of keyword arguments"
        )
    return f"{module_name}:{attr}"


def allow_function(function: object, target: str, where: NamedInFile) -> None:
    """Check that the imported object can be an architecture (see the module docstring).

    Raises:
        FatalError: a built-in or other callable that is not a ``def`` function or an
            ``nn.Module`` class, or a function of the standard library or torch.
    """
    if inspect.isclass(function):
        if issubclass(function, nn.Module):
            return
        raise FatalError(_refused_message(target, "is a class but not an nn.Module", where))
    if not inspect.isfunction(function):
        kind = type(function).__name__
        raise FatalError(_refused_message(target, f"is a {kind}, not a Python function", where))
    # Where it is defined, not where it was imported from: ``from subprocess import
    # getoutput`` in a module of yours still names subprocess.getoutput.
    home = str(function.__module__ or "")
    if home.split(".")[0] in FUNCTIONS_REFUSED_FROM:
        raise FatalError(_refused_message(target, f"is a function of {home}", where))


def check_module(result: object, target: str, where: NamedInFile) -> nn.Module:
    """The function's result, if it is an ``nn.Module``."""
    if not isinstance(result, nn.Module):
        raise FatalError(
            f"{where.path}: py:{target}, named in {where.part}, returned "
            f"{type(result).__name__}, not a torch nn.Module; it is not an architecture"
        )
    return result


def _split(target: str, where: NamedInFile) -> tuple[str, str]:
    if not isinstance(target, str):
        raise FatalError(f"{where.path}: {where.part} names {target!r}, not 'module:function'")
    module_name, sep, attr = target.partition(":")
    if not sep:
        module_name, _, attr = target.rpartition(".")
    if not module_name or not attr:
        raise FatalError(f"{where.path}: {where.part} names {target!r}, not 'module:function'")
    return module_name, attr


def _untrusted_message(target: str, options: Any, where: NamedInFile) -> str:
    shown = f" with options {_short(options)}" if options else ""
    return (
        f"{where.path}: {where.part} names the Python function py:{target}{shown} as the "
        "architecture, and tunelab imports or calls code named inside a file only when you "
        f"say so; if you trust that file, {where.fix}"
    )


def _refused_message(target: str, why: str, where: NamedInFile) -> str:
    return (
        f"{where.path}: {where.part} names py:{target}, which {why}; even with --trust-code "
        "tunelab calls only a Python function or nn.Module class from your own code or a "
        "model package, not one of the standard library or torch. If you made this model, "
        "name a function of your own module that builds it (py:your_module:build)"
    )


def _short(value: Any, limit: int = 120) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."
