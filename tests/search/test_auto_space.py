"""``search.space: auto``: the curated space resolves, validates and fits every family and
modality; the user's entries are merged over it; ``check`` and ``run`` say they use it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from typer.testing import CliRunner

from tests.conftest import make_config
from tunelab.applies import refusals
from tunelab.cli import app
from tunelab.config import RunConfig, apply_params, load_config
from tunelab.search.auto_space import (
    DataFacts,
    auto_space,
    batch_sizes,
    family,
    wants_auto,
    with_auto_space,
)
from tunelab.search.space import suggest
from tunelab.search.space_checks import space_problems

# (model source, modality, task): every family on every modality it takes
CASES = [
    ("builtin:mlp", "tabular", "multiclass"),
    ("builtin:mlp", "tabular", "regression"),
    ("builtin:cnn2d", "image", "multiclass"),
    ("builtin:cnn1d", "signal", "binary"),
    ("sklearn:hgb", "tabular", "binary"),
    ("sklearn:hgb", "image", "multiclass"),
    ("file:weights.safetensors", "image", "multiclass"),
    ("timm:resnet18", "image", "multiclass"),
    ("torchvision:resnet18", "image", "regression"),
    ("hf:some/model", "text", "binary"),
    ("st:some/model", "text", "multiclass"),
]


def resolved(source: str, modality: str, task: str, rows: int = 1000, **search: Any) -> RunConfig:
    data: dict[str, Any] = {"source": "sklearn:iris"}
    if modality == "text":
        data = {"source": "csv:reviews.csv", "target": "label", "text_column": "text"}
    cfg = make_config(data=data, model={"source": source}, search=search)
    return with_auto_space(cfg, DataFacts(modality=modality, rows=rows, task=task))


@pytest.mark.parametrize(("source", "modality", "task"), CASES)
def test_the_space_resolves_and_fits_every_family_and_modality(
    source: str, modality: str, task: str
) -> None:
    cfg = resolved(source, modality, task)
    assert cfg.search.auto_space is True and cfg.search.space
    assert space_problems(cfg) == []  # every bound and choice passes the field's validation
    assert refusals(cfg, modality, origin="data") == []  # nothing that cannot apply
    augmented = [name for name in cfg.search.space if name.startswith("augmentation.")]
    if family(cfg) == "trees":
        assert augmented == [] and all(n.startswith("model.options.") for n in cfg.search.space)
    else:
        assert augmented and {"train.lr", "train.batch_size", "regularization.dropout"} <= set(
            cfg.search.space
        )
    if family(cfg) in ("transformer", "vision", "checkpoint"):
        assert "finetuning.strategy" in cfg.search.space
        assert ("model.head" in cfg.search.space) == (task != "regression")
    # every trial's parameters make a valid config (conditions and all)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(15):
        trial = study.ask()
        apply_params(cfg, suggest(trial, cfg.search.space, cfg))
        study.tell(trial, 0.0)


def test_text_token_masking_is_searched_only_with_a_full_fine_tune() -> None:
    cfg = resolved("hf:some/model", "text", "binary")
    assert cfg.search.space["augmentation.token_mask"].when == {"finetuning.strategy": "full"}


def test_the_batch_size_grows_with_the_rows() -> None:
    small, large = (DataFacts("tabular", rows, "binary") for rows in (150, 100_000))
    assert max(batch_sizes(small, "network")) == 8
    assert batch_sizes(large, "network") == [128, 256, 512]
    assert max(batch_sizes(large, "transformer")) == 64


def test_the_users_entries_are_merged_over_the_auto_space() -> None:
    mine = {"type": "float", "low": 0.02, "high": 0.05}
    extra = {"type": "int", "low": 1, "high": 3}
    cfg = resolved(
        "builtin:mlp",
        "tabular",
        "binary",
        auto_space=True,
        space={"train.lr": mine, "model.depth": extra},
    )
    names = list(cfg.search.space)
    assert cfg.search.space["train.lr"].low == 0.02  # the user's range wins, in place
    assert names.index("train.lr") < names.index("regularization.dropout")
    assert names[-1] == "model.depth"
    assert with_auto_space(cfg, DataFacts("tabular", 1000, "binary")) == cfg  # idempotent


def test_a_space_of_the_users_own_stays_as_it_is() -> None:
    space = {"train.lr": {"type": "float", "low": 0.001, "high": 0.01, "log": True}}
    cfg = make_config(search={"space": space})
    assert not wants_auto(cfg)
    assert with_auto_space(cfg, DataFacts("tabular", 1000, "binary")) == cfg


def test_space_auto_in_yaml_asks_for_it(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    config = {"name": "a", "data": {"source": "sklearn:iris"}, "model": {"source": "builtin:mlp"}}
    path.write_text(yaml.safe_dump({**config, "search": {"space": "auto"}}))
    cfg = load_config(path)
    assert cfg.search.auto_space is True and cfg.search.space == {}
    assert set(auto_space(cfg, DataFacts("tabular", 150, "multiclass"))) <= set(
        with_auto_space(cfg, DataFacts("tabular", 150, "multiclass")).search.space
    )


def test_check_prints_the_resolved_auto_space(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        yaml.safe_dump(
            {"name": "a", "data": {"source": "sklearn:wine"}, "model": {"source": "sklearn:hgb"}}
        )
    )
    result = CliRunner().invoke(app, ["check", str(path)])
    assert result.exit_code == 0, result.output
    first, _, rest = result.stdout.partition("\n")
    assert first.startswith("# search: the auto space for trees models on tabular data (178 rows")
    printed = yaml.safe_load(rest)
    assert printed["search"]["auto_space"] is True
    assert "model.options.learning_rate" in printed["search"]["space"]


def test_run_with_no_space_searches_the_auto_space_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.observers import OnStage
    from tunelab.flows.study import run_study

    monkeypatch.chdir(tmp_path)
    cfg = make_config(
        model={"source": "sklearn:hgb"},
        train={"epochs": 5, "threads": 1},
        search={"n_trials": 2},
        ensemble={"method": "none"},
    )
    said: list[str] = []
    result = run_study(cfg, out=tmp_path / "run", observer=OnStage(said.append))
    assert said[0].startswith("search: the auto space for trees models on tabular data (150 rows")
    stored = load_config(tmp_path / "run" / "config.yaml")
    assert stored.search.auto_space is True and "model.options.learning_rate" in stored.search.space
    assert all("model.options.learning_rate" in t.params for t in result.study.trials)
