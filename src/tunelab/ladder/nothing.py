"""After measuring: a step that did nothing, a step whose score moved on no fold, and how
many repeats a step without evidence would need.

- **Did nothing**: identical predictions on every fold (``FOLD["outputs"]``, a hash of the
  fold's validation predictions) mean the step changed nothing the model learned. It is
  reported with the reason, instead of a test result; a technique may say why from how
  its folds trained (``Needs.idle_after``: early stopping that never stopped).
- **No change**: the predictions moved, but no fold's score did (an accuracy that no row's
  label crossed): the difference is exactly zero, which "no evidence" would misread.
- **Repeats needed**: for "no evidence", the power calculation of the corrected t-test:
  the fewest repeats at which the observed mean difference and spread would reach alpha.

Example::

    why = did_nothing(step, variant, reference, reference_variant, against_first=False)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tunelab.ladder import stats
from tunelab.ladder.rungs import Step
from tunelab.techniques import TECHNIQUES, FoldOutcome

IDENTICAL = "identical predictions on every fold"


def did_nothing(
    step: Step,
    variant: dict[str, Any],
    reference: Step,
    reference_variant: dict[str, Any],
    *,
    against_first: bool,
) -> str | None:
    """Why ``step`` did nothing (its predictions equal the reference's on every fold), or
    None when they differ somewhere or are not all measured."""
    mine, theirs = variant.get("folds", []), reference_variant.get("folds", [])
    if not mine or len(mine) != len(theirs):
        return None
    if not all(
        a.get("outputs") is not None and a.get("outputs") == b.get("outputs")
        for a, b in zip(mine, theirs, strict=True)
    ):
        return None
    on_step, on_folds = (reference, theirs) if against_first else (step, mine)
    spec = TECHNIQUES.get(step.name) if step.name in TECHNIQUES else None
    if spec is not None and on_step.recipe is not None:
        outcomes = [
            FoldOutcome(int(f.get("epochs", 0)), int(f.get("kept_epochs", 0)), f.get("stop_reason"))
            for f in on_folds
        ]
        declared = spec.needs.idle_after(on_step.recipe, outcomes)
        if declared is not None:
            return f"{declared} ({IDENTICAL})"
    return f"{IDENTICAL}: what it switches changed nothing the model learned here"


def unchanged_note(
    variant: dict[str, Any], reference_variant: dict[str, Any], metric: str
) -> str | None:
    """The note for a step whose score equals the reference's on every fold although its
    predictions differ, or None."""
    mine, theirs = variant.get("folds", []), reference_variant.get("folds", [])
    if not mine or len(mine) != len(theirs):
        return None
    if any(a.get("score") != b.get("score") for a, b in zip(mine, theirs, strict=True)):
        return None
    moved = sum(a.get("outputs") != b.get("outputs") for a, b in zip(mine, theirs, strict=True))
    return (
        f"no fold's {metric} moved, though its predictions changed on {moved} of {len(mine)} "
        "folds: an effect too small for this metric on these rows"
    )


def power_note(
    differences: list[float], *, folds: int, ratio: float, alpha: float, tests: int
) -> str:
    """What a step without evidence would need: the fewest ``ladder.repeats`` at which its
    observed difference and spread reach alpha after Holm's correction (at worst
    ``alpha / tests``), or why no number would."""
    array = np.asarray(differences, dtype=float)
    spread = f"mean {array.mean():+.4f}, sd {np.std(array, ddof=1):.4f} over {len(array)} folds"
    level = alpha / max(tests, 1)
    repeats = stats.repeats_needed(array, folds=folds, test_train_ratio=ratio, alpha=level)
    if repeats is not None:
        return (
            f"at this spread ({spread}) about ladder.repeats {repeats} of {folds} folds "
            f"would reach alpha {alpha} after Holm's correction"
        )
    return (
        f"at this spread ({spread}) no number of repeats of {folds} folds would reach alpha "
        f"{alpha}: the overlap of the folds' training rows bounds the corrected test"
    )
