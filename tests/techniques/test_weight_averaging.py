"""Weight averaging (SWA, EMA) through the plug-in protocol: what it averages, that the fit
is scored on the averaged weights, BN statistics refreshed, and its effect."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from tests.conftest import make_config
from tunelab.config import RunConfig
from tunelab.evaluation.crossval import cross_validate
from tunelab.evaluation.fitting import Fitted, fit_on_rows
from tunelab.evaluation.prepare import prepare
from tunelab.techniques.batchnorm import BN_TYPES, reestimate
from tunelab.training.batching import Batches, TensorData
from tunelab.training.loop import evaluate
from tunelab.training.losses import loss_function

NOISY_SGD = {"epochs": 8, "lr": 0.1, "optimizer": "sgd", "schedule": "constant", "batch_size": 16}
NO_STOPPING = {"enabled": False, "restore_best": False}


def config(method: str, **sections: Any) -> RunConfig:
    return make_config(
        data={"source": "sklearn:breast_cancer"},
        model={"source": "builtin:mlp", "width": 16, "depth": 1},
        train=NOISY_SGD,
        batch_norm={"enabled": False},
        early_stopping=NO_STOPPING,
        weight_averaging={"method": method, "start_epoch": 4, **sections.pop("averaging", {})},
        **sections,
    )


def fit_with_snapshots(cfg: RunConfig) -> tuple[Fitted, list[dict[str, torch.Tensor]]]:
    """Fit, keeping the weights at the end of every epoch (the callback runs after the
    epoch's hooks, on the model being trained)."""
    prepared = prepare(cfg)
    snapshots: list[dict[str, torch.Tensor]] = []
    holder: dict[str, Any] = {}

    from tunelab.evaluation import fitting

    original = fitting.fit

    def spy(model: torch.nn.Module, *args: Any, **kwargs: Any) -> Any:
        holder["model"] = model
        return original(model, *args, **kwargs)

    def snapshot(record: dict[str, Any]) -> None:
        state = holder["model"].state_dict()
        snapshots.append({k: v.detach().clone() for k, v in state.items()})

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fitting, "fit", spy)
        fitted = fit_on_rows(
            cfg, prepared, prepared.split.train, prepared.split.validation, callbacks=[snapshot]
        )
    return fitted, snapshots


def test_swa_ends_on_the_mean_of_the_epoch_weights_from_start_epoch() -> None:
    fitted, snapshots = fit_with_snapshots(config("swa"))
    assert len(snapshots) == 8
    final = fitted.predictor.model.state_dict()
    for name, value in final.items():
        expected = torch.stack([s[name].float() for s in snapshots[4:]]).mean(0)
        torch.testing.assert_close(value.float(), expected, rtol=1e-5, atol=1e-6)
    assert not torch.equal(final["head.linear.weight"], snapshots[-1]["head.linear.weight"])
    described = fitted.predictor.info["techniques"]["weight_averaging"]
    assert described == {"method": "swa", "start_epoch": 4, "decay": None, "updates": 4}
    assert any("swa over 4 epochs from epoch 4" in e for e in fitted.result.events)


def test_ema_updates_after_every_step_from_start_epoch() -> None:
    fitted, snapshots = fit_with_snapshots(config("ema", averaging={"decay": 0.9}))
    prepared = prepare(config("ema"))
    steps_per_epoch = -(-len(prepared.split.train) // 16)
    described = fitted.predictor.info["techniques"]["weight_averaging"]
    assert described["updates"] == 4 * steps_per_epoch
    assert described["decay"] == 0.9
    final = fitted.predictor.model.state_dict()["head.linear.weight"]
    assert not torch.equal(final, snapshots[-1]["head.linear.weight"])


def test_the_fit_is_scored_on_the_averaged_weights() -> None:
    cfg = config("swa")
    prepared = prepare(cfg)
    fitted = fit_on_rows(cfg, prepared, prepared.split.train, prepared.split.validation)
    result = fitted.result
    assert result.best_epoch == -1, "averaged weights come from no single epoch"
    rows = prepared.split.validation
    data = TensorData(
        fitted.predictor.encoder.transform(prepared.raw.inputs.iloc[rows]),
        torch.from_numpy(prepared.target.values[rows]),
    )
    outputs, val_loss = evaluate(
        fitted.predictor.model,
        Batches(data, batch_size=256, device=torch.device("cpu")),
        loss_fn=loss_function("binary"),
    )
    assert result.final["val_loss"] == pytest.approx(val_loss, rel=1e-6)
    assert result.validation_outputs is not None
    np.testing.assert_allclose(result.validation_outputs, outputs, rtol=1e-6)
    assert result.final["val_loss"] != result.history[-1]["val_loss"]


def test_bn_statistics_are_re_estimated_for_the_averaged_weights() -> None:
    cfg = make_config(
        data={"source": "sklearn:digits"},
        model={"source": "builtin:cnn2d", "width": 8, "depth": 2},
        train={"epochs": 3},
        early_stopping=NO_STOPPING,
        weight_averaging={"method": "swa", "start_epoch": 1},
    )
    prepared = prepare(cfg)
    fitted = fit_on_rows(cfg, prepared, prepared.split.train, prepared.split.validation)
    model = fitted.predictor.model
    layers = [m for m in model.modules() if isinstance(m, BN_TYPES)]
    assert layers
    kept = [layer.running_mean.clone() for layer in layers]
    rows = prepared.split.train
    data = TensorData(
        fitted.predictor.encoder.transform(prepared.raw.inputs[rows]),
        torch.from_numpy(prepared.target.values[rows]),
    )
    reestimate(model, layers, Batches(data, batch_size=32, device=torch.device("cpu")))
    for before, layer in zip(kept, layers, strict=True):
        torch.testing.assert_close(before, layer.running_mean, rtol=1e-4, atol=1e-5)
    assert any("BN statistics of" in e for e in fitted.result.events)


def test_training_that_ends_before_start_epoch_keeps_its_weights_and_says_so() -> None:
    cfg = config("swa", averaging={"start_epoch": 50})
    fitted, snapshots = fit_with_snapshots(cfg)
    final = fitted.predictor.model.state_dict()
    assert torch.equal(final["head.linear.weight"], snapshots[-1]["head.linear.weight"])
    assert any("ended before start_epoch 50" in e for e in fitted.result.events)
    assert fitted.result.best_epoch == len(fitted.result.history) - 1


def test_off_by_default_and_described_as_off() -> None:
    cfg = make_config(train={"epochs": 1})
    prepared = prepare(cfg)
    fitted = fit_on_rows(cfg, prepared, prepared.split.train, prepared.split.validation)
    assert fitted.predictor.info["techniques"]["weight_averaging"] == "off"


@pytest.mark.slow
def test_swa_beats_the_last_weights_of_noisy_sgd_on_every_fold() -> None:
    """The effect: constant high-lr SGD ends wherever its last steps left it; the average of
    its last epochs sits nearer the middle of the basin. Same folds, same seed: paired."""
    scores = {}
    for method in ("none", "swa"):
        cfg = make_config(
            data={"source": "sklearn:digits"},
            model={"source": "builtin:mlp", "width": 32, "depth": 1},
            train={**NOISY_SGD, "epochs": 20},
            early_stopping=NO_STOPPING,
            weight_averaging={"method": method, "start_epoch": 10},
            cv={"strategy": "kfold", "folds": 3},
        )
        scores[method] = cross_validate(cfg, prepare(cfg)).scores
    assert all(a > b for a, b in zip(scores["swa"], scores["none"], strict=True)), scores
