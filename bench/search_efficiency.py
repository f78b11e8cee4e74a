"""Does pruning make tunelab's search reach a good model sooner?

Three contenders search the same space with the same time budget and seed, through
``tunelab.flows.study.run_study`` (SQLite study in a temporary run directory, holdout
estimate, refit of the best trial and one evaluation on the test rows):

* ``tpe+sha``: TPE with successive halving (``search.pruner: successive_halving``),
* ``tpe``: the same TPE study without pruning (``pruner: none``),
* ``random``: random search without pruning.

The budget is wall-clock time (``search.timeout``), the same for every contender: that is
what a user has, and what pruning buys is more configurations tried in it. (With an equal
number of trials, pruning only finishes the same list sooner and can lose the one good
configuration it cut; an earlier version of this benchmark did that.)

Problems, each a wide space where many configurations are poor, as in a real first search;
the selection metric is the validation **log_loss**, continuous where accuracy on a few
hundred rows is not (on digits most configurations reach the same 1-2 errors, so every
contender "reached the target" with its first trial and the comparison said nothing):

* ``digits``: ``examples/quickstart.yaml`` (pretrained CNN on 8x8 digits, augmentation, early
  stopping), 20 epochs, 60 s; space lr (log 1e-4..1e-1), regularization.dropout (0..0.5),
  regularization.weight_decay (log 1e-6..1e-1), augmentation.rotation (0..20).
* ``tabular``: ``examples/tabular.yaml`` (MLP on breast_cancer, early stopping), 60 epochs,
  12 s; space lr (log 1e-5..1e-1), regularization.dropout (0..0.5),
  regularization.weight_decay (log 1e-6..1e-1).

A hook ``(study, frozen_trial)`` timestamps every finished trial, so each contender has a
best-so-far curve over wall-clock time (measured from the call of ``run_study``: data
preparation and study creation count for everyone). The target of a (problem, seed) is, by
default, the median of the three contenders' final best validation values (so at least two
contenders reach it); ``--target digits=0.01`` fixes it instead. Time to target is the
time of the first finished trial whose best-so-far value reaches the target.

The headline number is time-to-target(tpe+sha) / time-to-target(tpe), target <= 0.5, in
wall-clock time and in process CPU time (which other processes on a busy machine disturb
less). The summary also gives the epochs trained (compute) ratio and, at equal cost, each
contender's best value after as much CPU time as tpe+sha used.

``--sha-min-fraction F`` / ``--sha-reduction-factor R`` replace tunelab's successive halving
(first rung after 0.1 x epochs, reduction factor 3) in this process, to try a change before
making it in src; ``--sha-min-fraction 0 --sha-reduction-factor 4`` is Optuna's default
(``min_resource='auto'``, i.e. 1 epoch for runs under 200 epochs).

Every trial trains with one torch thread (``train.threads: 1``); the contenders run in
one process one after the other, the order rotated per seed, so compare them within a
run (ratios), not across machines.

Usage::

    python bench/search_efficiency.py               # full run, 3 seeds (about 12 minutes)
    python bench/search_efficiency.py --quick       # smoke run (a minute)
    python bench/search_efficiency.py --seeds 0 --json out.json
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import platform
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import optuna
import torch
import yaml
from optuna.trial import FrozenTrial, TrialState

import tunelab
from tunelab import registry
from tunelab.config import RunConfig, config_from_dict
from tunelab.flows.study import run_study
from tunelab.observer import Observer
from tunelab.search import study as study_module

ROOT = Path(__file__).resolve().parents[1]
TARGET_RATIO = 0.5
MAX_TRIALS = 10_000  # the budget is time; this only bounds it
TUNELAB_SHA = study_module.successive_halving_pruner


@dataclass(frozen=True)
class Problem:
    name: str
    config: Path
    epochs: int
    seconds: float  # the search budget of every contender (search.timeout)
    space: dict[str, dict[str, Any]]
    overrides: dict[str, Any] = field(default_factory=dict)


PROBLEMS = (
    Problem(
        name="digits",
        config=ROOT / "examples" / "quickstart.yaml",
        epochs=20,
        seconds=60,
        space={
            "train.lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
            "regularization.dropout": {"type": "float", "low": 0.0, "high": 0.5},
            "regularization.weight_decay": {
                "type": "float",
                "low": 1e-6,
                "high": 1e-1,
                "log": True,
            },
            "augmentation.rotation": {"type": "float", "low": 0.0, "high": 20.0},
        },
        overrides={"train.metric": "log_loss"},
    ),
    Problem(
        name="tabular",
        config=ROOT / "examples" / "tabular.yaml",
        epochs=60,
        seconds=12,
        space={
            "train.lr": {"type": "float", "low": 1e-5, "high": 1e-1, "log": True},
            "regularization.dropout": {"type": "float", "low": 0.0, "high": 0.5},
            "regularization.weight_decay": {
                "type": "float",
                "low": 1e-6,
                "high": 1e-1,
                "log": True,
            },
        },
        overrides={"train.metric": "log_loss"},
    ),
)

# name -> (sampler, pruner)
CONTENDERS: dict[str, tuple[str, str]] = {
    "tpe+sha": ("tpe", "successive_halving"),
    "tpe": ("tpe", "none"),
    "random": ("random", "none"),
}


class Watch(Observer):
    """Counts each trial's epochs and records each trial as it ends."""

    def __init__(self, on_epoch: Any, on_trial: Any) -> None:
        self.on_epoch, self.on_trial = on_epoch, on_trial

    def trial_epoch(self, number: int, fold: int, folds: int, record: dict[str, Any]) -> None:
        self.on_epoch(number, fold, folds, record)

    def trial_ended(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.on_trial(study, trial)


def _set(raw: dict[str, Any], dotted: str, value: Any) -> None:
    node = raw
    *parents, leaf = dotted.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value


def build_config(
    problem: Problem,
    contender: str,
    seed: int,
    *,
    epochs: int,
    seconds: float,
    n_trials: int = MAX_TRIALS,
) -> RunConfig:
    """The problem's example config with the benchmark's settings and the contender's search."""
    raw = yaml.safe_load(problem.config.read_text(encoding="utf-8"))
    source = str(raw["model"]["source"])
    if source.startswith("file:") and not Path(source[5:]).is_absolute():
        raw["model"]["source"] = f"file:{ROOT / source[5:]}"  # runnable from any directory
    sampler, pruner = CONTENDERS[contender]
    settings: dict[str, Any] = {
        "name": f"{problem.name}-{contender.replace('+', '-')}-s{seed}",
        "seed": seed,
        "train.epochs": epochs,
        "train.threads": 1,
        "train.device": "cpu",
        "cv.strategy": "holdout",
        "search.sampler": sampler,
        "search.pruner": pruner,
        "search.n_trials": n_trials,
        "search.timeout": seconds,
        **problem.overrides,
    }
    for dotted, value in settings.items():
        _set(raw, dotted, value)
    raw["search"]["space"] = problem.space
    return config_from_dict(raw, source=f"{problem.config.name} (benchmark)")


@dataclass
class TrialEvent:
    seconds: float  # since run_study was called
    cpu_seconds: float  # process CPU time since then (less sensitive to a busy machine)
    number: int
    state: str
    value: float | None
    epochs: int  # epochs trained (counted by run_study's on_epoch hook)


@dataclass
class Run:
    problem: str
    contender: str
    seed: int
    metric: str
    maximize: bool
    events: list[TrialEvent]
    search_seconds: float  # until the last trial finished
    total_seconds: float  # run_study's return, refit and test evaluation included
    complete: int
    pruned: int
    failed: int
    epochs_trained: int
    best_value: float | None
    best_params: dict[str, Any]
    test: dict[str, float]
    target: float = math.nan
    time_to_target: float | None = None
    cpu_to_target: float | None = None

    def best_by_cpu(self, cpu_seconds: float) -> float | None:
        """The best complete value among trials finished within ``cpu_seconds`` of CPU time."""
        values = [
            e.value
            for e in self.events
            if e.state == "COMPLETE" and e.value is not None and e.cpu_seconds <= cpu_seconds + 1e-9
        ]
        if not values:
            return None
        return max(values) if self.maximize else min(values)

    def reach(self, target: float) -> TrialEvent | None:
        """The first finished trial after which the best complete value reaches ``target``."""
        best: float | None = None
        for event in self.events:
            if (
                event.state == "COMPLETE"
                and event.value is not None
                and (best is None or (event.value > best if self.maximize else event.value < best))
            ):
                best = event.value
            if best is not None and (
                (best >= target - 1e-12) if self.maximize else (best <= target + 1e-12)
            ):
                return event
        return None


def _drop_file_handlers() -> None:
    """run_study adds a FileHandler per run directory to the tunelab and optuna loggers and
    never removes it; close them so that many runs in one process do not pile them up."""
    for name in ("tunelab", "optuna"):
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            if isinstance(handler, logging.FileHandler):
                logger.removeHandler(handler)
                handler.close()


def sha_pruner(min_fraction: float | None, reduction_factor: int | None) -> None:
    """Replace tunelab's ``successive_halving`` pruner for this process (to try a change
    before making it in src); ``None`` for both restores tunelab's own. ``min_fraction`` 0
    means Optuna's ``min_resource='auto'``."""
    if min_fraction is None and reduction_factor is None:
        registry.PRUNERS._items["successive_halving"] = TUNELAB_SHA
        return

    def factory(cfg: RunConfig) -> optuna.pruners.BasePruner:
        fraction = 0.1 if min_fraction is None else min_fraction
        min_resource: int | str = (
            "auto" if fraction == 0 else max(1, round(fraction * cfg.train.epochs))
        )
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=min_resource, reduction_factor=reduction_factor or 3
        )

    registry.PRUNERS._items["successive_halving"] = factory  # this process only


def run_one(
    problem: Problem,
    contender: str,
    seed: int,
    *,
    epochs: int,
    seconds: float,
    n_trials: int = MAX_TRIALS,
) -> Run:
    cfg = build_config(problem, contender, seed, epochs=epochs, seconds=seconds, n_trials=n_trials)
    events: list[TrialEvent] = []
    started, cpu_started = time.perf_counter(), time.process_time()

    epochs_run: dict[int, int] = {}

    def count(number: int, fold: int, folds: int, record: dict[str, Any]) -> None:
        epochs_run[number] = epochs_run.get(number, 0) + 1

    def hook(study: optuna.Study, trial: FrozenTrial) -> None:
        events.append(
            TrialEvent(
                seconds=time.perf_counter() - started,
                cpu_seconds=time.process_time() - cpu_started,
                number=trial.number,
                state=trial.state.name,
                value=trial.value if trial.state == TrialState.COMPLETE else None,
                epochs=epochs_run.get(trial.number, 0),
            )
        )

    with tempfile.TemporaryDirectory(prefix="tunelab-bench-") as tmp:
        try:
            watch = Watch(count, hook)
            result = run_study(cfg, out=Path(tmp) / "run", observer=watch)
        finally:
            _drop_file_handlers()
        total = time.perf_counter() - started
    study = result.study
    trials = study.get_trials(deepcopy=False)
    metric = str(study.user_attrs.get("metric"))
    metrics = result.metrics or {}
    test = {
        k: float(v)
        for k, v in metrics.get("test", {}).items()
        if k in (metric, "accuracy", "roc_auc", "log_loss")
    }
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    return Run(
        problem=problem.name,
        contender=contender,
        seed=seed,
        metric=metric,
        maximize=study.direction == optuna.study.StudyDirection.MAXIMIZE,
        events=events,
        search_seconds=events[-1].seconds if events else math.nan,
        total_seconds=total,
        complete=len(complete),
        pruned=sum(t.state == TrialState.PRUNED for t in trials),
        failed=sum(t.state == TrialState.FAIL for t in trials),
        epochs_trained=sum(epochs_run.values()),
        best_value=study.best_value if complete else None,
        best_params=study.best_params if complete else {},
        test=test,
    )


def assign_targets(runs: list[Run], fixed: dict[str, float]) -> None:
    """Per (problem, seed): a fixed target, or the median of the contenders' final bests."""
    groups: dict[tuple[str, int], list[Run]] = {}
    for run in runs:
        groups.setdefault((run.problem, run.seed), []).append(run)
    for (problem, _), group in groups.items():
        finals = [r.best_value for r in group if r.best_value is not None]
        target = fixed.get(problem, statistics.median(finals) if finals else math.nan)
        for run in group:
            run.target = target
            event = run.reach(target) if math.isfinite(target) else None
            run.time_to_target = event.seconds if event else None
            run.cpu_to_target = event.cpu_seconds if event else None


def _fmt(value: float | None, digits: int = 4) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _seconds(value: float | None) -> str:
    return "not reached" if value is None else f"{value:.1f}"


def runs_table(runs: list[Run]) -> str:
    metric = runs[0].metric
    other = "log_loss" if metric == "accuracy" else "accuracy"
    lines = [
        f"| contender | trials complete/pruned/failed | epochs trained | search s | total s "
        f"| time to target s | CPU s to target | best val {metric} | test {metric} "
        f"| test {other} |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        lines.append(
            f"| {r.contender} | {r.complete}/{r.pruned}/{r.failed} | {r.epochs_trained} "
            f"| {r.search_seconds:.1f} | {r.total_seconds:.1f} | {_seconds(r.time_to_target)} "
            f"| {_seconds(r.cpu_to_target)} "
            f"| {_fmt(r.best_value)} | {_fmt(r.test.get(metric))} "
            f"| {_fmt(r.test.get(other))} |"
        )
    return "\n".join(lines)


def ratio(runs: list[Run], num: str, den: str) -> tuple[float | None, str]:
    """time-to-target(num) / time-to-target(den), with a reading when one is missing."""
    a = next(r for r in runs if r.contender == num)
    b = next(r for r in runs if r.contender == den)
    if a.time_to_target is None:
        return None, f"{num} never reached the target"
    if b.time_to_target is None:
        # den never got there within its whole search: the ratio is at most this
        return a.time_to_target / b.search_seconds, f"< {a.time_to_target / b.search_seconds:.2f}"
    value = a.time_to_target / b.time_to_target
    return value, f"{value:.2f}"


def summary_table(groups: dict[tuple[str, int], list[Run]]) -> tuple[str, list[dict[str, Any]]]:
    lines = [
        "| problem | seed | target | ttt tpe+sha s | ttt tpe s | ttt random s "
        "| sha/tpe | sha/tpe CPU | sha/random | sha/tpe epochs trained "
        "| best at sha's end (CPU s): sha / tpe / random | meets <= 0.5 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|:---:|",
    ]
    rows: list[dict[str, Any]] = []
    for (problem, seed), runs in groups.items():
        by = {r.contender: r for r in runs}
        value, text = ratio(runs, "tpe+sha", "tpe")
        _, text_random = ratio(runs, "tpe+sha", "random")
        compute = by["tpe+sha"].epochs_trained / max(by["tpe"].epochs_trained, 1)
        a, b = by["tpe+sha"].cpu_to_target, by["tpe"].cpu_to_target
        cpu = f"{a / b:.2f}" if a is not None and b is not None else "-"
        meets = value is not None and value <= TARGET_RATIO
        sign = ">= " if by["tpe+sha"].maximize else "<= "
        sha_end = by["tpe+sha"].events[-1].cpu_seconds if by["tpe+sha"].events else math.nan
        equal = {name: by[name].best_by_cpu(sha_end) for name in ("tpe+sha", "tpe", "random")}
        equal_text = " / ".join(_fmt(v) for v in equal.values())
        lines.append(
            f"| {problem} | {seed} | {sign}{_fmt(runs[0].target)} "
            f"| {_seconds(by['tpe+sha'].time_to_target)} | {_seconds(by['tpe'].time_to_target)} "
            f"| {_seconds(by['random'].time_to_target)} | {text} | {cpu} | {text_random} "
            f"| {compute:.2f} | {sha_end:.0f}: {equal_text} | {'yes' if meets else 'no'} |"
        )
        rows.append(
            {
                "problem": problem,
                "seed": seed,
                "target": runs[0].target,
                "ratio_sha_tpe": value,
                "ratio_text": text,
                "cpu_ratio_sha_tpe": cpu,
                "ratio_sha_random": text_random,
                "compute_ratio": compute,
                "meets": meets,
                "sha_end_cpu_seconds": sha_end,
                "best_at_sha_end": equal,
            }
        )
    return "\n".join(lines), rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=[0, 1, 2],
        help="seeds (sampler, split and training); default 0 1 2",
    )
    parser.add_argument(
        "--problems",
        nargs="+",
        choices=[p.name for p in PROBLEMS],
        default=[p.name for p in PROBLEMS],
    )
    parser.add_argument(
        "--budget-scale",
        type=float,
        default=1.0,
        metavar="F",
        help="multiply every problem's time budget by F (default 1)",
    )
    parser.add_argument(
        "--target",
        action="append",
        default=[],
        metavar="PROBLEM=VALUE",
        help="a fixed target instead of the median of the final bests",
    )
    parser.add_argument(
        "--sha-min-fraction",
        type=float,
        default=None,
        metavar="F",
        help="try another successive halving: min_resource = F x epochs, "
        "0 for Optuna's 'auto' (default: tunelab's own, 0.1)",
    )
    parser.add_argument(
        "--sha-reduction-factor",
        type=int,
        default=None,
        metavar="R",
        help="try another successive halving: reduction_factor R (default 3)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 1 seed, 3 s budgets, 3 epochs"
    )
    parser.add_argument(
        "--json", type=Path, default=None, metavar="PATH", help="also write the results as JSON"
    )
    args = parser.parse_args(argv)
    fixed: dict[str, float] = {}
    for item in args.target:
        name, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--target {item!r}: expected PROBLEM=VALUE")
        fixed[name] = float(value)
    seeds = args.seeds[:1] if args.quick else args.seeds

    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sha_pruner(args.sha_min_fraction, args.sha_reduction_factor)
    if args.sha_min_fraction is not None or args.sha_reduction_factor is not None:
        fraction = 0.1 if args.sha_min_fraction is None else args.sha_min_fraction
        minimum = "'auto'" if fraction == 0 else f"{fraction} x epochs"
        print(
            f"tpe+sha uses SuccessiveHalvingPruner(min_resource={minimum}, reduction_factor="
            f"{args.sha_reduction_factor or 3}) instead of tunelab's own",
            flush=True,
        )
    problems = [p for p in PROBLEMS if p.name in args.problems]
    names = list(CONTENDERS)
    runs: list[Run] = []
    started = time.perf_counter()
    for problem in problems:  # warm-up: imports, data loading, first torch calls
        run_one(problem, "tpe", seeds[0], epochs=1, seconds=60, n_trials=1)
    print(f"[{time.perf_counter() - started:7.1f}s] warm-up done", flush=True)
    for i, seed in enumerate(seeds):
        for problem in problems:
            epochs = 3 if args.quick else problem.epochs
            seconds = 3.0 if args.quick else problem.seconds * args.budget_scale
            order = names[i % len(names) :] + names[: i % len(names)]  # rotate per seed
            for contender in order:
                run = run_one(problem, contender, seed, epochs=epochs, seconds=seconds)
                runs.append(run)
                print(
                    f"[{time.perf_counter() - started:7.1f}s] {problem.name} seed {seed} "
                    f"{contender:8s} trials {run.complete}/{run.pruned}/{run.failed} "
                    f"search {run.search_seconds:6.1f}s best {_fmt(run.best_value)} "
                    f"test {_fmt(run.test.get(run.metric))}",
                    flush=True,
                )

    assign_targets(runs, fixed)
    groups: dict[tuple[str, int], list[Run]] = {}
    for run in runs:
        groups.setdefault((run.problem, run.seed), []).append(run)
    for group in groups.values():
        group.sort(key=lambda r: names.index(r.contender))

    print()
    for (name, seed), group in groups.items():
        how = "fixed" if name in fixed else "median of the final bests"
        direction = ">=" if group[0].maximize else "<="
        print(
            f"### {name}, seed {seed}: target {group[0].metric} {direction} "
            f"{_fmt(group[0].target)} ({how})"
        )
        print()
        print(runs_table(group))
        print()
    table, rows = summary_table(groups)
    print("### time to target, tpe+sha vs no pruning")
    print()
    print(table)
    print()
    found = [r["ratio_sha_tpe"] for r in rows if r["ratio_sha_tpe"] is not None]
    if found and all(v > 0 for v in found):
        geo = math.exp(statistics.fmean(math.log(v) for v in found))
        print(
            f"Geometric mean of time-to-target(tpe+sha)/time-to-target(tpe): {geo:.2f} "
            f"over {len(found)} of {len(rows)} (problem, seed) pairs; target <= {TARGET_RATIO}."
        )
    missed = [f"{r['problem']} seed {r['seed']}" for r in rows if not r["meets"]]
    print("All pairs meet the target." if not missed else "Target missed: " + "; ".join(missed))
    print(
        f"(wall time {time.perf_counter() - started:.0f}s; torch {torch.__version__}, "
        f"optuna {optuna.__version__}, 1 torch thread)"
    )
    if args.json is not None:
        payload = {
            "target_ratio": TARGET_RATIO,
            "fixed_targets": fixed,
            "sha_min_fraction": args.sha_min_fraction,
            "sha_reduction_factor": args.sha_reduction_factor,
            "torch": torch.__version__,
            "optuna": optuna.__version__,
            "tunelab": str(Path(tunelab.__file__).parent),
            "python": platform.python_version(),
            "summary": rows,
            "runs": [asdict(r) for r in runs],
        }
        args.json.write_text(json.dumps(payload, indent=2), encoding="utf-8")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
