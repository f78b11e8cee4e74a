"""MLflow: one run per study (its config as parameters, the final test scores as metrics)
with one nested run per trial (its parameters, fold scores and per-epoch curves); one run
per ``tunelab train``. Written through ``MlflowClient`` with the URI the config names,
never through MLflow's global state, and without artifacts (which MLflow would put in a
folder of its choosing)."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any

from tunelab import uris
from tunelab.errors import FatalError
from tunelab.optional import optional_import
from tunelab.tracking.trackers import FinalRecord, TrialRecord, epoch_values

# MLflow's limits per log_batch call, and on a parameter's value
BATCH_METRICS, BATCH_PARAMS, PARAM_CHARS = 1000, 100, 6000
FINISHED_AS = {"complete": "FINISHED", "pruned": "KILLED", "fail": "FAILED"}


class MlflowTracker:
    """Args:
    uri: the MLflow tracking URI.
    experiment: the experiment's name (made when missing).
    label: the study's (or fit's) run name.
    key: marks the tracker runs of this study, so a resumed study finds them.
    role: ``study`` (a parent of trial runs) or ``train``.
    params: the config as dotted names, logged once on the parent run.
    tags: more tags for the parent run.
    """

    name = "mlflow"

    def __init__(
        self,
        uri: str,
        *,
        experiment: str,
        label: str,
        key: str,
        role: str,
        params: dict[str, str],
        tags: dict[str, str],
    ) -> None:
        MlflowClient = optional_import(  # noqa: N806 (the class, as MLflow names it)
            "mlflow.tracking", package="mlflow-skinny", extra="mlflow", purpose="tracking.mlflow"
        ).MlflowClient
        self.key = key
        connect = uris.expand(uri, field="tracking.mlflow")  # ${NAME}: a password
        try:
            self.client = MlflowClient(tracking_uri=connect)
            found = self.client.get_experiment_by_name(experiment)
            self.experiment = (
                found.experiment_id if found else self.client.create_experiment(experiment)
            )
            self.parent = self._find(role) or self._start_parent(label, role, params, tags)
        except Exception as exc:
            detail = uris.scrub(f"{type(exc).__name__}: {exc}", connect)
            raise FatalError(
                f"tracking.mlflow: cannot use {uri!r} ({detail}). Check the "
                "URI (sqlite:///mlflow.db, http://HOST:5000; MLflow 3 opens file: stores only "
                "with MLFLOW_ALLOW_FILE_STORE=true) or remove tracking.mlflow"
            ) from None

    def _find(self, role: str) -> str | None:
        runs = self.client.search_runs(
            [self.experiment],
            filter_string=f"tags.tunelab_key = '{self.key}' and tags.tunelab_role = '{role}'",
            max_results=1,
        )
        return str(runs[0].info.run_id) if runs else None

    def _start_parent(
        self, label: str, role: str, params: dict[str, str], tags: dict[str, str]
    ) -> str:
        run = self.client.create_run(
            self.experiment,
            run_name=label,
            tags={"tunelab_key": self.key, "tunelab_role": role, **tags},
        )
        run_id = str(run.info.run_id)
        self._log(run_id, params=params)
        return run_id

    def logged(self) -> set[int]:
        runs = self.client.search_runs(
            [self.experiment],
            filter_string=f"tags.tunelab_key = '{self.key}' and tags.tunelab_role = 'trial'",
            max_results=50000,
        )
        return {int(run.data.tags["tunelab_trial"]) for run in runs}

    def trial(self, record: TrialRecord) -> None:
        tags = {
            "mlflow.parentRunId": self.parent,
            "tunelab_key": self.key,
            "tunelab_role": "trial",
            "tunelab_trial": str(record.number),
            "state": record.state,
        }
        if record.fail_reason:
            tags["fail_reason"] = record.fail_reason[:PARAM_CHARS]
        run = self.client.create_run(self.experiment, run_name=f"trial {record.number}", tags=tags)
        run_id = str(run.info.run_id)
        scores: dict[str, float] = {}
        if record.value is not None:
            scores["value"] = record.value
        if record.std is not None:
            scores["value_std"] = record.std
        scores.update({f"fold_{i}_score": s for i, s in enumerate(record.fold_scores)})
        self._log(
            run_id,
            params={k: str(v) for k, v in record.params.items()},
            metrics=[*_points(scores), *_curves(record.curves)],
        )
        self.client.set_terminated(run_id, status=FINISHED_AS.get(record.state, "FINISHED"))

    def final(self, record: FinalRecord) -> None:
        self._log(self.parent, metrics=[*_points(record.scores), *_curves(record.curves)])
        for key, value in record.tags.items():
            self.client.set_tag(self.parent, key, value)
        self.client.set_terminated(self.parent, status="FINISHED")

    def _log(
        self,
        run_id: str,
        *,
        params: dict[str, str] | None = None,
        metrics: Sequence[Any] = (),
    ) -> None:
        from mlflow.entities import Param

        pairs = [Param(k, v[:PARAM_CHARS]) for k, v in (params or {}).items()]
        for chunk in _chunks(pairs, BATCH_PARAMS):
            self.client.log_batch(run_id, params=chunk)
        for chunk in _chunks(list(metrics), BATCH_METRICS):
            self.client.log_batch(run_id, metrics=chunk)


def _points(values: dict[str, float]) -> list[Any]:
    from mlflow.entities import Metric

    now = _millis()
    return [Metric(name, value, now, 0) for name, value in values.items()]


def _curves(curves: list[list[dict[str, Any]]]) -> list[Any]:
    """Per-epoch metrics; with several folds each is named ``fold_N/name``."""
    from mlflow.entities import Metric

    now = _millis()
    points = []
    for fold, history in enumerate(curves):
        prefix = f"fold_{fold}/" if len(curves) > 1 else ""
        for record in history:
            step = int(record.get("epoch", 0))
            points += [
                Metric(f"{prefix}{name}", value, now, step)
                for name, value in epoch_values(record).items()
            ]
    return points


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _millis() -> int:
    return int(time.time() * 1000)
