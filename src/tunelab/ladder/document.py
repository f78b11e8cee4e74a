"""``ladder.json``: the measured variants, and both views with their statistics.

Layout (numbers are plain floats; null where one does not exist)::

    {
      "metric": "accuracy", "greater_is_better": true, "alpha": 0.05, "level": 0.95,
      "interval_method": "corrected resampled t-test (...), clipped to accuracy's range [0, 1]",
      "folds": 5, "repeats": 2, "seed": 0, "epochs": null,
      "test_train_ratio": 0.25,        # n_test / n_train: Nadeau & Bengio's correction
      "splits": DIGEST, "complete": true,
      "params": {...} or null, "params_source": "runs/x/best_params.json" or null,
      "warnings": [...],               # what the ladder's epochs are too few to show
      "ladder": [STEP, ...],           # the baseline, then one per rung
      "leave_one_out": [STEP, ...],    # the final recipe, then one per technique
      "variants": {KEY: {"label": ..., "folds": [FOLD, ...], "summary": {...}}}
    }

A STEP: ``name``, ``label``, ``status`` (measured, pending, skipped, failed, did nothing),
``reason`` (skipped, failed and did nothing only), ``variant`` (its KEY); ``mean``, ``low``,
``high`` (the metric over the folds and its interval at ``level``, clipped to the metric's
range: an accuracy interval never passes 1, so it is not always symmetric); ``compared_to``
(the name of the step it is compared with), ``changes`` (the config fields that differ from
it), ``switches`` (in the ladder: the fields the rung sets differently from the rung below
it, also when that one did nothing); ``difference``,
``difference_low``, ``difference_high``, ``p_value``, ``p_holm``, ``verdict`` (helps, no
evidence, hurts, no change); ``note`` (for "no evidence": the repeats that would reach
alpha at the observed spread; for "no change": no fold's score moved though the
predictions did); ``seconds`` (all folds), ``seconds_per_epoch``, ``extra_seconds``.

A step *did nothing* when its recipe resolves to the same training as the step it is
compared with (known from the config: it has no variant and was not trained; see
``ladder.idle``), or when its predictions equal that step's on every fold (see
``ladder.nothing``): it has its reason instead of a test, and is not one of Holm's tests.

In the ladder a rung is compared with the previous measured rung: ``difference`` is this
rung minus that one, ``extra_seconds`` what climbing it costs. In the leave-one-out view
every variant is compared with the final recipe: ``difference`` is the final recipe minus
the variant, i.e. what the technique adds, and ``extra_seconds`` what it costs. A FOLD:
``score``, ``epochs`` (trained), ``kept_epochs``, ``stop_reason``, ``seconds``, ``outputs``
(a hash of the fold's validation predictions). A variant
whose fold did not train also has ``failed`` (why); its step is ``failed`` and the next one
is compared with the last step that trained. A stage with nothing to measure (``+ ensemble``
in a run that kept no ensemble) has ``skipped`` (why), and its step is ``skipped`` like a
rung that does not apply: one word for a rung that did not run.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tunelab.config import RunConfig
from tunelab.errors import FatalError
from tunelab.ladder import stats
from tunelab.ladder.idle import flat, measured_fields
from tunelab.ladder.nothing import did_nothing, power_note, unchanged_note
from tunelab.ladder.rungs import Plan, Step
from tunelab.results.rundir import RunDir
from tunelab.training.intervals import clip, clip_difference, metric_range
from tunelab.training.metrics import GREATER_IS_BETTER

Variants = dict[str, dict[str, Any]]
DID_NOTHING = "did nothing"
# a comparison's fields, which a step that did nothing has none of
TEST_FIELDS = ("difference", "difference_low", "difference_high", "p_value", "differences")
KeyOf = Callable[[Step], str]


def read_ladder(run_dir: Path) -> dict[str, Any]:
    """The ``ladder.json`` of a run directory.

    Raises:
        FatalError: there is none, or it is not a ladder document.
    """
    path = RunDir(run_dir).ladder
    if not path.is_file():
        raise FatalError(f"{run_dir} holds no ladder.json; measure it with: tunelab ladder CONFIG")
    try:
        doc = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FatalError(f"{path} is not valid JSON ({exc}); measure the ladder again") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("ladder"), list):
        raise FatalError(f"{path} is not a ladder document; measure the ladder again")
    return doc


def document(
    cfg: RunConfig,
    steps: Plan,
    key_of: KeyOf,
    variants: Variants,
    *,
    splits: Sequence[tuple[np.ndarray, np.ndarray]],
    digest: str,
    metric: str,
) -> dict[str, Any]:
    """The content of ``ladder.json`` for what is measured so far."""
    ratio = stats.size_ratio(splits)
    context = _Context(
        folds=len(splits),
        ratio=ratio,
        alpha=cfg.ladder.alpha,
        metric=metric,
        kfolds=cfg.ladder.folds,
    )
    for variant in variants.values():
        variant["summary"] = variant_summary(variant, context)
    ladder = _view(steps.ladder, key_of, variants, context, against_first=False)
    leave_one_out = _view(steps.leave_one_out, key_of, variants, context, against_first=True)
    rows = [*ladder, *leave_one_out]
    return {
        "metric": metric,
        "greater_is_better": context.greater_is_better,
        "alpha": context.alpha,
        "level": 1.0 - context.alpha,
        "interval_method": interval_method(metric),
        "folds": cfg.ladder.folds,
        "repeats": cfg.ladder.repeats,
        "seed": cfg.seed,
        "epochs": cfg.ladder.epochs,
        "test_train_ratio": ratio,
        "splits": digest,
        "complete": all(row["status"] != "pending" for row in rows),
        "ladder": ladder,
        "leave_one_out": leave_one_out,
        "variants": variants,
    }


def interval_method(metric: str) -> str:
    """How the ladder's intervals are computed, in words (``ladder.json``, table, report)."""
    method = "corrected resampled t-test (Nadeau & Bengio 2003)"
    floor, ceiling = metric_range(metric)
    if math.isinf(floor) and math.isinf(ceiling):
        return method
    return f"{method}, clipped to {metric}'s range [{floor:g}, {ceiling:g}]"


class _Context:
    def __init__(self, *, folds: int, ratio: float, alpha: float, metric: str, kfolds: int):
        self.folds, self.ratio, self.alpha, self.metric = folds, ratio, alpha, metric
        self.kfolds = kfolds  # ladder.folds: a repeat's folds
        self.greater_is_better = GREATER_IS_BETTER[metric]

    @property
    def level(self) -> float:
        return 1.0 - self.alpha


def variant_summary(variant: dict[str, Any], context: _Context) -> dict[str, Any]:
    """The variant's scores, their mean and interval, and its time (complete ones only)."""
    folds = variant["folds"]
    scores = [float(fold["score"]) for fold in folds]
    summary: dict[str, Any] = {"scores": scores, "complete": len(scores) == context.folds}
    if summary["complete"]:
        est = stats.estimate(scores, test_train_ratio=context.ratio, level=context.level)
        low, high = clip(est.low, est.high, context.metric)
        summary.update(mean=est.mean, low=low, high=high)
    seconds = [fold.get("seconds") for fold in folds]
    epochs = [fold.get("epochs") for fold in folds]
    if folds and None not in seconds and None not in epochs:
        summary["seconds"] = float(sum(seconds))
        summary["epochs"] = int(sum(epochs))
        summary["seconds_per_epoch"] = summary["seconds"] / max(summary["epochs"], 1)
    return summary


def _view(
    steps: list[Step],
    key_of: KeyOf,
    variants: Variants,
    context: _Context,
    *,
    against_first: bool,
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    reference: tuple[Step, dict[str, Any]] | None = None
    below: Step | None = None  # the step before, for what a rung itself switches
    for step in steps:
        switches = _switches(below, step, against_first)
        below = step if step.recipe is not None and step.stage is None else below
        if step.idle:  # known from the config: not trained
            rows.append({**_did_nothing_row(step.name, step.label, step.reason), **switches})
            continue
        key = key_of(step) if step.recipe is not None else None
        variant = variants.get(key, {}) if key is not None else {}
        if step.recipe is None or variant.get("skipped"):
            reason = step.reason if step.recipe is None else variant["skipped"]
            rows.append(
                {"name": step.name, "label": step.label, "status": "skipped", "reason": reason}
            )
            continue
        assert key is not None
        summary = variant.get("summary", {"complete": False})
        row = {**_row(step, key, summary), **switches}
        if variant.get("failed"):
            rows.append({**row, "status": "failed", "reason": variant["failed"]})
            continue
        if reference is not None:
            ref_step, ref_variant = reference
            ref_summary = ref_variant["summary"]
            row.update(_comparison(step, summary, ref_step, ref_summary, context, against_first))
            why = did_nothing(step, variant, *reference, against_first=against_first)
            if why is not None:
                kept = {k: v for k, v in row.items() if k not in TEST_FIELDS}
                rows.append({**kept, **_did_nothing_row(step.name, step.label, why)})
                continue
            if row.get("difference") is not None:
                note = unchanged_note(variant, ref_variant, context.metric)
                row.update({"unchanged": True, "note": note} if note else {})
        rows.append(row)
        if reference is None or not against_first:
            reference = (step, {**variant, "summary": summary})
    _holm(rows, context)
    return rows


def _switches(below: Step | None, step: Step, against_first: bool) -> dict[str, Any]:
    """In the ladder, what a rung itself switches: the fields it sets differently from the
    rung below it, whatever that rung did (``changes`` is against the step compared with)."""
    if against_first or below is None or step.recipe is None or step.stage is not None:
        return {}
    return {"switches": _changes(below, step)}


def _did_nothing_row(name: str, label: str, reason: str | None) -> dict[str, Any]:
    """A step that changed nothing: its reason instead of a test (``DID_NOTHING``)."""
    return {"name": name, "label": label, "status": DID_NOTHING, "reason": reason}


def _row(step: Step, key: str, summary: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {
        "name": step.name,
        "label": step.label,
        "status": "measured" if summary["complete"] else "pending",
        "variant": key,
    }
    for field in ("mean", "low", "high", "seconds", "seconds_per_epoch"):
        row[field] = summary.get(field)
    return row


def _comparison(
    step: Step,
    summary: dict[str, Any],
    reference: Step,
    reference_summary: dict[str, Any],
    context: _Context,
    against_first: bool,
) -> dict[str, Any]:
    """This step against its reference: the ladder's previous rung (this minus it), or the
    final recipe (it minus this: what the switched-off technique adds)."""
    assert step.recipe is not None and reference.recipe is not None
    out: dict[str, Any] = {
        "compared_to": reference.name,
        "changes": _changes(reference, step),
    }
    seconds, ref_seconds = summary.get("seconds"), reference_summary.get("seconds")
    if seconds is not None and ref_seconds is not None:
        out["extra_seconds"] = ref_seconds - seconds if against_first else seconds - ref_seconds
    if not (summary["complete"] and reference_summary["complete"]):
        return out
    new, old = summary["scores"], reference_summary["scores"]
    if against_first:
        new, old = old, new
    result = stats.compare(new, old, test_train_ratio=context.ratio, level=context.level)
    low, high = clip_difference(result.difference.low, result.difference.high, context.metric)
    out.update(
        difference=result.difference.mean,
        difference_low=low,
        difference_high=high,
        p_value=result.p_value,
        differences=[n - o for n, o in zip(new, old, strict=True)],  # dropped by _holm
    )
    return out


def _changes(reference: Step, step: Step) -> dict[str, Any]:
    """The dotted config fields ``step`` sets differently from ``reference`` (and the stage
    it adds on top)."""
    assert step.recipe is not None and reference.recipe is not None
    old, new = flat(measured_fields(reference.recipe)), flat(measured_fields(step.recipe))
    names = sorted(set(old) | set(new))
    changed = {name: new.get(name) for name in names if old.get(name) != new.get(name)}
    if step.stage is not None:
        changed["stage"] = step.stage.name
    return changed


def _holm(rows: list[dict[str, Any]], context: _Context) -> None:
    """Holm-correct the p-values of one view, and give each tested step its verdict (``no
    change`` where no fold's score moved); a step without evidence gets the repeats it
    would need (``note``)."""
    tested = [row for row in rows if row.get("p_value") is not None]
    adjusted = stats.holm([row["p_value"] for row in tested])
    for row, p_holm in zip(tested, adjusted, strict=True):
        differences = row.pop("differences")
        row["p_holm"] = p_holm
        row["verdict"] = stats.verdict(
            row["difference"],
            p_holm,
            alpha=context.alpha,
            greater_is_better=context.greater_is_better,
        )
        if row.get("unchanged"):
            row["verdict"] = "no change"
        elif row["verdict"] == "no evidence":
            row["note"] = power_note(
                differences,
                folds=context.kfolds,
                ratio=context.ratio,
                alpha=context.alpha,
                tests=len(tested),
            )
