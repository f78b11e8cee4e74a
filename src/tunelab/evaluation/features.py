"""Work done once per row and shared by every fit: tokens, and a frozen backbone's features.

A frozen backbone (``finetuning.strategy: linear_probe``, and the frozen epochs of
``freeze_then_unfreeze``) in eval mode gives every row the same features in every epoch,
fold and trial. They are computed once per row (in inference mode, texts sorted by length
so that a batch pads little) and the head trains on them (``tunelab.models.frozen``). Texts
are tokenized once per row as well.

Where they are kept: in memory for the process, and in the run directory's ``features/``
folder when the fit belongs to a run (``Prepared.cache_dir``), so the trials of a study, its
worker processes (``--jobs``) and a resumed study share them. A file is written under a
temporary name and renamed into place, and a lock file makes a second process wait for the
first rather than compute the same features again.

What a cache entry is keyed by, so that a changed setting never reuses it: the model
section and a digest of the backbone's weights, the pooling, the fitted encoder (a text
encoder's tokenizer and ``data.max_length``; an image encoder's size and channel
statistics) and a digest of the raw inputs of every row.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import uuid
import weakref
from collections import OrderedDict
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from tunelab.config import RunConfig
from tunelab.data import RawData, take
from tunelab.data.encoding import Encoder, TextEncoder, token_lengths
from tunelab.evaluation.plan import ModelPlan
from tunelab.evaluation.prepare import Prepared
from tunelab.models.base import BuiltModel
from tunelab.models.frozen import CachedUntilUnfrozen, HeadOnFeatures, embedding_of
from tunelab.models.lent import frozen_part
from tunelab.techniques import backbone_frozen, why_features_change
from tunelab.training.batching import inference_batches
from tunelab.training.cores import inference_threads
from tunelab.training.loop import resolve_device

log = logging.getLogger("tunelab")

CACHE_FORMAT = 1
_MEMORY_ENTRIES = 8
_memory: OrderedDict[str, dict[str, np.ndarray]] = OrderedDict()
_data_digests: dict[int, tuple[weakref.ref[Any], str]] = {}
_weight_digests: dict[tuple[tuple[str, int, int], ...], tuple[list[torch.Tensor], str]] = {}

Tensors = tuple[torch.Tensor, ...]


class FeatureStore:
    """Arrays by key: in memory for this process, and as ``KEY.npz`` files in ``directory``
    (the run's ``features/``) when there is one.

    Args:
        directory: where the files go; None keeps entries in memory only.
    """

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory

    def load(self, key: str) -> dict[str, np.ndarray] | None:
        """The arrays stored under ``key``, or None (a damaged file counts as none)."""
        if key in _memory:
            _memory.move_to_end(key)
            return _memory[key]
        if self.directory is None or not (self.directory / f"{key}.npz").is_file():
            return None
        path = self.directory / f"{key}.npz"
        try:
            with np.load(path, allow_pickle=False) as archive:
                arrays = {name: archive[name] for name in archive.files}
        except (OSError, ValueError, EOFError) as exc:
            log.warning("cached features %s cannot be read (%s); computing them again", path, exc)
            return None
        _remember(key, arrays)
        return arrays

    def save(self, key: str, arrays: dict[str, np.ndarray]) -> None:
        """Keep ``arrays`` under ``key``; the file appears whole or not at all."""
        _remember(key, arrays)
        if self.directory is None:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        temporary = self.directory / f".{key}.{os.getpid()}.{uuid.uuid4().hex}.npz"
        try:
            np.savez(temporary, **arrays)  # type: ignore[arg-type]
            temporary.replace(self.directory / f"{key}.npz")
        finally:
            temporary.unlink(missing_ok=True)

    def exclusive(self, key: str) -> AbstractContextManager[Any]:
        """Held while ``key`` is computed, so that other processes wait and then read it."""
        if self.directory is None:
            return nullcontext()
        from filelock import FileLock

        self.directory.mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.directory / f"{key}.lock"))


def _remember(key: str, arrays: dict[str, np.ndarray]) -> None:
    _memory[key] = arrays
    _memory.move_to_end(key)
    while len(_memory) > _MEMORY_ENTRIES:
        _memory.popitem(last=False)


def clear_memory() -> None:
    """Forget what this process keeps in memory (the files stay)."""
    _memory.clear()


def store_of(prepared: Prepared) -> FeatureStore:
    return FeatureStore(prepared.cache_dir)


# -- fingerprints -------------------------------------------------------------------------


def digest(*parts: str | bytes | memoryview) -> str:
    """A hex digest of ``parts`` (separated, so that ("ab", "c") differs from ("a", "bc"))."""
    hasher = hashlib.sha1()
    for part in parts:
        hasher.update(part.encode("utf-8", "surrogatepass") if isinstance(part, str) else part)
        hasher.update(b"\0")
    return hasher.hexdigest()


def data_fingerprint(raw: RawData) -> str:
    """A digest of every row's raw inputs (computed once per loaded dataset)."""
    inputs = raw.inputs
    known = _data_digests.get(id(inputs))
    if known is not None and known[0]() is inputs:
        return known[1]
    if isinstance(inputs, pd.DataFrame):
        hashed = pd.util.hash_pandas_object(inputs, index=False).to_numpy()
        value = digest("table", ",".join(map(str, inputs.columns)), hashed.tobytes())
    elif inputs.dtype == object:
        value = digest("text", *(str(text) for text in inputs))
    else:
        array = np.ascontiguousarray(inputs)
        value = digest(str(array.dtype), str(array.shape), array.data.cast("B"))
    _data_digests[id(inputs)] = (weakref.ref(inputs), value)
    return value


def weights_fingerprint(model: nn.Module) -> str:
    """A digest of every tensor of the model except its head's (freshly initialized).

    Remembered for tensors that have not changed since (same storage, same version
    counter), so a backbone lent to many fits is hashed once; a lent backbone's is the
    content digest it is stored under (``tunelab.models.lent``), hashed once for both.
    """
    lent = frozen_part(model)
    if lent is not None and set(lent[1]) == {k for k in model.state_dict() if k[:5] != "head."}:
        return lent[0]
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("head.")}
    identity = tuple((k, v.data_ptr(), v._version) for k, v in state.items())
    known = _weight_digests.get(identity)
    if known is not None:
        return known[1]
    hasher = hashlib.sha1()
    for name, tensor in state.items():
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        hasher.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        hasher.update(flat.view(torch.uint8).numpy().data)
    value = hasher.hexdigest()
    if len(_weight_digests) >= 2:
        _weight_digests.clear()
    # the tensors are kept alive with their digest, so no other tensor can take their place
    _weight_digests[identity] = (list(state.values()), value)
    return value


def _encoding_fingerprint(encoder: Encoder) -> str:
    described = json.dumps(encoder.to_dict(), sort_keys=True, default=str)
    if isinstance(encoder, TextEncoder):
        return digest(described, encoder.fingerprint)
    return digest(described)


def features_key(plan: ModelPlan) -> str:
    """The cache key of the frozen backbone's features for this model, encoding and data."""
    cfg, prepared, encoder, built = plan.cfg, plan.prepared, plan.encoder, plan.built
    model = cfg.model.model_dump(mode="json", exclude={"head", "head_c"})
    pooling = {name: built.spec.get(name) for name in ("pooling", "normalize")}
    return "features-" + digest(
        str(CACHE_FORMAT),
        json.dumps(model, sort_keys=True, default=str),
        json.dumps(pooling, sort_keys=True, default=str),
        weights_fingerprint(built.module),
        _encoding_fingerprint(encoder),
        data_fingerprint(prepared.raw),
    )


# -- tokens -------------------------------------------------------------------------------


def tokens(
    prepared: Prepared, encoder: TextEncoder, rows: np.ndarray
) -> tuple[Tensors, torch.Tensor]:
    """``(input_ids, attention_mask)`` of ``rows``, padded to their longest text, and the
    real length of each; every row of the data is tokenized once and kept."""
    store = store_of(prepared)
    key = "tokens-" + digest(str(CACHE_FORMAT), encoder.fingerprint, data_fingerprint(prepared.raw))
    arrays = store.load(key)
    if arrays is None:
        with store.exclusive(key):
            arrays = store.load(key)
            if arrays is None:
                ids, mask = encoder.transform(prepared.raw.inputs)
                arrays = {"ids": ids.numpy(), "lengths": token_lengths((ids, mask)).numpy()}
                store.save(key, arrays)
    lengths = torch.from_numpy(arrays["lengths"][rows]).long()
    width = max(int(lengths.max()), 1) if len(rows) else 1
    ids = torch.from_numpy(np.ascontiguousarray(arrays["ids"][rows, :width])).long()
    mask = (torch.arange(width)[None, :] < lengths[:, None]).long()
    return (ids, mask), lengths


def encoded(prepared: Prepared, encoder: Encoder, rows: np.ndarray) -> tuple[Tensors, Any]:
    """The model's inputs for ``rows`` and, for texts, their lengths (else None)."""
    if isinstance(encoder, TextEncoder):
        return tokens(prepared, encoder, rows)
    return encoder.transform(take(prepared.raw.inputs, rows)), None


# -- the frozen backbone's features -----------------------------------------------------------


@dataclass
class Computed:
    """Features of some rows and what it took (for the run's notes)."""

    values: np.ndarray
    key: str
    rows_computed: int
    seconds: float = 0.0


def backbone_features(plan: ModelPlan, rows: np.ndarray, *, use_cache: bool = True) -> Computed:
    """The frozen backbone's features of ``rows`` (float32, one row each).

    A miss computes every row a fit of this run can train or validate on (all but the test
    rows) together with ``rows``, so that the folds and trials after it only read.
    """
    prepared = plan.prepared
    key = features_key(plan)
    store = store_of(prepared) if use_cache else FeatureStore(None)
    arrays = store.load(key) if use_cache else None
    if arrays is not None and arrays["done"][rows].all():
        return Computed(arrays["values"][rows], key, 0)
    with store.exclusive(key):
        arrays = store.load(key) if use_cache else None
        if arrays is not None and arrays["done"][rows].all():
            return Computed(arrays["values"][rows], key, 0)
        wanted = np.union1d(np.setdiff1d(np.arange(len(prepared.raw)), prepared.split.test), rows)
        if not use_cache:
            wanted = np.unique(rows)
        done = arrays["done"].copy() if arrays is not None else np.zeros(len(prepared.raw), bool)
        missing = wanted[~done[wanted]]
        started = time.perf_counter()
        fresh = _run_backbone(plan, missing)
        if arrays is None:
            values = np.zeros((len(prepared.raw), fresh.shape[1]), np.float32)
        else:
            values = arrays["values"].copy()
        values[missing] = fresh
        done[missing] = True
        if use_cache:
            store.save(key, {"values": values, "done": done})
        return Computed(values[rows], key, len(missing), time.perf_counter() - started)


def _run_backbone(plan: ModelPlan, rows: np.ndarray) -> np.ndarray:
    """``embed`` of ``rows`` in eval and inference mode, on every core this process may
    use (``train.threads`` when set); texts in order of length, so that each batch is
    padded only to its own longest text."""
    cfg, model = plan.cfg, plan.built.module
    embed = embedding_of(model)
    assert embed is not None
    device = resolve_device(cfg.train.device)
    model.to(device)
    was_training = model.training
    model.eval()
    inputs, lengths = encoded(plan.prepared, plan.encoder, rows)
    values: torch.Tensor | None = None
    with torch.inference_mode(), inference_threads(cfg.train.threads):
        for index, batch in inference_batches(inputs, lengths, max(cfg.train.batch_size, 64)):
            out = embed(*(t.to(device) for t in batch)).float().cpu()
            if values is None:
                values = torch.empty((len(rows), out.shape[1]))
            values[index] = out
    model.train(was_training)
    if values is None:
        return np.zeros((0, 0), np.float32)
    return np.ascontiguousarray(values.numpy(), dtype=np.float32)


# -- what the loop trains -------------------------------------------------------------------


@dataclass
class TrainingInputs:
    """What a fit trains and on which tensors.

    Attributes:
        model: what the loop calls (the model itself, or a wrapper that trains its head on
            cached features).
        modality: what the techniques see: the data's, or ``tabular`` for features.
        encoder: what the techniques read about the encoding (channel statistics, columns).
        tensors: rows -> the model's inputs and, for token sequences, their lengths.
        buckets: batch texts of similar length together (``train.bucket_by_length``).
        notes: what the user should know (where the features came from, or why not cached).
    """

    model: nn.Module
    modality: str
    encoder: Any
    tensors: Callable[[np.ndarray], tuple[Tensors, torch.Tensor | None]]
    buckets: bool = False
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class FeatureColumns:
    """Cached features as the techniques see them: every column numeric (feature noise)."""

    numeric: list[int]


def training_inputs(plan: ModelPlan) -> TrainingInputs:
    """The model the loop trains and its inputs: the head on cached features when the
    backbone stays frozen, else the whole model on (tokenized-once) inputs."""
    cfg, prepared, encoder, built = plan.cfg, plan.prepared, plan.encoder, plan.built
    live = TrainingInputs(
        model=built.module,
        modality=prepared.raw.modality,
        encoder=encoder,
        tensors=lambda rows: encoded(prepared, encoder, rows),
        buckets=cfg.train.bucket_by_length,
    )
    reason = plan.not_cached
    if reason is not None:
        if reason:
            live.notes.append(f"features: not cached ({reason})")
        return live
    if backbone_frozen(cfg) == "until_unfrozen":
        return _until_unfrozen(plan, live)
    return _head_on_features(plan)


def why_not_cached(cfg: RunConfig, built: BuiltModel) -> str | None:
    """Why the backbone's features cannot be cached for this fit ("" when there is nothing
    to say: its strategy trains the backbone), or None when they can."""
    frozen = backbone_frozen(cfg)
    if frozen is None:
        return ""
    if not cfg.finetuning.cache_features:
        return "finetuning.cache_features is false"
    if embedding_of(built.module) is None:
        return (
            f"the {type(built.module).__name__} model has no embed() method giving the "
            "features its head reads"
        )
    return why_features_change(cfg, built.module, head_only=frozen == "always")


def _head_on_features(plan: ModelPlan) -> TrainingInputs:
    cfg, prepared, model = plan.cfg, plan.prepared, plan.built.module
    first = backbone_features(plan, plan.train_rows)
    backbone = model.backbone
    assert isinstance(backbone, nn.Module)
    frozen = [p for p in backbone.parameters() if p.requires_grad]
    for param in frozen:  # as the live linear probe leaves it: no gradients, ever
        param.requires_grad_(False)
    notes = [_note(first, len(prepared.raw))]
    mean = std = None
    if cfg.augmentation.enabled and cfg.augmentation.noise > 0:
        # noise is given in standardized units, as for a table's columns
        mean_np = first.values.mean(axis=0)
        std_np = first.values.std(axis=0)
        std_np[std_np < 1e-8] = 1.0
        mean, std = torch.from_numpy(mean_np), torch.from_numpy(std_np)

    def tensors(rows: np.ndarray) -> tuple[Tensors, None]:
        values = torch.from_numpy(backbone_features(plan, rows).values)
        if mean is not None and std is not None:
            values = (values - mean) / std
        return (values,), None

    width = first.values.shape[1]
    return TrainingInputs(
        model=HeadOnFeatures(model.head, mean, std),  # type: ignore[arg-type]
        modality="tabular",
        encoder=FeatureColumns(numeric=list(range(width))),
        tensors=tensors,
        notes=notes,
    )


def _until_unfrozen(plan: ModelPlan, live: TrainingInputs) -> TrainingInputs:
    prepared, encoder = plan.prepared, plan.encoder
    every = np.setdiff1d(np.arange(len(prepared.raw)), prepared.split.test)
    computed = backbone_features(plan, every)
    table = torch.zeros((len(prepared.raw), computed.values.shape[1]))
    table[torch.from_numpy(every)] = torch.from_numpy(computed.values)

    def tensors(rows: np.ndarray) -> tuple[Tensors, Any]:
        inputs, lengths = encoded(prepared, encoder, rows)
        return (*inputs, torch.from_numpy(np.asarray(rows, dtype=np.int64))), lengths

    return TrainingInputs(
        model=CachedUntilUnfrozen(plan.built.module, table),
        modality=live.modality,
        encoder=encoder,
        tensors=tensors,
        buckets=live.buckets,
        notes=[_note(computed, len(prepared.raw)) + " for the frozen epochs"],
    )


def _note(computed: Computed, total: int) -> str:
    if computed.rows_computed:
        return (
            f"features: the frozen backbone ran once on {computed.rows_computed} of {total} "
            f"rows ({computed.seconds:.1f} s); the head trains on its cached features"
        )
    return "features: the head trains on the frozen backbone's cached features"
