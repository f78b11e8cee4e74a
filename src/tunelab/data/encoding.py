"""Encoders turn raw inputs into the tensors a model eats.

Each encoder is fitted on the training rows only, stored as JSON next to the trained
weights (no pickle), and applied unchanged at predict time, where it also refuses inputs
that do not look like the training inputs.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import torch

from tunelab.data.base import Inputs, Modality
from tunelab.data.checks import nonfinite_problem, shown_rows
from tunelab.errors import DataError


class Encoder(Protocol):
    """Raw inputs -> tuple of tensors (the model is called as ``model(*tensors)``)."""

    kind: str
    notes: list[str]
    """What the user should know about the fitted encoding (shown in the run's notes)."""

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one encoded example (what a model must accept)."""
        ...

    def transform(self, inputs: Inputs) -> tuple[torch.Tensor, ...]: ...

    def to_dict(self) -> dict[str, Any]: ...


class ArrayEncoder:
    """Images (N, C, H, W) and signals (N, C, L): per-channel standardization.

    The per-channel mean and std are computed on the training rows.
    """

    kind = "array"

    def __init__(self, *, shape: tuple[int, ...], mean: list[float], std: list[float]) -> None:
        self.shape = shape
        self.mean = mean
        self.std = std
        self.notes: list[str] = []

    @classmethod
    def fit(cls, inputs: np.ndarray) -> ArrayEncoder:
        """Per-channel mean and std of the training inputs (N, C, ...).

        Raises:
            DataError: the inputs hold NaN or infinite values (the statistics would be NaN).
        """
        problem = nonfinite_problem(inputs)
        if problem:
            raise DataError(f"the training inputs {problem}")
        axes = (0, *range(2, inputs.ndim))
        values = inputs.astype(np.float64)
        mean = values.mean(axis=axes)
        std = values.std(axis=axes)
        std[std < 1e-8] = 1.0
        return cls(shape=tuple(inputs.shape[1:]), mean=mean.tolist(), std=std.tolist())

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.shape

    def transform(self, inputs: Inputs) -> tuple[torch.Tensor, ...]:
        array = np.asarray(inputs)
        if array.ndim == len(self.shape) and array.shape == self.shape:
            array = array[None]
        if tuple(array.shape[1:]) != self.shape:
            flat = int(np.prod(self.shape))
            if array.ndim == 2 and array.shape[1] == flat:
                array = array.reshape(len(array), *self.shape)
            else:
                raise DataError(
                    f"inputs have shape {tuple(array.shape)}, but the model was trained on "
                    f"examples of shape {self.shape} (or {flat} flat values per row); "
                    "pass arrays of that shape"
                )
        if not np.issubdtype(array.dtype, np.number):
            raise DataError(f"inputs must be numeric arrays, got dtype {array.dtype}")
        # A NaN would come out as a confident prediction; the model never saw one.
        problem = nonfinite_problem(array, flat_columns=True)
        if problem:
            raise DataError(f"the inputs {problem}")
        extra = (1,) * (len(self.shape) - 1)
        mean = np.asarray(self.mean, dtype=np.float32).reshape(1, -1, *extra)
        std = np.asarray(self.std, dtype=np.float32).reshape(1, -1, *extra)
        scaled = (array.astype(np.float32) - mean) / std
        return (torch.from_numpy(np.ascontiguousarray(scaled)),)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "shape": list(self.shape), "mean": self.mean, "std": self.std}

    @classmethod
    def from_dict(cls, data: dict[str, Any], directory: Path) -> ArrayEncoder:
        return cls(shape=tuple(data["shape"]), mean=data["mean"], std=data["std"])


class TextEncoder:
    """Text -> (input_ids, attention_mask), truncated to ``max_length`` tokens.

    The texts of one call are padded (on the right) to the longest of them, not to
    ``max_length``: short texts cost short sequences, and the training batches cut each
    batch to its own longest text (``TensorData.lengths``).
    """

    kind = "text"

    def __init__(self, tokenizer: Any, *, max_length: int) -> None:
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.notes: list[str] = []
        self._fingerprint: str | None = None

    @property
    def fingerprint(self) -> str:
        """A digest of the tokenizer and ``max_length``: equal digests tokenize equally
        (the key of cached tokens and features)."""
        if self._fingerprint is None:
            known = _tokenizer_digests.get(id(self.tokenizer))
            if known is None or known[0] is not self.tokenizer:
                text = _tokenizer_text(self)
                known = (self.tokenizer, _digest(type(self.tokenizer).__name__, text))
                _tokenizer_digests.clear()  # one tokenizer at a time: a study's
                _tokenizer_digests[id(self.tokenizer)] = known
            self._fingerprint = _digest(known[1], str(self.max_length))
        return self._fingerprint

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.max_length,)

    def transform(self, inputs: Inputs) -> tuple[torch.Tensor, ...]:
        if isinstance(inputs, pd.DataFrame):
            raise DataError("text models take a column of strings, not a table")
        values = np.asarray(inputs, dtype=object).ravel()
        blank = [i for i, v in enumerate(values) if _is_missing(v) or not str(v).strip()]
        if blank:
            # None or NaN would be tokenized as the words "None" and "nan" and predicted on.
            raise DataError(
                f"the texts are missing or blank in {len(blank)} row(s) (rows "
                f"{shown_rows(np.asarray(blank))}, e.g. {values[blank[0]]!r}); give every row "
                "a text or leave those rows out"
            )
        texts = [str(t) for t in values]
        encoded = self.tokenizer(
            texts,
            padding="longest",
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )
        if self.tokenizer.padding_side != "right":
            raise DataError(
                f"the tokenizer pads on the {self.tokenizer.padding_side}; tunelab cuts "
                "batches to their longest text and needs padding on the right: set "
                "padding_side to 'right' in the model's tokenizer_config.json"
            )
        return (encoded["input_ids"], encoded["attention_mask"])

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "max_length": self.max_length,
            "tokenizer": "tokenizer",
            # loading compares it: a tokenizer folder that lost its vocabulary still loads
            "vocabulary": len(self.tokenizer),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], directory: Path) -> TextEncoder:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(
            str(directory / data["tokenizer"]), trust_remote_code=False
        )
        return cls(tokenizer, max_length=int(data["max_length"]))


def token_lengths(features: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """The real length of each row of ``TextEncoder`` output (its attention mask's sum)."""
    return features[1].sum(dim=1)


# the digest of the tokenizer of this process's last text encoder: every fit of a study
# builds its encoder again around the same (lent) tokenizer object
_tokenizer_digests: dict[int, tuple[Any, str]] = {}


def _tokenizer_text(encoder: TextEncoder) -> str:
    """The tokenizer's whole definition: a fast tokenizer's JSON, else its vocabulary and
    special tokens."""
    backend = getattr(encoder.tokenizer, "backend_tokenizer", None)
    if backend is not None:
        return _fast_tokenizer_text(backend)
    vocab = sorted(encoder.tokenizer.get_vocab().items())
    return repr((vocab, encoder.tokenizer.all_special_tokens))


def _fast_tokenizer_text(backend: Any) -> str:
    """A fast tokenizer's JSON without the padding and truncation state, which every call
    sets anew (cleared while it is written, then set back: parsing and re-sorting the JSON
    of a 30,000-word vocabulary took seconds on a busy machine)."""
    truncation, padding = backend.truncation, backend.padding
    backend.no_truncation()
    backend.no_padding()
    try:
        return str(backend.to_str())
    finally:
        if truncation is not None:
            backend.enable_truncation(**truncation)
        if padding is not None:
            backend.enable_padding(**padding)


def _digest(*parts: str) -> str:
    digest = hashlib.sha1()
    for part in parts:
        digest.update(part.encode("utf-8", "surrogatepass"))
        digest.update(b"\0")
    return digest.hexdigest()


def _is_missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value))


def fit_encoder(
    modality: Modality,
    inputs: Inputs,
    *,
    tokenizer: Any = None,
    max_length: int = 128,
    categorical: list[str] | None = None,
) -> Encoder:
    """Fit the encoder that suits ``modality`` on the training inputs."""
    if modality == "tabular":
        from tunelab.data.tabular import TabularEncoder

        assert isinstance(inputs, pd.DataFrame)
        return TabularEncoder.fit(inputs, categorical=categorical)
    if modality == "text":
        if tokenizer is None:
            raise DataError(
                "text data needs a model that brings a tokenizer (hf: or st: sources); "
                "set model.source to e.g. 'st:PATH' or drop data.text_column"
            )
        return TextEncoder(tokenizer, max_length=max_length)
    assert isinstance(inputs, np.ndarray)
    return ArrayEncoder.fit(inputs)


def encoder_from_dict(data: dict[str, Any], directory: Path) -> Encoder:
    """Rebuild a fitted encoder saved with ``to_dict``."""
    kind = data["kind"]
    if kind == "tabular":
        from tunelab.data.tabular import TabularEncoder

        return TabularEncoder.from_dict(data, directory)
    if kind == "text":
        return TextEncoder.from_dict(data, directory)
    if kind == "array":
        return ArrayEncoder.from_dict(data, directory)
    raise DataError(f"unknown encoder kind {kind!r} in predictor.json; re-train the model")
