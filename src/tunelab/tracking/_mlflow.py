"""MLflow: one run per study (its config as parameters, the final test scores as metrics)
with one nested run per trial (its parameters, fold scores and per-epoch curves); one run
per ``tunelab train``. Written through ``MlflowClient`` with the URI the config names,
never through MLflow's global state, and without artifacts (which MLflow would put in a
folder of its choosing).

Before anything else the store is checked once, with a timeout: a server must answer HTTP,
a database accept a connection, a local store's folder be writable."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

from tunelab import uris
from tunelab.config import RunConfig
from tunelab.errors import FatalError
from tunelab.optional import optional_import
from tunelab.reach import folder_problem, http_problem, tcp_problem
from tunelab.tracking.records import (
    FinalRecord,
    Opening,
    Start,
    TrialRecord,
    epoch_values,
    flat_config,
)

# MLflow's limits per log_batch call, and on a parameter's value
BATCH_METRICS, BATCH_PARAMS, PARAM_CHARS = 1000, 100, 6000
FINISHED_AS = {"complete": "FINISHED", "pruned": "KILLED", "fail": "FAILED"}
# a cheap call of MLflow's REST API (read-only, one experiment at most)
PROBE_ENDPOINT = "/api/2.0/mlflow/experiments/search?max_results=1"
DATABASE_PORTS = {"postgresql": 5432, "postgres": 5432, "mysql": 3306, "mssql": 1433}


def start(cfg: RunConfig, opening: Opening) -> Start:
    """``tracking.mlflow``: an ``MlflowTracker`` on the URI it names."""
    uri = cfg.tracking.mlflow
    assert uri is not None  # Tracking.open starts only the trackers the config names

    def tracker() -> MlflowTracker:
        return MlflowTracker(
            uri,
            experiment=cfg.tracking.experiment or cfg.name,
            label=opening.label,
            key=opening.key,
            role=opening.role,
            params=flat_config(cfg),
            tags={"tunelab_run_dir": opening.run_dir},
            timeout=cfg.tracking.timeout,
        )

    return Start(uri, client_class, tracker)


def refuse_unreachable(cfg: RunConfig) -> None:
    """Before the run directory is made: an MLflow store that cannot be reached stops the
    run here (``tracking.required``), so a mistyped address leaves no folder behind.
    ``Tracking.open`` checks again when it starts the tracker.

    Raises:
        FatalError: naming the URI, why, and the fix.
    """
    uri = cfg.tracking.mlflow
    if uri is None or not cfg.tracking.required:
        return
    problem = store_problem(uri, seconds=cfg.tracking.timeout)
    if problem is not None:
        raise FatalError(
            f"tracking.mlflow: cannot reach {uri!r} ({problem}). Start the tracking server or "
            "correct the URI, or set tracking.required: false to run without it"
        )


class MlflowTracker:
    """Args:
    uri: the MLflow tracking URI.
    experiment: the experiment's name (made when missing).
    label: the study's (or fit's) run name.
    key: marks the tracker runs of this study, so a resumed study finds them.
    role: ``study`` (a parent of trial runs) or ``train``.
    params: the config as dotted names, logged once on the parent run.
    tags: more tags for the parent run.
    timeout: seconds the check of the store waits for an answer.
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
        timeout: float,
    ) -> None:
        MlflowClient = client_class()  # noqa: N806 (the class, as MLflow names it)
        problem = store_problem(uri, seconds=timeout)
        if problem is not None:
            raise FatalError(
                f"tracking.mlflow: cannot reach {uri!r} ({problem}). Start the tracking "
                "server or correct the URI"
            )
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


def client_class() -> Any:
    """MLflow's ``MlflowClient`` (the package imported, or the install hint raised)."""
    return optional_import(
        "mlflow.tracking", package="mlflow-skinny", extra="mlflow", purpose="tracking.mlflow"
    ).MlflowClient


def store_problem(uri: str, *, seconds: float) -> str | None:
    """Why the MLflow store at ``uri`` cannot be reached (None: it can, or MLflow's own
    client is the only check, as for ``databricks`` and a plug-in's scheme)."""
    parts = urlsplit(uri)
    scheme = parts.scheme.lower().partition("+")[0]  # postgresql+psycopg2: the dialect
    if scheme in ("http", "https"):
        return http_problem(uri.rstrip("/") + PROBE_ENDPOINT, seconds=seconds)
    if scheme == "sqlite":  # sqlite:///relative.db, sqlite:////absolute.db; MLflow makes folders
        path = parts.path[1:]
        return folder_problem(Path(path).parent) if path else None
    if scheme in ("", "file"):  # a local folder, made when missing
        return folder_problem(Path(url2pathname(parts.path)))
    if scheme in DATABASE_PORTS and parts.hostname:
        try:
            port = parts.port or DATABASE_PORTS[scheme]
        except ValueError as exc:
            return f"not a valid address ({exc})"
        return tcp_problem(parts.hostname, port, seconds=seconds)
    return None


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
