"""After the search: refit the best trial, keep an ensemble when it beats it out of fold,
and evaluate the final predictor once on the test rows (the ensemble and the refit best
trial compared there, paired); the study's tables for the run directory."""

from __future__ import annotations

import json
import logging
import time
import warnings
from dataclasses import dataclass, replace
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from tunelab.config import RunConfig, apply_params, recipe
from tunelab.data import take
from tunelab.ensembles.build import OutOfTime, build, decide
from tunelab.ensembles.distill import distill_stage
from tunelab.ensembles.held_out import final_out_of_fold
from tunelab.evaluation.calibration import calibrate
from tunelab.evaluation.holdout import evaluate_and_write, test_outputs
from tunelab.evaluation.prepare import Prepared, prepare
from tunelab.evaluation.refit import refit
from tunelab.flows.timeline import Stages, Timeline
from tunelab.results.artifacts import TrialArtifacts
from tunelab.results.leaderboard import leaderboard, ranked, tie_break
from tunelab.results.predictor import AnyPredictor
from tunelab.results.rundir import RunDir, write_json
from tunelab.results.stages import LateStages
from tunelab.results.trial_record import record
from tunelab.search.budget import Budget
from tunelab.training.loop import EpochCallback
from tunelab.training.metrics import compute_metrics, paired_bootstrap_difference

log = logging.getLogger("tunelab")
# what a study's run works on: the data, the study, the trials' artifacts
Opened = tuple[Prepared, optuna.Study, TrialArtifacts]


def write_study_results(run: RunDir, study: optuna.Study, cfg: RunConfig) -> None:
    """leaderboard.csv, best_params.json (as config values) and importances.json."""
    leaderboard(study).to_csv(run.leaderboard, index=False)
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        return
    best = ranked(study)[0]
    params = recipe(cfg, best.params)
    run.best_params.write_text(json.dumps(params, indent=2) + "\n")
    importances: dict[str, float] = {}
    if len(complete) >= 3 and best.params:
        try:
            with warnings.catch_warnings():  # few trials per regime: say so in the log only
                warnings.simplefilter("ignore")
                importances = dict(optuna.importance.get_param_importances(study))
        except (RuntimeError, ValueError, TypeError) as exc:
            log.info("no parameter importances: %s", exc)
    write_json(run.importances, importances)


def finish(
    cfg: RunConfig,
    opened: Opened,
    run: RunDir,
    stages: LateStages | None = None,
    *,
    budget: Budget | None = None,
    clock: Stages | None = None,
) -> dict[str, Any]:
    """Refit the best trial on every non-test row; build the ensemble when it passes the
    keep rule against that trial on out-of-fold predictions; evaluate the final predictor
    once on the test rows (and, when an ensemble is kept, the refit best trial beside it,
    paired). An ensemble stage that fails leaves the refit best trial as the final
    predictor, and the failure in ``stages``.

    Args:
        budget: the time budget: the refit and the ensemble's refits stop at an epoch
            boundary by its deadline, and an ensemble that cannot be refit in time is not
            built (each with a note).
        clock: the time line and the live view.
    """
    clock = clock or Stages(Timeline(time.time()))
    prepared, study, artifacts = opened
    deadline = budget.final_deadline if budget is not None else None
    best, tie_note = _best(study)
    params = recipe(cfg, best.params)
    tuned = apply_params(cfg, params)
    clock.enter("refit", f"refit: trial {best.number} on all non-test rows")
    if tuned.data != cfg.data:  # a searched encoding (data.image_size): load at the best
        prepared = prepare(tuned)
    single = refit(
        tuned,
        prepared,
        fold_epochs=record(best).get("best_epochs"),
        deadline=deadline,
        callbacks=[_refit_view(clock, best.number)],
    )
    for note in single.notes:
        clock.note(note)
    clock.enter("ensemble", f"ensemble: {cfg.ensemble.method} on out-of-fold predictions")
    stages = stages or LateStages(run)
    final, summary = _ensemble_stage(
        cfg, (prepared, study, artifacts), single.predictor, stages, _Deadline(deadline, clock)
    )
    final = _distillation(tuned, prepared, (final, single.predictor), summary, stages, clock)
    write_json(run.ensemble, summary)
    probabilities, fitted_on = final_out_of_fold(study, artifacts, best, summary)
    calibration = calibrate(
        cfg.calibration, final, probabilities, prepared.target.values, fitted_on=fitted_on
    )
    clock.enter("test evaluation", "test evaluation: the final predictor on the test rows")
    extra = {
        "best_trial": best.number,
        "best_value": best.value,
        "best_value_std": record(best).get("std"),
        "best_trial_tie_break": tie_note,
        "fold_scores": record(best).get("fold_scores"),
        "best_params": params,
        "refit_epochs": single.epochs,
        "bagging": cfg.ensemble.bagging.model_dump() if cfg.ensemble.bagging.seeds > 1 else None,
        "final": summary.get("final") or ("ensemble" if summary["kept"] else "best trial"),
        "ensemble": summary,
        "calibration": calibration,
        "trials": _trial_counts(study),
    }
    return evaluate_and_write(run, prepared, single.first, seed=cfg.seed, extra=extra, final=final)


def _best(study: optuna.Study) -> tuple[FrozenTrial, str | None]:
    """The best trial, and how a tie for it was broken (logged)."""
    tie_note = tie_break(study)
    if tie_note:
        log.info("best trial: %s", tie_note)
    return ranked(study)[0], tie_note


def _trial_counts(study: optuna.Study) -> dict[str, int]:
    return {
        state.name.lower(): len(study.get_trials(deepcopy=False, states=(state,)))
        for state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    }


def _refit_view(clock: Stages, trial: int) -> EpochCallback:
    """The refit's epochs, for the live view (as fold 1 of 1 of its trial)."""

    def show(record: dict[str, Any]) -> None:
        clock.observer.trial_epoch(trial, 0, 1, record)

    return show


@dataclass(frozen=True)
class _Deadline:
    """When the ensemble's refits must end (None: no budget), and where a note goes."""

    at: float | None
    clock: Stages


def _ensemble_stage(
    cfg: RunConfig,
    opened: Opened,
    single: AnyPredictor,
    stages: LateStages,
    deadline: _Deadline,
) -> tuple[AnyPredictor, dict[str, Any]]:
    """(the final predictor, ``ensemble.json``): the ensemble when it is kept and built in
    time, else ``single``, also when the stage fails."""
    prepared, study, artifacts = opened

    def decide_and_build() -> tuple[AnyPredictor, dict[str, Any]]:
        decision = decide(cfg, prepared, study, artifacts)
        log.info("ensemble: %s", decision.reason)
        if not decision.kept:
            return single, decision.to_dict()
        try:
            ensemble = build(cfg, prepared, study, artifacts, decision, deadline=deadline.at)
        except OutOfTime as exc:
            deadline.clock.note(f"ensemble not built: {exc}; the final predictor is the refit")
            late = replace(decision, kept=False, reason=f"{decision.reason}; {exc}")
            return single, late.to_dict()
        summary = decision.to_dict()
        summary["test"] = compare_on_test(prepared, ensemble, single, seed=cfg.seed)
        return ensemble, summary

    found = stages.attempt("ensemble", decide_and_build)
    if found is not None:
        return found
    reason = stages.failures[-1].reason
    return single, {
        "kept": False,
        "failed": True,
        "method": cfg.ensemble.method,
        "reason": f"the ensemble stage failed ({reason}); the best single trial is final",
    }


def _distillation(
    tuned: RunConfig,
    prepared: Prepared,
    teachers: tuple[AnyPredictor, AnyPredictor],
    summary: dict[str, Any],
    stages: LateStages,
    clock: Stages,
) -> AnyPredictor:
    """``ensemble.distill`` (after a kept ensemble): the student when it is kept, else the
    ensemble (also when the stage fails); ``teachers``: the ensemble and the refit best
    trial."""
    ensemble, single = teachers
    if not (tuned.ensemble.distill and summary["kept"]):
        return ensemble
    clock.say("distillation: one student learns the ensemble")
    distilled = stages.attempt(
        "distillation", lambda: distill_stage(tuned, prepared, ensemble, single, summary)
    )
    if "distillation" in summary:
        clock.note(f"distillation: {summary['distillation']['reason']}")
    return distilled or ensemble


def compare_on_test(
    prepared: Prepared, ensemble: AnyPredictor, single: AnyPredictor, *, seed: int
) -> dict[str, Any]:
    """The ensemble against the best single trial on the test rows: each metric, and the
    selection metric's paired bootstrap interval of the difference (ensemble - single)."""
    rows = prepared.split.test
    inputs = take(prepared.raw.inputs, rows)
    truth, task, metric = prepared.target.values[rows], prepared.target.task, prepared.metric
    first, second = test_outputs(ensemble, inputs), test_outputs(single, inputs)
    difference, low, high = paired_bootstrap_difference(
        task, truth, first, second, metric, seed=seed
    )
    return {
        "ensemble": compute_metrics(task, truth, first),
        "best_single": compute_metrics(task, truth, second),
        "difference": {
            "metric": metric,
            "ensemble_minus_single": difference,
            "low": low,
            "high": high,
            "level": 0.95,
            "method": "paired bootstrap over test rows (1000 resamples)",
        },
    }
