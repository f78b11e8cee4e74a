"""The frozen backbone's features: computed once per row, shared by trials, never stale."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import make_config
from tunelab.evaluation import features
from tunelab.evaluation.fitting import fit_on_rows
from tunelab.evaluation.prepare import prepare
from tunelab.flows.study import run_study

COUNTING_MODEL = '''
import torch
from torch import nn

ROWS = [0]


class Counting(nn.Module):
    """A backbone that counts the rows it is run on, and a head."""

    def __init__(self, inputs, outputs):
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(inputs, 8), nn.Tanh())
        self.head = nn.Linear(8, outputs)

    def embed(self, x):
        ROWS[0] += x.shape[0]
        return self.backbone(x)

    def forward(self, x):
        return self.head(self.embed(x))


def build(input_shape, num_outputs):
    torch.manual_seed(7)
    return Counting(input_shape[0], num_outputs)
'''


@pytest.fixture
def counting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    folder = tmp_path / "mods"
    folder.mkdir()
    name = f"counting_{tmp_path.name.replace('-', '_')}"
    (folder / f"{name}.py").write_text(COUNTING_MODEL)
    monkeypatch.syspath_prepend(str(folder))
    features.clear_memory()
    yield name
    sys.modules.pop(name, None)
    features.clear_memory()


def probe_study(name: str, out: Path, *, cache: bool) -> Any:
    cfg = make_config(
        model={"source": f"py:{name}:build"},
        finetuning={"strategy": "linear_probe", "cache_features": cache},
        train={"epochs": 4, "lr": 0.05},
        early_stopping={"enabled": False, "restore_best": False},
        search={
            "n_trials": 3,
            "sampler": "random",
            "pruner": "none",
            "space": {"regularization.dropout": {"type": "float", "low": 0.0, "high": 0.5}},
        },
    )
    return run_study(cfg, out=out)


def test_a_linear_probe_study_runs_the_backbone_once_per_row(counting: str, tmp_path: Path) -> None:
    module = __import__(counting)
    result = probe_study(counting, tmp_path / "run", cache=True)
    assert result.metrics is not None
    rows = result.metrics["rows"]
    trainable = rows["train"] + rows["validation"]  # iris: 120 rows besides the 30 test rows
    # once per train/validation row for all 3 trials x 4 epochs; once more for the refit,
    # whose table encoder is fitted on more rows (other inputs, so another cache entry);
    # the final predictor then reads the test rows (the holdout evaluation predicts twice)
    assert module.ROWS[0] == 2 * trainable + 2 * rows["test"]
    assert list((tmp_path / "run" / "features").glob("features-*.npz"))
    assert any("frozen backbone ran once on 120" in n for n in result.metrics["notes"]) or any(
        "cached features" in n for n in result.metrics["notes"]
    )

    module.ROWS[0] = 0
    probe_study(counting, tmp_path / "uncached", cache=False)
    # without the cache every epoch of every trial runs it over the training rows
    assert module.ROWS[0] > 3 * 4 * rows["train"]


def test_a_changed_max_length_or_model_computes_the_features_again(
    tmp_path: Path, tiny_berts: tuple[Path, Path]
) -> None:
    first, second = tiny_berts

    def fit(model: Path, max_length: int) -> list[str]:
        cfg = make_config(
            data={"source": "csv:examples/data/reviews.csv", "target": "label",
                  "text_column": "text", "max_length": max_length},
            model={"source": f"hf:{model}"},
            finetuning={"strategy": "linear_probe"},
            train={"epochs": 2},
        )  # fmt: skip
        prepared = replace(prepare(cfg), cache_dir=tmp_path / "features")
        split = prepared.split
        notes = fit_on_rows(cfg, prepared, split.train, split.validation).predictor.info["notes"]
        return [n for n in notes if n.startswith("features:")]

    def computed(notes: list[str]) -> bool:
        return any("ran once" in n for n in notes)

    features.clear_memory()
    assert computed(fit(first, 16))
    assert not computed(fit(first, 16))  # the same settings read the cache
    assert computed(fit(first, 24))  # max_length changed
    assert computed(fit(second, 16))  # another model (other weights)
    assert len(list((tmp_path / "features").glob("features-*.npz"))) == 3
    features.clear_memory()  # a new process: the files are read, not recomputed
    assert not computed(fit(first, 24))


def test_cached_features_train_the_head_as_the_live_backbone_does() -> None:
    def validation_outputs(cache: bool) -> np.ndarray:
        cfg = make_config(
            data={"source": "sklearn:breast_cancer"},
            finetuning={"strategy": "linear_probe", "cache_features": cache},
            early_stopping={"enabled": False, "restore_best": False},
        )
        prepared = prepare(cfg)
        fitted = fit_on_rows(cfg, prepared, prepared.split.train, prepared.split.validation)
        assert fitted.result.validation_outputs is not None
        return fitted.result.validation_outputs

    features.clear_memory()
    np.testing.assert_allclose(validation_outputs(True), validation_outputs(False), atol=1e-5)


def test_feature_noise_and_mixup_apply_to_cached_text_features(
    tmp_path: Path, tiny_berts: tuple[Path, Path]
) -> None:
    cfg = make_config(
        data={"source": "csv:examples/data/reviews.csv", "target": "label",
              "text_column": "text", "max_length": 16},
        model={"source": f"hf:{tiny_berts[0]}"},
        finetuning={"strategy": "linear_probe"},
        augmentation={"noise": 0.1, "mixup": 0.2},
        train={"epochs": 2},
    )  # fmt: skip
    prepared = prepare(cfg)
    fitted = fit_on_rows(cfg, prepared, prepared.split.train, prepared.split.validation)
    assert fitted.predictor.info["techniques"]["augmentation"] == {"noise": 0.1, "mixup": 0.2}
    # a token augmentation needs the raw tokens: the backbone then runs every epoch
    token = cfg.model_copy(
        update={"augmentation": cfg.augmentation.model_copy(update={"noise": 0.0, "mixup": 0.0,
                                                                    "token_mask": 0.1})}
    )  # fmt: skip
    notes = fit_on_rows(token, prepared, prepared.split.train, None).predictor.info["notes"]
    assert any("not cached (augmentation.token_mask" in n for n in notes)


def test_a_damaged_cache_file_is_computed_again(tmp_path: Path) -> None:
    store = features.FeatureStore(tmp_path)
    store.save("features-x", {"values": np.ones((2, 3), np.float32)})
    features.clear_memory()
    (tmp_path / "features-x.npz").write_bytes(b"not a zip file")
    assert store.load("features-x") is None
    assert not list(tmp_path.glob(".*.npz"))  # no temporary file is left behind
