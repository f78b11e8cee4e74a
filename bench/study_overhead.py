"""What does a tunelab study cost per trial, over a bare Optuna loop that trains the same way?

Per-trial time. The contenders run the same trials in one process, alternating (the order
rotates every round):

* ``tunelab``: ``tunelab.flows.study.run_study`` in-process: SQLite study with heartbeats in a
  temporary run directory, holdout estimate, ``pruner: none``, TPE; each trial reports every
  epoch, predicts its validation rows (out-of-fold predictions), stores its predictor,
  predictions and history as Optuna artifacts, and the study keeps the top-k checkpoints.
* ``optuna``: ``optuna.create_study`` in memory (TPE with the same seed, no pruner) and an
  objective that suggests the same parameters and calls
  ``tunelab.evaluation.fitting.fit_on_rows(apply_params(cfg, params), prepared,
  split.train, split.validation)``, returning the selection metric of the kept weights.
* ``optuna+sqlite``: the same bare objective on a SQLite study opened exactly as tunelab
  opens its own (``tunelab.search.study.make_storage``, heartbeats included): it separates
  the cost of persistent storage from the work tunelab itself adds per trial.

Two trial sizes, each contender training the same model with one torch thread, so the
studies suggest the same parameters and get the same values (the ``same values`` column
checks it):

* ``tiny``: a one-layer MLP (16 units) on iris for 3 epochs, trials of a few hundredths of a
  second: what is left is tunelab's fixed cost per trial, in milliseconds;
* ``digits``: the quickstart's model and recipe (pretrained CNN, augmentation, batch norm)
  on digits for 10 epochs (a third of the quickstart's budget), trials of about a second:
  the relative overhead a user sees on a short real trial.

A trial's time is the gap between consecutive trial-finished callbacks (suggestion,
training, storage and every callback included); the first trial of each study is dropped
(it also holds data loading and study creation; tunelab's refit after the search is not
counted). The overhead is median(tunelab) / median(optuna) - 1 per trial, target <= 3%, in
wall-clock time and in process CPU time (which a busy machine disturbs less). A breakdown
says where tunelab's extra time goes.

Peak memory. Fresh subprocesses run tunelab studies of 20 and of 200 one-epoch trials (same
tiny model and data) and report peak RSS (``ru_maxrss``) at the end; other subprocesses do
the same under ``tracemalloc`` for the Python heap. Growth 20 -> 200 trials, target <= 10%.
The 200-trial run also shows whether the per-trial time grows with the number of trials.

Usage::

    python bench/study_overhead.py              # full run (both sizes, memory 20 vs 200)
    python bench/study_overhead.py --problems digits --skip-memory
    python bench/study_overhead.py --quick      # smoke run
    python bench/study_overhead.py --json out.json
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import optuna
import torch
import yaml
from optuna.trial import FrozenTrial

import tunelab
import tunelab.evaluation.crossval as crossval_module
import tunelab.search.objective as objective_module
from tunelab.config import RunConfig, apply_params, config_from_dict
from tunelab.evaluation.fitting import fit_on_rows
from tunelab.evaluation.prepare import Prepared, prepare
from tunelab.flows.study import run_study
from tunelab.observer import Observer
from tunelab.search.optimize import FailureGuard, TopCheckpoints
from tunelab.search.study import make_storage


class OnTrialEnded(Observer):
    """Calls a function as each trial ends (where the timings are taken)."""

    def __init__(self, then: Callable[[optuna.Study, FrozenTrial], None]) -> None:
        self.then = then

    def trial_ended(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.then(study, trial)


CONTENDERS = {
    "optuna": "bare Optuna, in-memory study",
    "optuna+sqlite": "bare Optuna objective, SQLite storage opened as tunelab opens it",
    "tunelab": "tunelab run_study",
}
TARGET_OVERHEAD = 0.03  # issue 11: <= 3% on ~1-s trials; fixed cost <= 10 ms
TARGET_GROWTH = 0.10
SEED = 0
ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Problem:
    """A trial size: what each trial trains, and the two parameters searched."""

    name: str
    what: str
    epochs: int  # per trial
    trials: int  # per study
    rounds: int
    lr: tuple[float, float]
    dropout: tuple[float, float]


PROBLEMS = {
    "tiny": Problem(
        "tiny",
        "iris, MLP 16x1 (the fixed cost per trial, in ms)",
        epochs=3,
        trials=30,
        rounds=5,
        lr=(1e-3, 1e-1),
        dropout=(0.0, 0.5),
    ),
    "digits": Problem(
        "digits",
        "the quickstart: digits, pretrained CNN 32x3, augmentation, batch norm",
        epochs=10,
        trials=8,
        rounds=3,
        lr=(1e-3, 1e-2),
        dropout=(0.0, 0.4),
    ),
}


def make_config(problem: Problem, *, epochs: int, n_trials: int) -> RunConfig:
    """The problem's model and data, one thread, holdout, TPE, no pruner."""
    if problem.name == "digits":
        raw = yaml.safe_load((ROOT / "examples" / "quickstart.yaml").read_text("utf-8"))
        raw["model"]["source"] = f"file:{ROOT / raw['model']['source'][5:]}"
    else:
        raw = {
            "data": {"source": "sklearn:iris"},
            "model": {"source": "builtin:mlp", "width": 16, "depth": 1},
            "train": {"batch_size": 32},
        }
    raw["name"] = f"study-overhead-{problem.name}"
    raw["seed"] = SEED
    raw["train"].update({"epochs": epochs, "threads": 1, "device": "cpu"})
    raw["cv"] = {"strategy": "holdout"}
    raw["search"] = {
        "n_trials": n_trials,
        "sampler": "tpe",
        "pruner": "none",
        "space": {
            "train.lr": {"type": "float", "low": problem.lr[0], "high": problem.lr[1], "log": True},
            "regularization.dropout": {
                "type": "float",
                "low": problem.dropout[0],
                "high": problem.dropout[1],
            },
        },
    }
    return config_from_dict(raw, source=f"study_overhead {problem.name}")


# --- where the time goes: wrappers that add up the seconds of a few functions --------------

SPENT: dict[str, float] = defaultdict(float)


def _timed(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return func(*args, **kwargs)
        finally:
            SPENT[name] += time.perf_counter() - started

    return wrapper


@contextmanager
def breakdown() -> Iterator[None]:
    """Time tunelab's per-trial parts (the wrappers cost about a microsecond a call)."""
    patches: list[tuple[Any, str, Any]] = [
        (crossval_module, "fit_on_rows", "train (fit_on_rows, epoch reports included)"),
        (optuna.trial.Trial, "report", "trial.report per epoch"),
        (optuna.trial.Trial, "should_prune", "trial.should_prune per epoch"),
        (crossval_module, "_predictions", "validation predictions (oof)"),
        (objective_module, "oof_metrics", "out-of-fold metrics"),
        (objective_module.Objective, "_store", "artifacts (fold models zip, oof, history)"),
        (TopCheckpoints, "__call__", "TopCheckpoints callback"),
        (FailureGuard, "__call__", "FailureGuard callback"),
    ]
    saved = [(owner, attr, getattr(owner, attr)) for owner, attr, _ in patches]
    for owner, attr, name in patches:
        setattr(owner, attr, _timed(name, getattr(owner, attr)))
    try:
        yield
    finally:
        for owner, attr, original in saved:
            setattr(owner, attr, original)


# --- the contenders --------------------------------------------------------------------------


@dataclass
class StudyTiming:
    wall: list[float]  # per trial, first trial dropped
    cpu: list[float]
    values: list[float]


def _gaps(stamps: list[tuple[float, float]]) -> tuple[list[float], list[float]]:
    wall = [b[0] - a[0] for a, b in pairwise(stamps)]
    cpu = [b[1] - a[1] for a, b in pairwise(stamps)]
    return wall, cpu


def run_tunelab(cfg: RunConfig, workdir: Path) -> StudyTiming:
    stamps: list[tuple[float, float]] = []
    values: list[float] = []

    def hook(study: optuna.Study, trial: FrozenTrial) -> None:
        stamps.append((time.perf_counter(), time.process_time()))
        values.append(float(trial.value) if trial.value is not None else math.nan)

    out = Path(tempfile.mkdtemp(prefix="tunelab-", dir=workdir))
    run_study(cfg, out=out, observer=OnTrialEnded(hook))  # its log handler is removed when it ends
    wall, cpu = _gaps(stamps)
    return StudyTiming(wall, cpu, values)


def run_optuna(
    cfg: RunConfig, problem: Problem, prepared: Prepared, storage_dir: Path | None = None
) -> StudyTiming:
    """The bare loop: same sampler and seed, same training call; the study in memory, or,
    with ``storage_dir``, in SQLite opened exactly as tunelab opens it (heartbeats too)."""
    split, metric = prepared.split, prepared.metric
    storage = None
    if storage_dir is not None:
        path = Path(tempfile.mkdtemp(prefix="optuna-", dir=storage_dir)) / "study.db"
        storage = make_storage(f"sqlite:///{path}", cfg.search)
    study = optuna.create_study(
        storage=storage,
        direction="maximize",  # accuracy
        sampler=optuna.samplers.TPESampler(seed=cfg.seed),
        pruner=optuna.pruners.NopPruner(),
    )

    def objective(trial: optuna.Trial) -> float:
        params = {
            "train.lr": trial.suggest_float("train.lr", *problem.lr, log=True),
            "regularization.dropout": trial.suggest_float(
                "regularization.dropout", *problem.dropout
            ),
        }
        fitted = fit_on_rows(apply_params(cfg, params), prepared, split.train, split.validation)
        return float(fitted.result.final[metric])

    stamps: list[tuple[float, float]] = []

    def callback(study: optuna.Study, trial: FrozenTrial) -> None:
        stamps.append((time.perf_counter(), time.process_time()))

    study.optimize(objective, n_trials=cfg.search.n_trials, callbacks=[callback])
    values = [float(t.value) if t.value is not None else math.nan for t in study.trials]
    wall, cpu = _gaps(stamps)
    return StudyTiming(wall, cpu, values)


@dataclass
class Overhead:
    problem: str
    trials: int
    rounds: int
    epochs: int
    wall: dict[str, list[float]] = field(default_factory=dict)
    cpu: dict[str, list[float]] = field(default_factory=dict)
    median_wall: dict[str, float] = field(default_factory=dict)
    median_cpu: dict[str, float] = field(default_factory=dict)
    overhead_wall: float = math.nan
    overhead_cpu: float = math.nan
    round_overheads_wall: list[float] = field(default_factory=list)
    round_overheads_cpu: list[float] = field(default_factory=list)
    same_values: bool = False
    breakdown_ms: dict[str, float] = field(default_factory=dict)


def measure_overhead(problem: Problem, *, trials: int, rounds: int, epochs: int) -> Overhead:
    cfg = make_config(problem, epochs=epochs, n_trials=trials)
    prepared = prepare(cfg)
    names = list(CONTENDERS)
    wall: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    rounds_wall: list[float] = []
    rounds_cpu: list[float] = []
    same = True
    with tempfile.TemporaryDirectory(prefix="tunelab-bench-") as tmp:
        warm = make_config(problem, epochs=1, n_trials=2)  # warm-up: imports, first torch calls
        workdir = Path(tmp)

        def run(name: str, config: RunConfig) -> StudyTiming:
            if name == "tunelab":
                return run_tunelab(config, workdir)
            return run_optuna(
                config, problem, prepared, workdir if name == "optuna+sqlite" else None
            )

        for name in names:
            run(name, warm)
        SPENT.clear()
        with breakdown():
            for r in range(rounds):
                got: dict[str, StudyTiming] = {}
                for name in names[r % len(names) :] + names[: r % len(names)]:  # rotate
                    got[name] = run(name, cfg)
                    wall[name] += got[name].wall
                    cpu[name] += got[name].cpu
                same = same and all(t.values == got["optuna"].values for t in got.values())
                rounds_wall.append(
                    statistics.median(got["tunelab"].wall) / statistics.median(got["optuna"].wall)
                    - 1
                )
                rounds_cpu.append(
                    statistics.median(got["tunelab"].cpu) / statistics.median(got["optuna"].cpu) - 1
                )
                print(
                    f"round {r + 1}/{rounds}: overhead wall {rounds_wall[-1]:+.1%}, "
                    f"CPU {rounds_cpu[-1]:+.1%}",
                    flush=True,
                )
    counted = rounds * trials  # trials whose parts were timed (the first ones included)
    parts = {name: 1e3 * seconds / counted for name, seconds in SPENT.items()}
    median_wall = {n: statistics.median(v) for n, v in wall.items()}
    median_cpu = {n: statistics.median(v) for n, v in cpu.items()}
    return Overhead(
        problem=problem.name,
        trials=trials,
        rounds=rounds,
        epochs=epochs,
        wall=wall,
        cpu=cpu,
        median_wall=median_wall,
        median_cpu=median_cpu,
        overhead_wall=median_wall["tunelab"] / median_wall["optuna"] - 1,
        overhead_cpu=median_cpu["tunelab"] / median_cpu["optuna"] - 1,
        round_overheads_wall=rounds_wall,
        round_overheads_cpu=rounds_cpu,
        same_values=same,
        breakdown_ms=parts,
    )


def overhead_tables(o: Overhead) -> str:
    base_w, base_c = o.median_wall["optuna"], o.median_cpu["optuna"]
    lines = [
        "| contender | trials timed | median s/trial (wall) | vs optuna (wall) "
        "| median s/trial (CPU) | vs optuna (CPU) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, what in CONTENDERS.items():
        w, c = o.median_wall[name], o.median_cpu[name]
        lines.append(
            f"| {name} ({what}) | {len(o.wall[name])} | {w:.4f} | {w / base_w - 1:+.1%} "
            f"| {c:.4f} | {c / base_c - 1:+.1%} |"
        )
    flag_w = "" if o.overhead_wall <= TARGET_OVERHEAD else " **above**"
    flag_c = "" if o.overhead_cpu <= TARGET_OVERHEAD else " **above**"
    same = "yes" if o.same_values else "NO"
    lines += [
        "",
        "| overhead tunelab/optuna - 1 | pooled medians | per-round range | same values |",
        "|---|---:|---|:---:|",
        f"| wall | {o.overhead_wall:+.1%}{flag_w} | {min(o.round_overheads_wall):+.1%} .. "
        f"{max(o.round_overheads_wall):+.1%} | {same} |",
        f"| CPU | {o.overhead_cpu:+.1%}{flag_c} | {min(o.round_overheads_cpu):+.1%} .. "
        f"{max(o.round_overheads_cpu):+.1%} | {same} |",
        "",
        "| tunelab part (wall, mean per trial, nested parts indented) | ms |",
        "|---|---:|",
    ]
    for name, ms in sorted(o.breakdown_ms.items(), key=lambda kv: -kv[1]):
        indent = "&nbsp;&nbsp;" if name.startswith("trial.") else ""
        lines.append(f"| {indent}{name} | {ms:.2f} |")
    return "\n".join(lines)


# --- memory: fresh subprocesses ----------------------------------------------------------------


def _rss_mb() -> float:
    """Current resident set size (Linux /proc), MB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return math.nan


def _peak_rss_mb() -> float:
    """Peak resident set size of this process so far (ru_maxrss: KiB on Linux, bytes on
    macOS), MB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def child(trials: int, *, trace: bool) -> dict[str, Any]:
    """One tunelab study of ``trials`` one-epoch trials in this (fresh) process."""
    torch.set_num_threads(1)
    cfg = make_config(PROBLEMS["tiny"], epochs=1, n_trials=trials)
    prepare(cfg)  # data loaded once before measuring, as run_study will
    stamps: list[float] = []
    rss: list[float] = []
    heap: list[float] = []
    peaks: list[float] = []

    def hook(study: optuna.Study, trial: FrozenTrial) -> None:
        stamps.append(time.perf_counter())
        rss.append(_rss_mb())
        peaks.append(_peak_rss_mb())
        heap.append(tracemalloc.get_traced_memory()[0] / 2**20 if trace else math.nan)

    rss_before = _rss_mb()
    if trace:
        tracemalloc.start()
    with tempfile.TemporaryDirectory(prefix="tunelab-bench-") as tmp:
        result = run_study(cfg, out=Path(tmp) / "run", observer=OnTrialEnded(hook))
        finished = len(result.study.trials)
    heap_current, heap_peak = tracemalloc.get_traced_memory() if trace else (0, 0)
    at = min(20, len(rss)) - 1  # after the 20th trial
    gaps = [b - a for a, b in pairwise(stamps)]
    head, tail = gaps[:20], gaps[-20:]
    return {
        "trials": finished,
        "trace": trace,
        "rss_before_mb": rss_before,
        "rss_end_mb": _rss_mb(),
        "peak_rss_mb": _peak_rss_mb(),  # refit and test evaluation included
        "peak_rss_search_mb": peaks[-1],  # until the last trial finished
        "rss_after_trial_20_mb": rss[at],
        "rss_after_last_trial_mb": rss[-1],
        "heap_after_trial_20_mb": heap[at],
        "heap_after_last_trial_mb": heap[-1],
        "heap_current_mb": heap_current / 2**20,
        "heap_peak_mb": heap_peak / 2**20,
        "first_trials_s": statistics.median(head) if head else math.nan,
        "last_trials_s": statistics.median(tail) if tail else math.nan,
    }


def run_child(trials: int, *, trace: bool) -> dict[str, Any]:
    command = [sys.executable, str(Path(__file__).resolve()), "--child-trials", str(trials)]
    if trace:
        command.append("--trace")
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"child {trials} trials failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@dataclass
class Memory:
    small: int
    large: int
    rss: dict[int, dict[str, Any]] = field(default_factory=dict)
    heap: dict[int, dict[str, Any]] = field(default_factory=dict)
    rss_growth: float = math.nan
    heap_growth: float = math.nan


def measure_memory(small: int, large: int) -> Memory:
    memory = Memory(small, large)
    for trials in (small, large):
        memory.rss[trials] = run_child(trials, trace=False)
        memory.heap[trials] = run_child(trials, trace=True)
        print(f"memory child {trials} trials done", flush=True)
    memory.rss_growth = memory.rss[large]["peak_rss_mb"] / memory.rss[small]["peak_rss_mb"] - 1
    memory.heap_growth = memory.heap[large]["heap_peak_mb"] / memory.heap[small]["heap_peak_mb"] - 1
    return memory


def memory_table(m: Memory) -> str:
    s, b = m.small, m.large
    rows = [
        (
            "peak RSS at the end, MB (ru_maxrss; refit included)",
            m.rss[s]["peak_rss_mb"],
            m.rss[b]["peak_rss_mb"],
            m.rss_growth,
        ),
        (
            "peak RSS until the last trial, MB (ru_maxrss)",
            m.rss[s]["peak_rss_search_mb"],
            m.rss[b]["peak_rss_search_mb"],
            None,
        ),
        ("RSS before the study, MB", m.rss[s]["rss_before_mb"], m.rss[b]["rss_before_mb"], None),
        (
            "RSS after trial 20, MB",
            m.rss[s]["rss_after_trial_20_mb"],
            m.rss[b]["rss_after_trial_20_mb"],
            None,
        ),
        (
            "RSS after the last trial, MB",
            m.rss[s]["rss_after_last_trial_mb"],
            m.rss[b]["rss_after_last_trial_mb"],
            None,
        ),
        (
            "Python heap peak during the study, MB (tracemalloc)",
            m.heap[s]["heap_peak_mb"],
            m.heap[b]["heap_peak_mb"],
            m.heap_growth,
        ),
        (
            "Python heap after trial 20, MB",
            m.heap[s]["heap_after_trial_20_mb"],
            m.heap[b]["heap_after_trial_20_mb"],
            None,
        ),
        (
            "Python heap after the last trial, MB",
            m.heap[s]["heap_after_last_trial_mb"],
            m.heap[b]["heap_after_last_trial_mb"],
            None,
        ),
        (
            "median s/trial, first 20 trials",
            m.rss[s]["first_trials_s"],
            m.rss[b]["first_trials_s"],
            None,
        ),
        (
            "median s/trial, last 20 trials",
            m.rss[s]["last_trials_s"],
            m.rss[b]["last_trials_s"],
            None,
        ),
    ]
    lines = [f"| measure | {s} trials | {b} trials | growth |", "|---|---:|---:|---:|"]
    for name, a, c, growth in rows:
        text = (
            ""
            if growth is None
            else f"{growth:+.1%}" + ("" if growth <= TARGET_GROWTH else " **above**")
        )
        lines.append(f"| {name} | {a:.3f} | {c:.3f} | {text} |")
    return "\n".join(lines)


def report_overhead(overhead: Overhead) -> None:
    problem = PROBLEMS[overhead.problem]
    print()
    print(
        f"### per-trial time: {problem.what}; {overhead.epochs} epochs, {overhead.trials} "
        f"trials x {overhead.rounds} rounds, 1 torch thread"
    )
    print()
    print(overhead_tables(overhead))
    print()
    print(
        f"Target: overhead <= {TARGET_OVERHEAD:.0%}. Absolute overhead per trial: "
        f"{1e3 * (overhead.median_wall['tunelab'] - overhead.median_wall['optuna']):.1f} ms "
        f"wall, {1e3 * (overhead.median_cpu['tunelab'] - overhead.median_cpu['optuna']):.1f} "
        f"ms CPU; trials take {overhead.median_wall['optuna']:.2f} s bare."
    )
    if not overhead.same_values:
        print("WARNING: the studies got different trial values; they did not do the same work.")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--problems",
        nargs="+",
        choices=list(PROBLEMS),
        default=list(PROBLEMS),
        help="trial sizes to time (default: all)",
    )
    parser.add_argument("--trials", type=int, default=None, help="trials per study")
    parser.add_argument("--rounds", type=int, default=None, help="alternating rounds")
    parser.add_argument("--epochs", type=int, default=None, help="epochs per trial")
    parser.add_argument(
        "--memory-trials",
        type=int,
        nargs=2,
        default=[20, 200],
        metavar=("SMALL", "LARGE"),
        help="study sizes compared (default 20 200)",
    )
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 1 round of 4 trials, memory 5 vs 20 trials"
    )
    parser.add_argument(
        "--json", type=Path, default=None, metavar="PATH", help="also write the results as JSON"
    )
    parser.add_argument("--child-trials", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if args.child_trials is not None:
        print(json.dumps(child(args.child_trials, trace=args.trace)))
        return
    torch.set_num_threads(1)
    small, large = (5, 20) if args.quick else tuple(args.memory_trials)

    started = time.perf_counter()
    overheads = []
    for name in args.problems:
        problem = PROBLEMS[name]
        trials = 4 if args.quick else args.trials or problem.trials
        rounds = 1 if args.quick else args.rounds or problem.rounds
        if trials < 3 or rounds < 1:
            parser.error("need at least 3 trials and 1 round")
        overheads.append(
            measure_overhead(
                problem, trials=trials, rounds=rounds, epochs=args.epochs or problem.epochs
            )
        )
    memory = None if args.skip_memory else measure_memory(small, large)

    for overhead in overheads:
        report_overhead(overhead)
    if memory is not None:
        print()
        print(f"### memory: tunelab study, {small} vs {large} one-epoch trials (fresh processes)")
        print()
        print(memory_table(memory))
        print()
        print(f"Target: growth <= {TARGET_GROWTH:.0%}.")
    print(
        f"(wall time {time.perf_counter() - started:.0f}s; torch {torch.__version__}, "
        f"optuna {optuna.__version__})"
    )
    if args.json is not None:
        payload = {
            "target_overhead": TARGET_OVERHEAD,
            "target_growth": TARGET_GROWTH,
            "torch": torch.__version__,
            "optuna": optuna.__version__,
            "tunelab": str(Path(tunelab.__file__).parent),
            "python": platform.python_version(),
            "overhead": [asdict(overhead) for overhead in overheads],
            "memory": None if memory is None else asdict(memory),
        }
        args.json.write_text(json.dumps(payload, indent=2), encoding="utf-8")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
