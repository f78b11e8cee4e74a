"""scikit-learn heads on frozen features: features in, a fitted estimator out.

- ``logistic``: ``LogisticRegression`` on standardized features (classification). Its
  coefficients, with the standardization folded in, become the model's linear head
  (``linear_parameters``), so the saved predictor is the ordinary network.
- ``hgb``: ``HistGradientBoostingClassifier`` / ``Regressor``. Its trees become a
  ``TreeHead``: plain tensors (node features, thresholds, children, leaf values) saved in the
  predictor's safetensors file with the rest of the weights. Nothing is pickled.

Example::

    estimator = fit_head("logistic", features, codes, task="multiclass", seed=0)
    logits = head_outputs(estimator, features, num_outputs=3)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, get_args

import numpy as np
import torch
from torch import nn

from tunelab.errors import ConfigError
from tunelab.registry import CLASSICAL_HEADS, HeadName, did_you_mean


@dataclass(frozen=True)
class ClassicalHead:
    """One ``model.head`` that scikit-learn fits: ``fit(features, target, task=, seed=, c=)``
    gives the estimator, ``install(model, estimator, outputs=)`` makes the network's head
    compute it (see ``install_head``). The heads are ``NAME_head`` below (the names:
    ``tunelab.registry.ClassicalHeadName``)."""

    fit: Callable[..., Any]
    install: Callable[..., dict[str, Any]]


def fit_head(
    kind: str,
    features: np.ndarray,
    target: np.ndarray,
    *,
    task: str,
    seed: int = 0,
    c: float = 1.0,
) -> Any:
    """Fit a scikit-learn head on ``features`` (N, F).

    Args:
        kind: ``logistic`` or ``hgb``.
        features: the frozen backbone's features of the training rows.
        target: class codes 0..K-1, or (standardized) regression values.
        task: binary, multiclass or regression.
        seed: the estimator's random state.
        c: ``logistic``: the inverse regularization strength C.

    Raises:
        ConfigError: ``logistic`` for a regression task, or an unknown kind.
    """
    return _head(kind).fit(features, target, task=task, seed=seed, c=c)


def _head(kind: str) -> ClassicalHead:
    if kind not in CLASSICAL_HEADS:
        valid = get_args(HeadName)
        raise ConfigError(
            f"model.head: got {kind!r}; valid: {', '.join(valid)}.{did_you_mean(kind, valid)}"
        )
    head: ClassicalHead = CLASSICAL_HEADS.get(kind)
    return head


def _fit_logistic(
    features: np.ndarray, target: np.ndarray, *, task: str, seed: int, c: float
) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if task == "regression":
        raise ConfigError(
            "model.head: logistic is a classifier, but the task is regression; use "
            "model.head hgb or linear"
        )
    model = LogisticRegression(C=c, max_iter=5000, random_state=seed)
    return make_pipeline(StandardScaler(), model).fit(features, target)


def _fit_hgb(features: np.ndarray, target: np.ndarray, *, task: str, seed: int, c: float) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    if task == "regression":
        return HistGradientBoostingRegressor(random_state=seed).fit(features, target)
    return HistGradientBoostingClassifier(random_state=seed).fit(features, target)


def head_outputs(estimator: Any, features: np.ndarray, *, num_outputs: int) -> np.ndarray:
    """What the network's head would output: class logits (N, K) or values (N, 1)."""
    if not hasattr(estimator, "decision_function"):  # a regressor
        return np.asarray(estimator.predict(features), np.float64).reshape(-1, 1)
    scores = np.asarray(estimator.decision_function(features), np.float64)
    return _logits(scores, num_outputs)


def _logits(scores: np.ndarray, num_outputs: int) -> np.ndarray:
    """Binary estimators give one score z; the network's two logits are (0, z), whose softmax
    is (1 - sigmoid(z), sigmoid(z))."""
    if scores.ndim == 1 or scores.shape[1] == 1:
        z = scores.reshape(-1, 1)
        return np.hstack([np.zeros_like(z), z]) if num_outputs == 2 else z
    return scores


def linear_parameters(estimator: Any, num_outputs: int) -> tuple[np.ndarray, np.ndarray]:
    """The weight (K, F) and bias (K,) of a linear layer that computes the logits of a fitted
    ``logistic`` head (standardization included)."""
    scaler, model = estimator[0], estimator[-1]
    coef = np.asarray(model.coef_, np.float64) / scaler.scale_
    bias = np.asarray(model.intercept_, np.float64) - coef @ scaler.mean_
    if coef.shape[0] == 1 and num_outputs == 2:
        coef = np.vstack([np.zeros_like(coef), coef])
        bias = np.concatenate([[0.0], bias])
    return coef, bias


class TreeHead(nn.Module):
    """A fitted ``HistGradientBoosting*`` as tensors: ``forward(features)`` gives its raw
    predictions (the logits of ``head_outputs``).

    Every tree is padded to the same number of nodes; a batch walks all trees at once, one
    level per step. The buffers are float64 where scikit-learn compares in float64.
    """

    feature: torch.Tensor
    threshold: torch.Tensor
    left: torch.Tensor
    right: torch.Tensor
    leaf: torch.Tensor
    value: torch.Tensor
    column: torch.Tensor
    baseline: torch.Tensor
    depth: torch.Tensor

    def __init__(self, *, trees: int, nodes: int, outputs: int, raw_outputs: int) -> None:
        super().__init__()
        self.outputs = outputs
        # the width of the features it splits on, when known (loading checks the indices)
        self.features: int | None = None
        self.register_buffer("feature", torch.zeros(trees, nodes, dtype=torch.long))
        self.register_buffer("threshold", torch.zeros(trees, nodes, dtype=torch.float64))
        self.register_buffer("left", torch.zeros(trees, nodes, dtype=torch.long))
        self.register_buffer("right", torch.zeros(trees, nodes, dtype=torch.long))
        self.register_buffer("leaf", torch.ones(trees, nodes, dtype=torch.bool))
        self.register_buffer("value", torch.zeros(trees, nodes, dtype=torch.float64))
        self.register_buffer("column", torch.zeros(trees, dtype=torch.long))
        self.register_buffer("baseline", torch.zeros(raw_outputs, dtype=torch.float64))
        self.register_buffer("depth", torch.zeros((), dtype=torch.long))

    def spec(self) -> dict[str, int]:
        """The shapes ``from_spec`` needs to rebuild an empty head before loading weights."""
        trees, nodes = self.feature.shape
        return {
            "trees": int(trees),
            "nodes": int(nodes),
            "outputs": self.outputs,
            "raw_outputs": int(self.baseline.shape[0]),
        }

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> TreeHead:
        return cls(
            trees=int(spec["trees"]),
            nodes=int(spec["nodes"]),
            outputs=int(spec["outputs"]),
            raw_outputs=int(spec["raw_outputs"]),
        )

    @classmethod
    def from_estimator(cls, estimator: Any, *, outputs: int) -> TreeHead:
        """The trees of a fitted ``HistGradientBoosting*`` (numeric features only)."""
        # scikit-learn keeps the fitted trees in these attributes (stable since 0.21)
        per_iteration: list[list[Any]] = estimator._predictors
        baseline = np.asarray(estimator._baseline_prediction, np.float64).reshape(-1)
        trees = [(column, tree.nodes) for step in per_iteration for column, tree in enumerate(step)]
        width = max((len(nodes) for _, nodes in trees), default=1)
        head = cls(trees=len(trees), nodes=width, outputs=outputs, raw_outputs=len(baseline))
        head.features = int(estimator.n_features_in_)
        for index, (column, nodes) in enumerate(trees):
            count = len(nodes)
            head.feature[index, :count] = torch.from_numpy(nodes["feature_idx"].astype(np.int64))
            head.threshold[index, :count] = torch.from_numpy(nodes["num_threshold"])
            head.left[index, :count] = torch.from_numpy(nodes["left"].astype(np.int64))
            head.right[index, :count] = torch.from_numpy(nodes["right"].astype(np.int64))
            head.leaf[index, :count] = torch.from_numpy(nodes["is_leaf"].astype(bool))
            head.value[index, :count] = torch.from_numpy(nodes["value"])
            head.column[index] = column
        head.baseline[:] = torch.from_numpy(baseline)
        depths = [int(nodes["depth"].max()) for _, nodes in trees]
        head.depth.fill_(max(depths, default=0))
        return head

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = features.double()
        rows, trees = x.shape[0], self.feature.shape[0]
        node = torch.zeros(rows, trees, dtype=torch.long, device=x.device)
        tree = torch.arange(trees, device=x.device).expand(rows, trees)
        for _ in range(int(self.depth)):
            feature = self.feature[tree, node]
            go_left = x.gather(1, feature) <= self.threshold[tree, node]
            child = torch.where(go_left, self.left[tree, node], self.right[tree, node])
            node = torch.where(self.leaf[tree, node], node, child)
        values = self.value[tree, node]
        raw = self.baseline.expand(rows, -1).clone()
        raw.index_add_(1, self.column, values)
        if raw.shape[1] == 1 and self.outputs == 2:
            raw = torch.cat([torch.zeros_like(raw), raw], dim=1)
        return raw.float()


def install_head(model: nn.Module, estimator: Any, *, kind: str, outputs: int) -> dict[str, Any]:
    """Make ``model.head`` compute what ``estimator`` does; returns what the model's spec
    must add so that ``rebuild_model`` builds the same head (empty for ``logistic``)."""
    return _head(kind).install(model, estimator, outputs=outputs)


def _install_trees(model: nn.Module, estimator: Any, *, outputs: int) -> dict[str, Any]:
    tree_head = TreeHead.from_estimator(estimator, outputs=outputs)
    model.head = tree_head
    return {"classical_head": {"kind": "hgb", **tree_head.spec()}}


def _install_linear(model: nn.Module, estimator: Any, *, outputs: int) -> dict[str, Any]:
    weight, bias = linear_parameters(estimator, outputs)
    head = model.head
    linear = getattr(head, "linear", head)
    if not isinstance(linear, nn.Linear):
        raise ConfigError(
            f"model.head: logistic needs a model whose head ends in a linear layer; "
            f"{type(model).__name__}'s is a {type(head).__name__}. Use model.head linear"
        )
    norm = getattr(head, "norm", None)
    with torch.no_grad():
        if isinstance(norm, nn.BatchNorm1d):  # batch_norm.head: made the identity
            norm.reset_parameters()
            if norm.running_var is not None:
                norm.running_var.fill_(1.0 - norm.eps)
        linear.weight.copy_(torch.from_numpy(weight))
        linear.bias.copy_(torch.from_numpy(bias))
    return {}


logistic_head = ClassicalHead(fit=_fit_logistic, install=_install_linear)
hgb_head = ClassicalHead(fit=_fit_hgb, install=_install_trees)


def rebuild_head(model: nn.Module, spec: dict[str, Any]) -> None:
    """Give a rebuilt model the classical head its spec names (before its weights load)."""
    head = spec.get("classical_head")
    if isinstance(head, dict) and head.get("kind") == "hgb":
        tree_head = TreeHead.from_spec(head)
        # the head it replaces reads the backbone's features
        features = getattr(getattr(model.head, "linear", None), "in_features", None)
        tree_head.features = features if isinstance(features, int) else None
        model.head = tree_head
