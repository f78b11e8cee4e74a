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


def test_duplicate_keys_are_refused_with_key_and_lines(tmp_path: Path) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text(
        "data:\n  source: sklearn:iris\nmodel:\n  source: builtin:mlp\n"
        "train:\n  lr: 0.1\n  epochs: 3\n  lr: 0.5\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.source == str(path)
    assert info.value.problems == [
        "the key 'lr' appears twice in the same section (lines 6 and 8); YAML would keep "
        "only the last one. Remove one of them"
    ]
    top = tmp_path / "top.yaml"
    top.write_text("data: {source: sklearn:iris}\nmodel: {source: builtin:mlp}\nseed: 1\nseed: 2\n")
    with pytest.raises(ConfigError, match=r"key 'seed' appears twice .*lines 3 and 4"):
        load_config(top)


def test_same_key_in_different_sections_and_merge_keys_are_fine(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(
        "data: {source: sklearn:iris}\nmodel: {source: builtin:mlp}\n"
        "defaults: &defaults {enabled: false}\n"
        "regularization: {enabled: true}\n"
        "augmentation:\n  <<: *defaults\n  enabled: true\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match=r"^1 problem.*\n  - defaults: unknown field"):
        load_config(path)  # only the anchor's holder is a problem, no duplicate is reported


def test_a_directory_given_as_config_says_so_and_names_its_yaml_files(tmp_path: Path) -> None:
    write(tmp_path, BASE)
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    message = str(info.value)
    assert "is a directory, not a file; it holds c.yaml" in message
    assert f"Give the YAML file itself, e.g. {tmp_path / 'c.yaml'}" in message
    assert "does not exist" not in message


@pytest.mark.parametrize(
    ("section", "key", "home"),
    [
        ("train", "learning_rate", "train.lr"),
        ("train", "max_epochs", "train.epochs"),
        ("train", "num_train_epochs", "train.epochs"),
        ("train", "warmup_ratio", "train.warmup_fraction"),
        ("train", "per_device_train_batch_size", "train.batch_size"),
        ("train", "gradient_clip_val", "regularization.grad_clip"),
        ("train", "dropout", "regularization.dropout"),
        ("train", "seed", "seed, at the top level of the config"),
        ("early_stopping", "min_epochs", "early_stopping.warmup_epochs"),
        (None, "max_epochs", "train.epochs"),
        (None, "learning_rate", "train.lr"),
        (None, "batch_size", "train.batch_size"),
        (None, "momentum", "train.momentum or batch_norm.momentum"),
    ],
)
def test_names_from_hugging_face_and_lightning_say_where_the_field_is(
    tmp_path: Path, section: str | None, key: str, home: str
) -> None:
    data: dict[str, object] = dict(BASE)
    if section is None:
        data[key] = 3
        dotted = key
    else:
        data[section] = {key: 3}
        dotted = f"{section}.{key}"
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, data))
    assert info.value.problems == [f"{dotted}: unknown field; it is set as {home}"]


def test_search_space_with_another_tools_name_suggests_the_field(tmp_path: Path) -> None:
    space = {"train.learning_rate": {"type": "float", "low": 0.001, "high": 0.1}}
    with pytest.raises(
        ConfigError,
        match=r"'train.learning_rate' is not a config field.*"
        r"Did you mean 'train.lr'\?",
    ):
        load_config(write(tmp_path, {**BASE, "search": {"space": space}}))
