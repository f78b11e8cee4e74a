"""The config schema: one YAML file describes a whole run.

Every section is a frozen pydantic model with ``extra="forbid"``, so a typo is an error, not
a silently ignored key. ``load_config`` turns every validation problem into one line naming
the dotted field, the value, what is allowed and how to fix it.

Example::

    cfg = load_config("examples/quickstart.yaml", overrides=["train.lr=0.01"])
    cfg.train.lr  # 0.01
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from tunelab.errors import ConfigError
from tunelab.registry import (
    DATA_SOURCES,
    METRICS,
    MODEL_SOURCES,
    PRUNERS,
    SAMPLERS,
    EnsembleMethodName,
    HeadName,
    OptimizerName,
    PoolingName,
    ScheduleName,
    closest,
    did_you_mean,
)
from tunelab.uris import masked, problem

DATA_PREFIXES = tuple(DATA_SOURCES.names())
MODEL_PREFIXES = tuple(MODEL_SOURCES.names())

Probability = Annotated[float, Field(gt=0.0, lt=1.0)]
Rate = Annotated[float, Field(ge=0.0, lt=1.0)]


class Section(BaseModel):
    # NaN and infinity are never meant: NaN passes no bound check, an infinite penalty or
    # noise makes NaN weights, and "no limit" is written as null
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


def _check_prefix(value: str, prefixes: tuple[str, ...], example: str) -> str:
    prefix, sep, rest = value.partition(":")
    if not sep or not rest:
        raise ValueError(
            f"expected 'prefix:value' such as {example!r}; prefixes: {', '.join(prefixes)}"
        )
    if prefix not in prefixes:
        close = closest(prefix, prefixes)
        hint = f" Did you mean '{close[0]}:'?" if close else ""
        raise ValueError(f"unknown prefix {prefix!r}; valid: {', '.join(prefixes)}.{hint}")
    return value


class DataConfig(Section):
    """Where the data comes from and how it is split."""

    source: str = Field(description="prefix:value, e.g. sklearn:digits, csv:data.csv")
    target: str | None = Field(None, description="target column (csv, parquet, jsonl)")
    features: list[str] | None = Field(None, description="feature columns; default all others")
    categorical: list[str] | None = Field(None, description="columns to one-hot even if numeric")
    text_column: str | None = Field(None, description="column holding text (text models)")
    task: Literal["auto", "binary", "multiclass", "regression"] = Field(
        "auto", description="auto: from the target (fractions or many distinct numbers: regression)"
    )
    modality: Literal["auto", "tabular", "image", "signal", "text"] = Field(
        "auto", description="how to read array inputs; auto decides from the source"
    )
    group_column: str | None = Field(None, description="group id column (grouped CV)")
    test_source: str | None = Field(
        None, description="prefix:value of a predefined test set; data.test_size is then unused"
    )
    test_size: Probability = Field(0.2, description="fraction held out for the one test")
    validation_size: Probability = Field(0.2, description="fraction of the rest; picks epochs")
    image_size: tuple[int, int] = Field((32, 32), description="images: resize to (height, width)")
    image_mode: Literal["rgb", "grayscale"] = Field("rgb", description="images: colour channels")
    max_length: int = Field(128, ge=4, le=4096, description="max tokens per text")
    stream_above_mb: float = Field(
        1024.0, gt=0, description="datasets larger than this stream batches to the device"
    )
    split: str | dict[str, str] | None = Field(
        None,
        description="hfds: the split(s) to read: 'train', 'train+validation', or "
        "{train: NAME, test: NAME} (the test split becomes the fixed test rows); default "
        "'train' and, when the dataset has one, 'test'",
    )
    options: dict[str, Any] = Field(default_factory=dict, description="kwargs for py: sources")

    @field_validator("source")
    @classmethod
    def _source(cls, value: str) -> str:
        return _check_prefix(value, DATA_PREFIXES, "sklearn:digits")

    @field_validator("split")
    @classmethod
    def _split(cls, value: str | dict[str, str] | None) -> str | dict[str, str] | None:
        if isinstance(value, dict):
            unknown = sorted(set(value) - {"train", "test"})
            if unknown or "train" not in value:
                raise ValueError(
                    "a split mapping has the keys train (required) and test, e.g. "
                    "{train: train, test: test}; or give one split name such as 'train'"
                )
        return value

    @field_validator("test_source")
    @classmethod
    def _test_source(cls, value: str | None) -> str | None:
        if value is not None and value.startswith("sklearn:"):
            raise ValueError(
                "scikit-learn's bundled datasets have no separate test file; remove "
                "data.test_source to draw the test rows with data.test_size"
            )
        files = tuple(prefix for prefix in DATA_PREFIXES if prefix != "sklearn")
        return value if value is None else _check_prefix(value, files, "csv:test.csv")


class ModelConfig(Section):
    """Which model to fine-tune and the options of built-in architectures and heads."""

    source: str = Field(description="prefix:value, e.g. builtin:mlp, hf:PATH, st:PATH")
    width: int = Field(128, ge=1, description="hidden units / base channels (builtin)")
    depth: int = Field(2, ge=1, le=64, description="hidden layers / conv blocks (builtin)")
    architecture: str | None = Field(
        None, description="for file: weights without tunelab metadata, e.g. builtin:mlp"
    )
    pooling: PoolingName = Field("mean", description="hf: token pooling")
    pretrained: bool = Field(True, description="timm/torchvision: load pretrained weights")
    head: HeadName = Field(
        "linear",
        description="linear: trained by the loop; logistic (scikit-learn LogisticRegression) "
        "or hgb (HistGradientBoosting) fitted on the frozen features (linear_probe)",
    )
    head_c: float = Field(1.0, gt=0, description="logistic head: inverse regularization strength C")
    options: dict[str, Any] = Field(default_factory=dict, description="kwargs for py:/timm:")

    @field_validator("source")
    @classmethod
    def _source(cls, value: str) -> str:
        return _check_prefix(value, MODEL_PREFIXES, "builtin:mlp")

    @field_validator("architecture")
    @classmethod
    def _architecture(cls, value: str | None) -> str | None:
        if value is not None:
            _check_prefix(value, ("builtin", "py"), "builtin:mlp")
        return value


class TrainConfig(Section):
    """The optimizer, schedule and loop settings."""

    epochs: int = Field(20, ge=1, description="passes over the training rows, at most")
    batch_size: int = Field(64, ge=1, description="rows per optimizer step")
    optimizer: OptimizerName = Field("adamw", description="torch's")
    lr: float | Literal["auto"] = Field(
        1e-3, description="a number in (0, 10], or auto: an lr-find sweep suggests it"
    )
    momentum: float = Field(0.9, ge=0, lt=1, description="sgd and rmsprop")
    nesterov: bool = Field(False, description="sgd: Nesterov momentum")
    schedule: ScheduleName = Field("cosine", description="lr")
    warmup_fraction: float = Field(0.0, ge=0, lt=1, description="of all steps (cosine)")
    step_every_epochs: int = Field(10, ge=1, description="step schedule period")
    step_gamma: float = Field(0.1, gt=0, le=1, description="step schedule factor")
    grad_accumulation: int = Field(1, ge=1, description="batches summed per optimizer step")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field("auto", description="bf16 on CUDA")
    device: str = Field("auto", description="auto (cuda, mps, cpu), cpu, cuda, cuda:N or mps")
    threads: int | None = Field(None, ge=1, description="torch CPU threads; null: the free cores")
    metric: str | None = Field(None, description="selection metric; default by task")
    bucket_by_length: bool = Field(
        False, description="text: batch texts of similar length together (less padding)"
    )

    @property
    def lr_value(self) -> float:
        """The learning rate as a number.

        Raises:
            ConfigError: ``lr`` is still ``auto`` (``fit_on_rows`` resolves it first).
        """
        if self.lr == "auto":
            raise ConfigError(
                "train.lr: 'auto' has not been resolved; run 'tunelab lr-find CONFIG' and set "
                "train.lr to its suggestion, or train through tunelab's commands"
            )
        return self.lr

    @field_validator("lr", mode="before")
    @classmethod
    def _lr(cls, value: Any) -> Any:
        if value == "auto":
            return value
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = math.nan
        if isinstance(value, bool) or not 0 < number <= 10:  # NaN fails too
            raise ValueError("expected a learning rate in (0, 10], e.g. 0.001, or 'auto'")
        return number

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        base = value.split(":", 1)[0]
        if base not in ("auto", "cpu", "cuda", "mps"):
            raise ValueError("expected auto, cpu, cuda, cuda:N or mps")
        return value

    @field_validator("metric")
    @classmethod
    def _metric(cls, value: str | None) -> str | None:
        if value is not None and value not in METRICS:
            hint = did_you_mean(value, METRICS)
            raise ValueError(f"unknown metric; valid: {', '.join(METRICS)}.{hint}")
        return value


class RegularizationConfig(Section):
    """Dropout, L1, L2 (weight decay), label smoothing and gradient clipping.

    ``enabled: false`` switches all of them off at once (for ablation).
    """

    enabled: bool = Field(True, description="false: all of regularization off")
    dropout: Rate = Field(0.1, description="dropout before the head")
    backbone_dropout: Rate | None = Field(
        None, description="override the backbone's own dropout rates; null keeps them"
    )
    weight_decay: float = Field(
        0.0, ge=0, description="L2: decoupled with adamw, a loss-gradient term otherwise"
    )
    l1: float = Field(0.0, ge=0, description="L1 penalty on weights (not biases, norms)")
    label_smoothing: Rate = Field(0.0, description="classification: weight on uniform targets")
    grad_clip: float | None = Field(None, gt=0, description="max gradient norm")


class BatchNormConfig(Section):
    """Batch normalization in builtin models and the head; pretrained backbones' BN layers."""

    enabled: bool = Field(True, description="BN layers inside builtin models")
    head: bool = Field(False, description="BatchNorm1d on the features before the head")
    backbone: Literal["trainable", "frozen", "reestimate"] = Field(
        "trainable",
        description="pretrained BN layers: trained, frozen (eval statistics), or their "
        "statistics re-estimated on the training rows before training (then frozen)",
    )
    momentum: float | None = Field(None, gt=0, le=1, description="override BN momentum")


class AugmentationConfig(Section):
    """Random changes to training batches (never validation or test); all zero is off."""

    enabled: bool = Field(True, description="false: all augmentation off")
    # images
    rotation: float = Field(0.0, ge=0, le=180, description="max degrees (images)")
    zoom: float = Field(0.0, ge=0, lt=1, description="max scale change, fraction (images)")
    crop: float = Field(0.0, ge=0, lt=1, description="random resized crop: max area cut")
    hflip: bool = Field(False, description="images: random left-right flips")
    vflip: bool = Field(False, description="images: random up-down flips")
    color_jitter: float = Field(0.0, ge=0, le=1, description="brightness/contrast strength")
    policy: Literal["none", "randaugment", "trivialaugment"] = Field("none", description="kornia")
    cutmix: float = Field(0.0, ge=0, description="Beta(alpha, alpha) of cutmix (images)")
    # signals
    shift: float = Field(0.0, ge=0, lt=1, description="max shift, fraction of length")
    amplitude: float = Field(0.0, ge=0, lt=1, description="max amplitude change, fraction")
    time_mask: float = Field(0.0, ge=0, lt=1, description="max masked span, fraction")
    # signals and tables
    noise: float = Field(0.0, ge=0, description="Gaussian noise std (standardized units)")
    # images, signals and tables
    mixup: float = Field(0.0, ge=0, description="Beta(alpha, alpha) of mixup")
    # text
    token_mask: float = Field(0.0, ge=0, lt=1, description="probability a token is masked")
    token_dropout: float = Field(0.0, ge=0, lt=1, description="probability a token is dropped")


class FinetuningConfig(Section):
    """How a pretrained backbone is trained (transfer learning)."""

    strategy: Literal[
        "full", "linear_probe", "freeze_then_unfreeze", "discriminative", "llrd", "lora", "scratch"
    ] = Field("full", description="how the pretrained backbone trains; scratch: re-initialized")
    unfreeze_epoch: int = Field(1, ge=1, description="freeze_then_unfreeze: first epoch trained")
    gradual: bool = Field(False, description="unfreeze one layer group per epoch, top first")
    backbone_lr_mult: float = Field(
        0.1, gt=0, le=1, description="discriminative (and unfrozen) backbone lr = lr x this"
    )
    layer_decay: float = Field(0.8, gt=0, le=1, description="llrd: lr factor per layer down")
    lora_rank: int = Field(8, ge=1, le=1024, description="lora: rank of the update matrices")
    lora_alpha: int = Field(16, ge=1, description="lora: scale; the update is x alpha/rank")
    lora_dropout: Rate = Field(0.1, description="lora: dropout on the adapters' input")
    lora_target_modules: list[str] | None = Field(
        None,
        description="lora: names of the layers that get adapters (e.g. [query, value]); "
        "default peft's choice for the architecture",
    )
    cache_features: bool = Field(
        True,
        description="frozen backbone (linear_probe, the frozen epochs of freeze_then_unfreeze):"
        " compute its features once per row and share them across epochs, folds and trials",
    )


class EarlyStoppingConfig(Section):
    """Stop when the monitored value stops improving; keep the best weights."""

    enabled: bool = Field(True, description="false: train every epoch")
    monitor: str = Field(
        "metric", description="'metric' (the selection metric), 'val_loss', or a metric name"
    )
    patience: int = Field(5, ge=1, description="epochs without improvement before stopping")
    min_delta: float = Field(0.0, ge=0, description="smallest change that counts as one")
    warmup_epochs: int = Field(0, ge=0, description="epochs before stopping may trigger")
    restore_best: bool = Field(True, description="end on the best epoch's weights")

    @field_validator("monitor")
    @classmethod
    def _monitor(cls, value: str) -> str:
        allowed = ("metric", "val_loss", "train_loss", *METRICS)
        if value not in allowed:
            hint = did_you_mean(value, allowed)
            raise ValueError(f"use 'metric', 'val_loss', 'train_loss' or a metric name.{hint}")
        return value


class WeightAveragingConfig(Section):
    """Average the weights over the end of training (SWA) or along it (EMA)."""

    method: Literal["none", "swa", "ema"] = Field(
        "none",
        description="swa: mean of the weights at the end of each epoch from "
        "start_epoch; ema: exponential moving average updated after every step",
    )
    start_epoch: int | None = Field(
        None, ge=0, description="first epoch averaged (0-based); default the last quarter"
    )
    decay: float = Field(0.99, gt=0, lt=1, description="ema: weight of the running average")


class BaggingConfig(Section):
    """Each refit model becomes the mean of several: seeds, and optionally bootstrap rows."""

    seeds: int = Field(1, ge=1, le=50, description="models per refit, seeds seed..seed+N-1")
    bootstrap: bool = Field(False, description="each on a bootstrap resample of the rows")


class EnsembleConfig(Section):
    """Combine the study's best trials after the search (``tunelab run``)."""

    method: Literal[EnsembleMethodName, "none"] = Field(
        "greedy",
        description="greedy: Caruana's selection with replacement; mean; weighted (weights "
        "fitted on out-of-fold predictions); stacking (logistic/ridge meta-learner); none",
    )
    size: int = Field(5, ge=2, le=50, description="how many of the best trials are candidates")
    members: Literal["auto", "folds", "refit"] = Field(
        "auto",
        description="folds: each trial's fold models (no refit; k-fold studies); refit: "
        "each trial refit on all non-test rows; auto: folds with cv.strategy kfold",
    )
    keep: Literal["auto", "ensemble", "single"] = Field(
        "auto",
        description="auto: the ensemble only when it beats the best single member on "
        "out-of-fold predictions; ensemble / single: force either",
    )
    metric: str = Field(
        "auto", description="what selection and weights optimize; auto: log_loss or the metric"
    )
    rounds: int = Field(25, ge=1, le=1000, description="greedy: selection rounds")
    bagging: BaggingConfig = BaggingConfig()
    distill: bool = Field(
        False,
        description="after a kept ensemble, train one student (the best trial's recipe) on "
        "its predictions; it replaces the ensemble when within distill_tolerance of it",
    )
    distill_tolerance: float = Field(
        0.01,
        ge=0,
        description="how much worse than the ensemble's out-of-fold score the student's "
        "validation score may be, in the selection metric's units",
    )

    @field_validator("metric")
    @classmethod
    def _metric(cls, value: str) -> str:
        if value != "auto" and value not in METRICS:
            hint = did_you_mean(value, METRICS)
            raise ValueError(f"use 'auto' or a metric: {', '.join(METRICS)}.{hint}")
        return value


class ParamSpec(Section):
    """One searched config field.

    Example (YAML)::

        train.lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
        train.optimizer: {type: categorical, choices: [adamw, sgd]}
        train.momentum: {type: float, low: 0.8, high: 0.99, when: {train.optimizer: sgd}}
    """

    type: Literal["float", "int", "categorical"] = Field(description="how it is suggested")
    low: float | None = Field(None, description="float, int: the smallest value")
    high: float | None = Field(None, description="float, int: the largest value")
    log: bool = Field(False, description="float, int: sample on a log scale (low > 0)")
    step: float | None = Field(None, gt=0, description="float, int: values low + k x step")
    choices: list[Any] | None = Field(None, description="categorical: the values to try")
    when: dict[str, Any] | None = Field(
        None, description="suggest only when these fields (searched earlier) have these values"
    )

    @model_validator(mode="after")
    def _consistent(self) -> ParamSpec:
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("a categorical parameter needs a non-empty 'choices' list")
        elif self.low is None or self.high is None or self.low >= self.high:
            raise ValueError(
                f"a {self.type} parameter needs low < high, got {self.low} and {self.high}"
            )
        elif self.log and (self.low <= 0 or self.step is not None):
            raise ValueError("log scale needs low > 0 and no step")
        return self


class SearchConfig(Section):
    """The Optuna study: budget, sampler, pruner, storage and the searched fields."""

    n_trials: int = Field(20, ge=1, description="finished (complete or pruned) trials wanted")
    timeout: float | None = Field(None, gt=0, description="seconds for the whole search")
    sampler: str = Field("tpe", description=f"Optuna's: {', '.join(SAMPLERS.names())}")
    pruner: str = Field("median", description=f"Optuna's: {', '.join(PRUNERS.names())}")
    storage: str | None = Field(
        None,
        description="default SQLite in the run directory; journal (a journal file there), "
        "journal:PATH, or a database URL such as postgresql://USER:${PASSWORD_VARIABLE}@HOST/DB",
    )
    artifacts: str | None = Field(
        None, description="folder for trial artifacts; default RUN/artifacts (shared by workers)"
    )
    study_name: str | None = Field(None, description="default: the run's name")
    heartbeat_interval: int = Field(10, ge=1, description="seconds between trial heartbeats")
    grace_period: int | None = Field(None, ge=1, description="stale after; default 2x heartbeat")
    max_retry: int = Field(1, ge=0, description="retries of a trial whose process died")
    max_consecutive_failures: int = Field(5, ge=1, description="failures in a row: stop")
    keep_top_k: int = Field(3, ge=1, description="trial checkpoints kept")
    space: dict[str, ParamSpec] = Field(default_factory=dict, description="dotted field: ParamSpec")
    auto_space: bool | None = Field(
        None,
        description="the curated space for the model family and modality, with space's "
        "entries merged over it (search/auto_space.py); null: when space is empty",
    )

    @model_validator(mode="before")
    @classmethod
    def _space_auto(cls, data: Any) -> Any:
        # 'space: auto' is the curated space alone
        if isinstance(data, dict) and data.get("space") == "auto":
            return {**data, "space": {}, "auto_space": True}
        return data

    @field_validator("sampler", "pruner")
    @classmethod
    def _named(cls, value: str, info: Any) -> str:
        registry = SAMPLERS if info.field_name == "sampler" else PRUNERS
        if value not in registry:
            raise ValueError(
                f"use one of {', '.join(registry.names())}.{did_you_mean(value, registry)}"
            )
        return value

    @field_validator("artifacts")
    @classmethod
    def _artifacts(cls, value: str | None) -> str | None:
        if value is not None and "://" in value:
            raise ValueError(
                "expected a folder, not a URL; to keep artifacts in S3 or an S3-compatible "
                "store, mount the bucket (mountpoint-s3, s3fs) and give the mount's folder"
            )
        return value

    @model_validator(mode="after")
    def _storage(self) -> SearchConfig:
        # a model validator, not a field one: its error never echoes the URL's password
        problem = _storage_problem(self.storage) if self.storage is not None else None
        if problem:
            raise ValueError(problem)
        return self


def _storage_problem(storage: str) -> str | None:
    """What is wrong with a ``search.storage`` value, or None (a password in it: see
    ``RunConfig._no_passwords``)."""
    if storage == "journal" or (storage.startswith("journal:") and storage != "journal:"):
        return None
    if "://" not in storage:
        return (
            f"storage {masked(storage)!r} is not a storage; write a database URL "
            "(sqlite:///PATH, postgresql://USER@HOST/DB), journal:PATH for a journal file, or "
            "journal for one in the run directory"
        )
    return None


class CrossValidationConfig(Section):
    """How each trial is estimated: the holdout split, or k folds of the non-test rows."""

    strategy: Literal["holdout", "kfold"] = Field("holdout", description="how a trial is scored")
    folds: int = Field(5, ge=2, le=50, description="kfold: folds")
    repeats: int = Field(1, ge=1, le=20, description="kfold: repeats, reshuffled")
    stratified: bool = Field(True, description="classification: keep class shares")
    prune_on: Literal["epoch", "fold"] = Field(
        "epoch", description="report per epoch (first fold) or per fold (wilcoxon)"
    )


class LadderConfig(Section):
    """The ablation ladder: each technique's contribution, measured on the same folds.

    Every variant (the baseline, each rung, the final recipe without each technique) is
    cross-validated on the same seeded ``folds`` x ``repeats`` splits of the non-test rows,
    so the differences are paired; the test rows are never used.
    """

    enabled: bool = Field(False, description="tunelab run: measure the ladder after the refit")
    rungs: list[str] | None = Field(
        None,
        description="the steps after the baseline, in order: tuned, a technique's section "
        "name, ensemble; default every one in the order a practitioner climbs them",
    )
    leave_one_out: bool = Field(
        True, description="also measure the final recipe with each technique switched off"
    )
    folds: int = Field(5, ge=2, le=50, description="folds of every variant")
    repeats: int = Field(2, ge=1, le=20, description="repeats 1 when the data has groups")
    alpha: Probability = Field(0.05, description="intervals at 1 - alpha; verdicts at P >= 1-alpha")
    rope: float | None = Field(None, ge=0, description="|change| <= rope is no change; null: auto")
    epochs: int | None = Field(
        None, ge=1, description="train.epochs of every variant (cheaper); default the recipe's"
    )

    @field_validator("rungs")
    @classmethod
    def _unique(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            twice = sorted({name for name in value if value.count(name) > 1})
            if twice:
                raise ValueError(f"{', '.join(twice)} appear more than once; name each rung once")
        return value


class TrackingConfig(Section):
    """Experiment trackers that also get each trial's per-epoch curves, parameters and
    scores, and the final test metrics. Paths are read from the working directory, like
    every path in a config; tunelab writes there and nowhere else outside the run."""

    mlflow: str | None = Field(
        None,
        min_length=1,
        description="an MLflow tracking URI: sqlite:///mlflow.db, http://HOST:5000, file:mlruns",
    )
    experiment: str | None = Field(
        None, min_length=1, description="the MLflow experiment; default the run's name"
    )
    tensorboard: str | None = Field(
        None, min_length=1, description="a TensorBoard log folder, e.g. runs/tensorboard"
    )
    required: bool = Field(
        True,
        description="a tracker that cannot be reached before training stops the run (false: "
        "the run goes on without it and says so)",
    )
    timeout: float = Field(
        5,
        gt=0,
        le=600,
        description="seconds tunelab waits for a tracker to answer, before training and at "
        "each call; one that takes longer is left out for the rest of the run",
    )


class RunConfig(Section):
    """A whole run: name, seed and one section per stage."""

    name: str = Field("run", description="the run directory runs/NAME: one plain folder name")
    # numpy and scikit-learn take seeds in [0, 2**32); the margin leaves room for the
    # seeds of bagged models and repeats, which count up from this one
    seed: int = Field(0, ge=0, lt=2**31, description="seeds the split, the trials and training")
    data: DataConfig
    model: ModelConfig
    train: TrainConfig = TrainConfig()
    regularization: RegularizationConfig = RegularizationConfig()
    early_stopping: EarlyStoppingConfig = EarlyStoppingConfig()
    batch_norm: BatchNormConfig = BatchNormConfig()
    augmentation: AugmentationConfig = AugmentationConfig()
    finetuning: FinetuningConfig = FinetuningConfig()
    weight_averaging: WeightAveragingConfig = WeightAveragingConfig()
    search: SearchConfig = SearchConfig()
    cv: CrossValidationConfig = CrossValidationConfig()
    ensemble: EnsembleConfig = EnsembleConfig()
    calibration: Literal["auto", "temperature", "none"] = Field(
        "auto",
        description="temperature scaling of the final predictor's probabilities, fitted on "
        "out-of-fold or validation predictions; auto: kept only when it lowers their log loss",
    )
    budget: float | None = Field(
        None,
        gt=0,
        description="wall seconds for the whole tunelab run, from the command's start "
        "(start-up, search, refit, ensemble, report); a trial or refit that would run past "
        "it stops at an epoch boundary",
    )
    ladder: LadderConfig = LadderConfig()
    tracking: TrackingConfig = TrackingConfig()

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        # one plain path component: '.', '..' or a '/' would put the run (and --overwrite)
        # outside runs/
        if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", value):
            raise ValueError(
                "a run name is one plain folder name: letters, digits, '_', '-' and '.', "
                "not starting with '.' or '-' (e.g. 'digits-cnn'); choose another name"
            )
        limit = _name_max() - NAME_SUFFIX
        if len(value.encode()) > limit:
            raise ValueError(
                f"a run name is a folder name, and this one has {len(value.encode())} "
                f"characters: the file system here allows {limit + NAME_SUFFIX} in a name, "
                f"less {NAME_SUFFIX} for what tunelab appends (NAME-lr-find, the trackers' "
                f"NAME-DATE-TIME), so at most {limit}; choose a shorter name"
            )
        return value

    @model_validator(mode="after")
    def _no_passwords(self) -> RunConfig:
        # every URI the config holds, whatever its field: config.yaml and tunelab check
        # would show a password written in one
        problems = []
        for field, value in _strings(self.model_dump()):
            if field in _PASSWORD_FIXES or "://" in value:
                variable, hint = _PASSWORD_FIXES.get(field, _PASSWORD_FIXES[""])
                found = problem(field, value, variable=variable, hint=hint)
                problems += [found] if found else []
        if problems:
            raise ValueError("\n  - ".join(problems))
        return self

    @model_validator(mode="after")
    def _classical_head(self) -> RunConfig:
        if self.model.head != "linear" and self.finetuning.strategy != "linear_probe":
            raise ValueError(
                f"model.head: {self.model.head!r} is fitted on the frozen backbone's features, "
                f"but finetuning.strategy is {self.finetuning.strategy!r}; set "
                "finetuning.strategy to linear_probe, or model.head to linear"
            )
        return self

    @model_validator(mode="after")
    def _space_fields(self) -> RunConfig:
        earlier: list[str] = []
        for name, spec in self.search.space.items():
            if not _is_field(name):
                raise ValueError(
                    f"search.space: {name!r} is not a config field; use dotted "
                    f"names such as train.lr or regularization.dropout.{_near(name)}"
                )
            needs = _SEARCHABLE_WHEN.get(name)
            if needs is not None and not needs[0](self):
                raise ValueError(f"search.space: {name!r} has no effect here: {needs[1]}")
            if _fixed_per_study(name):
                raise ValueError(
                    f"search.space: {name!r} cannot change from trial to trial: every trial "
                    "is estimated on the same data, splits and study (of the data section "
                    f"only {', '.join(SEARCHABLE_DATA_FIELDS)} can be searched); remove it "
                    "from the space and set it in its section"
                )
            for other in spec.when or {}:
                if other not in earlier and not _is_field(other):
                    raise ValueError(f"search.space.{name}.when: {other!r} is not a config field")
            earlier.append(name)
        return self

    def ensemble_members(self) -> Literal["none", "folds", "refit"]:
        """Where ensemble members come from: each trial's fold models (the default with
        k-fold), a refit on all non-test rows (with a holdout), or none (no ensemble)."""
        if self.ensemble.method == "none":
            return "none"
        if self.ensemble.members != "auto":
            return self.ensemble.members
        return "folds" if self.cv.strategy == "kfold" else "refit"

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


# characters tunelab appends to a run's name for the folders it makes: NAME-lr-find, and
# the trackers' NAME-YYYYmmdd-HHMMSS
NAME_SUFFIX = 16


def _name_max() -> int:
    """The longest file name the file system of the working directory takes (255 when it
    does not say)."""
    try:
        return os.pathconf("runs" if Path("runs").is_dir() else ".", "PC_NAME_MAX")
    except (AttributeError, OSError, ValueError):  # no pathconf (Windows), or no limit
        return 255


# the URI fields, each with the variable its fix names and its other ways to give a password
_PASSWORD_FIXES = {
    "search.storage": (
        "TUNELAB_DB_PASSWORD",
        ", or leave it out and export PGPASSWORD (or PGPASSFILE) for PostgreSQL",
    ),
    "tracking.mlflow": (
        "TUNELAB_MLFLOW_PASSWORD",
        ", or leave it out and export MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD "
        "(an MLflow server) or PGPASSWORD (a PostgreSQL store)",
    ),
    "": ("TUNELAB_PASSWORD", ""),
}


def _strings(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    """Every string in a dumped config, with its dotted field name."""
    if isinstance(value, str):
        return [(prefix, value)]
    if isinstance(value, dict):
        items = [(f"{prefix}.{k}" if prefix else str(k), v) for k, v in value.items()]
    elif isinstance(value, list | tuple):
        items = [(f"{prefix}[{i}]", v) for i, v in enumerate(value)]
    else:
        return []
    return [found for name, item in items for found in _strings(item, name)]


def load_config(path: str | Path, *, overrides: list[str] | None = None) -> RunConfig:
    """Read, override and validate a YAML config.

    Args:
        path: the YAML file.
        overrides: ``"dotted.field=value"`` strings; values are parsed as YAML.

    Raises:
        ConfigError: with one line per problem.
    """
    path = Path(path)
    if path.is_dir():
        raise ConfigError(_directory_given(path))
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist; check the path")
    raw = _read_yaml(path)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError("the top level must be a mapping of sections", source=str(path))
    return config_from_dict(raw, overrides=overrides, source=str(path))


def _read_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"not UTF-8 text (byte {exc.start} cannot be decoded: {exc.reason}); save the "
            "config as UTF-8 YAML, or check that the path names the config and not another file",
            source=str(path),
        ) from None
    try:
        return yaml.load(text, Loader=UniqueKeyLoader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {exc}", source=str(path)) from None
    except ConfigError as exc:
        raise ConfigError(exc.problems, source=str(path)) from None
    except RecursionError:
        raise ConfigError(
            "the YAML is nested too deeply to read (thousands of levels of brackets or "
            "indentation); a config has sections of fields, two or three levels deep",
            source=str(path),
        ) from None


class UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key given twice in one mapping is an error.

    Plain YAML keeps the last value silently, so a second ``lr:`` further down a section
    would quietly replace the first. Merge keys (``<<: *defaults``) may still be overridden.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            try:
                seen = key in first_line
            except TypeError:
                continue  # an unhashable key: the base class says what is wrong with it
            if seen:
                raise ConfigError(
                    f"the key {key!r} appears twice in the same section (lines "
                    f"{first_line[key]} and {line}); YAML would keep only the last one. "
                    "Remove one of them"
                )
            first_line[key] = line
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        # Python refuses int() of more than 4300 digits with a ValueError, not a YAML error
        try:
            return int(super().construct_yaml_int(node))
        except ValueError:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"a number of {len(str(node.value))} digits is more than any field takes; "
                "shorten it",
                node.start_mark,
            ) from None


UniqueKeyLoader.add_constructor("tag:yaml.org,2002:int", UniqueKeyLoader.construct_yaml_int)


def _directory_given(path: Path) -> str:
    found = sorted(p for p in path.glob("*.y*ml") if p.is_file())
    if found:
        listed = ", ".join(p.name for p in found[:5]) + (" ..." if len(found) > 5 else "")
        hint = f"; it holds {listed}. Give the YAML file itself, e.g. {found[0]}"
    else:
        hint = "; give the YAML file itself, e.g. examples/quickstart.yaml"
    return f"config file {str(path)!r} is a directory, not a file{hint}"


def config_from_dict(
    raw: dict[str, Any], *, overrides: list[str] | None = None, source: str | None = None
) -> RunConfig:
    """Validate a config given as a dict (see ``load_config``)."""
    data = apply_overrides(raw, overrides or [])
    try:
        return RunConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_explain(exc), source=source) from None


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of ``raw`` with each ``a.b.c=value`` applied (value parsed as YAML)."""
    data: dict[str, Any] = _deep_copy(raw)
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r} must look like 'train.lr=0.01'")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            value = text
        if isinstance(value, dict) and not text.lstrip().startswith("{"):
            value = text  # "sqlite:///:memory:" is a URL, not YAML's {key: null}
        set_dotted(data, key.strip(), value, what=f"override {item!r}")
    return data


def set_dotted(data: dict[str, Any], dotted: str, value: Any, *, what: str) -> None:
    """Set ``data["a"]["b"]["c"] = value`` for ``dotted`` "a.b.c", making sections as needed.

    Raises:
        ConfigError: a part of the path holds a value, not a section (``what`` names the
            setting in the message).
    """
    node = data
    *parents, leaf = dotted.split(".")
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{what}: {part!r} is not a section")
        node = child
    node[leaf] = value


def apply_params(base: RunConfig, params: dict[str, Any]) -> RunConfig:
    """``base`` with each dotted parameter set (a trial's, a refit's); a bad combination is
    a ConfigError."""
    raw = base.model_dump(mode="json")
    for dotted, value in params.items():
        set_dotted(raw, dotted, value, what=f"parameter {dotted!r}")
    return config_from_dict(raw, source="the trial's parameters")


def recipe(cfg: RunConfig, params: dict[str, Any]) -> dict[str, Any]:
    """A trial's parameters as its study stored them -> config values for ``apply_params``
    (a list choice, such as an image size, is stored as its JSON text)."""
    values = dict(params)
    for name, value in params.items():
        spec = cfg.search.space.get(name)
        if spec is not None and spec.type == "categorical" and spec.choices is not None:
            values[name] = choice_from_stored(value, spec.choices)
    return values


def stored_choice(choice: Any) -> Any:
    """A categorical choice as a study stores it: plain values as they are, a list as JSON."""
    plain = choice is None or isinstance(choice, bool | int | float | str)
    return choice if plain else json.dumps(choice)


def choice_from_stored(value: Any, choices: list[Any]) -> Any:
    """The choice of ``choices`` that ``stored_choice`` turned into ``value``."""
    for choice in choices:
        if stored_choice(choice) == value and type(stored_choice(choice)) is type(value):
            return choice
    return value


def _deep_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


def _explain(exc: ValidationError) -> list[str]:
    problems = []
    for error in exc.errors():
        loc = [str(p) for p in error["loc"]]
        field = ".".join(loc) or "(top level)"
        kind = error["type"]
        if kind == "extra_forbidden":
            problems.append(_unknown_field(loc))
        elif kind == "missing":
            problems.append(f"{field}: required field is missing; add it to the config")
        elif kind == "invalid_key":
            where = ".".join(loc[:-1]) or "the top level"
            problems.append(
                f"{where}: the key {error['input']!r} is not a field name (YAML reads it as "
                f"{type(error['input']).__name__}); field names are words such as lr or "
                "epochs: fix or remove that key"
            )
        else:
            message = error["msg"].removeprefix("Value error, ")
            if isinstance(error["input"], dict):  # a whole section: the message names the field
                problems.append(message if not loc else f"{field}: {message}")
            else:
                problems.append(f"{field}: got {error['input']!r}; {message}")
    return problems


# fields that live in a technique's section, where users coming from other tools look first
_ELSEWHERE = {
    "model.dropout": "regularization.dropout",
    "model.batch_norm": "batch_norm.enabled",
    "train.weight_decay": "regularization.weight_decay",
    "train.grad_clip": "regularization.grad_clip",
    "train.label_smoothing": "regularization.label_smoothing",
    "train.patience": "early_stopping.patience",
}

# what Hugging Face's TrainingArguments and Lightning's Trainer call tunelab's fields; a
# name is recognised in any section and at the top level
_OTHER_TOOLS = {
    "learning_rate": "train.lr",
    "max_epochs": "train.epochs",
    "num_train_epochs": "train.epochs",
    "num_epochs": "train.epochs",
    "min_epochs": "early_stopping.warmup_epochs",
    "warmup_ratio": "train.warmup_fraction",
    "warmup_steps": "train.warmup_fraction",
    "per_device_train_batch_size": "train.batch_size",
    "train_batch_size": "train.batch_size",
    "gradient_accumulation_steps": "train.grad_accumulation",
    "accumulate_grad_batches": "train.grad_accumulation",
    "lr_scheduler_type": "train.schedule",
    "optim": "train.optimizer",
    "accelerator": "train.device",
    "fp16": "train.precision",
    "bf16": "train.precision",
    "metric_for_best_model": "train.metric",
    "max_grad_norm": "regularization.grad_clip",
    "gradient_clip_val": "regularization.grad_clip",
    "label_smoothing_factor": "regularization.label_smoothing",
    "early_stopping_patience": "early_stopping.patience",
    "early_stopping_threshold": "early_stopping.min_delta",
    "load_best_model_at_end": "early_stopping.restore_best",
    "restore_best_weights": "early_stopping.restore_best",
}


def _unknown_field(loc: list[str]) -> str:
    dotted = ".".join(loc)
    home = _home_of(dotted)
    if home is not None:
        where = home if "." in home else f"{home}, at the top level of the config"
        return f"{dotted}: unknown field; it is set as {where}"
    model: type[BaseModel] = RunConfig
    for part in loc[:-1]:
        annotation = model.model_fields[part].annotation if part in model.model_fields else None
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
        else:
            break
    valid = list(model.model_fields)
    hint = did_you_mean(loc[-1], valid)
    return f"{'.'.join(loc)}: unknown field; valid fields here: {', '.join(valid)}.{hint}"


# encoding settings a trial may change (the data is re-encoded for it); the rest of data,
# search and cv are the same for every trial by construction
SEARCHABLE_DATA_FIELDS = ("data.image_size", "data.max_length")


_SEARCHABLE_WHEN: dict[str, tuple[Any, str]] = {
    "data.image_size": (
        lambda cfg: cfg.data.source.startswith("images:"),
        "only images: sources are resized to data.image_size (arrays keep their shape)",
    ),
    "data.max_length": (
        lambda cfg: cfg.data.text_column is not None,
        "only text data (data.text_column) is tokenized to data.max_length",
    ),
}


def _fixed_per_study(dotted: str) -> bool:
    if dotted in SEARCHABLE_DATA_FIELDS:
        return False
    return dotted == "name" or dotted.split(".")[0] in (
        "data",
        "search",
        "cv",
        "ladder",
        "tracking",
    )


def _home_of(dotted: str) -> str | None:
    """Where the field a user wrote as ``dotted`` lives, if it is a known name from
    elsewhere: another section (``train.dropout``), the top level (``train.seed``), or
    another tool (``max_epochs``); None when it is none of those."""
    if dotted in _ELSEWHERE:
        return _ELSEWHERE[dotted]
    leaf = dotted.rpartition(".")[2]
    if leaf in _OTHER_TOOLS:
        return _OTHER_TOOLS[leaf]
    homes = [name for name in _leaf_fields() if name.rpartition(".")[2] == leaf]
    # a name in many sections (enabled, options) says nothing about which one was meant
    return " or ".join(homes) if 0 < len(homes) <= 2 and dotted not in homes else None


def _leaf_fields() -> list[str]:
    """Every settable field as a dotted name: ``seed``, ``train.lr``, ..."""
    names: list[str] = []
    for section, info in RunConfig.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            names += [f"{section}.{leaf}" for leaf in annotation.model_fields]
        else:
            names.append(section)
    return names


def _is_field(dotted: str) -> bool:
    """Whether ``dotted`` (e.g. ``train.lr``) names a field of the config schema."""
    model: type[BaseModel] = RunConfig
    parts = dotted.split(".")
    for i, part in enumerate(parts):
        if part not in model.model_fields:
            return False
        annotation = model.model_fields[part].annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
        else:
            # a leaf; dict-valued fields (options) accept deeper keys
            return i == len(parts) - 1 or part == "options"
    return False


def _near(dotted: str) -> str:
    """' Did you mean ...?' for a dotted field name, or ''."""
    home = _home_of(dotted)
    if home is not None and " or " not in home:
        return f" Did you mean {home!r}?"
    names = [name for name in _leaf_fields() if "." in name]
    return did_you_mean(dotted, names)
