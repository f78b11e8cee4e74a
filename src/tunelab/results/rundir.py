"""The run directory: one folder holds everything a run produced (see DESIGN.md)."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

from tunelab.config import RunConfig
from tunelab.errors import FatalError


def run_directory(cfg: RunConfig, out: str | Path | None, *, overwrite: bool) -> Path:
    """Create (or, with ``overwrite``, empty) the run directory; default ``runs/NAME``."""
    path = Path(out) if out is not None else Path("runs") / cfg.name
    if path.exists() and any(path.iterdir()):
        if not overwrite:
            raise FatalError(
                f"run directory {str(path)!r} already holds a run; pass --out OTHER_DIR to keep "
                "it, or --overwrite to replace it"
            )
        shutil.rmtree(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FatalError(f"cannot create run directory {str(path)!r}: {exc}") from None
    (path / "config.yaml").write_text(cfg.to_yaml())
    return path


def write_json(path: Path, data: Any) -> None:
    """Write JSON with non-finite floats as null (JSON has no NaN)."""
    path.write_text(json.dumps(_finite(data), indent=2) + "\n")


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
