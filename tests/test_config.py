from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tunelab.config import load_config
from tunelab.errors import ConfigError


def write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


BASE = {"data": {"source": "sklearn:iris"}, "model": {"source": "builtin:mlp"}}


def test_defaults_filled_and_frozen(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, BASE))
    assert cfg.train.optimizer == "adamw"
    assert cfg.early_stopping.patience == 5
    with pytest.raises(Exception):  # noqa: B017 - pydantic's frozen error type is internal
        cfg.train.lr = 1.0  # type: ignore[misc]


def test_overrides_parse_values_as_yaml(tmp_path: Path) -> None:
    cfg = load_config(
        write(tmp_path, BASE),
        overrides=["train.lr=0.01", "batch_norm.enabled=false", "train.epochs=7"],
    )
    assert cfg.train.lr == 0.01
    assert cfg.batch_norm.enabled is False
    assert cfg.train.epochs == 7
    urls = load_config(
        write(tmp_path, BASE),
        overrides=["search.storage=sqlite:///:memory:", "model.options={width: 8}"],
    )
    assert urls.search.storage == "sqlite:///:memory:"  # a URL ending in ':' stays a string
    assert urls.model.options == {"width": 8}  # an explicit mapping is still one


def test_unknown_key_gets_did_you_mean(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, {**BASE, "train": {"learning_rate": 0.1, "epoch": 3}}))
    text = str(info.value)
    assert "2 problems" in text
    assert "train.epoch: unknown field" in text and "Did you mean 'epochs'?" in text
    assert "train.learning_rate: unknown field" in text


def test_one_line_per_problem_with_field_value_and_allowed(tmp_path: Path) -> None:
    bad = {
        "data": {"source": "sklern:iris", "test_size": 1.5},
        "model": {"source": "builtin:mlp"},
        "train": {"optimizer": "adamx", "lr": -1},
    }
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, bad))
    problems = info.value.problems
    assert len(problems) == 4
    joined = "\n".join(problems)
    assert "data.source: got 'sklern:iris'" in joined and "Did you mean 'sklearn:'?" in joined
    assert "data.test_size: got 1.5" in joined
    assert "train.optimizer: got 'adamx'" in joined and "'adamw'" in joined
    assert "train.lr: got -1" in joined


def test_a_field_from_another_section_says_where_it_lives(tmp_path: Path) -> None:
    bad = {**BASE, "model": {"source": "builtin:mlp", "dropout": 0.1}}
    with pytest.raises(ConfigError, match=r"model.dropout: .* set as regularization.dropout"):
        load_config(write(tmp_path, bad))


def test_missing_section_and_bad_metric(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="model: required field is missing"):
        load_config(write(tmp_path, {"data": {"source": "sklearn:iris"}}))
    with pytest.raises(ConfigError, match="Did you mean 'accuracy'"):
        load_config(write(tmp_path, {**BASE, "train": {"metric": "acuracy"}}))


def test_bad_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    path = tmp_path / "bad.yaml"
    path.write_text("data: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)
    with pytest.raises(ConfigError, match="must look like"):
        load_config(write(tmp_path, BASE), overrides=["train.lr"])


def test_resolved_config_round_trips(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, BASE), overrides=["seed=3"])
    again = tmp_path / "resolved.yaml"
    again.write_text(cfg.to_yaml())
    assert load_config(again) == cfg
