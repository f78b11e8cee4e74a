"""One thread or every core? Training speed of tunelab fits by torch thread count.

Each workload is one tunelab fit (``fit_on_rows`` on the holdout split: encoder, model,
techniques, validation every epoch), timed with 1 thread and with every core this process
may use, alternating in one process (the order swaps every round). The table gives the
median seconds per fit and the speed-up of all cores over one, and the thread count
tunelab picks by default for the model (``tunelab.training.cores.default_threads``): the
rule is right where it picks the faster of the two.

Usage::

    python bench/threads.py              # 5 rounds
    python bench/threads.py --rounds 2
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from tunelab.config import RunConfig, apply_params, load_config
from tunelab.evaluation.fitting import build_encoder_and_model, fit_on_rows
from tunelab.evaluation.prepare import prepare
from tunelab.training.cores import available_cores, default_threads

ROOT = Path(__file__).resolve().parents[1]
WORKLOADS: dict[str, tuple[str, list[str]]] = {
    "iris, MLP 16x1": ("examples/tabular.yaml", [
        "data.source=sklearn:iris", "model.width=16", "model.depth=1", "train.metric=accuracy",
        "train.epochs=40"]),
    "tabular example (breast_cancer, MLP 64x2)": ("examples/tabular.yaml", []),
    "breast_cancer, MLP 256x3": ("examples/tabular.yaml", [
        "model.width=256", "model.depth=3"]),
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
        for threads in ([1, cores] if r % 2 == 0 else [cores, 1]):
            times[threads].append(time_fit(cfg, threads))
    one, every = statistics.median(times[1]), statistics.median(times[cores])
    faster = 1 if one <= every else cores
    verdict = "right" if picked == faster else "wrong"
    return (f"| {name} | {params:,} | {one:.2f} | {every:.2f} | {one / every:.2f}x "
            f"| {picked} ({verdict}) |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    cores = available_cores()
    print(f"cores available: {cores}; torch {torch.__version__}")
    print(f"| workload | trainable params | s/fit, 1 thread | s/fit, {cores} threads "
          "| speed-up | tunelab's default |")
    print("|---|---:|---:|---:|---:|---|")
    for name, (config, overrides) in WORKLOADS.items():
        cfg = load_config(ROOT / config, overrides=[*overrides, "train.device=cpu"])
        print(measure(name, cfg, args.rounds), flush=True)


if __name__ == "__main__":
    main()
