"""Cross-validation splits over the non-test rows: k-fold, stratified, grouped, repeated.
Every split is a pair of row-index arrays (scikit-learn's splitters underneath).

Example::

    for train_rows, val_rows in kfold_splits(rows, labels, folds=5, seed=0):
        ...
"""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import (
    GroupKFold,
    KFold,
    RepeatedKFold,
    RepeatedStratifiedKFold,
    StratifiedGroupKFold,
    StratifiedKFold,
)

from tunelab.errors import DataError


def kfold_splits(
    rows: np.ndarray,
    labels: np.ndarray | None,
    *,
    folds: int = 5,
    repeats: int = 1,
    groups: np.ndarray | None = None,
    seed: int = 0,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``folds`` x ``repeats`` (train, validation) splits of ``rows``.

    Args:
        rows: the row indices to split (the test rows are never among them).
        labels: class codes of ``rows`` to stratify on, or None (regression).
        folds: number of folds (at least 2).
        repeats: repeat with a different shuffle (not with groups).
        groups: group id per row of ``rows``; a group never spans train and validation.
        seed: the shuffle seed.
    """
    if folds < 2:
        raise DataError(f"cross-validation needs at least 2 folds, got {folds}")
    if labels is not None:
        counts = np.bincount(labels)
        small = np.flatnonzero((counts > 0) & (counts < folds))
        if len(small):
            raise DataError(
                f"class code(s) {small.tolist()} have fewer rows than the {folds} folds "
                f"(as few as {int(counts[small].min())}); lower the number of folds or add rows"
            )
    index = np.arange(len(rows))
    if groups is not None:
        if repeats > 1:
            raise DataError("repeated cross-validation cannot keep groups together; use repeats 1")
        splitter = (
            StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
            if labels is not None
            else GroupKFold(n_splits=folds)
        )
        pairs = splitter.split(index, labels, groups)
    elif labels is not None:
        pairs = (
            RepeatedStratifiedKFold(n_splits=folds, n_repeats=repeats, random_state=seed)
            if repeats > 1
            else StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
        ).split(index, labels)
    else:
        pairs = (
            RepeatedKFold(n_splits=folds, n_repeats=repeats, random_state=seed)
            if repeats > 1
            else KFold(n_splits=folds, shuffle=True, random_state=seed)
        ).split(index)
    return [(rows[train], rows[val]) for train, val in pairs]
