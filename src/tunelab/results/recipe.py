"""Which recipe a result was measured for: a digest of the config with the parameters applied.

``ladder.json`` records the digest of the recipe it measured (``RECIPE_KEY``); the report
compares it with the run's final recipe (``config.yaml`` with ``metrics.json``'s
``best_params``), so a ladder measured before a re-run changed the best trial is marked as
measured for another recipe, never shown as if it were current.
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

from tunelab.config import set_dotted

RECIPE_KEY = "recipe"
# the sections that do not change what is trained: the study, its splits, the ladder, the
# trackers, the ensemble and the time budget
NOT_RECIPE = ("name", "search", "cv", "ladder", "tracking", "ensemble", "budget")


def recipe_digest(config: dict[str, Any], params: dict[str, Any] | None) -> str:
    """The digest of ``config`` (plain JSON values, as ``config.yaml`` holds them) with the
    dotted ``params`` applied."""
    raw = copy.deepcopy(config)
    for dotted, value in (params or {}).items():
        set_dotted(raw, dotted, value, what=f"parameter {dotted!r}")
    kept = {key: value for key, value in raw.items() if key not in NOT_RECIPE}
    text = json.dumps(kept, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def stale_recipe(
    ladder: dict[str, Any], config: dict[str, Any], metrics: dict[str, Any] | None
) -> str | None:
    """Why ``ladder`` (parsed ``ladder.json``) was measured for another recipe than the run's
    final one, or None (the same, or not known: no digest, no ``metrics.json``)."""
    measured = ladder.get(RECIPE_KEY)
    if not isinstance(measured, str) or not config or metrics is None:
        return None
    params = metrics.get("best_params")
    final = recipe_digest(config, params if isinstance(params, dict) else None)
    if final == measured:
        return None
    best = metrics.get("best_trial")
    which = f"trial {best}'s parameters" if best is not None else "this run's config"
    return (
        f"this ladder was measured for another recipe than the final one ({which}, after a "
        "re-run changed it); its numbers do not describe the final model. Measure it again "
        "with: tunelab ladder CONFIG --out RUN_DIR"
    )
