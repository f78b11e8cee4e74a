"""scikit-learn heads on frozen features: written into the network, saved without pickle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import make_config
from tunelab.evaluation.fitting import fit_on_rows
from tunelab.evaluation.prepare import prepare
from tunelab.models.classical import TreeHead, fit_head, head_outputs
from tunelab.results.predictor import load_predictor


@pytest.mark.parametrize("task, classes", [("multiclass", 3), ("binary", 2)])
def test_the_tree_head_computes_what_scikit_learn_does(task: str, classes: int) -> None:
    rng = np.random.default_rng(0)
    features = rng.normal(size=(300, 6)).astype(np.float32)
    target = (features[:, 0] * 2 + features[:, 1] > 0).astype(int)
    if classes == 3:
        target += (features[:, 2] > 1).astype(int)
    estimator = fit_head("hgb", features, target, task=task)
    head = TreeHead.from_estimator(estimator, outputs=classes)
    ours = torch.softmax(head(torch.from_numpy(features)).double(), dim=1).numpy()
    np.testing.assert_allclose(ours, estimator.predict_proba(features), atol=1e-6)
    np.testing.assert_allclose(
        head(torch.from_numpy(features)).numpy(),
        head_outputs(estimator, features, num_outputs=classes),
        atol=1e-5,
    )


@pytest.mark.parametrize("head", ["logistic", "hgb"])
def test_a_classical_head_is_saved_as_tensors_and_predicts_the_same_after_reload(
    head: str, tmp_path: Path
) -> None:
    cfg = make_config(
        data={"source": "sklearn:wine"},
        model={"source": "builtin:mlp", "width": 16, "depth": 1, "head": head},
        finetuning={"strategy": "linear_probe"},
        batch_norm={"head": True},
    )
    prepared = prepare(cfg)
    split = prepared.split
    fitted = fit_on_rows(cfg, prepared, split.train, split.validation)
    assert fitted.result.final["accuracy"] > 0.6
    fitted.predictor.save(tmp_path / "final")
    assert not list((tmp_path / "final").glob("*.pkl"))
    inputs = prepared.raw.inputs.iloc[split.test]
    reloaded = load_predictor(tmp_path / "final")
    np.testing.assert_allclose(
        reloaded.predict_proba(inputs), fitted.predictor.predict_proba(inputs), atol=1e-7
    )
    # the out-of-fold outputs are the saved network's own
    outputs = fitted.result.validation_outputs
    assert outputs is not None
    expected = fitted.predictor.predict_proba(prepared.raw.inputs.iloc[split.validation])
    np.testing.assert_allclose(torch.softmax(torch.from_numpy(outputs).double(), 1), expected,
                               atol=1e-5)  # fmt: skip


def test_the_logistic_head_matches_scikit_learns_own_fit() -> None:
    cfg = make_config(
        data={"source": "sklearn:breast_cancer"},
        model={"source": "builtin:mlp", "width": 8, "depth": 1, "head": "logistic", "head_c": 0.5},
        finetuning={"strategy": "linear_probe"},
    )
    prepared = prepare(cfg)
    split = prepared.split
    fitted = fit_on_rows(cfg, prepared, split.train, None)
    model = fitted.predictor.model.eval()  # the backbone's BN layers read their statistics
    encoded = fitted.predictor.encoder.transform(prepared.raw.inputs.iloc[split.train])
    with torch.no_grad():
        embedded = model.embed(*encoded).numpy()
    estimator = fit_head("logistic", embedded, prepared.target.values[split.train],
                         task="binary", c=0.5)  # fmt: skip
    test = prepared.raw.inputs.iloc[split.test]
    with torch.no_grad():
        test_features = model.embed(*fitted.predictor.encoder.transform(test)).numpy()
    np.testing.assert_allclose(
        fitted.predictor.predict_proba(test), estimator.predict_proba(test_features), atol=1e-4
    )
