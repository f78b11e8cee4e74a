"""How fast do studies go on each storage, with one and two workers on this machine?

Two measurements:

* **Trials per minute**: ``tunelab run --jobs N`` (N = 1, 2) in a fresh process for a fixed
  number of trials (``search.n_trials``), on SQLite (the default), a journal file
  (``search.storage: journal``) and PostgreSQL. Small real trials: a one-layer MLP (16 units)
  on iris for 5 epochs, one torch thread a worker, holdout, random sampler, no pruner, so
  the storage's share of a trial is large. The rate counts finished trials between the
  first trial's start and the last one's end (process start-up and the refit excluded:
  on a busy machine worker start-up alone can take longer than a short search).
* **Storage cost per trial**: in one process, a bare Optuna loop that makes a tunelab
  trial's storage calls and no training (suggest one parameter, report 5 epochs with a
  pruning check each, set the trial's one record, finish), on each storage opened as tunelab
  opens it (``make_storage``: heartbeats included) and on Optuna's in-memory storage. The
  storages alternate, the order rotating each round; the cost is the median time of a
  trial minus in-memory's.

PostgreSQL needs a server: ``--postgres URL`` (or TUNELAB_TEST_POSTGRES_URL, as the tests);
without one its rows are left out. The URL's password goes to tunelab as a
``${TUNELAB_BENCH_DB_PASSWORD}`` reference.

Usage::

    python bench/scaling.py --postgres postgresql://USER:PASSWORD@HOST:PORT/DB
    python bench/scaling.py --run-trials 30 --trials 100      # shorter
    python bench/scaling.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy
import yaml
from optuna.trial import TrialState

from tunelab.config import config_from_dict
from tunelab.results.trial_record import RECORD
from tunelab.search.study import make_storage

PASSWORD_VARIABLE = "TUNELAB_BENCH_DB_PASSWORD"
EPOCHS = 5


@dataclass
class Throughput:
    storage: str
    jobs: int
    finished: int
    seconds: float

    @property
    def per_minute(self) -> float:
        return 60.0 * self.finished / self.seconds if self.seconds > 0 else 0.0


def storages(postgres: str | None) -> dict[str, str | None]:
    """Storage name -> ``search.storage`` value (None: the default SQLite)."""
    chosen: dict[str, str | None] = {"sqlite": None, "journal": "journal"}
    if postgres:
        chosen["postgresql"] = referenced(postgres)
    return chosen


def referenced(url: str) -> str:
    """The URL with its password replaced by a reference (the value goes to the env)."""
    parsed = sqlalchemy.engine.make_url(url)
    if parsed.password:
        os.environ[PASSWORD_VARIABLE] = str(parsed.password)
    port = f":{parsed.port}" if parsed.port else ""
    secret = f":${{{PASSWORD_VARIABLE}}}" if parsed.password else ""
    return f"postgresql://{parsed.username}{secret}@{parsed.host}{port}/{parsed.database}"


def config(name: str, storage: str | None, n_trials: int) -> dict[str, Any]:
    search: dict[str, Any] = {
        "n_trials": n_trials,
        "sampler": "random",
        "pruner": "none",
        "keep_top_k": 3,
        "space": {"train.lr": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True}},
    }
    if storage is not None:
        search["storage"] = storage
    return {
        "name": name,
        "data": {"source": "sklearn:iris"},
        "model": {"source": "builtin:mlp", "width": 16, "depth": 1},
        "train": {"epochs": EPOCHS, "batch_size": 32, "threads": 1, "device": "cpu"},
        "early_stopping": {"enabled": False},
        "search": search,
    }


def open_study(raw: dict[str, Any], run_dir: Path) -> optuna.Study:
    from tunelab.search.study import storage_url

    cfg = config_from_dict(raw)
    storage = make_storage(storage_url(cfg, run_dir), cfg.search)
    return optuna.load_study(study_name=cfg.name, storage=storage)


def measure_throughput(storage: str, value: str | None, jobs: int, n_trials: int) -> Throughput:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        raw = config(f"scaling-{storage}-{jobs}-{uuid.uuid4().hex[:6]}", value, n_trials)
        path = folder / "study.yaml"
        path.write_text(yaml.safe_dump(raw))
        run_dir = folder / "run"
        command = [sys.executable, "-m", "tunelab.cli", "run", str(path), "--out", str(run_dir)]
        done = subprocess.run(
            [*command, "--jobs", str(jobs), "--quiet"],
            capture_output=True,
            text=True,
            check=False,
            timeout=3600,
        )
        if done.returncode != 0:
            raise SystemExit(f"{storage} --jobs {jobs} failed:\n{done.stderr[-3000:]}")
        trials = open_study(raw, run_dir).get_trials(
            deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)
        )
    starts = [t.datetime_start for t in trials if t.datetime_start]
    ends = [t.datetime_complete for t in trials if t.datetime_complete]
    span = (max(ends) - min(starts)).total_seconds() if trials else 0.0
    return Throughput(storage, jobs, len(trials), span)


# --- storage cost per trial ------------------------------------------------------------


def storage_calls(trial: optuna.Trial) -> float:
    """A tunelab trial's storage traffic without the training."""
    lr = trial.suggest_float("train.lr", 1e-3, 1e-1, log=True)
    for epoch in range(1, EPOCHS + 1):
        trial.report(lr * epoch, epoch)
        trial.should_prune()
    trial.set_user_attr(
        RECORD,
        {  # tunelab's one record a trial
            "fold_scores": [lr],
            "std": 0.0,
            "best_epochs": [EPOCHS],
            "oof_metrics": {"accuracy": lr},
            "artifacts": {"oof": "a", "history": "b", "predictor": "c"},
        },
    )
    return lr


def per_trial_seconds(storage: optuna.storages.BaseStorage | None, trials: int) -> float:
    study = optuna.create_study(storage=storage, study_name=f"cost-{uuid.uuid4().hex[:8]}")
    stamps: list[float] = []
    study.optimize(
        storage_calls, n_trials=trials, callbacks=[lambda s, t: stamps.append(time.perf_counter())]
    )
    gaps = [b - a for a, b in pairwise(stamps)]
    return statistics.median(gaps)


def measure_cost(chosen: dict[str, str | None], trials: int, rounds: int) -> dict[str, float]:
    """Storage name -> median seconds a trial (in-memory included)."""
    samples: dict[str, list[float]] = {name: [] for name in ["in-memory", *chosen]}
    names = list(samples)
    with tempfile.TemporaryDirectory() as tmp:
        for index in range(rounds):
            shift = index % len(names)
            for name in names[shift:] + names[:shift]:
                storage = opened(name, chosen, Path(tmp) / f"{name}-{index}")
                samples[name].append(per_trial_seconds(storage, trials))
    return {name: statistics.median(values) for name, values in samples.items()}


def opened(
    name: str, chosen: dict[str, str | None], stem: Path
) -> optuna.storages.BaseStorage | None:
    """A fresh storage of this kind (a new file for SQLite and journal)."""
    if name == "in-memory":
        return None
    cfg = config_from_dict(config("cost", chosen[name], 1)).search
    urls = {"sqlite": f"sqlite:///{stem}.db", "journal": f"journal:{stem}.log"}
    return make_storage(urls.get(name) or str(chosen[name]), cfg)


# --- report ----------------------------------------------------------------------------


def table(rates: list[Throughput], cost: dict[str, float]) -> str:
    lines = [
        "| storage | trials/min, 1 worker | trials/min, 2 workers | 2 vs 1 | "
        "storage ms/trial (in-memory +) |",
        "|---|---|---|---|---|",
    ]
    base = cost["in-memory"]
    for name in [n for n in cost if n != "in-memory"]:
        one = next(r for r in rates if r.storage == name and r.jobs == 1)
        two = next(r for r in rates if r.storage == name and r.jobs == 2)
        ratio = two.per_minute / one.per_minute if one.per_minute else float("nan")
        lines.append(
            f"| {name} | {one.per_minute:.0f} ({one.finished} in {one.seconds:.0f} s) | "
            f"{two.per_minute:.0f} ({two.finished} in {two.seconds:.0f} s) | {ratio:.2f}x | "
            f"{1000 * (cost[name] - base):.1f} ({1000 * cost[name]:.1f} a trial, "
            f"in-memory {1000 * base:.1f}) |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--postgres",
        default=os.environ.get("TUNELAB_TEST_POSTGRES_URL"),
        help="PostgreSQL URL (default: TUNELAB_TEST_POSTGRES_URL)",
    )
    parser.add_argument("--run-trials", type=int, default=60, help="trials per tunelab run")
    parser.add_argument("--trials", type=int, default=200, help="trials per cost sample")
    parser.add_argument("--rounds", type=int, default=3, help="alternating cost rounds")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH")
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    chosen = storages(args.postgres)
    if not args.postgres:
        print("no PostgreSQL URL (--postgres or TUNELAB_TEST_POSTGRES_URL): its rows left out")
    cost = measure_cost(chosen, args.trials, args.rounds)
    print("storage ms a trial:", {name: round(1000 * v, 1) for name, v in cost.items()})
    rates = [
        measure_throughput(name, value, jobs, args.run_trials)
        for jobs in (1, 2)
        for name, value in chosen.items()
    ]
    print(f"{os.cpu_count()} CPUs; {args.run_trials} {EPOCHS}-epoch iris MLP trials a run")
    print(table(rates, cost))
    if args.json:
        args.json.write_text(
            json.dumps({"throughput": [asdict(r) for r in rates], "cost": cost}, indent=2)
        )


if __name__ == "__main__":
    main()
