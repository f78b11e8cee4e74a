"""Code named inside a file runs only when the user says so (``--trust-code``).

A ``py:`` architecture in the user's own config is the user's choice and runs as named. One
named inside a file (``predictor.json``'s model spec, a checkpoint's ``tunelab.spec``
metadata) may come from anyone who could write that file, so it is not imported, let alone
called, unless the user passes ``--trust-code`` (``trust_code=True`` in Python): Hugging
Face's ``trust_remote_code`` convention.

Trusted code runs with the user's rights: whatever the named function does, the user did.
tunelab still calls only what an architecture can be (an ``nn.Module`` class, or a Python
``def`` function defined outside the standard library and torch, whose result must be an
``nn.Module``), with the file's options as JSON values. Those checks catch a wrong name, not
an attacker: a function of any installed package can do anything (``pandas:read_pickle``
unpickles, and a pickle runs code). To trust less than every module, the user names the
ones to trust: ``--trust-code=mymodels`` (``with trusted_modules("mymodels")`` around a call
with ``trust_code=True``) imports only code from ``mymodels`` and its submodules, and
refuses any other name before importing it.
"""

from __future__ import annotations

import inspect
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
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
# --trust-code=MODULES: the only modules trusted code may come from (None: any module)
_trusted_modules: ContextVar[tuple[str, ...] | None] = ContextVar("trusted_modules", default=None)


@contextmanager
def trusted_modules(*names: str) -> Iterator[None]:
    """Within the block, trusted code (``trust_code=True``) may come only from the modules
    ``names`` and their submodules (``--trust-code=mymodels,lab.nets``).

    Example::

        with trusted_modules("mymodels"):
            predictor = tunelab.load_predictor("runs/mine", trust_code=True)
    """
    token = _trusted_modules.set(tuple(names))
    try:
        yield
    finally:
        _trusted_modules.reset(token)


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
    allowed = _trusted_modules.get()
    if allowed is not None and not any(_within(module_name, name) for name in allowed):
        raise FatalError(_not_listed_message(target, module_name, allowed, where))
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


def _within(module_name: str, trusted: str) -> bool:
    return module_name == trusted or module_name.startswith(trusted + ".")


def _untrusted_message(target: str, options: Any, where: NamedInFile) -> str:
    shown = f" with options {_short(options)}" if options else ""
    module = target.partition(":")[0] if ":" in target else target.rpartition(".")[0]
    return (
        f"{where.path}: {where.part} names the Python function py:{target}{shown} as the "
        "architecture, and tunelab imports or calls code named inside a file only when you "
        f"say so (it then runs with your rights); if you trust that file, {where.fix}, or "
        f"--trust-code={module or 'MODULE'} to trust that module alone"
    )


def _not_listed_message(
    target: str, module_name: str, allowed: tuple[str, ...], where: NamedInFile
) -> str:
    listed = ",".join(allowed)
    return (
        f"{where.path}: {where.part} names py:{target}, but its module {module_name!r} is not "
        f"among the modules you trust (--trust-code={listed}); tunelab imported nothing. If "
        f"you trust it too, add it: --trust-code={listed},{module_name}"
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
