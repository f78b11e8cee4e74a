"""Measure the ladder: every variant cross-validated on the same splits, stored as it goes.

``ladder.json`` is rewritten (atomically) after every fold, so Ctrl-C or a killed process
loses at most the fold in flight. Each variant is keyed by a hash of its resolved config and
of the splits (and the target), so a re-run measures only what is missing and a changed
config is measured afresh.

Example::

    doc = run_ladder(cfg, RunDir(Path("runs/quickstart")), params=best_params)
    doc["ladder"][1]["verdict"]  # "helps", "no evidence" or "hurts"
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from tunelab.config import DataConfig, RunConfig
from tunelab.ensembles.stage import StageUnavailable
from tunelab.errors import ConfigError, DataError, FatalError, TrialFailed
from tunelab.evaluation.crossval import Splits, cross_validate, cv_splits
from tunelab.evaluation.fitting import fit_on_rows
from tunelab.evaluation.plan import build_encoder_and_model
from tunelab.evaluation.prepare import Prepared, prepare
from tunelab.evaluation.trees import is_tree_model
from tunelab.ladder.document import Variants, document
from tunelab.ladder.idle import measured_fields, resolved
from tunelab.ladder.rungs import Plan, Probe, StageContext, Step, plan, recipes
from tunelab.observer import Observer
from tunelab.resolved import write_resolved
from tunelab.results.rundir import RunDir, write_json
from tunelab.techniques import DataFacts, specs

log = logging.getLogger("tunelab")


def run_ladder(
    cfg: RunConfig,
    run: RunDir,
    *,
    prepared: Prepared | None = None,
    params: dict[str, Any] | None = None,
    params_source: str | None = None,
    observer: Observer | None = None,
    trust_code: bool = False,
) -> dict[str, Any]:
    """Measure every variant of both views that ``ladder.json`` does not hold yet.

    A variant whose fold does not train (a non-finite loss) is recorded as failed, with the
    reason, and the ladder goes on; a re-run tries it again.

    Args:
        cfg: the config; the final recipe is ``cfg`` with ``params`` applied.
        run: the run directory ``ladder.json`` goes into.
        prepared: the loaded data of ``cfg``; loaded here when None.
        params: the study's best parameters (dotted names), or None without a study.
        params_source: where ``params`` came from, for the record.
        observer: told about progress (``ladder_planned``, ``variant_*``).
        trust_code: a ``py:`` architecture named inside a checkpoint may run.

    Returns:
        The ladder document, as written to ``ladder.json`` (see ``ladder.document``).

    Raises:
        ConfigError, DataError: the ladder cannot be measured as configured.
    """
    observer = observer or Observer()
    prepared = prepared if prepared is not None else prepare(cfg)
    write_resolved(run.config, cfg, prepared.raw)  # notes on values the data make unused
    splits = ladder_splits(cfg, prepared)
    digest = splits_digest(splits, prepared)
    _, final = recipes(cfg, params)
    found = probe(final, prepared, splits[0][0], trust_code=trust_code)
    steps = plan(cfg, params, found)
    for warning in steps.warnings:
        log.warning("ladder: %s", warning)
    todo = _distinct(steps, digest, found.facts)
    variants = _reuse(run.ladder, set(todo))

    def save() -> dict[str, Any]:
        doc = document(
            cfg,
            steps,
            lambda step: variant_key(step, digest, found.facts),
            variants,
            splits=splits,
            digest=digest,
            metric=prepared.metric,
        )
        doc["params"], doc["params_source"] = params, params_source
        doc["warnings"] = steps.warnings
        write_atomically(run.ladder, doc)
        return doc

    reused = sum(len(variant["folds"]) for variant in variants.values())
    to_train = len(todo) * len(splits) - reused
    observer.ladder_planned(folds=to_train, reused=reused, metric=prepared.metric)
    save()
    if to_train:
        warm_up(final, prepared, splits[0], trust_code=trust_code)
    measure = _Measure(cfg.data, prepared, splits, run.path, observer, trust_code=trust_code)
    for key, step in todo.items():
        record = variants.setdefault(key, {"label": step.label, "folds": []})
        if len(record["folds"]) < len(splits):
            measure.variant(step, record, save)
        observer.variant_done(step.label, save()["variants"][key]["summary"])
    log.info("ladder: %d variants measured in %s", len(todo), run.ladder)
    return save()


def _distinct(steps: Plan, digest: str, facts: DataFacts) -> dict[str, Step]:
    """The variants to measure, each once, in order (the ladder's top rung is the final
    recipe the leave-one-out view starts from; recipes that resolve to the same training
    are one variant)."""
    todo: dict[str, Step] = {}
    for step in [*steps.ladder, *steps.leave_one_out]:
        if step.recipe is not None and not step.idle:
            todo.setdefault(variant_key(step, digest, facts), step)
    return todo


class _Measure:
    """Measures a variant's missing folds, saving after each one."""

    def __init__(
        self,
        data: DataConfig,
        prepared: Prepared,
        splits: Splits,
        run_dir: Path,
        observer: Observer,
        *,
        trust_code: bool,
    ) -> None:
        self.data, self.prepared, self.splits, self.run_dir = data, prepared, splits, run_dir
        self.observer, self.trust_code = observer, trust_code
        self._loaded: dict[str, Prepared] = {}

    def variant(
        self, step: Step, record: dict[str, Any], save: Callable[[], dict[str, Any]]
    ) -> None:
        assert step.recipe is not None
        if step.stage is not None and step.stage.measure is not None:
            context = StageContext(step.recipe, self._data(step.recipe), self.splits, self.run_dir)
            try:
                scores = step.stage.measure(context)
            except StageUnavailable as exc:  # not run: measured when the run has one
                record["skipped"] = str(exc)
                save()
                return
            record["folds"] = [{"score": float(score)} for score in scores]
            if len(record["folds"]) != len(self.splits):
                raise FatalError(
                    f"the {step.stage.name} stage gave {len(record['folds'])} fold scores for "
                    f"{len(self.splits)} splits; a stage scores every split of the ladder"
                )
            save()
            return
        folds = len(self.splits)
        for fold in range(len(record["folds"]), folds):
            try:
                record["folds"].append(self._fold(step, fold))
            except TrialFailed as exc:
                # a recipe that diverges is a finding, not the end of the ladder: the steps
                # after it are compared with the last one that trained
                record["failed"] = str(exc)
                log.warning("ladder: %s failed: %s", step.label, exc)
                save()
                return
            save()
            self.observer.variant_fold(step.label, fold, folds, record["folds"][-1]["score"])

    def _fold(self, step: Step, fold: int) -> dict[str, Any]:
        assert step.recipe is not None
        folds = len(self.splits)

        def on_epoch(_: int, record: dict[str, Any]) -> None:
            self.observer.variant_epoch(step.label, fold, folds, record)

        try:
            cv = cross_validate(
                step.recipe,
                self._data(step.recipe),
                [self.splits[fold]],
                on_epoch=on_epoch,
                trust_code=self.trust_code,
            )
        except TrialFailed as exc:
            # cross_validate numbers the folds of the one split it was given
            message = str(exc).replace("in fold 0 ", "").replace("fold 0: ", "")
            raise TrialFailed(f"fold {fold + 1} of {folds}: {message}", reason=exc.reason) from None
        outputs = np.ascontiguousarray(cv.oof[self.splits[fold][1]])
        return {
            "score": cv.scores[0],
            "epochs": len(cv.histories[0]),
            "kept_epochs": cv.epochs[0],
            "stop_reason": cv.stop_reasons[0],
            "seconds": cv.seconds,
            # identical predictions on every fold: the step changed nothing it learned
            "outputs": hashlib.sha256(outputs.tobytes()).hexdigest()[:16],
        }

    def _data(self, recipe: RunConfig) -> Prepared:
        """The loaded data; loaded again for a recipe whose encoding was tuned
        (``data.image_size``): the rows, and so the splits, stay the same."""
        if recipe.data == self.data:
            return self.prepared
        key = recipe.data.model_dump_json()
        if key not in self._loaded:
            self._loaded[key] = prepare(recipe)
        return self._loaded[key]


def ladder_splits(cfg: RunConfig, prepared: Prepared) -> Splits:
    """``ladder.folds`` x ``ladder.repeats`` seeded splits of the non-test rows (stratified
    and grouped as ``cv`` says), whatever ``cv.strategy`` the study used.

    Raises:
        ConfigError: repeats with grouped data.
        DataError: a class has fewer rows than folds.
    """
    ladder = cfg.ladder
    if prepared.raw.groups is not None and ladder.repeats > 1:
        raise ConfigError(
            f"ladder.repeats: got {ladder.repeats}, but data.group_column keeps groups "
            "together, which repeated k-fold cannot do; set ladder.repeats: 1"
        )
    kfold = cfg.cv.model_copy(
        update={"strategy": "kfold", "folds": ladder.folds, "repeats": ladder.repeats}
    )
    try:
        return cv_splits(cfg.model_copy(update={"cv": kfold}), prepared)
    except DataError as exc:
        raise DataError(f"ladder.folds: {exc}") from None


def splits_digest(splits: Splits, prepared: Prepared) -> str:
    """A hash of the splits' rows and of the target: other data, other measurements."""
    digest = hashlib.sha256(np.ascontiguousarray(prepared.target.values).tobytes())
    for train, validation in splits:
        digest.update(np.asarray(train, dtype=np.int64).tobytes() + b"|")
        digest.update(np.asarray(validation, dtype=np.int64).tobytes() + b";")
    return digest.hexdigest()[:16]


def variant_key(step: Step, digest: str, facts: DataFacts) -> str:
    """A hash of what the variant measures: the training its config resolves to (the
    fields that change a fit, a technique that cannot act reduced to "inactive": see
    ``ladder.idle``; a tree model's fields as they are: its epochs are boosting rounds),
    the stage on top, and the splits' digest."""
    assert step.recipe is not None
    stage = step.stage.name if step.stage is not None else None
    trees = is_tree_model(step.recipe)
    config = measured_fields(step.recipe) if trees else resolved(step.recipe, facts)
    what = {"config": config, "stage": stage, "splits": digest}
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:16]


def probe(
    final: RunConfig, prepared: Prepared, train_rows: np.ndarray, *, trust_code: bool = False
) -> Probe:
    """Build the final recipe's encoder and model once (no training) to see which rungs
    apply: what the techniques' ``build`` returns, and what they declare they do nothing
    for. A tree model builds no network: only the techniques that declare trees take them
    apply to it."""
    if is_tree_model(final):
        facts = DataFacts(task=prepared.target.task, modality=prepared.raw.modality)
        trees = tuple(spec.name for spec in specs() if spec.needs.trees_take)
        return Probe(facts=facts, trees=trees)
    encoder, built = build_encoder_and_model(final, prepared, train_rows, trust_code=trust_code)
    facts = DataFacts(
        task=prepared.target.task,
        modality=prepared.raw.modality,
        encoder=encoder,
        tokenizer=built.tokenizer,
    )
    return Probe(facts=facts, model=built.module)


def warm_up(
    recipe: RunConfig, prepared: Prepared, split: tuple[np.ndarray, np.ndarray], *, trust_code: bool
) -> None:
    """A throwaway one-epoch fit on a few rows: the first fit in a process pays one-time
    costs (lazy imports, kernel selection) that would otherwise count as the baseline's."""
    train, validation = split
    short = recipe.model_copy(update={"train": recipe.train.model_copy(update={"epochs": 1})})
    fit_on_rows(short, prepared, train[:64], validation[:64], trust_code=trust_code)


def _reuse(path: Path, keys: set[str]) -> Variants:
    """The measured folds of the variants still planned, from an earlier ``ladder.json``
    (others are dropped: the file describes the current ladder)."""
    if not path.is_file():
        return {}
    try:
        earlier = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FatalError(
            f"{path} is not valid JSON ({exc}); delete it to measure the ladder afresh"
        ) from None
    problem = _shape_problem(earlier)
    if problem is not None:  # valid JSON, but not what tunelab writes: refused as above
        raise FatalError(
            f"{path} is not a ladder document ({problem}); delete it to measure the ladder afresh"
        )
    kept: Variants = {}
    for key, variant in earlier["variants"].items():
        folds = variant["folds"]
        if key in keys and all(_finite_fold(f) for f in folds):
            kept[key] = {"label": variant.get("label"), "folds": folds}
    return kept


def _shape_problem(doc: Any) -> str | None:
    """What makes ``doc`` not a ladder document (see ``ladder.document``), or None."""
    if not isinstance(doc, dict):
        return f"a JSON {type(doc).__name__}, not an object"
    variants = doc.get("variants")
    if not isinstance(variants, dict):
        return "no 'variants' object"
    for key, variant in variants.items():
        if not isinstance(variant, dict) or not isinstance(variant.get("folds"), list):
            return f"variant {key!r} has no 'folds' list"
    return None


def _finite_fold(fold: Any) -> bool:
    score = fold.get("score") if isinstance(fold, dict) else None
    return isinstance(score, int | float) and bool(np.isfinite(score))


def write_atomically(path: Path, data: dict[str, Any]) -> None:
    """Write the JSON beside ``path``, then rename it over ``path``: a process killed while
    writing leaves the previous file whole."""
    partial = path.with_name(path.name + ".partial")
    write_json(partial, data)
    partial.replace(path)
