from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from tests.conftest import make_config
from tunelab.config import RunConfig
from tunelab.evaluation.fitting import fit_on_rows
from tunelab.evaluation.prepare import prepare
from tunelab.techniques.regularization import Regularization
from tunelab.training.batching import Batches, TensorData
from tunelab.training.loop import Validation, fit, predict_outputs


def train_once(cfg: RunConfig, **kwargs: Any) -> tuple[list[dict[str, Any]], nn.Module]:
    prepared = prepare(cfg)
    fitted = fit_on_rows(cfg, prepared, prepared.split.train, prepared.split.validation, **kwargs)
    return fitted.result.history, fitted.predictor.model


def test_same_config_and_seed_give_identical_metrics() -> None:
    cfg = make_config(data={"source": "sklearn:wine"}, train={"epochs": 4})
    first, _ = train_once(cfg)
    second, _ = train_once(cfg)
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in first]
    assert strip == [{k: v for k, v in r.items() if k != "seconds"} for r in second]
    other, _ = train_once(make_config(data={"source": "sklearn:wine"}, train={"epochs": 4}, seed=1))
    assert other[-1]["val_loss"] != first[-1]["val_loss"]


def test_history_has_the_documented_fields_and_callback_sees_each_epoch() -> None:
    seen: list[int] = []
    history, _ = train_once(
        make_config(train={"epochs": 3}), callbacks=[lambda r: seen.append(r["epoch"])]
    )
    assert seen == [0, 1, 2]
    assert {"epoch", "train_loss", "val_loss", "accuracy", "log_loss", "lr", "seconds"} <= set(
        history[0]
    )


def toy(n: int = 64) -> TensorData:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(n, 5, generator=generator)
    return TensorData((x,), (x[:, 0] > 0).long())


def linear() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 2))


def run(
    model: nn.Module,
    data: TensorData,
    validation: TensorData | None = None,
    grad_clip: float | None = None,
    **train: Any,
) -> Any:
    cfg = make_config(
        train={"schedule": "constant", **train},
        early_stopping={"enabled": False, "restore_best": False},
        regularization={"grad_clip": grad_clip, "dropout": 0.0},
    )
    technique = Regularization(cfg.regularization, task="binary")

    def score(outputs: np.ndarray) -> dict[str, float]:
        assert validation is not None
        return {"accuracy": float((outputs.argmax(1) == validation.target.numpy()).mean())}

    judged = None if validation is None else Validation(validation, score, "accuracy")
    return fit(
        model,
        data,
        judged,
        train_cfg=cfg.train,
        loss_fn=nn.CrossEntropyLoss(),
        seed=0,
        techniques=[technique],
    )


def test_gradient_accumulation_equals_the_larger_batch() -> None:
    a, b = linear(), linear()
    run(a, toy(), optimizer="sgd", momentum=0.0, lr=0.5, batch_size=32, epochs=2)
    run(
        b,
        toy(),
        optimizer="sgd",
        momentum=0.0,
        lr=0.5,
        batch_size=16,
        grad_accumulation=2,
        epochs=2,
    )
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(pa, pb)


def test_gradient_clipping_bounds_each_step() -> None:
    model = linear()
    before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    run(
        model, toy(), optimizer="sgd", momentum=0.0, lr=1.0, batch_size=64, epochs=1, grad_clip=1e-3
    )
    after = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert 0 < float((after - before).norm()) <= 1e-3 + 1e-7


def test_non_finite_loss_stops_with_reason() -> None:
    data = toy()
    data.features[0][3, 0] = float("nan")
    result = run(linear(), data, epochs=5)
    assert result.stop_reason == "non_finite"
    assert len(result.history) == 1


def test_early_stopping_stops_on_patience_and_restores_best() -> None:
    cfg = make_config(
        data={"source": "sklearn:breast_cancer"},
        train={"epochs": 60, "lr": 0.05, "schedule": "constant"},
        early_stopping={"monitor": "val_loss", "patience": 2},
    )
    prepared = prepare(cfg)
    fitted = fit_on_rows(cfg, prepared, prepared.split.train, prepared.split.validation)
    result = fitted.result
    losses = [r["val_loss"] for r in result.history]
    best = int(np.argmin(losses))
    assert result.stop_reason == "patience_exhausted"
    assert result.best_epoch == best
    assert len(losses) == best + 1 + 2  # stops exactly when patience runs out
    # the model holds the best epoch's weights: re-evaluating reproduces its val_loss
    from tunelab.training.loop import evaluate
    from tunelab.training.losses import loss_function

    encoder = fitted.predictor.encoder
    rows = prepared.split.validation
    data = TensorData(
        encoder.transform(prepared.raw.inputs.iloc[rows]),
        torch.from_numpy(prepared.target.values[rows]),
    )
    batches = Batches(data, batch_size=256, device=torch.device("cpu"))
    _, val_loss = evaluate(
        fitted.predictor.model, batches, loss_fn=loss_function(prepared.target.task)
    )
    assert val_loss == pytest.approx(losses[best], rel=1e-5)


def test_streaming_batches_match_in_memory_batches() -> None:
    data = toy(50)
    memory = list(
        Batches(data, batch_size=16, device=torch.device("cpu")).iterate(
            shuffle=True, generator=torch.Generator().manual_seed(3)
        )
    )
    stream = list(
        Batches(data, batch_size=16, device=torch.device("cpu"), stream=True).iterate(
            shuffle=True, generator=torch.Generator().manual_seed(3)
        )
    )
    assert len(memory) == len(stream) == 4
    for (fa, ta), (fb, tb) in zip(memory, stream, strict=True):
        torch.testing.assert_close(fa[0], fb[0])
        torch.testing.assert_close(ta, tb)


def test_stream_threshold_trains_the_same_model() -> None:
    fast = make_config(train={"epochs": 2})
    streamed = make_config(train={"epochs": 2}, data={"stream_above_mb": 1e-6})
    a, _ = train_once(fast)
    b, _ = train_once(streamed)
    assert a[-1]["val_loss"] == pytest.approx(b[-1]["val_loss"])


def test_regression_trains_on_standardized_target_and_reports_original_units() -> None:
    history, _ = train_once(
        make_config(data={"source": "sklearn:diabetes"}, train={"epochs": 15, "lr": 0.01})
    )
    assert 40 < history[-1]["rmse"] < 80  # diabetes target spans 25..346
    assert history[-1]["r2"] > 0.2


@pytest.mark.parametrize("restore_best", [True, False])
def test_validation_outputs_are_those_of_the_weights_the_model_keeps(restore_best: bool) -> None:
    """The search stores these as out-of-fold predictions instead of predicting again."""
    from tunelab.training.loop import predict_outputs

    cfg = make_config(
        data={"source": "sklearn:breast_cancer"},
        train={"epochs": 12, "lr": 0.05, "schedule": "constant", "batch_size": 16},
        early_stopping={"monitor": "val_loss", "patience": 3, "restore_best": restore_best},
    )
    prepared = prepare(cfg)
    rows = prepared.split.validation
    fitted = fit_on_rows(cfg, prepared, prepared.split.train, rows)
    result = fitted.result
    losses = [r["val_loss"] for r in result.history]
    assert int(np.argmin(losses)) < len(losses) - 1, "setup: later epochs were worse"
    kept = int(np.argmin(losses)) if restore_best else len(losses) - 1
    assert result.best_epoch == kept, "best_epoch names the weights the model holds"
    assert result.final["val_loss"] == losses[kept]
    encoder = fitted.predictor.encoder
    features = encoder.transform(prepared.raw.inputs.iloc[rows])
    again = predict_outputs(fitted.predictor.model, features)
    assert result.validation_outputs is not None
    np.testing.assert_allclose(result.validation_outputs, again, rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_no_validation_outputs_under_mixed_precision() -> None:
    """Outputs from an autocast pass differ from the float32 predictor's predictions, so
    the search must predict again instead of reusing them."""
    cfg = make_config(
        data={"source": "sklearn:breast_cancer"},
        train={"epochs": 2, "device": "cuda", "precision": "bf16"},
    )
    prepared = prepare(cfg)
    fitted = fit_on_rows(cfg, prepared, prepared.split.train, prepared.split.validation)
    assert fitted.result.validation_outputs is None


class Watching(nn.Module):
    """Records the torch threads and whether inference mode is on when it runs."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(3, 2)
        self.seen: list[tuple[int, bool]] = []

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        self.seen.append((torch.get_num_threads(), torch.is_inference_mode_enabled()))
        return self.layer(ids[:, :3].float()) + mask.sum(1, keepdim=True).float()


def test_prediction_runs_in_inference_mode_on_the_free_cores_in_order_of_length(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tunelab.training import cores

    monkeypatch.setattr(cores, "process_threads", lambda: 2)
    torch.set_num_threads(1)
    lengths = torch.tensor([3, 8, 5, 4])
    mask = (torch.arange(8)[None, :] < lengths[:, None]).long()
    ids = mask * torch.arange(1, 5)[:, None]
    model = Watching()
    outputs = predict_outputs(model, (ids, mask), batch_size=2, lengths=lengths)
    assert model.seen == [(2, True), (2, True)]
    assert torch.get_num_threads() == 1, "the thread count is put back"
    with torch.inference_mode():
        expected = model(ids, mask).numpy()
    np.testing.assert_allclose(outputs, expected, rtol=1e-6)  # each row in its place
