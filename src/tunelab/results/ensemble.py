"""An ensemble as a predictor: members (models, trees, or ensembles of fold models) combined
by a weighted mean of their probabilities or predictions, or by a linear stacker.

Saved as ``predictor.json`` (the weights, the stacker's coefficients) with one folder per
member; nothing is pickled, and loading refuses member folders that are not plain names
inside the ensemble's own folder.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from tunelab.data.base import Inputs
from tunelab.errors import DataError, FatalError
from tunelab.results.backbones import FOLDER as BACKBONES
from tunelab.results.backbones import BackboneStore
from tunelab.results.predictor import AnyPredictor, load_from, manifest_header, plain_file

MAX_DEPTH = 4  # an ensemble of fold bags of ... : deeper nesting is a damaged file


@dataclass(frozen=True)
class LinearStacker:
    """A meta-learner on the members' out-of-fold outputs: logistic regression (class
    probabilities side by side) or ridge regression (predictions side by side).

    Attributes:
        kind: logistic or ridge.
        coef: (outputs, features) coefficients; one row for binary logistic and ridge.
        intercept: (outputs,).
    """

    kind: Literal["logistic", "ridge"]
    coef: np.ndarray
    intercept: np.ndarray

    @classmethod
    def from_sklearn(cls, model: Any, kind: Literal["logistic", "ridge"]) -> LinearStacker:
        coef = np.atleast_2d(np.asarray(model.coef_, np.float64))
        intercept = np.atleast_1d(np.asarray(model.intercept_, np.float64))
        return cls(kind=kind, coef=coef, intercept=intercept)

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Probabilities (N, K) for logistic, values (N,) for ridge."""
        scores = features @ self.coef.T + self.intercept
        if self.kind == "ridge":
            return np.asarray(scores[:, 0])
        if scores.shape[1] == 1:
            positive = 1.0 / (1.0 + np.exp(-scores[:, 0]))
            return np.column_stack([1.0 - positive, positive])
        shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
        return np.asarray(shifted / shifted.sum(axis=1, keepdims=True))

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "coef": self.coef.tolist(), "intercept": self.intercept.tolist()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LinearStacker:
        kind = data.get("kind")
        if kind not in ("logistic", "ridge"):
            raise ValueError(f"stacker kind {kind!r}")
        return cls(
            kind=kind,
            coef=np.atleast_2d(np.asarray(data["coef"], np.float64)),
            intercept=np.atleast_1d(np.asarray(data["intercept"], np.float64)),
        )


def member_outputs(
    members: list[AnyPredictor], inputs: Inputs | list[str], task: str
) -> np.ndarray:
    """(members, N, K) probabilities, or (members, N, 1) predictions for regression."""
    if task == "regression":
        return np.stack([np.asarray(m.predict(inputs), np.float64)[:, None] for m in members])
    return np.stack([m.predict_proba(inputs) for m in members])


def combine(outputs: np.ndarray, weights: np.ndarray, stacker: LinearStacker | None) -> np.ndarray:
    """Members' outputs (members, N, K) -> the ensemble's (N, K) (or (N, 1) values)."""
    if stacker is None:
        return np.tensordot(weights, outputs, axes=1)
    features = np.concatenate(list(outputs), axis=1)
    combined = stacker.predict(features)
    return combined[:, None] if combined.ndim == 1 else combined


class EnsemblePredictor:
    """Predicts with every member and combines their outputs.

    Args:
        members: predictors of the same task and classes.
        weights: one per member, summing to 1 (a weighted mean); ignored with a stacker.
        stacker: a linear meta-learner on the members' outputs, or None.
        method: how the members and weights were chosen (for records), e.g. greedy.
    """

    kind = "ensemble"

    def __init__(
        self,
        *,
        members: list[AnyPredictor],
        weights: list[float],
        stacker: LinearStacker | None = None,
        method: str = "mean",
        info: dict[str, Any] | None = None,
    ) -> None:
        if not members or len(weights) != len(members):
            raise ValueError("an ensemble needs members and one weight per member")
        first = members[0]
        self.members = members
        self.weights = np.asarray(weights, np.float64)
        self.stacker = stacker
        self.method = method
        self.task = first.task
        self.classes = first.classes
        self.modality = first.modality
        self.input_columns = first.input_columns
        self.info = info or {}
        if any(m.task != self.task or m.classes != self.classes for m in members):
            raise ValueError("ensemble members must share the task and classes")

    def _combined(self, inputs: Inputs | list[str]) -> np.ndarray:
        return combine(member_outputs(self.members, inputs, self.task), self.weights, self.stacker)

    def predict_proba(self, inputs: Inputs | list[str]) -> np.ndarray:
        if self.task == "regression":
            raise DataError("predict_proba is for classification; this model does regression")
        return self._combined(inputs)

    def predict(self, inputs: Inputs | list[str]) -> np.ndarray:
        combined = self._combined(inputs)
        if self.task == "regression":
            return np.asarray(combined[:, 0])
        assert self.classes is not None
        return np.asarray(np.asarray(self.classes, dtype=object)[combined.argmax(1)])

    def load_images(self, paths: list[Path]) -> np.ndarray:
        loader = getattr(self.members[0], "load_images", None)
        if loader is None:
            raise DataError("this ensemble's members do not take image files")
        return np.asarray(loader(paths))

    def save(self, directory: str | Path, *, backbones: BackboneStore | None = None) -> Path:
        """Write ``predictor.json`` and one folder per member. A frozen backbone that
        members share is stored once, in ``backbones`` (default: this folder's own
        ``backbones/``, so that the folder is complete wherever it is copied)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        store = backbones or BackboneStore(directory / BACKBONES)
        names = [f"member_{i}" for i in range(len(self.members))]
        for name, member in zip(names, self.members, strict=True):
            member.save(directory / name, backbones=store)
        manifest = {
            **manifest_header(self, kind=self.kind),
            "method": self.method,
            "members": names,
            "weights": self.weights.tolist(),
            "stacker": self.stacker.to_dict() if self.stacker else None,
        }
        (directory / "predictor.json").write_text(json.dumps(manifest, indent=2) + "\n")
        return directory


def load_ensemble(
    directory: Path,
    manifest: dict[str, Any],
    *,
    device: str = "cpu",
    trust_code: bool = False,
    depth: int = 0,
    backbones: BackboneStore | None = None,
) -> EnsemblePredictor:
    path = directory / "predictor.json"
    names, weights = manifest.get("members"), manifest.get("weights")
    if (
        depth >= MAX_DEPTH
        or not isinstance(names, list)
        or not isinstance(weights, list)
        or len(names) != len(weights)
        or not names
    ):
        raise FatalError(
            f"{path}: its members and weights are missing, unequal in number or nested too "
            "deep; the ensemble is damaged: train or save it again"
        )
    members = []
    for index in range(len(names)):
        folder = directory / plain_file({"member": names[index]}, "member", directory)
        if not (folder / "predictor.json").is_file():
            raise FatalError(f"{path}: member {names[index]!r} has no predictor.json in {folder}")
        store = backbones or BackboneStore(directory / BACKBONES)
        members.append(
            load_from(
                folder, device=device, trust_code=trust_code, depth=depth + 1, backbones=store
            )
        )
    try:
        stacker = LinearStacker.from_dict(manifest["stacker"]) if manifest.get("stacker") else None
        return EnsemblePredictor(
            members=members,
            weights=[float(w) for w in weights],
            stacker=stacker,
            method=str(manifest.get("method", "mean")),
            info=manifest.get("info", {}),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise FatalError(
            f"{path}: the ensemble is damaged ({type(exc).__name__}: {exc}); train or save it again"
        ) from None
