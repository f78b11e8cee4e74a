"""One-hot or the library's own categorical splits? LightGBM and XGBoost on tables with
categories, both ways, on the same folds.

Two tables made here (no download): ``few`` (two columns of 4 and 6 categories) and ``many``
(a column of 200 categories, each with its own effect, beside 4 numbers); the label is a
noisy logistic function of the numbers and the categories' effects. Each library fits each
encoding on 5 stratified folds with early stopping on a fifth of the training rows; the table
shows the mean out-of-fold log loss and accuracy, and fit seconds (noisy).

One-hot is tunelab's table encoding (``TabularEncoder.transform``); native passes each
categorical column as its category codes (``TabularEncoder.raw_columns``) and names it
categorical to the library (LightGBM ``categorical_feature``, XGBoost ``feature_types="c"``).

Usage::

    python bench/booster_categories.py
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, log_loss
from sklearn.model_selection import StratifiedKFold, train_test_split

from tunelab.data.tabular import TabularEncoder


def table(kind: str, rows: int = 4000, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    numbers = rng.normal(size=(rows, 4))
    frame = pd.DataFrame(numbers, columns=[f"x{i}" for i in range(4)])
    logit = numbers[:, 0] - 0.5 * numbers[:, 1] ** 2
    sizes = {"few": (4, 6), "many": (200,)}[kind]
    for i, size in enumerate(sizes):
        effect = rng.normal(0, 1.5, size)
        codes = rng.integers(0, size, rows)
        frame[f"c{i}"] = np.asarray([f"v{c}" for c in codes], dtype=object)
        logit += effect[codes]
    label = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    return frame, label


def matrices(frame: pd.DataFrame, train: np.ndarray, native: bool) -> tuple[np.ndarray, list[int]]:
    encoder = TabularEncoder.fit(frame.iloc[train])
    if not native:
        return encoder.transform(frame)[0].numpy().astype(np.float64), []
    numbers, codes = encoder.raw_columns(frame)
    codes = np.where(codes < 0, np.nan, codes.astype(np.float64))
    return np.hstack([numbers, codes]), list(
        range(numbers.shape[1], numbers.shape[1] + codes.shape[1])
    )


def fit_predict(
    library: str,
    x: np.ndarray,
    y: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    categorical: list[int],
) -> np.ndarray:
    fit_rows, stop_rows = train_test_split(train, test_size=0.2, random_state=0, stratify=y[train])
    if library == "lightgbm":
        import lightgbm

        model: Any = lightgbm.LGBMClassifier(
            n_estimators=1000, verbose=-1, n_jobs=2, random_state=0
        )
        model.fit(
            x[fit_rows],
            y[fit_rows],
            eval_set=[(x[stop_rows], y[stop_rows])],
            categorical_feature=categorical or "auto",
            callbacks=[lightgbm.early_stopping(20, verbose=False)],
        )
    else:
        import xgboost

        types = ["c" if i in categorical else "q" for i in range(x.shape[1])]
        model = xgboost.XGBClassifier(
            n_estimators=1000,
            early_stopping_rounds=20,
            n_jobs=2,
            random_state=0,
            enable_categorical=bool(categorical),
            feature_types=types if categorical else None,
        )
        model.fit(x[fit_rows], y[fit_rows], eval_set=[(x[stop_rows], y[stop_rows])], verbose=False)
    return np.asarray(model.predict_proba(x[test]))


def main() -> None:
    print("| table | library | encoding | out-of-fold log loss | accuracy | fit s |")
    print("|---|---|---|---|---|---|")
    for kind in ("few", "many"):
        frame, y = table(kind)
        folds = list(StratifiedKFold(5, shuffle=True, random_state=0).split(frame, y))
        for library in ("lightgbm", "xgboost"):
            for native in (False, True):
                oof = np.zeros((len(y), 2))
                started = time.perf_counter()
                for train, test in folds:
                    x, categorical = matrices(frame, train, native)
                    oof[test] = fit_predict(library, x, y, train, test, categorical)
                seconds = time.perf_counter() - started
                print(
                    f"| {kind} | {library} | {'native' if native else 'one-hot'} | "
                    f"{log_loss(y, oof):.4f} | {accuracy_score(y, oof.argmax(1)):.4f} | "
                    f"{seconds:.1f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
