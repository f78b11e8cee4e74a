"""What a run ran on: Python, the packages that decide its numbers, the platform.

Written into the run directory when the run starts (``environment.json``), so a report built
later, on another machine, still says where the numbers came from.
"""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from typing import Any

# the packages whose versions change a run's numbers or its files
PACKAGES = ("tunelab", "torch", "optuna", "numpy", "scikit-learn", "pandas")


def environment() -> dict[str, Any]:
    """Python, platform, CPU count and the versions of ``PACKAGES`` (None: not installed).

    Reads package metadata only: nothing is imported.
    """
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "packages": {name: _version(name) for name in PACKAGES},
    }


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None
