"""The checks a LightGBM or XGBoost model file passes before its library parses it.

The libraries parse their own formats, but they trust the trees they read: a child index out
of range is read out of bounds, and a child that points back up the tree makes a walk that
never ends. So the trees are read here first, from the same text the library gets, and
refused unless every tree is a tree a walk can finish (``trees.structure_problem``, shared
with ``sklearn:hgb``'s forests), every feature index is a column the encoder gives, every
category list is inside its array, and every leaf value is finite; the model must also give
as many scores per row as the task needs.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from tunelab.errors import FatalError
from tunelab.results.files import FOREST_LIMIT, read_json
from tunelab.results.trees import structure_problem


def check_model(library: str, text: str, path: Path, *, features: int, outputs: int) -> None:
    """Refuse a model file whose trees could not be walked as saved.

    Args:
        text: the file's content (what the library will parse).
        features: the columns the encoder gives.
        outputs: scores per row: 1 for regression and binary, else one per class.

    Raises:
        FatalError: naming the file, the tree and what is wrong.
    """
    try:
        if library == "lightgbm":
            problem = _lightgbm_problem(text, features=features, outputs=outputs)
        else:
            model = read_json(path, kind="boosted model", limit=FOREST_LIMIT)
            problem = _xgboost_problem(model, features=features, outputs=outputs)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        problem = f"an entry is missing or malformed ({type(exc).__name__}: {str(exc)[:120]})"
    if problem:
        raise FatalError(
            f"{path}: {problem}; the model file was altered or damaged: train or save the "
            "predictor again"
        )


# -- LightGBM's text model ---------------------------------------------------------------------


def _lightgbm_problem(text: str, *, features: int, outputs: int) -> str | None:
    header, trees = _lightgbm_sections(text)
    if header.get("version") != "v4" or "num_tree_per_iteration" not in header:
        return "it is not a LightGBM text model (no 'version=v4' header)"
    if int(header["num_tree_per_iteration"]) != outputs:
        return (
            f"num_tree_per_iteration is {header['num_tree_per_iteration']}, but the task needs "
            f"{outputs} score(s) per row"
        )
    if int(header["max_feature_idx"]) != features - 1:
        return f"max_feature_idx is {header['max_feature_idx']}, but the inputs have {features}"
    if "\nend of trees" not in text:
        return "it ends before its 'end of trees' line: the file is cut short"
    sizes = header.get("tree_sizes", "").split()
    if not trees or len(trees) % outputs or len(sizes) != len(trees):
        return (
            f"it holds {len(trees)} trees, with {len(sizes)} tree_sizes: not one size per "
            f"tree, or not a positive multiple of {outputs} trees"
        )
    parts = [_lightgbm_tree(tree, features) for tree in trees]
    for index, part in enumerate(parts):
        if isinstance(part, str):
            return f"Tree={index}: {part}"
    return _forest_problem([p for p in parts if not isinstance(p, str)])


def _lightgbm_sections(text: str) -> tuple[dict[str, str], list[dict[str, str]]]:
    """The header's and each tree's ``key=value`` lines, up to ``end of trees``."""
    header: dict[str, str] = {}
    trees: list[dict[str, str]] = []
    current = header
    for line in text.splitlines():
        if line.startswith("end of trees"):
            break
        key, sep, value = line.partition("=")
        if key == "Tree":
            current = {}
            trees.append(current)
        elif sep:
            current[key] = value
    return header, trees


Nodes = tuple[np.ndarray, np.ndarray, np.ndarray]  # left, right, is_leaf (root: node 0)


def _lightgbm_tree(tree: dict[str, str], features: int) -> Nodes | str:
    leaves = int(tree["num_leaves"])
    values = _numbers(tree["leaf_value"], float)
    if leaves < 1 or len(values) != leaves:
        return f"num_leaves is {leaves}, with {len(values)} leaf values"
    if not np.isfinite(values).all():
        return f"a leaf value is {values[~np.isfinite(values)][0]}"
    if int(tree.get("is_linear", "0")):
        return "it is a linear tree, which tunelab does not write"
    if leaves == 1:
        return np.zeros(1, np.int64), np.zeros(1, np.int64), np.ones(1, bool)
    arrays = {
        key: _numbers(tree[key], float if key == "threshold" else int)
        for key in ("split_feature", "threshold", "decision_type", "left_child", "right_child")
    }
    for key, array in arrays.items():
        if len(array) != leaves - 1:
            return f"{key} has {len(array)} entries, not num_leaves - 1 = {leaves - 1}"
    used = arrays["split_feature"]
    if used.min() < 0 or used.max() >= features:
        return f"a split_feature is outside the inputs' {features} columns"
    problem = _lightgbm_categories(tree, arrays["decision_type"], arrays["threshold"])
    if problem:
        return problem
    # a child >= 0 is a split node, a child < 0 is leaf ~child; leaves follow the splits
    # (leaves have no children: zeros)
    left, right = (
        np.concatenate([np.where(children >= 0, children, leaves - 1 + ~children), [0] * leaves])
        for children in (arrays["left_child"], arrays["right_child"])
    )
    return left, right, np.arange(2 * leaves - 1) >= leaves - 1


def _lightgbm_categories(
    tree: dict[str, str], decision_type: np.ndarray, threshold: np.ndarray
) -> str | None:
    count = int(tree.get("num_cat", "0"))
    categorical = (decision_type & 1).astype(bool)
    if not categorical.any() and count == 0:
        return None
    bounds = _numbers(tree.get("cat_boundaries", ""), int)
    bits = _numbers(tree.get("cat_threshold", ""), int)
    if len(bounds) != count + 1 or bounds[0] != 0 or np.any(np.diff(bounds) < 0):
        return f"cat_boundaries do not bound its {count} category lists"
    if bounds[-1] != len(bits):
        return f"cat_boundaries end at {bounds[-1]}, but cat_threshold has {len(bits)} entries"
    lists = threshold[categorical]
    if lists.size and (lists.min() < 0 or lists.max() >= count or np.any(lists % 1)):
        return f"a categorical split names a category list outside 0..{count - 1}"
    return None


def _numbers(text: str, kind: type) -> np.ndarray:
    return np.asarray([kind(v) for v in text.split()], np.float64 if kind is float else np.int64)


# -- XGBoost's JSON model ----------------------------------------------------------------------


def _xgboost_problem(model: Any, *, features: int, outputs: int) -> str | None:
    learner = model["learner"]
    booster = learner["gradient_booster"]
    if booster.get("name") != "gbtree":
        return f"gradient_booster is {booster.get('name')!r:.40}, not gbtree"
    params = learner["learner_model_param"]
    if int(params["num_feature"]) != features:
        return f"num_feature is {params['num_feature']}, but the inputs have {features}"
    if max(1, int(params["num_class"])) != outputs:
        return f"num_class is {params['num_class']}, but the task needs {outputs} score(s)"
    trees, groups = booster["model"]["trees"], booster["model"]["tree_info"]
    if not trees or len(groups) != len(trees):
        return f"it holds {len(trees)} trees and {len(groups)} tree_info entries"
    if min(groups) < 0 or max(groups) >= outputs:
        return f"a tree_info entry is outside the {outputs} score(s) per row"
    parts = [_xgboost_tree(tree, features) for tree in trees]
    for index, part in enumerate(parts):
        if isinstance(part, str):
            return f"trees[{index}]: {part}"
    return _forest_problem([p for p in parts if not isinstance(p, str)])


def _xgboost_tree(tree: dict[str, Any], features: int) -> Nodes | str:
    size = int(tree["tree_param"]["num_nodes"])
    keys = ("left_children", "right_children", "split_indices", "split_conditions", "split_type")
    arrays = {key: np.asarray(tree[key], np.float64) for key in (*keys, "default_left")}
    for key, array in arrays.items():
        if array.shape != (size,):
            return f"{key} has shape {array.shape}, not num_nodes ({size},)"
    left, right = arrays["left_children"], arrays["right_children"]
    is_leaf = left == -1
    if size < 1 or np.any(is_leaf != (right == -1)):
        return "a node has one child"
    used = arrays["split_indices"][~is_leaf]
    if used.size and (used.min() < 0 or used.max() >= features):
        return f"a split index is outside the inputs' {features} columns"
    if not np.isfinite(arrays["split_conditions"]).all():
        return "a split condition or leaf value is not finite"
    problem = _xgboost_categories(tree, size)
    if problem:
        return problem
    return left.astype(np.int64), right.astype(np.int64), is_leaf


def _xgboost_categories(tree: dict[str, Any], size: int) -> str | None:
    nodes = np.asarray(tree.get("categories_nodes", []), np.float64)
    starts = np.asarray(tree.get("categories_segments", []), np.float64)
    sizes = np.asarray(tree.get("categories_sizes", []), np.float64)
    values = np.asarray(tree.get("categories", []), np.float64)
    if not (nodes.shape == starts.shape == sizes.shape):
        return "categories_nodes, _segments and _sizes differ in length"
    if nodes.size and (nodes.min() < 0 or nodes.max() >= size):
        return "a categories_nodes entry is outside the tree's nodes"
    ends = starts + sizes
    if starts.size and (starts.min() < 0 or sizes.min() < 0 or ends.max() > values.size):
        return "a category list reaches past the categories array"
    if values.size and (values.min() < 0 or values.max() >= 2**31):
        return "a category is negative or too large"
    return None


# -- both --------------------------------------------------------------------------------------


def _forest_problem(trees: list[Nodes]) -> str | None:
    """The trees joined into one node array each (every tree's root its first node), checked
    as ``sklearn:hgb``'s forest is."""
    for index, (left, right, is_leaf) in enumerate(trees):
        children = np.concatenate([left[~is_leaf], right[~is_leaf]])
        if children.size and (children.min() < 0 or children.max() >= len(is_leaf)):
            return f"tree {index}: a child index is outside its {len(is_leaf)} nodes"
    sizes = [len(is_leaf) for _, _, is_leaf in trees]
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    if math.fsum(sizes) > 2**31:
        return "it holds more nodes than any model tunelab writes"

    def joined(part: int) -> np.ndarray:
        return np.concatenate(
            [np.where(t[2], 0, t[part] + o) for t, o in zip(trees, offsets, strict=True)]
        )

    is_leaf = np.concatenate([t[2] for t in trees])
    return structure_problem(joined(0), joined(1), is_leaf, offsets[:, None])
