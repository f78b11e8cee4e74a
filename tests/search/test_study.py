"""Studies on real SQLite with real trials (tiny iris MLPs, 1-2 epochs, one CPU thread).

Most tests drive the same loop ``tunelab run`` uses (``setup`` + ``optimize``) and skip the
final refit; the k-fold test runs the whole ``run_study`` because it checks its files.
"""

from __future__ import annotations

import io
import json
import sys
import textwrap
import threading
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
import pytest
import yaml
from optuna.trial import TrialState
from typer.testing import CliRunner

import tunelab
from tests.conftest import make_config
from tunelab.cli import app
from tunelab.config import RunConfig
from tunelab.errors import ConfigError, FatalError
from tunelab.evaluation.prepare import prepare
from tunelab.flows.resume import resumable
from tunelab.flows.study import run_study, setup
from tunelab.registry import PRUNERS, SAMPLERS
from tunelab.results.artifacts import TrialArtifacts
from tunelab.results.leaderboard import leaderboard
from tunelab.results.rundir import RunDir, open_run_dir
from tunelab.results.trial_record import record
from tunelab.search.objective import Objective
from tunelab.search.optimize import TopCheckpoints, finished, optimize
from tunelab.search.space import suggest
from tunelab.search.study import make_storage, open_study, storage_url

LR = {"type": "float", "low": 1e-3, "high": 1e-1, "log": True}
SPACE = {"train.lr": LR, "regularization.dropout": {"type": "float", "low": 0.0, "high": 0.5}}
GRID_SPACE = {
    "train.lr": {"type": "categorical", "choices": [0.003, 0.01, 0.03]},
    "regularization.dropout": {"type": "float", "low": 0.0, "high": 0.5, "step": 0.25},
}
SAMPLER_CLASSES = {
    "tpe": optuna.samplers.TPESampler,
    "random": optuna.samplers.RandomSampler,
    "grid": optuna.samplers.GridSampler,
    "cmaes": optuna.samplers.CmaEsSampler,
    "qmc": optuna.samplers.QMCSampler,
    "gp": optuna.samplers.GPSampler,
}
PRUNER_CLASSES = {
    "median": optuna.pruners.MedianPruner,
    "percentile": optuna.pruners.PercentilePruner,
    "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
    "hyperband": optuna.pruners.HyperbandPruner,
    "wilcoxon": optuna.pruners.WilcoxonPruner,
    "none": optuna.pruners.NopPruner,
}
NAN_MODEL = '''
import math

import torch
from torch import nn
from tunelab.results.trial_record import record


class MaybeNan(nn.Module):
    def __init__(self, input_shape, num_outputs, poison):
        super().__init__()
        self.linear = nn.Linear(math.prod(input_shape), num_outputs)
        self.poison = poison

    def forward(self, x):
        out = self.linear(x.flatten(1))
        return out * float("nan") if self.poison else out


def net(input_shape, num_outputs, poison=False):
    """A linear model whose outputs are all NaN when poison is set."""
    return MaybeNan(input_shape, num_outputs, poison)
'''


def search_config(**sections: Any) -> RunConfig:
    """Iris, a width-8 MLP, one epoch; ``search`` entries are merged into these defaults."""
    search = {
        "n_trials": 3,
        "sampler": "random",
        "pruner": "none",
        "space": SPACE,
        **sections.pop("search", {}),
    }
    train = {"epochs": 1, **sections.pop("train", {})}
    model = {"source": "builtin:mlp", "width": 8, "depth": 1, **sections.pop("model", {})}
    return make_config(model=model, train=train, search=search, **sections)


def study_directory(cfg: RunConfig, out: Path) -> RunDir:
    """The run directory as ``tunelab run`` opens it (resuming its own study)."""
    return open_run_dir(cfg, out, resume=resumable(cfg))


def search(
    cfg: RunConfig, run_dir: Path, enqueue: tuple[dict[str, Any], ...] = ()
) -> tuple[optuna.Study, str]:
    """What ``tunelab run`` does up to the refit: open the run's study and run trials."""
    run = study_directory(cfg, run_dir)
    prepared, study, artifacts = setup(cfg, run)
    for params in enqueue:
        study.enqueue_trial(params)
    reason, _ = optimize(study, Objective(cfg, prepared, artifacts), cfg)
    return study, reason


def states(study: optuna.Study) -> list[str]:
    return [t.state.name for t in study.get_trials(deepcopy=False)]


def write_nan_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "nan_net.py").write_text(textwrap.dedent(NAN_MODEL))
    monkeypatch.syspath_prepend(str(folder))
    return "py:nan_net:net"


def test_every_registered_sampler_and_pruner_builds_its_optuna_class() -> None:
    cfg = search_config(search={"space": GRID_SPACE})
    assert set(SAMPLERS) == set(SAMPLER_CLASSES) and set(PRUNERS) == set(PRUNER_CLASSES)
    for name in SAMPLERS:
        assert isinstance(SAMPLERS.get(name)(cfg), SAMPLER_CLASSES[name])
    for name in PRUNERS:
        assert isinstance(PRUNERS.get(name)(cfg), PRUNER_CLASSES[name])


def test_an_unknown_sampler_lists_the_registered_ones() -> None:
    with pytest.raises(ConfigError, match=r"search.sampler: got 'tpee'.*tpe.*Did you mean 'tpe'"):
        search_config(search={"sampler": "tpee"})


@pytest.mark.parametrize("sampler", list(SAMPLER_CLASSES))
def test_sampler_by_name_runs_a_short_study_to_completion(tmp_path: Path, sampler: str) -> None:
    space = GRID_SPACE if sampler == "grid" else SPACE
    cfg = search_config(search={"sampler": sampler, "space": space})
    study, reason = search(cfg, tmp_path / "run")
    assert isinstance(study.sampler, SAMPLER_CLASSES[sampler])
    fail_reasons = [
        t.user_attrs.get("fail_reason") for t in study.trials if t.state == TrialState.FAIL
    ]
    assert fail_reasons == [], fail_reasons
    assert reason == "n_trials"
    assert states(study) == ["COMPLETE"] * 3
    assert len({tuple(sorted(t.params.items())) for t in study.trials}) == 3


@pytest.mark.parametrize("pruner", list(PRUNER_CLASSES))
def test_pruner_by_name_runs_a_short_study_to_completion(tmp_path: Path, pruner: str) -> None:
    cfg = search_config(train={"epochs": 2}, search={"pruner": pruner, "n_trials": 2})
    study, reason = search(cfg, tmp_path / "run")
    assert isinstance(study.pruner, PRUNER_CLASSES[pruner])
    assert reason == "n_trials"
    assert finished(study) == 2
    assert "FAIL" not in states(study)
    for trial in study.get_trials(states=(TrialState.COMPLETE,)):
        # the pruner saw the trial's progress: per epoch, or per fold for wilcoxon; with
        # no pruner at most one epoch a second is written (live progress only)
        if pruner == "none":
            assert set(trial.intermediate_values) <= {0, 1}
        else:
            steps = [0] if pruner == "wilcoxon" else [0, 1]
            assert sorted(trial.intermediate_values) == steps


def test_successive_halving_judges_trials_after_a_tenth_of_their_epochs(tmp_path: Path) -> None:
    """tunelab's successive halving: rungs after 2, 6 and 18 of 20 epochs (min_resource =
    epochs / 10, reduction factor 3), never after the first epoch or two."""
    wide = {"train.lr": {"type": "float", "low": 1e-5, "high": 1.0, "log": True}}
    cfg = search_config(
        train={"epochs": 20},
        early_stopping={"enabled": False},
        search={"pruner": "successive_halving", "n_trials": 8, "space": wide},
    )
    study, _ = search(cfg, tmp_path / "run")
    pruned = study.get_trials(states=(TrialState.PRUNED,))
    assert pruned, "eight trials over five decades of learning rate: some must be cut"
    assert {max(t.intermediate_values) for t in pruned} <= {2, 6, 18}
    for trial in study.get_trials(states=(TrialState.COMPLETE,)):
        assert len(trial.intermediate_values) == 20


def test_successive_halving_per_fold_prunes_after_the_second_fold(tmp_path: Path) -> None:
    """With ``cv.prune_on: fold`` a trial reports fold numbers, not epochs: the first rung
    must come after fold 1 (a rung at a tenth of 20 epochs would never be reached)."""
    wide = {"train.lr": {"type": "float", "low": 1e-5, "high": 1.0, "log": True}}
    cfg = search_config(
        train={"epochs": 20},
        early_stopping={"enabled": False},
        cv={"strategy": "kfold", "folds": 4, "prune_on": "fold"},
        search={"pruner": "successive_halving", "n_trials": 8, "space": wide},
    )
    study, _ = search(cfg, tmp_path / "run")
    pruned = study.get_trials(states=(TrialState.PRUNED,))
    assert pruned, "eight trials over five decades of learning rate: some must be cut"
    assert {max(t.intermediate_values) for t in pruned} <= {1, 3}


@pytest.mark.parametrize("url", ["sqlite:///:memory:", "sqlite://"])
def test_in_memory_sqlite_storage_is_refused_with_the_fix(url: str) -> None:
    """An in-memory database lives in one connection: the heartbeat thread, a resumed run
    and --jobs workers would each see an empty one."""
    with pytest.raises(ConfigError, match=r"search.storage: .*in-memory.*Leave search.storage"):
        make_storage(url, search_config().search)


def test_a_run_directory_resumes_only_its_own_config_unless_nothing_started(
    tmp_path: Path,
) -> None:
    out = tmp_path / "run"
    cfg = search_config(search={"n_trials": 1})
    search(cfg, out)
    more = search_config(search={"n_trials": 2})  # more trials: the same study, resumed
    assert study_directory(more, out).path == out
    other = search_config(search={"n_trials": 1}, train={"epochs": 2})
    with pytest.raises(FatalError, match=r"another config \(changed: train.epochs\)"):
        study_directory(other, out)
    # a run that failed before its study existed (a bad storage URL) is not a study to keep
    failed = tmp_path / "failed"
    bad = search_config(search={"storage": "sqlite:///:memory:"})
    run = study_directory(bad, failed)
    with pytest.raises(ConfigError, match="in-memory"):
        setup(bad, run)
    assert study_directory(cfg, failed).path == failed


def sampled_params(
    cfg: RunConfig, db: Path, n_trials: int, study: optuna.Study | None = None
) -> list[dict[str, Any]]:
    """Open the study as a run (or a resumed run, or a worker) does and sample parameters."""
    if study is None:
        study = open_study(cfg, make_storage(f"sqlite:///{db}", cfg.search), metric="accuracy")
    study.optimize(
        lambda trial: float(suggest(trial, cfg.search.space, cfg)["train.lr"]), n_trials=n_trials
    )
    return [t.params for t in study.trials[-n_trials:]]


@pytest.mark.parametrize("sampler", ["tpe", "random"])
def test_same_config_and_seed_give_the_same_first_params(tmp_path: Path, sampler: str) -> None:
    cfg = search_config(search={"sampler": sampler})
    first = sampled_params(cfg, tmp_path / "a.db", 4)
    again = sampled_params(cfg, tmp_path / "b.db", 4)
    assert first == again
    other_seed = search_config(seed=1, search={"sampler": sampler})
    assert sampled_params(other_seed, tmp_path / "c.db", 4) != first


@pytest.mark.parametrize("sampler", ["tpe", "random"])
def test_resumed_study_samples_new_params_rather_than_replaying_old_ones(
    tmp_path: Path, sampler: str
) -> None:
    """Re-running the command resumes the study; its new trials must not repeat the
    parameters of the trials it already has (that would spend the budget twice)."""
    cfg = search_config(search={"sampler": sampler})
    db = tmp_path / "study.db"
    before = sampled_params(cfg, db, 3)
    after = sampled_params(cfg, db, 3)  # a second process opening the same study
    repeated = [p for p in after if p in before]
    assert repeated == [], f"the resumed run re-ran {repeated}"


def test_two_workers_on_one_study_sample_different_params(tmp_path: Path) -> None:
    """``tunelab run --jobs 2`` starts two processes that each open the study with the same
    config; they must not evaluate the same parameters."""
    cfg = search_config(search={"sampler": "random"})
    url = f"sqlite:///{tmp_path / 'study.db'}"
    first = open_study(cfg, make_storage(url, cfg.search), metric="accuracy")
    second = open_study(cfg, make_storage(url, cfg.search), metric="accuracy")
    for _ in range(3):
        sampled_params(cfg, tmp_path, 1, study=first)
        sampled_params(cfg, tmp_path, 1, study=second)
    params = [tuple(sorted(t.params.items())) for t in first.get_trials()]
    assert len(params) == 6
    assert len(set(params)) == 6, f"both workers evaluated the same parameters: {params}"


def test_sqlite_storage_uses_the_write_ahead_log(tmp_path: Path) -> None:
    """Every pooled connection, including those opened after the first one, runs in WAL mode
    with NORMAL sync (what halves the per-trial SQLite cost)."""
    cfg = search_config()
    storage = make_storage(f"sqlite:///{tmp_path / 'study.db'}", cfg.search)
    with storage.engine.connect() as first, storage.engine.connect() as second:
        for connection in (first, second):
            mode = connection.exec_driver_sql("PRAGMA journal_mode").scalar()
            sync = connection.exec_driver_sql("PRAGMA synchronous").scalar()
            assert (mode, sync) == ("wal", 1)  # 1 = NORMAL
    assert (tmp_path / "study.db-wal").exists()


def test_kfold_trials_keep_fold_scores_std_and_out_of_fold_predictions(tmp_path: Path) -> None:
    cfg = search_config(
        train={"epochs": 2}, cv={"strategy": "kfold", "folds": 3}, search={"n_trials": 3}
    )
    result = run_study(cfg, out=tmp_path / "run")
    run_dir, study = result.run_dir, result.study
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(complete) == 3
    test_rows = prepare(cfg).split.test
    non_test = np.setdiff1d(np.arange(150), test_rows)
    for trial in complete:
        scores = record(trial)["fold_scores"]
        assert len(scores) == 3
        assert trial.value == pytest.approx(np.mean(scores))
        assert record(trial)["std"] == pytest.approx(np.std(scores, ddof=1))
        oof_file = run_dir / "artifacts" / record(trial)["artifacts"]["oof"]
        with np.load(oof_file) as saved:
            oof = saved["predictions"]
        assert oof.shape == (150, 3)  # every iris row, one probability per class
        assert np.isfinite(oof[non_test]).all(), "every non-test row has a prediction"
        np.testing.assert_allclose(oof[non_test].sum(axis=1), 1.0, rtol=1e-6)
        assert np.isnan(oof[test_rows]).all(), "test rows are never predicted during search"

    board = pd.read_csv(run_dir / "leaderboard.csv")
    assert list(board["state"]) == ["complete"] * 3
    assert list(board["value"]) == sorted(board["value"], reverse=True), "best first"
    assert (board["folds"] == 3).all()
    by_number = {t.number: t for t in complete}
    for _, row in board.iterrows():
        assert row["std"] == pytest.approx(record(by_number[int(row["trial"])])["std"])
    assert int(board["trial"].iloc[0]) == study.best_trial.number
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["best_trial"] == study.best_trial.number
    assert metrics["fold_scores"] == record(study.best_trial)["fold_scores"]

    best = json.loads((run_dir / "best_params.json").read_text())
    assert best == study.best_trial.params
    config = tmp_path / "search.yaml"
    config.write_text(cfg.to_yaml())
    replay = tmp_path / "replay"
    outcome = CliRunner().invoke(
        app,
        [
            "train",
            str(config),
            "--params",
            str(run_dir / "best_params.json"),
            "--out",
            str(replay),
            "--quiet",
        ],
    )
    assert outcome.exit_code == 0, outcome.output
    resolved = yaml.safe_load((replay / "config.yaml").read_text())
    assert resolved["train"]["lr"] == best["train.lr"]
    assert resolved["regularization"]["dropout"] == best["regularization.dropout"]
    assert (replay / "final" / "model.safetensors").is_file()


def test_non_finite_and_invalid_trials_fail_with_a_reason_and_the_study_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = write_nan_model(tmp_path, monkeypatch)
    # each value is valid on its own (a value the field refuses is refused before the
    # study: tests/test_preflight.py); the combination of a classical head with a head
    # that trains its backbone is not
    space = {
        "model.options.poison": {"type": "categorical", "choices": [False, True]},
        "model.head": {"type": "categorical", "choices": ["linear", "logistic"]},
    }
    cfg = search_config(model={"source": model}, search={"n_trials": 1, "space": space})
    study, reason = search(
        cfg,
        tmp_path / "run",
        enqueue=(
            {"model.options.poison": True, "model.head": "linear"},  # NaN outputs
            {"model.options.poison": False, "model.head": "logistic"},  # a bad combination
            {"model.options.poison": False, "model.head": "linear"},
        ),
    )
    assert reason == "n_trials"
    nan_trial, invalid, good = study.trials
    assert nan_trial.state == TrialState.FAIL
    assert "non-finite" in nan_trial.user_attrs["fail_reason"]
    assert invalid.state == TrialState.FAIL
    assert "model.head: 'logistic'" in invalid.user_attrs["fail_reason"]
    assert "linear_probe" in invalid.user_attrs["fail_reason"]
    assert good.state == TrialState.COMPLETE
    assert good.value is not None and 0.0 <= good.value <= 1.0
    board = leaderboard(study)
    assert list(board["state"]) == ["complete", "fail", "fail"]
    assert "non-finite" in board["fail_reason"].iloc[1]


def test_run_stops_after_consecutive_failures_and_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = write_nan_model(tmp_path, monkeypatch)
    config = tmp_path / "nan.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "name": "nan",
                "data": {"source": "sklearn:iris"},
                "model": {"source": model, "options": {"poison": True}},
                "train": {"epochs": 1, "threads": 1, "device": "cpu"},
                "search": {
                    "n_trials": 6,
                    "sampler": "random",
                    "max_consecutive_failures": 2,
                    "space": {"train.lr": LR},
                },
            }
        )
    )
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["run", str(config), "--out", str(out), "--quiet"])
    assert result.exit_code != 0, result.output
    output = " ".join(result.output.split())
    assert "stopped after 2 failed trials in a row" in output
    assert "non-finite" in output
    assert "Traceback" not in result.output
    board = pd.read_csv(out / "leaderboard.csv")
    assert list(board["state"]) == ["fail", "fail"], "the study stopped at the limit"
    assert board["fail_reason"].str.contains("non-finite").all()
    assert not (out / "best_params.json").exists()


def test_keep_top_k_deletes_all_but_the_best_checkpoints(tmp_path: Path) -> None:
    cfg = search_config(search={"n_trials": 4, "keep_top_k": 1})
    study, _ = search(cfg, tmp_path / "run")
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(complete) == 4
    artifacts = tmp_path / "run" / "artifacts"
    # a trial that could not rank in the top k never wrote its fold models at all
    kept = [
        t
        for t in complete
        if "predictors" in record(t)["artifacts"]
        and (artifacts / record(t)["artifacts"]["predictors"]).exists()
    ]
    assert len(kept) == 1
    assert kept[0].value == study.best_value
    assert all(record(t)["std"] is None for t in complete), "one holdout score: no spread"
    for trial in complete:
        for small in ("oof", "history"):
            assert (artifacts / record(trial)["artifacts"][small]).is_file()
    store = TrialArtifacts(artifacts)
    history = store.histories(kept[0])
    assert len(history) == 1 and len(history[0]) == 1  # one fold, one epoch
    # the kept fold models are predictors (a zip of one predictor folder per fold) whose
    # predictions on the validation rows are the stored out-of-fold predictions
    with zipfile.ZipFile(artifacts / record(kept[0])["artifacts"]["predictors"]) as bundle:
        bundle.extractall(tmp_path / "kept")
    predictor = tunelab.load_predictor(tmp_path / "kept" / "fold_0")
    prepared = prepare(cfg)
    rows = prepared.split.validation
    oof = store.oof(kept[0])
    inputs = prepared.raw.inputs.iloc[rows]
    np.testing.assert_allclose(predictor.predict_proba(inputs), oof[rows], rtol=1e-5, atol=1e-7)
    (loaded,) = store.predictors(kept[0])
    np.testing.assert_allclose(loaded.predict_proba(inputs), oof[rows], rtol=1e-5, atol=1e-7)


def test_two_workers_pruning_checkpoints_at_once_never_crash(tmp_path: Path) -> None:
    """With ``--jobs N`` every worker runs the top-k callback after its trials; two of them
    deleting the same old checkpoint must not crash the slower one (it used to end the
    worker with ArtifactNotFound). Threads stand in for the worker processes here, so the
    collision happens within a few rounds instead of by chance."""
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    study = optuna.create_study(direction="maximize", storage=f"sqlite:///{tmp_path / 's.db'}")
    ids = [f"predictors-{i}" for i in range(60)]
    study.add_trials(
        [
            optuna.trial.create_trial(
                value=float(i), user_attrs={"cv": {"artifacts": {"predictors": artifact}}}
            )
            for i, artifact in enumerate(ids)
        ]
    )
    last = study.trials[-1]
    errors: list[BaseException] = []

    def worker(barrier: threading.Barrier) -> None:
        keep = TopCheckpoints(TrialArtifacts(artifacts), 1)  # one per process
        barrier.wait()
        try:
            keep(study, last)
        except Exception as exc:
            errors.append(exc)

    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # interleave the two threads as finely as possible
    try:
        writer = TrialArtifacts(artifacts).store
        for _ in range(20):
            for artifact in ids:
                writer.write(artifact, io.BytesIO(b"checkpoint"))
            barrier = threading.Barrier(2)
            threads = [threading.Thread(target=worker, args=(barrier,)) for _ in range(2)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert errors == [], f"a worker crashed pruning checkpoints: {errors[0]!r}"
            assert sorted(p.name for p in artifacts.iterdir()) == [ids[-1]]
    finally:
        sys.setswitchinterval(switch)


def test_grid_trials_on_a_float_capped_at_one_all_complete(tmp_path: Path) -> None:
    space = {"train.step_gamma": {"type": "float", "low": 0.1, "high": 1.0, "step": 0.3}}
    cfg = search_config(
        train={"schedule": "step"}, search={"sampler": "grid", "n_trials": 4, "space": space}
    )
    study, _ = search(cfg, tmp_path / "run")
    reasons = [t.user_attrs.get("fail_reason") for t in study.trials if t.state == TrialState.FAIL]
    assert reasons == [], reasons
    values = sorted(t.params["train.step_gamma"] for t in study.trials)
    assert values == pytest.approx([0.1, 0.4, 0.7, 1.0])
    assert max(values) <= 1.0


def test_trial_of_a_dead_process_is_retried_even_when_it_was_the_last_one(
    tmp_path: Path,
) -> None:
    """A process killed during the study's last trial leaves it RUNNING; re-running must
    fail it (heartbeat stale) and retry it, not count it as still running."""
    cfg = search_config(search={"n_trials": 2, "heartbeat_interval": 1, "grace_period": 1})
    run = study_directory(cfg, tmp_path / "run")
    prepared, study, artifacts = setup(cfg, run)
    objective = Objective(cfg, prepared, artifacts)
    study.optimize(objective, n_trials=1)
    # the killed process: a trial that started, suggested its parameters, and whose
    # heartbeat then stopped
    storage = make_storage(storage_url(cfg, run.path), cfg.search)
    dead = study.ask()
    dead_params = suggest(dead, cfg.search.space, cfg)
    study_id = storage.get_study_id_from_name(study.study_name)
    storage.record_heartbeat(storage.get_trial_id_from_study_id_trial_number(study_id, dead.number))
    time.sleep(2.5)  # past the grace period

    # the re-run
    _, study, artifacts = setup(cfg, run)
    optimize(study, Objective(cfg, prepared, artifacts), cfg)
    trials = {t.number: t for t in study.get_trials()}
    assert trials[dead.number].state == TrialState.FAIL
    retries = [t for t in trials.values() if t.system_attrs.get("failed_trial") == dead.number]
    assert len(retries) == 1
    assert retries[0].state == TrialState.COMPLETE
    assert retries[0].params == dead_params
    assert finished(study) == 2
    assert "RUNNING" not in states(study)
