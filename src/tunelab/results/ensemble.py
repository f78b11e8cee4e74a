"""An ensemble as a predictor: members (models, trees, or ensembles of fold models) combined
by a weighted mean of their probabilities or predictions, or by a linear stacker.

Saved as ``predictor.json`` (the weights, the stacker's coefficients) with one folder per
member; nothing is pickled, and loading refuses member folders that are not plain names
inside the ensemble's own folder.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from tunelab.data.base import Inputs
from tunelab.errors import DataError, FatalError
from tunelab.results.backbones import FOLDER as BACKBONES
from tunelab.results.backbones import BackboneStore
from tunelab.results.files import DAMAGED, inside, resolved
from tunelab.results.guard import check_outputs
from tunelab.results.manifest import plain_file
from tunelab.results.predictor import AnyPredictor, Loading, load_from, manifest_header
from tunelab.results.rundir import MANIFEST

MAX_DEPTH = 4  # an ensemble of fold bags of ... : deeper nesting is a damaged file
# an ensemble of 50 trials (ensemble.size's most) or a bag of 50 x 20 fold models is the most
# tunelab makes
MAX_MEMBERS = 1000
WEIGHT_TOLERANCE = 1e-6  # weights are normalized to sum to 1, then written as JSON numbers


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
        problem = _weights_problem([float(w) for w in weights])
        if problem:
            raise ValueError(f"an ensemble's {problem}")
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
        outputs = member_outputs(self.members, inputs, self.task)  # each member checks its own
        combined = combine(outputs, self.weights, self.stacker)
        return check_outputs(combined, cause=self._non_finite_cause)

    def _non_finite_cause(self) -> str:
        if self.stacker is None:
            return "the ensemble's weights contain NaN or infinite values"
        if not (np.isfinite(self.stacker.coef).all() and np.isfinite(self.stacker.intercept).all()):
            return "the stacker's coefficients contain NaN or infinite values"
        return "the stacker's scores exceed the largest float64 number"

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
        (directory / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        return directory


def load_ensemble(directory: Path, manifest: dict[str, Any], loading: Loading) -> EnsemblePredictor:
    """The ensemble in ``directory``, its members loaded from their folders.

    ``loading.seen``: the member folders already loaded for the predictor at the top; a
    folder is loaded once (a member that is its own ensemble, or two names for one folder,
    are refused), so loading ends, and ends in as many loads as there are folders.
    """
    path = directory / MANIFEST
    names, weights = _members_and_weights(path, manifest, loading.depth)
    seen = set() if loading.seen is None else loading.seen
    store = loading.backbones or BackboneStore(directory / BACKBONES)
    inner = replace(loading, depth=loading.depth + 1, seen=seen, backbones=store)
    members = [load_from(_member_folder(path, name, seen), inner) for name in names]
    stacker = _stacker(path, manifest, members=len(members))
    try:
        return EnsemblePredictor(
            members=members,
            weights=weights,
            stacker=stacker,
            method=str(manifest.get("method", "mean")),
            info=manifest["info"],
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise FatalError(f"{path}: the ensemble is damaged ({exc}); {DAMAGED}") from None


def _members_and_weights(
    path: Path, manifest: dict[str, Any], depth: int
) -> tuple[list[str], list[float]]:
    names, weights = manifest.get("members"), manifest.get("weights")
    if depth >= MAX_DEPTH:
        raise FatalError(
            f"{path}: ensembles are nested more than {MAX_DEPTH} deep (tunelab nests at most an "
            f"ensemble of bags of fold models); {DAMAGED}"
        )
    if not isinstance(names, list) or not isinstance(weights, list) or not names:
        raise FatalError(f"{path}: its members and weights are missing or not lists; {DAMAGED}")
    if len(names) > MAX_MEMBERS or len(names) != len(weights):
        raise FatalError(
            f"{path}: {len(names)} members and {len(weights)} weights; an ensemble has one "
            f"weight per member and at most {MAX_MEMBERS} members: {DAMAGED}"
        )
    if len(set(map(str, names))) != len(names):
        raise FatalError(f"{path}: members names a folder twice; {DAMAGED}")
    problem = _weights_problem(weights)
    if problem:
        raise FatalError(f"{path}: {problem}; {DAMAGED}")
    return [str(name) for name in names], [float(w) for w in weights]


def _weights_problem(weights: list[Any]) -> str | None:
    for index, weight in enumerate(weights):
        if not isinstance(weight, int | float) or isinstance(weight, bool):
            return f"weights[{index}] is {weight!r:.40}, not a number"
        if not np.isfinite(weight) or weight < 0:
            return f"weights[{index}] is {weight} (each weight is a finite number, 0 or more)"
    total = math.fsum(weights)
    if abs(total - 1.0) > WEIGHT_TOLERANCE:
        return f"weights sum to {total:.6g}, not 1 (within {WEIGHT_TOLERANCE:g})"
    return None


def _member_folder(path: Path, name: str, seen: set[Path]) -> Path:
    directory = path.parent
    folder = directory / plain_file({"member": name}, "member", directory)
    target = resolved(folder)
    if target == resolved(directory) or not inside(folder, directory):
        raise FatalError(
            f"{path}: member {name!r} leads to {target}, not a folder inside the ensemble's "
            f"own ({directory}); an ensemble holds its members: {DAMAGED}"
        )
    if target in seen:
        raise FatalError(
            f"{path}: member {name!r} is a folder this predictor already loaded ({target}); "
            f"each member has a folder of its own: {DAMAGED}"
        )
    seen.add(target)
    if not (folder / MANIFEST).is_file():
        raise FatalError(
            f"{path}: member {name!r} has no predictor.json ({folder / 'predictor.json'} does "
            "not exist); the ensemble is incomplete: train or save it again"
        )
    return folder


def _stacker(path: Path, manifest: dict[str, Any], *, members: int) -> LinearStacker | None:
    """The stacker's coefficients, checked against the members' outputs side by side."""
    data = manifest.get("stacker")
    if data is None:
        return None
    task, classes = manifest["task"], manifest["classes"]
    try:
        stacker = LinearStacker.from_dict(data)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise FatalError(
            f"{path}: stacker is not an object of a kind, a coef matrix and an intercept list "
            f"of numbers ({type(exc).__name__}: {exc!s:.80}); {DAMAGED}"
        ) from None
    width = 1 if task == "regression" else len(classes)
    rows = 1 if task != "multiclass" else width
    wanted = "ridge" if task == "regression" else "logistic"
    problem = None
    if stacker.kind != wanted:
        problem = f"kind is {stacker.kind}, but a {task} ensemble is stacked by {wanted}"
    elif stacker.coef.shape != (rows, members * width):
        problem = (
            f"coef has shape {stacker.coef.shape}, not ({rows}, {members * width}): one row per "
            f"output, one column per output of each of the {members} members"
        )
    elif stacker.intercept.shape != (rows,):
        problem = f"intercept has shape {stacker.intercept.shape}, not ({rows},)"
    elif not (np.isfinite(stacker.coef).all() and np.isfinite(stacker.intercept).all()):
        problem = "coef or intercept holds a NaN or infinite value"
    if problem:
        raise FatalError(f"{path}: stacker {problem}; {DAMAGED}")
    return stacker
