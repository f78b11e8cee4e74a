"""The ablation ladder on two problems, with wall times: what each technique contributed.

- ``digits`` (``examples/quickstart.yaml``): 8x8 digit images, a CNN whose backbone is
  pretrained on synthetic pen strokes; metric accuracy. Its ladder starts from scratch
  (``finetuning.strategy: scratch``) and the ``finetuning`` rung shows what pretraining adds.
- ``breast_cancer`` (``examples/tabular.yaml``): an MLP on 30 features; metric roc_auc.

Each ladder is exactly what ``tunelab ladder CONFIG`` measures (``run_ladder``), with fewer
epochs and folds than its defaults so the whole benchmark stays under about ten minutes on a
2-core CPU: digits at 10 epochs and 5 folds x 1 repeat, breast_cancer at its 40 epochs and
5 folds x 2 repeats. There is no study here, so the ``tuned`` rung is skipped (``tunelab run``
with ``ladder.enabled`` measures it). The test rows are never used.

Usage::

    python bench/ladder.py                    # both problems (~10 minutes on 2 cores)
    python bench/ladder.py --quick            # smoke run (2 folds, 2 epochs)
    python bench/ladder.py --only digits --json out.json --keep runs/bench-ladder
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from tunelab.config import load_config
from tunelab.ladder import run_ladder
from tunelab.ladder.show import caption, markdown
from tunelab.progress.ladder import LadderProgress
from tunelab.results.rundir import open_run_dir

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Problem:
    name: str
    config: str
    epochs: int | None  # None: the example's own
    folds: int
    repeats: int


PROBLEMS = [
    Problem("digits", "examples/quickstart.yaml", epochs=10, folds=5, repeats=1),
    Problem("breast_cancer", "examples/tabular.yaml", epochs=None, folds=5, repeats=2),
]


def measure(problem: Problem, out: Path, *, quick: bool, threads: int) -> dict[str, Any]:
    """The problem's ladder document, measured into ``out``, and its wall time."""
    overrides = [
        f"name=bench-{problem.name}",
        f"train.threads={threads}",
        "train.device=cpu",
        f"ladder.folds={2 if quick else problem.folds}",
        f"ladder.repeats={1 if quick else problem.repeats}",
    ]
    epochs = 2 if quick else problem.epochs
    if epochs is not None:
        overrides.append(f"ladder.epochs={epochs}")
    cfg = load_config(ROOT / problem.config, overrides=overrides)
    run = open_run_dir(cfg, out / problem.name, resume=lambda run: True)
    started = time.perf_counter()
    with LadderProgress(console=Console(stderr=True), live=False) as progress:
        doc = run_ladder(cfg, run, observer=progress)
    doc["wall_seconds"] = time.perf_counter() - started
    return doc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 folds, 2 epochs")
    parser.add_argument("--only", choices=[p.name for p in PROBLEMS])
    parser.add_argument("--threads", type=int, default=1, help="torch threads per fit")
    parser.add_argument("--json", type=Path, help="write every ladder document here")
    parser.add_argument("--keep", type=Path, help="run directories here (a re-run resumes)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"# ablation ladders ({platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} thread(s), torch {torch.__version__})\n"
    )
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as scratch:
        out = args.keep or Path(scratch)
        for problem in PROBLEMS:
            if args.only and problem.name != args.only:
                continue
            doc = measure(problem, out, quick=args.quick, threads=args.threads)
            results[problem.name] = doc
            print(f"## {problem.name} ({problem.config}): {doc['wall_seconds']:.0f} s wall\n")
            print(markdown(doc, "ladder") + "\n")
            print(markdown(doc, "leave_one_out") + "\n")
            print(caption(doc) + "\n")
            sys.stdout.flush()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
