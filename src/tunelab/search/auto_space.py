"""``search.space: auto``: a curated, conditional space for the model family and modality.

A user should not need to know good ranges to get a good study. With no ``search.space``
(or ``search.space: auto``, or ``search.auto_space: true`` with entries of their own merged
over it), ``tunelab run`` searches the space below, resolved once from the config and the
data (the family, the modality, the task and the row count) and written into the run's
``config.yaml``, so workers, resumes and ``--params`` replays see the same space.

Every range is centred on a value known to work for the family (AutoGluon's and FLAML's
defaults, the fastai and Hugging Face recipes) and wide enough to leave room: the README's
"Automatic search space" table says why each range is what it is.

Example::

    facts = DataFacts(modality="tabular", rows=569, task="binary")
    space = auto_space(cfg, facts)  # {"train.lr": ParamSpec(...), ...}
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any

from tunelab.config import RunConfig, config_from_dict

Space = dict[str, dict[str, Any]]

# the learning rate each family trains well around (the range is a decade either side,
# narrower for pretrained transformers, which diverge above ~1e-3)
FAMILY_LR = {
    "network": (1e-4, 1e-2),
    "checkpoint": (1e-4, 1e-2),
    "transformer": (1e-5, 5e-4),
    "vision": (1e-5, 1e-3),
}
PRETRAINED = {"hf": "transformer", "st": "transformer", "timm": "vision",
              "torchvision": "vision", "file": "checkpoint"}  # fmt: skip


@dataclass(frozen=True)
class DataFacts:
    """What the space depends on in the data: its modality, its row count and its task."""

    modality: str
    rows: int
    task: str


def family(cfg: RunConfig) -> str:
    """``trees`` (sklearn:hgb), ``transformer`` (hf:, st:), ``vision`` (timm:,
    torchvision:), ``checkpoint`` (file: weights, pretrained by the user) or ``network``
    (builtin:, py:, trained from scratch)."""
    prefix = cfg.model.source.partition(":")[0]
    if prefix == "sklearn":
        return "trees"
    return PRETRAINED.get(prefix, "network")


def wants_auto(cfg: RunConfig) -> bool:
    """Whether ``tunelab run`` searches the auto space: asked for, or no space given."""
    asked = cfg.search.auto_space
    return bool(asked) if asked is not None else not cfg.search.space


def auto_space(cfg: RunConfig, facts: DataFacts) -> Space:
    """The curated space, in the order it is suggested (a condition's parent first)."""
    kind = family(cfg)
    if kind == "trees":
        return _trees(facts.rows)
    space: Space = {}
    if kind in ("transformer", "vision", "checkpoint"):
        space.update(_transfer(cfg, facts, kind))
    low, high = FAMILY_LR[kind]
    space["train.lr"] = {"type": "float", "low": low, "high": high, "log": True}
    space["train.batch_size"] = {"type": "categorical", "choices": batch_sizes(facts, kind)}
    space.update(_optimizer())
    space["regularization.weight_decay"] = {
        "type": "float", "low": 1e-6, "high": 0.1, "log": True,
    }  # fmt: skip
    space["regularization.dropout"] = {"type": "float", "low": 0.0, "high": 0.5}
    space["weight_averaging.method"] = {"type": "categorical", "choices": ["none", "ema"]}
    if kind == "network" and cfg.model.source.startswith("builtin:"):
        space["model.width"] = {"type": "categorical", "choices": [64, 128, 256]}
    space.update(_augmentation(facts.modality, full_only=kind == "transformer"))
    return space


def batch_sizes(facts: DataFacts, kind: str) -> list[int]:
    """Three powers of two, the largest about a tenth of the rows (at least a few steps an
    epoch), from 8 up to 512 (64 for a transformer, whose activations fill memory)."""
    cap = 64 if kind == "transformer" else 512
    largest = 8
    while largest * 2 <= min(cap, facts.rows // 10):
        largest *= 2
    return sorted({max(8, largest // 4), max(8, largest // 2), largest})


def _trees(rows: int) -> Space:
    # LightGBM's and AutoGluon's GBM ranges; min_samples_leaf at most a tenth of the rows
    leaf_cap = max(6, min(100, rows // 10))
    return {
        "model.options.learning_rate": {"type": "float", "low": 0.01, "high": 0.3, "log": True},
        "model.options.max_leaf_nodes": {"type": "int", "low": 8, "high": 128, "log": True},
        "model.options.min_samples_leaf": {
            "type": "int", "low": 5, "high": leaf_cap, "log": True,
        },
        "model.options.l2_regularization": {
            "type": "float", "low": 1e-6, "high": 10.0, "log": True,
        },
        "model.options.max_features": {"type": "float", "low": 0.5, "high": 1.0},
    }  # fmt: skip


def _optimizer() -> Space:
    return {
        "train.optimizer": {"type": "categorical", "choices": ["adamw", "sgd"]},
        "train.momentum": {
            "type": "float", "low": 0.8, "high": 0.99, "when": {"train.optimizer": "sgd"},
        },
        "train.schedule": {"type": "categorical", "choices": ["cosine", "onecycle", "constant"]},
    }  # fmt: skip


def _transfer(cfg: RunConfig, facts: DataFacts, kind: str) -> Space:
    """The transfer strategy as a choice, each with its own ranges."""
    strategies = ["full", "linear_probe", "llrd", "discriminative"]
    if kind == "transformer" and _installed("peft"):  # peft knows transformers' layers
        strategies.append("lora")
    space: Space = {"finetuning.strategy": {"type": "categorical", "choices": strategies}}
    if facts.task != "regression":  # a probe with scikit-learn's logistic regression
        space["model.head"] = {
            "type": "categorical",
            "choices": ["linear", "logistic"],
            "when": {"finetuning.strategy": "linear_probe"},
        }
        space["model.head_c"] = {
            "type": "float", "low": 0.01, "high": 100.0, "log": True,
            "when": {"model.head": "logistic"},
        }  # fmt: skip
    space["finetuning.layer_decay"] = {
        "type": "float", "low": 0.5, "high": 0.95, "when": {"finetuning.strategy": "llrd"},
    }  # fmt: skip
    space["finetuning.backbone_lr_mult"] = {
        "type": "float", "low": 0.01, "high": 1.0, "log": True,
        "when": {"finetuning.strategy": "discriminative"},
    }  # fmt: skip
    if "lora" in strategies:
        space["finetuning.lora_rank"] = {
            "type": "categorical", "choices": [4, 8, 16], "when": {"finetuning.strategy": "lora"},
        }  # fmt: skip
    return space


def _augmentation(modality: str, *, full_only: bool) -> Space:
    """Augmentation that fits the modality; text's token masking with a full fine-tune
    only (a frozen backbone's features are cached once, so masking would not reach them)."""
    floats = {
        "image": {"rotation": 20.0, "zoom": 0.2, "crop": 0.3, "mixup": 0.4},
        "signal": {"shift": 0.2, "amplitude": 0.2, "noise": 0.1, "time_mask": 0.2, "mixup": 0.4},
        "tabular": {"noise": 0.1, "mixup": 0.4},
        "text": {"token_mask": 0.15},
    }[modality]
    when = {"when": {"finetuning.strategy": "full"}} if full_only else {}
    space: Space = {
        f"augmentation.{name}": {"type": "float", "low": 0.0, "high": high, **when}
        for name, high in floats.items()
    }
    if modality == "image":
        space["augmentation.hflip"] = {"type": "categorical", "choices": [False, True]}
        if _installed("kornia"):  # RandAugment / TrivialAugment run through kornia
            space["augmentation.policy"] = {
                "type": "categorical", "choices": ["none", "trivialaugment"],
            }  # fmt: skip
    return space


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def with_auto_space(cfg: RunConfig, facts: DataFacts) -> RunConfig:
    """``cfg`` with its space resolved: the auto space with the user's entries merged over
    it (an entry of the user replaces the auto one in place; new ones follow), marked
    ``search.auto_space: true``. Unchanged when ``wants_auto`` is false. Idempotent."""
    if not wants_auto(cfg):
        return cfg
    space = auto_space(cfg, facts)
    for name, spec in cfg.search.space.items():
        space[name] = spec.model_dump(exclude_defaults=True)
    raw = cfg.model_dump(mode="json")
    raw["search"]["space"] = space
    raw["search"]["auto_space"] = True
    return config_from_dict(raw, source="search.space auto")


def data_facts(cfg: RunConfig) -> DataFacts:
    """Load the data (as a run does) for the facts the space depends on.

    Raises:
        DataError: the data cannot be loaded, named.
    """
    from tunelab.data import encode_target, load_data

    raw = load_data(cfg.data)
    task = encode_target(raw, task=cfg.data.task).task
    return DataFacts(modality=raw.modality, rows=len(raw), task=task)


def resolve(cfg: RunConfig) -> tuple[RunConfig, str | None]:
    """``cfg`` with the auto space resolved, and a line saying so (None when unchanged)."""
    if not wants_auto(cfg):
        return cfg, None
    facts = data_facts(cfg)
    resolved = with_auto_space(cfg, facts)
    return resolved, describe(resolved, facts)


def describe(cfg: RunConfig, facts: DataFacts) -> str:
    """``search: the auto space for network models on tabular data (569 rows): 12 ...``."""
    names = ", ".join(cfg.search.space)
    return (
        f"search: the auto space for {family(cfg)} models on {facts.modality} data "
        f"({facts.rows} rows), {len(cfg.search.space)} parameters: {names}"
    )
