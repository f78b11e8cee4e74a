"""Which techniques help, with evidence: 5-fold cross-validated ablations, off vs on.

Two problems, each from its example config:

- ``digits`` (``examples/quickstart.yaml``): 8x8 digit images, a CNN whose backbone is
  pretrained on synthetic pen strokes (its ``file:`` checkpoint); metric accuracy.
- ``table`` (``examples/tabular.yaml``): breast_cancer, an MLP; metrics roc_auc and accuracy.

For each problem the baseline is the example config with every technique at its off state
(``regularization.enabled``, ``early_stopping.enabled`` and ``restore_best``,
``batch_norm.enabled``, ``augmentation.enabled`` all false, ``weight_averaging.method: none``,
``finetuning.strategy: full``) and a
fixed number of epochs. Each technique row switches just that technique on, on top of the
baseline. Transfer learning is the exception: its off state is ``finetuning.strategy:
scratch`` (same architecture, re-initialized) and its on state is the baseline (the pretrained
backbone trained in full). It does not apply to the table (``builtin:mlp`` has no pretrained
weights).

Every variant is fitted on the same stratified folds (seed 0) of the non-test rows
(``prepared.split.train`` and ``.validation`` together; the test rows are never touched), with
the same seed, so differences are paired fold by fold. Each variant is one call of
``cross_validate`` (tunelab's own unit of work: a fresh model per fold); the metric of a
fold is computed from its out-of-fold predictions, made by the weights the fold's model ended
with (the last epoch, the best epoch where early stopping restores it, or the average with
weight averaging). Caveat: early stopping picks its epoch on those same validation rows, so
its row is slightly optimistic.

Time per epoch is the mean of the history's ``seconds`` (training plus the validation pass)
and, steadier on a shared machine, the process CPU time between epoch ends; ratios are of
means over folds.

Batch norm is ablated twice on digits: on the pretrained checkpoint (``batch_norm.enabled``
is honoured there: a checkpoint trained with BN loses its BN tensors when it is off, and the
other way round the new BN layers start fresh), and on the same architecture without
pretrained weights (``builtin:cnn2d``, width 32, depth 3), where nothing else differs. The
built models' BN layers are counted (``BN layers`` in the output), so a switch that does
nothing would show as a no-op note instead of a row of noise.

Usage::

    python bench/techniques.py                 # full run (5 folds; 15 / 30 epochs)
    python bench/techniques.py --quick         # smoke run (2 folds, 2 epochs)
    python bench/techniques.py --json out.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import tunelab
from tunelab.config import CrossValidationConfig, RunConfig, load_config
from tunelab.evaluation.crossval import Splits, cross_validate, cv_splits
from tunelab.evaluation.prepare import Prepared, prepare
from tunelab.techniques import specs
from tunelab.training.metrics import compute_metrics

ROOT = Path(__file__).resolve().parents[1]
SEED = 0
AUGMENT_TIME_TARGET = 0.30  # augmentation adds less than this to the digits CNN's epoch time

# the off state of every technique, from its registered spec (transfer learning's off state,
# scratch, is a variant: the baseline trains the pretrained backbone in full)
ALL_OFF = (
    *(f"{field}={value}" for spec in specs() if spec.name != "finetuning"
      for field, value in spec.off.items()),
    "finetuning.strategy=full",
)  # fmt: skip
REGULARIZATION_ON = (
    "regularization.enabled=true",
    "regularization.dropout=0.2",
    "regularization.weight_decay=0.001",
    "regularization.backbone_dropout=null",
    "regularization.label_smoothing=0.0",
    "regularization.grad_clip=null",
)
EARLY_STOPPING_ON = (
    "early_stopping.enabled=true",
    "early_stopping.monitor=val_loss",
    "early_stopping.patience=5",
    "early_stopping.min_delta=0.0",
    "early_stopping.warmup_epochs=0",
    "early_stopping.restore_best=true",
)
BATCH_NORM_ON = ("batch_norm.enabled=true",)


@dataclass(frozen=True)
class Row:
    """One line of a problem's table: ``on`` compared with ``off`` (variant keys)."""

    technique: str
    setting: str
    off: str | None  # None: the off state itself (the baseline's own row)
    on: str | None  # None: not applicable
    note: str = ""


@dataclass(frozen=True)
class Problem:
    name: str
    config: str  # relative to the repository root
    epochs: int
    metrics: tuple[str, ...]  # reported; the first is the headline metric
    variants: dict[str, tuple[str, ...]]  # key -> overrides on top of ALL_OFF
    rows: tuple[Row, ...]


@dataclass
class FoldResult:
    fold: int
    metrics: dict[str, float]
    seconds_per_epoch: float
    cpu_seconds_per_epoch: float
    epochs_run: int
    stop_reason: str
    best_epoch: int
    fit_seconds: float
    bn_layers: int


@dataclass
class VariantResult:
    key: str
    overrides: list[str]
    folds: list[FoldResult] = field(default_factory=list)


def problems(*, digits_epochs: int, table_epochs: int) -> list[Problem]:
    digits_arch = ("model.source=builtin:cnn2d", "model.width=32", "model.depth=3")
    digits = Problem(
        name="digits",
        config="examples/quickstart.yaml",
        epochs=digits_epochs,
        metrics=("accuracy",),
        variants={
            "baseline": (),
            "regularization": REGULARIZATION_ON,
            "early_stopping": EARLY_STOPPING_ON,
            "batch_norm": BATCH_NORM_ON,
            "augmentation": (
                "augmentation.enabled=true",
                "augmentation.rotation=10",
                "augmentation.zoom=0.1",
            ),
            "scratch": ("finetuning.strategy=scratch",),
            "weight_averaging": ("weight_averaging.method=swa",),
            "builtin_bn_off": digits_arch,
            "builtin_bn_on": (*digits_arch, *BATCH_NORM_ON),
        },
        rows=(
            Row("baseline", "all off, pretrained backbone, strategy full", None, "baseline"),
            Row("regularization", "dropout 0.2, weight_decay 1e-3", "baseline", "regularization"),
            Row(
                "early stopping",
                "val_loss, patience 5, restore_best",
                "baseline",
                "early_stopping",
            ),
            Row("batch norm", "batch_norm.enabled true", "baseline", "batch_norm"),
            Row("augmentation", "rotation 10, zoom 0.1", "baseline", "augmentation"),
            Row(
                "weight averaging",
                "swa over the last quarter of epochs",
                "baseline",
                "weight_averaging",
            ),
            Row(
                "transfer",
                "pretrained (full) vs scratch",
                "scratch",
                "baseline",
                "off = strategy scratch (re-initialized)",
            ),
            Row(
                "batch norm (no checkpoint)",
                "builtin:cnn2d w32 d3, BN off vs on",
                "builtin_bn_off",
                "builtin_bn_on",
                "same architecture, random init",
            ),
        ),
    )
    table = Problem(
        name="table",
        config="examples/tabular.yaml",
        epochs=table_epochs,
        metrics=("roc_auc", "accuracy"),
        variants={
            "baseline": (),
            "regularization": (*REGULARIZATION_ON, "regularization.l1=0.0001"),
            "early_stopping": EARLY_STOPPING_ON,
            "batch_norm": BATCH_NORM_ON,
            "augmentation": (
                "augmentation.enabled=true",
                "augmentation.noise=0.05",
                "augmentation.mixup=0.2",
            ),
        },
        rows=(
            Row("baseline", "all off", None, "baseline"),
            Row(
                "regularization",
                "dropout 0.2, weight_decay 1e-3, l1 1e-4",
                "baseline",
                "regularization",
            ),
            Row(
                "early stopping",
                "val_loss, patience 5, restore_best",
                "baseline",
                "early_stopping",
            ),
            Row("batch norm", "batch_norm.enabled true", "baseline", "batch_norm"),
            Row("augmentation", "noise 0.05, mixup 0.2", "baseline", "augmentation"),
            Row(
                "transfer",
                "n/a",
                None,
                None,
                "not applicable: builtin:mlp has no pretrained weights",
            ),
        ),
    )
    return [digits, table]


def make_config(problem: Problem, overrides: tuple[str, ...], *, device: str) -> RunConfig:
    base = load_config(ROOT / problem.config)
    fixed = [
        *ALL_OFF,
        f"train.epochs={problem.epochs}",
        "train.threads=1",
        f"train.device={device}",
    ]
    source = base.model.source
    if source.startswith("file:") and not Path(source[5:]).is_absolute():
        fixed.append(f"model.source=file:{ROOT / source[5:]}")  # runs from any directory
    return load_config(ROOT / problem.config, overrides=[*fixed, *overrides])


def count_bn(model: nn.Module) -> int:
    return sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def run_variant(
    problem: Problem, key: str, cfg: RunConfig, prepared: Prepared, splits: Splits, log: bool
) -> VariantResult:
    """Cross-validate one variant on the shared splits (``cross_validate``: a fresh model
    per fold) and read each fold's metrics off its out-of-fold predictions."""
    marks: dict[int, list[float]] = {}

    def mark(fold: int, record: dict[str, Any]) -> None:
        marks.setdefault(fold, []).append(time.process_time())

    cv = cross_validate(cfg, prepared, splits, on_epoch=mark)
    result = VariantResult(key, list(problem.variants[key]))
    for fold, (_, val_rows) in enumerate(splits):
        history = cv.histories[fold]
        # process CPU time between the ends of consecutive epochs (epoch 0, with the model's
        # set-up, is left out): time spent waiting for a core busy with another process does
        # not count, so this is steadier than the wall clock when the machine is shared
        cpu = [b - a for a, b in itertools.pairwise(marks.get(fold, []))]
        truth = prepared.target.values[val_rows]
        metrics = compute_metrics(prepared.target.task, truth, cv.oof[val_rows])
        folded = FoldResult(
            fold=fold,
            metrics=metrics,
            seconds_per_epoch=statistics.fmean(r["seconds"] for r in history),
            cpu_seconds_per_epoch=statistics.fmean(cpu) if cpu else math.nan,
            epochs_run=len(history),
            stop_reason=cv.stop_reasons[fold],
            best_epoch=cv.epochs[fold] - 1,
            fit_seconds=cv.seconds / len(splits),
            bn_layers=count_bn(cv.predictors[fold].model),
        )
        result.folds.append(folded)
        if log:
            shown = ", ".join(f"{m} {metrics[m]:.4f}" for m in problem.metrics)
            print(
                f"[{problem.name}] {key:<16} fold {fold + 1}/{len(splits)} {shown}  "
                f"{folded.epochs_run} ep, {folded.seconds_per_epoch:.3f} s/ep, "
                f"BN layers {folded.bn_layers}",
                file=sys.stderr,
                flush=True,
            )
    return result


def run_problem(
    problem: Problem, *, folds: int, device: str, log: bool = True
) -> dict[str, VariantResult]:
    configs = {k: make_config(problem, o, device=device) for k, o in problem.variants.items()}
    prepared = prepare(configs["baseline"])
    # every variant on the same stratified folds of the non-test rows: differences are paired
    splits = cv_splits(
        configs["baseline"].model_copy(
            update={"cv": CrossValidationConfig(strategy="kfold", folds=folds)}
        ),
        prepared,
    )
    return {
        key: run_variant(problem, key, cfg, prepared, splits, log) for key, cfg in configs.items()
    }


# -- summaries ---------------------------------------------------------------------------


def mean_std(values: list[float]) -> tuple[float, float]:
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return mean, std


def paired(on: VariantResult, off: VariantResult, metric: str) -> list[float]:
    return [a.metrics[metric] - b.metrics[metric] for a, b in zip(on.folds, off.folds, strict=True)]


def seconds(result: VariantResult) -> float:
    return statistics.fmean(f.seconds_per_epoch for f in result.folds)


def cpu_seconds(result: VariantResult) -> float:
    return statistics.fmean(f.cpu_seconds_per_epoch for f in result.folds)


def fold_ratios(on: VariantResult, off: VariantResult) -> list[float]:
    return [
        a.seconds_per_epoch / b.seconds_per_epoch for a, b in zip(on.folds, off.folds, strict=True)
    ]


def cpu_fold_ratios(on: VariantResult, off: VariantResult) -> list[float]:
    pairs = zip(on.folds, off.folds, strict=True)
    return [a.cpu_seconds_per_epoch / b.cpu_seconds_per_epoch for a, b in pairs]


def summarize(problem: Problem, results: dict[str, VariantResult]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for row in problem.rows:
        entry: dict[str, Any] = {
            "technique": row.technique,
            "setting": row.setting,
            "off": row.off,
            "on": row.on,
            "note": row.note,
        }
        if row.on is None:
            rows.append(entry)
            continue
        on = results[row.on]
        entry["metrics"] = {m: mean_std([f.metrics[m] for f in on.folds]) for m in problem.metrics}
        entry["seconds_per_epoch"] = seconds(on)
        entry["cpu_seconds_per_epoch"] = cpu_seconds(on)
        entry["epochs_run"] = statistics.fmean(f.epochs_run for f in on.folds)
        entry["bn_layers"] = sorted({f.bn_layers for f in on.folds})
        if row.off is not None:
            off = results[row.off]
            entry["off_metrics"] = {
                m: mean_std([f.metrics[m] for f in off.folds]) for m in problem.metrics
            }
            diffs = {m: paired(on, off, m) for m in problem.metrics}
            entry["diff"] = {m: mean_std(d) for m, d in diffs.items()}
            entry["diff_per_fold"] = diffs
            entry["folds_up"] = {m: sum(d > 0 for d in ds) for m, ds in diffs.items()}
            entry["folds_down"] = {m: sum(d < 0 for d in ds) for m, ds in diffs.items()}
            entry["off_seconds_per_epoch"] = seconds(off)
            entry["time_ratio"] = seconds(on) / seconds(off)
            entry["time_ratio_per_fold"] = fold_ratios(on, off)
            entry["off_cpu_seconds_per_epoch"] = cpu_seconds(off)
            entry["cpu_ratio"] = cpu_seconds(on) / cpu_seconds(off)
            entry["cpu_ratio_per_fold"] = cpu_fold_ratios(on, off)
            entry["off_bn_layers"] = sorted({f.bn_layers for f in off.folds})
            if entry["off_bn_layers"] == entry["bn_layers"] and row.technique.startswith(
                "batch norm"
            ):
                entry["note"] = (
                    f"no-op: both have {entry['bn_layers']} BN layers (the file: checkpoint "
                    "fixes the BN layout)"
                )
        elif row.on == "baseline" and entry["bn_layers"] != [0]:
            entry["note"] = (
                f"keeps {entry['bn_layers']} BN layers although batch_norm.enabled is false "
                "(the file: checkpoint fixes the BN layout)"
            )
        rows.append(entry)
    return rows


def _pm(pair: tuple[float, float], signed: bool = False) -> str:
    mean, std = pair
    return f"{mean:+.4f} ± {std:.4f}" if signed else f"{mean:.4f} ± {std:.4f}"


def markdown(problem: Problem, rows: list[dict[str, Any]], folds: int) -> str:
    head = ["technique", "on state"]
    for metric in problem.metrics:
        head += [f"{metric} (on)", f"Δ {metric} vs off (paired)"]
    head += ["epochs", "s/epoch", "x off", "x off (CPU)", "note"]
    lines = [
        f"### {problem.name} ({problem.config}, {folds} folds, {problem.epochs} epochs max)",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for entry in rows:
        cells = [entry["technique"], entry["setting"]]
        if entry["on"] is None:
            cells += ["—"] * (2 * len(problem.metrics) + 4) + [entry["note"]]
            lines.append("| " + " | ".join(cells) + " |")
            continue
        for metric in problem.metrics:
            cells.append(_pm(entry["metrics"][metric]))
            if "diff" in entry:
                up, down = entry["folds_up"][metric], entry["folds_down"][metric]
                cells.append(f"{_pm(entry['diff'][metric], signed=True)} (↑{up} ↓{down})")
            else:
                cells.append("—")
        cells.append(f"{entry['epochs_run']:.1f}")
        cells.append(f"{entry['seconds_per_epoch']:.3f}")
        cells.append(f"{entry['time_ratio']:.2f}" if "time_ratio" in entry else "—")
        cells.append(f"{entry['cpu_ratio']:.2f}" if "cpu_ratio" in entry else "—")
        note = entry["note"]
        if "off_metrics" in entry and entry["off"] != "baseline":
            off = "; ".join(f"{m} {_pm(entry['off_metrics'][m])}" for m in problem.metrics)
            note = f"{note}; off: {off}, {entry['off_seconds_per_epoch']:.3f} s/epoch".lstrip("; ")
        cells.append(note)
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        "Δ: mean ± std over folds of (on - off) on the same fold; ↑/↓: folds where on was "
        "higher/lower. x off: mean s/epoch (wall clock, history `seconds`) on / off; "
        "(CPU): the same from process CPU time per epoch, steadier on a shared machine."
    )
    return "\n".join(lines)


def target_line(rows: list[dict[str, Any]]) -> str:
    entry = next(r for r in rows if r["technique"] == "augmentation")
    ratio = entry["time_ratio"]
    per_fold = entry["time_ratio_per_fold"]
    cpu_per_fold = entry["cpu_ratio_per_fold"]
    added = ratio - 1.0
    verdict = "PASS" if added < AUGMENT_TIME_TARGET else "FAIL"
    return (
        f"target: augmentation adds < {AUGMENT_TIME_TARGET:.0%} to the epoch time on the digits "
        f"CNN: {added:+.1%} wall clock ({entry['off_seconds_per_epoch']:.3f} -> "
        f"{entry['seconds_per_epoch']:.3f} s/epoch; per-fold ratios "
        f"{min(per_fold):.2f}-{max(per_fold):.2f}, median {statistics.median(per_fold):.2f}); "
        f"{entry['cpu_ratio'] - 1.0:+.1%} CPU time (per-fold "
        f"{min(cpu_per_fold):.2f}-{max(cpu_per_fold):.2f}) -> {verdict}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 folds, 2 epochs")
    parser.add_argument("--folds", type=int, default=None, help="default 5 (2 with --quick)")
    parser.add_argument("--digits-epochs", type=int, default=None, help="default 15")
    parser.add_argument("--table-epochs", type=int, default=None, help="default 30")
    parser.add_argument(
        "--problem", choices=["digits", "table"], action="append", help="default: both"
    )
    parser.add_argument("--device", default="cpu", help="train.device (default cpu)")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args()

    folds = args.folds or (2 if args.quick else 5)
    digits_epochs = args.digits_epochs or (2 if args.quick else 15)
    table_epochs = args.table_epochs or (2 if args.quick else 30)
    torch.set_num_threads(1)
    chosen = args.problem or ["digits", "table"]
    started = time.perf_counter()

    report: dict[str, Any] = {
        "tunelab": tunelab.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "threads": 1,
        "device": args.device,
        "folds": folds,
        "seed": SEED,
        "problems": {},
    }
    outputs: list[str] = []
    digits_rows: list[dict[str, Any]] | None = None
    for problem in problems(digits_epochs=digits_epochs, table_epochs=table_epochs):
        if problem.name not in chosen:
            continue
        results = run_problem(problem, folds=folds, device=args.device)
        rows = summarize(problem, results)
        if problem.name == "digits":
            digits_rows = rows
        text = markdown(problem, rows, folds)
        outputs.append(text)
        print(text + "\n", flush=True)
        report["problems"][problem.name] = {
            "config": problem.config,
            "epochs": problem.epochs,
            "metrics": list(problem.metrics),
            "rows": rows,
            "variants": {k: asdict(v) for k, v in results.items()},
        }
    if digits_rows is not None:
        line = target_line(digits_rows)
        report["target"] = line
        print(line)
    report["seconds"] = time.perf_counter() - started
    print(f"(total {report['seconds'] / 60:.1f} min, 1 thread, device {args.device})")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2, default=_jsonable) + "\n")


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


if __name__ == "__main__":
    main()
