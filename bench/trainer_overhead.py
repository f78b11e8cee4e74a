"""How much slower is tunelab's training loop than a hand-written PyTorch loop?

Both contenders train the same builtin architecture (two models built from the same seed),
on the same in-memory tensors, for the same epochs, batch size, optimizer (AdamW, constant
lr, no weight decay) and seed, shuffling with a ``randperm`` per epoch and slicing batches
with ``index_select``, with cross-entropy loss. tunelab's ``fit`` runs without validation data
and with early stopping disabled, so per epoch both do exactly the same work; what remains
is tunelab's bookkeeping (schedule, parameter groups, grad scaler, history records).

The two contenders alternate within one process (the order swaps every round) so that noise
from other processes hits both; the table reports medians and the median per-round ratio
tunelab/baseline of wall-clock throughput (the target). As a second, less noise-prone view it
also gives the same ratio computed from process CPU time (with one thread, time spent waiting
for a busy core does not count). Both runs start from identical weights and RNG state, so
their final training losses must agree: the ``same loss`` column checks they did the same work.

Usage::

    python bench/trainer_overhead.py              # full run (5 rounds)
    python bench/trainer_overhead.py --quick      # smoke run (1 round, 1 epoch)
    python bench/trainer_overhead.py --json out.json
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import tunelab
from tunelab.config import TrainConfig
from tunelab.models.base import ModelRequest
from tunelab.models.builtin import make_builtin
from tunelab.training.batching import TensorData
from tunelab.training.loop import fit

TARGET_RATIO = 0.95
SEED = 0
LR = 1e-3


@dataclass(frozen=True)
class Workload:
    """A dataset and a builtin architecture to train on it."""

    name: str
    model: str
    opts: dict[str, Any]
    x: torch.Tensor
    y: torch.Tensor
    num_outputs: int
    epochs: int  # default: chosen so that one run takes roughly 1-3 s on 1 thread

    @property
    def rows(self) -> int:
        return int(self.y.shape[0])

    def build(self) -> nn.Module:
        """A fresh model; every call gives identical weights."""
        torch.manual_seed(SEED)
        request = ModelRequest(tuple(self.x.shape[1:]), self.num_outputs, "", dropout=0.1)
        return make_builtin(self.model, dict(self.opts), request).module


def _standardize(a: np.ndarray, axis: int | None) -> np.ndarray:
    std = a.std(axis=axis, keepdims=axis is not None)
    centered = a - a.mean(axis=axis, keepdims=axis is not None)
    return np.asarray(centered / np.where(std > 0, std, 1.0))


def digits_cnn() -> Workload:
    from sklearn.datasets import load_digits

    data = load_digits()
    x = _standardize(data.images.astype(np.float64), axis=None).astype(np.float32)
    return Workload(
        name="digits cnn2d w32 d3",
        model="cnn2d",
        opts={"width": 32, "depth": 3},
        x=torch.from_numpy(x[:, None, :, :].copy()),
        y=torch.from_numpy(data.target.astype(np.int64)),
        num_outputs=10,
        epochs=4,
    )


def tabular_mlp(repeat: int = 8) -> Workload:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    x = _standardize(data.data.astype(np.float64), axis=0).astype(np.float32)
    return Workload(
        name=f"breast_cancer x{repeat} mlp w128 d2",
        model="mlp",
        opts={"width": 128, "depth": 2},
        x=torch.from_numpy(np.tile(x, (repeat, 1))),
        y=torch.from_numpy(np.tile(data.target.astype(np.int64), repeat)),
        num_outputs=2,
        epochs=12,
    )


# --- the contenders -------------------------------------------------------------------------

# Each takes a fresh model, the workload, epochs and batch size, and returns the mean training
# loss of the last epoch (a check that both did the same work).
Runner = Callable[[nn.Module, Workload, int, int], float]


def run_baseline(model: nn.Module, work: Workload, epochs: int, batch_size: int) -> float:
    """The plain PyTorch loop tunelab's ``fit`` is measured against."""
    torch.manual_seed(SEED)
    generator = torch.Generator().manual_seed(SEED)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=0.0)
    loss_fn = nn.CrossEntropyLoss()
    x, y, rows = work.x, work.y, work.rows
    last = math.nan
    for _ in range(epochs):
        model.train()
        total = torch.zeros(())
        batches = 0
        order = torch.randperm(rows, generator=generator)
        for start in range(0, rows, batch_size):
            stop = min(start + batch_size, rows)
            if stop - start == 1 and rows > 1:  # batch norm cannot train on one row
                break
            index = order[start:stop]
            loss = loss_fn(model(x.index_select(0, index)), y.index_select(0, index))
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            total += loss.detach()
            batches += 1
        last = total.item() / max(batches, 1)
    return last


def run_tunelab(model: nn.Module, work: Workload, epochs: int, batch_size: int) -> float:
    """tunelab's ``fit``: no validation data, early stopping off, constant AdamW."""
    train_cfg = TrainConfig(
        epochs=epochs,
        batch_size=batch_size,
        optimizer="adamw",
        lr=LR,
        schedule="constant",
        precision="fp32",
        device="cpu",
        threads=torch.get_num_threads(),
    )
    # no techniques: early stopping is off, as in the baseline
    result = fit(
        model,
        TensorData((work.x,), work.y),
        None,
        train_cfg=train_cfg,
        loss_fn=nn.CrossEntropyLoss(),
        seed=SEED,
    )
    return float(result.history[-1]["train_loss"])


CONTENDERS: dict[str, Runner] = {"baseline": run_baseline, "tunelab": run_tunelab}


# --- measuring -------------------------------------------------------------------------------


@dataclass
class Result:
    workload: str
    threads: int
    epochs: int
    batch_size: int
    rows: int
    rounds: int
    seconds: dict[str, list[float]] = field(default_factory=dict)
    cpu_seconds: dict[str, list[float]] = field(default_factory=dict)
    samples_per_s: dict[str, float] = field(default_factory=dict)
    ratios: list[float] = field(default_factory=list)
    ratio: float = math.nan
    cpu_ratios: list[float] = field(default_factory=list)
    cpu_ratio: float = math.nan
    final_loss: dict[str, float] = field(default_factory=dict)
    same_loss: bool = False


def time_once(
    runner: Runner, work: Workload, epochs: int, batch_size: int
) -> tuple[float, float, float]:
    """Wall and CPU seconds of one training run (model built outside the timing), final loss."""
    model = work.build()
    gc.collect()
    cpu_started, started = time.process_time(), time.perf_counter()
    loss = runner(model, work, epochs, batch_size)
    return time.perf_counter() - started, time.process_time() - cpu_started, loss


def measure(work: Workload, *, threads: int, epochs: int, batch_size: int, rounds: int) -> Result:
    torch.set_num_threads(threads)
    for runner in CONTENDERS.values():  # warm-up: allocator, kernels, lazy imports
        time_once(runner, work, 1, batch_size)
    seconds: dict[str, list[float]] = {name: [] for name in CONTENDERS}
    cpu: dict[str, list[float]] = {name: [] for name in CONTENDERS}
    losses: dict[str, float] = {}
    names = list(CONTENDERS)
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            elapsed, cpu_used, losses[name] = time_once(CONTENDERS[name], work, epochs, batch_size)
            seconds[name].append(elapsed)
            cpu[name].append(cpu_used)
    # Samples actually trained on per epoch (a last batch of one row is skipped by both).
    trained = work.rows - (1 if work.rows % batch_size == 1 and work.rows > 1 else 0)
    samples = trained * epochs
    # Per-round throughput ratio tunelab/baseline = baseline seconds / tunelab seconds.
    ratios = [b / t for b, t in zip(seconds["baseline"], seconds["tunelab"], strict=True)]
    cpu_ratios = [b / t for b, t in zip(cpu["baseline"], cpu["tunelab"], strict=True)]
    return Result(
        workload=work.name,
        threads=threads,
        epochs=epochs,
        batch_size=batch_size,
        rows=work.rows,
        rounds=rounds,
        seconds=seconds,
        cpu_seconds=cpu,
        samples_per_s={n: samples / statistics.median(s) for n, s in seconds.items()},
        ratios=ratios,
        ratio=statistics.median(ratios),
        cpu_ratios=cpu_ratios,
        cpu_ratio=statistics.median(cpu_ratios),
        final_loss=losses,
        same_loss=math.isclose(losses["baseline"], losses["tunelab"], rel_tol=1e-5, abs_tol=1e-6),
    )


def table(results: list[Result]) -> str:
    lines = [
        "| workload | threads | epochs | baseline samples/s | tunelab samples/s "
        "| ratio (median) | ratio range | CPU-time ratio | same loss |",
        "|---|---:|---:|---:|---:|---:|---|---:|:---:|",
    ]
    for r in results:
        flag = "" if r.ratio >= TARGET_RATIO else " **below**"
        lines.append(
            f"| {r.workload} | {r.threads} | {r.epochs} | {r.samples_per_s['baseline']:,.0f} "
            f"| {r.samples_per_s['tunelab']:,.0f} | {r.ratio:.3f}{flag} "
            f"| {min(r.ratios):.3f}-{max(r.ratios):.3f} | {r.cpu_ratio:.3f} "
            f"| {'yes' if r.same_loss else 'NO'} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds (default 5)")
    parser.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="epochs per run for every workload (default: per workload)",
    )
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument(
        "--threads",
        type=int,
        nargs="+",
        default=[1, 2],
        help="torch.set_num_threads values (default 1 2)",
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 round, 1 epoch")
    parser.add_argument(
        "--json", type=Path, default=None, metavar="PATH", help="also write the results as JSON"
    )
    args = parser.parse_args(argv)
    rounds = 1 if args.quick else args.rounds
    if rounds < 1:
        parser.error("--rounds must be at least 1")

    results: list[Result] = []
    for work in (digits_cnn(), tabular_mlp()):
        epochs = 1 if args.quick else (args.epochs or work.epochs)
        for threads in args.threads:
            result = measure(
                work, threads=threads, epochs=epochs, batch_size=args.batch_size, rounds=rounds
            )
            print(
                f"{work.name}, {threads} thread(s): ratio {result.ratio:.3f} "
                f"(CPU time {result.cpu_ratio:.3f})",
                flush=True,
            )
            results.append(result)

    print()
    print(table(results))
    print()
    print(
        f"Target: ratio tunelab/baseline >= {TARGET_RATIO} (wall-clock samples/s, median of "
        f"per-round ratios; {rounds} round(s), batch size {args.batch_size}, "
        f"torch {torch.__version__}, tunelab from {Path(tunelab.__file__).parent})."
    )
    below = [f"{r.workload} @ {r.threads} thread(s)" for r in results if r.ratio < TARGET_RATIO]
    print(
        "All configurations meet the target."
        if not below
        else "Below target: " + "; ".join(below) + "."
    )
    if not all(r.same_loss for r in results):
        print("WARNING: final training losses differ; the contenders did not do the same work.")
    if args.json is not None:
        payload = {
            "target_ratio": TARGET_RATIO,
            "torch": torch.__version__,
            "tunelab": str(Path(tunelab.__file__).parent),
            "python": platform.python_version(),
            "machine": platform.machine(),
            "results": [asdict(r) for r in results],
        }
        args.json.write_text(json.dumps(payload, indent=2), encoding="utf-8")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
