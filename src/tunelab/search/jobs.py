"""``--jobs auto``: how many trials of a study run side by side, decided from the free cores
and a measurement of the recipe's model (``tunelab.evaluation.speed``).

The measurement is stored in the run directory (``RunDir.cores``), keyed by what it depends
on (the model, the fine-tuning strategy, the batch, the text length, the cores), so a
resumed study does not measure again. Worker processes start only when the trials left
are long enough to pay for their start (importing torch and loading the data), judged on
the study's own trials: ``tunelab run`` times one before it decides.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict
from statistics import median
from typing import Any

import optuna
from optuna.trial import TrialState

from tunelab.config import RunConfig
from tunelab.evaluation.features import digest
from tunelab.evaluation.prepare import Prepared
from tunelab.evaluation.speed import Measured, measure
from tunelab.results.rundir import RunDir, write_json
from tunelab.search.optimize import finished
from tunelab.training.cores import Plan, Speeds, free_cores, memory_jobs, plan_jobs

log = logging.getLogger("tunelab")
# seconds a worker process takes to start (import torch, load the data: 3.6 s on a quiet
# 2-core machine, more with its first fit). Parallel trials must save twice this: the
# trial estimate leaves out validation and the workers' warm-up (8 quickstart trials of
# about 1.4 s, estimated to save 5.7 s, took 19.9 s with two workers and 15.0 s with one)
WORKER_START_SECONDS = 5.0
PAYS_OFF = 2.0


def jobs_after_a_trial(
    cfg: RunConfig,
    prepared: Prepared,
    run: RunDir,
    study: optuna.Study,
    optimize: Callable[[RunConfig], tuple[str, bool]],
) -> tuple[int, str, bool]:
    """``--jobs auto`` in ``tunelab run``: when the study has no timed trial, ``optimize``
    runs one here first (its time, early stopping and pruning included, says whether the
    rest is worth worker processes); then the plan for the trials left. Returns the jobs,
    and why the trial loop stopped and whether that was a failure."""
    reason, failed = "n_trials", False
    done = finished(study)
    if not _durations(study) and cfg.search.n_trials - done > 1:
        one = cfg.model_copy(
            update={"search": cfg.search.model_copy(update={"n_trials": done + 1})}
        )
        reason, failed = optimize(one)
    durations = _durations(study)
    plan = auto_jobs(
        cfg,
        prepared,
        run,
        trials_left=cfg.search.n_trials - finished(study),
        trial_seconds=median(durations) if durations else None,
    )
    return plan.jobs, reason, failed


def _durations(study: optuna.Study) -> list[float]:
    """Seconds of the study's finished trials (complete or pruned)."""
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
    return [t.duration.total_seconds() for t in trials if t.duration is not None]


def auto_jobs(
    cfg: RunConfig,
    prepared: Prepared,
    run: RunDir,
    *,
    trials_left: int,
    trial_seconds: float | None = None,
) -> Plan:
    """The plan for the trials left: how many side by side, threads each, and why.
    ``trial_seconds``: a trial's time as the study measured it (default: estimated from
    the measured steps, without early stopping or pruning)."""
    cores = free_cores()
    if trials_left <= 1 or cores == 1:
        return _record(run, Plan(1, cores, f"{trials_left} trial(s) left, {cores} free core(s)"))
    try:
        measured = _measured(cfg, prepared, run, cores)
    except Exception as exc:  # the trials will say what is wrong with the recipe
        log.warning("--jobs auto: the recipe could not be measured (%s); one trial at a time", exc)
        return _record(run, Plan(1, cores, f"not measured: {type(exc).__name__}"))
    plan = plan_jobs(
        cores=cores,
        trainable=measured.trainable,
        speeds=measured.speeds,
        trials_left=trials_left,
        memory_jobs=memory_jobs(measured.model_bytes, 4 * measured.trainable),
    )
    trial_seconds = trial_seconds or measured.trial_seconds
    if plan.jobs > 1 and trial_seconds is not None:
        saved = trials_left * trial_seconds * (1 - 1 / plan.jobs)
        if saved < PAYS_OFF * WORKER_START_SECONDS:
            plan = Plan(
                1,
                plan.threads,
                f"{trials_left} trials of about {trial_seconds:.1f} s: side by side "
                f"would save {saved:.1f} s, too little for starting worker processes",
            )
    return _record(run, plan)


def _key(cfg: RunConfig, cores: int) -> str:
    """What a measurement depends on."""
    parts = {
        "model": cfg.model.model_dump(mode="json"),
        "finetuning": cfg.finetuning.model_dump(mode="json"),
        "batch_size": cfg.train.batch_size,
        "max_length": cfg.data.max_length,
        "image_size": list(cfg.data.image_size),
        "device": cfg.train.device,
        "cores": cores,
    }
    return digest(json.dumps(parts, sort_keys=True, default=str))


def _measured(cfg: RunConfig, prepared: Prepared, run: RunDir, cores: int) -> Measured:
    stored = _read(run)
    key = _key(cfg, cores)
    known = stored.get("measurements", {}).get(key)
    if isinstance(known, dict):
        try:
            speeds = known.get("speeds")
            return Measured(
                trainable=int(known["trainable"]),
                model_bytes=int(known["model_bytes"]),
                trial_seconds=known.get("trial_seconds"),
                speeds=Speeds(**speeds) if isinstance(speeds, dict) else None,
            )
        except (KeyError, TypeError, ValueError):
            log.info("--jobs auto: the stored measurement is damaged; measuring again")
    measured = measure(cfg, prepared, cores=cores)
    stored.setdefault("measurements", {})[key] = asdict(measured)
    write_json(run.cores, stored)
    log.info("--jobs auto: measured the recipe's model: %s", measured)
    return measured


def _read(run: RunDir) -> dict[str, Any]:
    try:
        data = json.loads(run.cores.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _record(run: RunDir, plan: Plan) -> Plan:
    stored = _read(run)
    stored["plan"] = asdict(plan)
    write_json(run.cores, stored)
    log.info("--jobs auto: %d trial(s) side by side, %d thread(s) each: %s", *asdict(plan).values())
    return plan
