"""Does combining a study's best trials beat its best trial? Each ensemble method against the
best single trial, on the same study per task, scored once on the held-out test rows.

Four tasks: digits (8x8 images, a small CNN), breast_cancer and wine (tables: an MLP or
gradient-boosted trees, the model family being a searched parameter, so neural and tree
members can meet), and a 1-D signal task made here (three waveforms with random phase,
amplitude, offset and noise; a small 1-D CNN).

Per task one study runs (k-fold, random sampler, seeded) with ``ensemble.keep: single``,
so its refit best trial is the "best single" row. Then every method (mean, weighted, greedy,
stacking) is decided on the study's stored out-of-fold predictions and built from its fold
models exactly as ``tunelab run`` does (forced kept, so each can be measured), and scored
once on the test rows: the metric with a 95% bootstrap interval, the paired bootstrap
interval of its difference from the best single trial, the out-of-fold log loss the choice
was made on, and inference time per 1,000 rows (best of three). Beside them, per task, one
LightGBM and one XGBoost model with the library's defaults (early stopping on the same
rows, up to 1,000 iterations), scored the same way (needs the ``trees`` extra); and the
student ``ensemble.distill`` trains from the greedy ensemble (the best trial's recipe on the
ensemble's predictions; its "out-of-fold" column is its validation score instead).

Usage::

    python bench/ensembles.py            # the full run (about 15-25 minutes on 2 cores)
    python bench/ensembles.py --quick    # a smoke run
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tunelab.config import RunConfig, apply_params, config_from_dict
from tunelab.data import take
from tunelab.ensembles.build import build, decide
from tunelab.ensembles.distill import distill
from tunelab.evaluation.holdout import test_outputs
from tunelab.evaluation.prepare import prepare
from tunelab.flows.study import run_study
from tunelab.flows.train import train
from tunelab.results.artifacts import TrialArtifacts
from tunelab.results.predictor import AnyPredictor, load_predictor
from tunelab.training.metrics import (
    bootstrap_interval,
    compute_metrics,
    paired_bootstrap_difference,
)

METHODS = ("mean", "weighted", "greedy", "stacking")
# the libraries' boosters beside the study (the trees extra)
BOOSTERS = {"LightGBM": "lightgbm:gbdt", "XGBoost": "xgboost:gbtree"}
LR = {"type": "float", "low": 3e-4, "high": 3e-2, "log": True}


def signals(folder: Path, rows: int = 900, length: int = 64, seed: int = 0) -> Path:
    """Three waveforms (sine, square, sawtooth) at random phase, frequency, amplitude and
    offset, with Gaussian noise: a 1-D task where shape, not level, decides the class."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, length)
    labels = rng.integers(0, 3, rows)
    phase = rng.uniform(0, 2 * np.pi, (rows, 1))
    freq = rng.uniform(2.0, 4.0, (rows, 1))
    angle = 2 * np.pi * freq * t + phase
    waves = [np.sin(angle), np.sign(np.sin(angle)), (angle / np.pi) % 2 - 1]
    x = np.choose(labels[:, None], waves) * rng.uniform(0.5, 2.0, (rows, 1))
    x = x + rng.uniform(-1, 1, (rows, 1)) + rng.normal(0, 0.9, x.shape)
    path = folder / "waves.npz"
    np.savez(path, X=x[:, None, :].astype(np.float32), y=labels)
    return path


def tasks(folder: Path, *, quick: bool) -> dict[str, dict[str, Any]]:
    tables = {
        "model.source": {"type": "categorical", "choices": ["builtin:mlp", "sklearn:hgb"]},
        "train.lr": {**LR, "when": {"model.source": "builtin:mlp"}},
        "regularization.dropout": {
            "type": "float", "low": 0.0, "high": 0.4, "when": {"model.source": "builtin:mlp"}
        },
        "model.options.learning_rate": {
            "type": "float", "low": 0.03, "high": 0.3, "log": True,
            "when": {"model.source": "sklearn:hgb"},
        },
    }  # fmt: skip
    neural = {
        "train.lr": LR,
        "regularization.dropout": {"type": "float", "low": 0.0, "high": 0.4},
        "model.width": {"type": "categorical", "choices": [16, 32, 64]},
    }
    epochs = 3 if quick else 20
    return {
        "digits": {
            "data": {"source": "sklearn:digits"},
            "model": {"source": "builtin:cnn2d", "depth": 2},
            "train": {"epochs": epochs},
            "space": neural,
        },
        "breast_cancer": {
            "data": {"source": "sklearn:breast_cancer"},
            "model": {"source": "builtin:mlp", "width": 64},
            "train": {"epochs": 5 if quick else 60},
            "space": tables,
        },
        "wine": {
            "data": {"source": "sklearn:wine"},
            "model": {"source": "builtin:mlp", "width": 64},
            "train": {"epochs": 5 if quick else 60},
            "space": tables,
        },
        "signals": {
            "data": {"source": f"npz:{signals(folder)}", "modality": "signal"},
            "model": {"source": "builtin:cnn1d", "depth": 2},
            "train": {"epochs": epochs},
            "space": neural,
        },
    }


def study_config(name: str, task: dict[str, Any], *, trials: int, folds: int) -> RunConfig:
    return config_from_dict(
        {
            "name": name,
            "seed": 0,
            "data": task["data"],
            "model": task["model"],
            "train": {**task["train"], "threads": 2, "device": "cpu"},
            "early_stopping": {"monitor": "val_loss", "patience": 8},
            "cv": {"strategy": "kfold", "folds": folds},
            "search": {
                "n_trials": trials,
                "sampler": "random",
                "pruner": "none",
                "space": task["space"],
            },
            # the study's own ensemble stage keeps the best single trial (the "best single"
            # row); "greedy" keeps every candidate's fold models for the methods below
            "ensemble": {"method": "greedy", "keep": "single", "size": 5},
        }
    )


def per_thousand(predictor: AnyPredictor, inputs: Any, rows: int) -> float:
    """Milliseconds to predict 1,000 rows (best of three)."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        test_outputs(predictor, inputs)
        best = min(best, time.perf_counter() - started)
    return 1000.0 * best / rows * 1000.0


def measure(name: str, task: dict[str, Any], out: Path, *, trials: int, folds: int) -> list[str]:
    cfg = study_config(name, task, trials=trials, folds=folds)
    started = time.perf_counter()
    result = run_study(cfg, out=out / name)
    study_seconds = time.perf_counter() - started
    prepared = prepare(cfg)
    artifacts = TrialArtifacts(out / name / "artifacts")
    rows = prepared.split.test
    inputs = take(prepared.raw.inputs, rows)
    truth, task_kind, metric = prepared.target.values[rows], prepared.target.task, prepared.metric
    single = load_predictor(out / name)
    single_out = test_outputs(single, inputs)
    lines = []

    def row(
        label: str, predictor: AnyPredictor, outputs: np.ndarray, oof: str, members: str
    ) -> None:
        value = compute_metrics(task_kind, truth, outputs)[metric]
        low, high = bootstrap_interval(task_kind, truth, outputs, metric)
        if predictor is single:
            diff = "—"
        else:
            d, dl, dh = paired_bootstrap_difference(task_kind, truth, outputs, single_out, metric)
            diff = f"{d:+.4f} [{dl:+.4f}, {dh:+.4f}]"
        ms = per_thousand(predictor, inputs, len(rows))
        lines.append(
            f"| {name} | {label} | {members} | {value:.4f} [{low:.4f}, {high:.4f}] | {diff} "
            f"| {oof} | {ms:.1f} |"
        )

    best = result.metrics or {}
    row("best single trial", single, single_out, "—", f"trial {best.get('best_trial')}")
    for method in METHODS:
        forced = apply_params(cfg, {"ensemble.method": method, "ensemble.keep": "ensemble"})
        decision = decide(forced, prepared, result.study, artifacts)
        if decision.choice is None:
            lines.append(f"| {name} | {method} | — | not built: {decision.reason} | | | |")
            continue
        ensemble = build(forced, prepared, result.study, artifacts, decision)
        used = [t for t, w in zip(decision.trials, decision.weights, strict=True) if w > 0]
        members = "all (stacked)" if method == "stacking" else ", ".join(map(str, used))
        oof = f"{decision.score:.4f} vs {decision.best_single_score:.4f}"
        row(method, ensemble, test_outputs(ensemble, inputs), oof, members)
        if method == "greedy" and decision.verdict is not None:
            # the student of ensemble.distill: the best trial's recipe on greedy's predictions
            recipe = apply_params(cfg, best.get("best_params") or {})
            student = distill(
                recipe, prepared, ensemble, teacher_score=decision.verdict.metric.ensemble
            )
            if student.predictor is None:
                lines.append(
                    f"| {name} | student of greedy | — | {student.record['reason']} | | | |"
                )
            else:
                score = f"validation {student.record['student_validation']:.4f}"
                outputs = test_outputs(student.predictor, inputs)
                row("student of greedy", student.predictor, outputs, score, "one model")
    for label, source in BOOSTERS.items():
        # one model of the library's defaults, early stopping on the same folds' rows
        booster_cfg = apply_params(cfg, {"model.source": source, "train.epochs": 1000})
        train(booster_cfg, out=out / f"{name}-{label}")
        booster = load_predictor(out / f"{name}-{label}")
        row(label, booster, test_outputs(booster, inputs), "—", "one model (defaults)")
    print(
        f"[{name}] study {study_seconds:.0f} s, {trials} trials x {folds} folds",
        file=sys.stderr,
        flush=True,
    )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    args = parser.parse_args()
    torch.set_num_threads(2)
    trials, folds = (4, 2) if args.quick else (12, 5)
    header = [
        "| task | predictor | members (trials) | test metric [95% CI] | vs best single "
        "(paired 95% CI) | out-of-fold log loss (ensemble vs best member) | ms / 1,000 rows |",
        "|---|---|---|---|---|---|---|",
    ]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        lines = []
        for name, task in tasks(folder, quick=args.quick).items():
            lines += measure(name, task, folder / "runs", trials=trials, folds=folds)
    print("\n".join(header + lines), flush=True)
    print(f"\n(total {(time.perf_counter() - started) / 60:.1f} min; metric: accuracy)")


if __name__ == "__main__":
    main()
