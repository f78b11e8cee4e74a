"""Optional dependencies, imported when a feature needs them, with the install hint.

Example::

    kornia = optional_import("kornia.augmentation", package="kornia", extra="augment",
                             purpose="augmentation.color_jitter")
"""

from __future__ import annotations

import importlib
from types import ModuleType

from tunelab.errors import MissingDependency


def optional_import(module: str, *, package: str, extra: str, purpose: str) -> ModuleType:
    """Import ``module``, or raise ``MissingDependency`` naming the package and the extra
    that installs it (``pip install 'tunelab[EXTRA]'``).

    Args:
        module: what to import (``sentence_transformers``, ``kornia.augmentation``).
        package: the PyPI package that provides it.
        extra: tunelab's extra that installs it.
        purpose: what needs it, in the user's words (``st: models``).
    """
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingDependency(package, extra=extra, purpose=purpose) from None
