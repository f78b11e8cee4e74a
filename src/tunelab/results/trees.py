"""Gradient-boosted trees as a predictor, stored as plain arrays (no pickle).

A fitted scikit-learn ``HistGradientBoosting*`` model is exported to a ``Forest``: its trees'
nodes as flat NumPy arrays and the baseline. Predicting walks every tree on the raw
(encoded) features exactly as scikit-learn does: a missing value goes where the node learned
to send missing values, any other value goes left when it is at most the node's threshold.
The export reads the fitted model's per-tree node arrays (scikit-learn has no public export);
``tests/results/test_trees.py`` checks the predictions against scikit-learn's own, so a
scikit-learn release that changes them fails the tests, not a user.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tunelab.errors import FatalError
from tunelab.results.backbones import BackboneStore
from tunelab.results.files import FOREST_LIMIT, read_npz
from tunelab.results.predictor import Loading
from tunelab.results.rundir import MANIFEST
from tunelab.results.scored import ScoredPredictor, stored_fields
from tunelab.results.scored import probabilities as probabilities  # where callers find it

FOREST_FILE = "forest.npz"
_ARRAYS = ("feature", "threshold", "missing_left", "left", "right", "is_leaf", "value", "roots")


@dataclass(frozen=True)
class Forest:
    """Every tree of a boosted model, flattened.

    Attributes:
        feature, threshold, missing_left, left, right, is_leaf, value: one entry per node
            (``left``/``right`` index into the same arrays).
        roots: (iterations, trees per iteration) index of each tree's root node.
        baseline: (trees per iteration,) the raw prediction before any tree.
    """

    feature: np.ndarray
    threshold: np.ndarray
    missing_left: np.ndarray
    left: np.ndarray
    right: np.ndarray
    is_leaf: np.ndarray
    value: np.ndarray
    roots: np.ndarray
    baseline: np.ndarray

    @classmethod
    def from_sklearn(cls, model: Any) -> Forest:
        """Export a fitted HistGradientBoostingClassifier/Regressor (numeric features)."""
        parts: dict[str, list[np.ndarray]] = {name: [] for name in _ARRAYS[:-1]}
        roots = np.zeros((len(model._predictors), model.n_trees_per_iteration_), np.int64)
        offset = 0
        for i, iteration in enumerate(model._predictors):
            for k, tree in enumerate(iteration):
                nodes = tree.nodes
                if np.any(nodes["is_categorical"]):
                    raise FatalError("categorical splits cannot be exported; one-hot encode")
                roots[i, k] = offset
                parts["feature"].append(nodes["feature_idx"].astype(np.int64))
                parts["threshold"].append(nodes["num_threshold"].astype(np.float64))
                parts["missing_left"].append(nodes["missing_go_to_left"].astype(bool))
                parts["left"].append(nodes["left"].astype(np.int64) + offset)
                parts["right"].append(nodes["right"].astype(np.int64) + offset)
                parts["is_leaf"].append(nodes["is_leaf"].astype(bool))
                parts["value"].append(nodes["value"].astype(np.float64))
                offset += len(nodes)
        joined = {name: _concat(arrays) for name, arrays in parts.items()}
        baseline = np.asarray(model._baseline_prediction, np.float64).reshape(-1)
        return cls(**joined, roots=roots, baseline=baseline)

    def raw(self, x: np.ndarray) -> np.ndarray:
        """(N, trees per iteration) raw predictions: baseline + the leaf of every tree."""
        x = np.asarray(x, np.float64)
        out = np.tile(self.baseline, (len(x), 1))
        rows = np.arange(len(x))
        for iteration in self.roots:
            for k, root in enumerate(iteration):
                node = np.full(len(x), root)
                active = ~self.is_leaf[node]
                while active.any():
                    current = node[active]
                    values = x[rows[active], self.feature[current]]
                    go_left = np.where(
                        np.isnan(values),
                        self.missing_left[current],
                        values <= self.threshold[current],
                    )
                    node[active] = np.where(go_left, self.left[current], self.right[current])
                    active = ~self.is_leaf[node]
                out[:, k] += self.value[node]
        return out

    def save(self, path: Path) -> None:
        arrays = {name: getattr(self, name) for name in _ARRAYS}
        np.savez(path, baseline=self.baseline, **arrays)

    @classmethod
    def load(cls, path: Path) -> Forest:
        """The arrays of ``forest.npz``, as saved (``check_forest`` says whether they make
        a forest)."""
        arrays = read_npz(path, (*_ARRAYS, "baseline"), limit=FOREST_LIMIT, kind="forest")
        return cls(**arrays)


def _concat(arrays: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(arrays) if arrays else np.zeros(0)


class TreePredictor(ScoredPredictor):
    """Predicts with a boosted forest on raw inputs, through the fitted encoder.

    Attributes:
        task, classes, modality, input_columns, info: as ``Predictor``.
    """

    kind = "trees"

    def __init__(self, *, forest: Forest, **predictor: Any) -> None:
        super().__init__(**predictor)
        self.forest = forest

    def scores(self, features: np.ndarray) -> np.ndarray:
        return self.forest.raw(features)

    def non_finite_cause(self) -> str:
        forest = self.forest
        if not (np.isfinite(forest.value).all() and np.isfinite(forest.baseline).all()):
            return "the forest's leaf values contain NaN or infinite values"
        return "the forest's leaf values add up past the largest float64 number"

    def save(self, directory: str | Path, *, backbones: BackboneStore | None = None) -> Path:
        """Write ``predictor.json`` and the trees (``backbones``: unused, trees have none)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.forest.save(directory / FOREST_FILE)
        self.write_manifest(directory, forest=FOREST_FILE, trees=int(self.forest.roots.size))
        return directory


def load_trees(directory: Path, manifest: dict[str, Any], loading: Loading) -> TreePredictor:
    """The ``trees`` kind (``PREDICTOR_KINDS``); ``loading`` is unused: trees run on the
    CPU, name no code and keep no backbone."""
    from tunelab.results.manifest import check_fields, load_encoder, plain_file

    check_fields(directory / MANIFEST, manifest, {"encoder": dict})
    path = directory / plain_file(manifest, "forest", directory)
    encoder = load_encoder(directory, manifest)
    forest = Forest.load(path)
    outputs = len(manifest["classes"]) if manifest["task"] == "multiclass" else 1
    check_forest(forest, path, features=math.prod(encoder.input_shape), outputs=outputs)
    return TreePredictor(
        forest=forest,
        encoder=encoder,
        **stored_fields(manifest),
    )


# -- the checks on load ----------------------------------------------------------------------

MAX_TREE_DEPTH = 4096  # scikit-learn's trees of 31 leaves (its default) are at most 30 deep
_KINDS = {"i": "integers", "u": "integers", "f": "floats", "b": "booleans"}
_ARRAY_KINDS = {
    "feature": "iu",
    "threshold": "f",
    "missing_left": "b",
    "left": "iu",
    "right": "iu",
    "is_leaf": "b",
    "value": "f",
    "roots": "iu",
    "baseline": "f",
}


def check_forest(forest: Forest, path: Path, *, features: int, outputs: int) -> None:
    """Refuse a forest that could not be walked as saved: arrays of the wrong kind or shape,
    an index out of range, a node reached twice (a cycle or a shared subtree), a tree deeper
    than ``MAX_TREE_DEPTH``, a NaN threshold, a leaf value that is not finite.

    Args:
        features: the columns the encoder gives (what ``feature`` indexes).
        outputs: trees per iteration: 1 for regression and binary, else one per class.
    """
    problem = (
        _arrays_problem(forest, outputs)
        or _values_problem(forest, features)
        or structure_problem(forest.left, forest.right, forest.is_leaf, forest.roots)
    )
    if problem:
        raise FatalError(
            f"{path}: {problem}; the forest was altered or damaged: train or save the "
            "predictor again"
        )


def _arrays_problem(forest: Forest, outputs: int) -> str | None:
    for name, kinds in _ARRAY_KINDS.items():
        array = getattr(forest, name)
        if array.dtype.kind not in kinds:
            return f"array {name!r} holds {array.dtype} values, not {_KINDS[kinds[0]]}"
    nodes = forest.is_leaf.shape
    for name in _ARRAYS[:-1]:
        if getattr(forest, name).shape != nodes or len(nodes) != 1:
            return (
                f"array {name!r} has shape {getattr(forest, name).shape}, but 'is_leaf' has "
                f"{nodes}: every node array holds one value per node"
            )
    if forest.roots.ndim != 2 or forest.roots.shape[1] != outputs:
        return f"array 'roots' has shape {forest.roots.shape}, not (iterations, {outputs})"
    if forest.baseline.shape != (outputs,):
        return f"array 'baseline' has shape {forest.baseline.shape}, not ({outputs},)"
    return None


def _values_problem(forest: Forest, features: int) -> str | None:
    internal = ~forest.is_leaf
    used = forest.feature[internal]
    if used.size and (used.min() < 0 or used.max() >= features):
        node = _first(internal, (forest.feature < 0) | (forest.feature >= features))
        return (
            f"feature[{node}] is {forest.feature[node]}, but the inputs have {features} "
            f"columns (0..{features - 1})"
        )
    if np.isnan(forest.threshold).any():
        return f"threshold[{int(np.argmax(np.isnan(forest.threshold)))}] is NaN"
    bad = forest.is_leaf & ~np.isfinite(forest.value)
    if bad.any():
        node = int(np.argmax(bad))
        return f"value[{node}] of a leaf is {forest.value[node]}"
    if not np.isfinite(forest.baseline).all():
        return f"array 'baseline' holds {forest.baseline[~np.isfinite(forest.baseline)][0]}"
    return None


def structure_problem(
    left: np.ndarray, right: np.ndarray, is_leaf: np.ndarray, roots: np.ndarray
) -> str | None:
    """What keeps nodes ``left``/``right`` (indices into the same arrays) from being trees
    that a walk from ``roots`` ends in, or None: a child or root out of range, a node reached
    from two places, a tree deeper than ``MAX_TREE_DEPTH``."""
    count = len(is_leaf)
    internal = ~is_leaf
    starts = roots.ravel()
    if starts.size and (starts.min() < 0 or starts.max() >= count):
        return f"a root index is outside the nodes 0..{count - 1}"
    for name, children in (("left", left), ("right", right)):
        outside = (children < 0) | (children >= count)
        if (internal & outside).any():
            node = _first(internal, outside)
            return f"{name}[{node}] is {children[node]}, outside the nodes 0..{count - 1}"
    parents = np.bincount(
        np.concatenate([starts, left[internal], right[internal]]).astype(np.int64),
        minlength=count,
    )
    if parents.size and parents.max() > 1:
        node = int(np.argmax(parents > 1))
        return (
            f"node {node} is reached from {parents[node]} places (a root, or a child of a node "
            "twice): the trees have a cycle or share a subtree"
        )
    frontier = starts
    for _ in range(MAX_TREE_DEPTH + 1):  # each node is met once at most: parents <= 1
        frontier = frontier[internal[frontier]]
        if not frontier.size:
            return None
        frontier = np.concatenate([left[frontier], right[frontier]])
    return f"a tree is deeper than {MAX_TREE_DEPTH} levels"


def _first(among: np.ndarray, wrong: np.ndarray) -> int:
    return int(np.argmax(among & wrong))
