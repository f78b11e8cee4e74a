"""Real ladders on iris: planted effects, resuming, and what ``ladder.json`` holds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import make_config
from tunelab.config import RunConfig
from tunelab.errors import FatalError
from tunelab.ladder import run_ladder
from tunelab.ladder.rungs import STAGES, Stage, StageContext
from tunelab.observer import Observer
from tunelab.results.rundir import RunDir, open_run_dir
from tunelab.techniques import TECHNIQUES, TechniqueSpec
from tunelab.training.hooks import Technique

SMALL = {"folds": 3, "repeats": 1, "leave_one_out": False}


class Counter(Observer):
    """Counts the folds a ladder trains."""

    def __init__(self, stop_after: int | None = None) -> None:
        self.trained = 0
        self.stop_after = stop_after
        self.planned_folds: int | None = None

    def ladder_planned(self, *, folds: int, reused: int, metric: str) -> None:
        self.planned_folds = folds

    def variant_fold(self, label: str, fold: int, folds: int, score: float) -> None:
        self.trained += 1
        if self.stop_after is not None and self.trained >= self.stop_after:
            raise KeyboardInterrupt


def ladder(cfg: RunConfig, out: Path, observer: Observer | None = None) -> dict[str, Any]:
    run = open_run_dir(cfg, out, resume=lambda run: True)
    return run_ladder(cfg, run, observer=observer)


def rows(doc: dict[str, Any], view: str = "ladder") -> dict[str, dict[str, Any]]:
    return {row["name"]: row for row in doc[view]}


class Nothing(Technique):
    name = "noop"


def plant(monkeypatch: pytest.MonkeyPatch, name: str, off: dict[str, Any]) -> None:
    """Register a technique whose only effect is its off state's overrides."""
    spec = TechniqueSpec(name=name, order=90, off=off, build=lambda cfg, facts: Nothing())
    monkeypatch.setitem(TECHNIQUES._items, name, spec)


def test_a_planted_effect_helps_and_a_no_op_gets_no_evidence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # "planted": switched off, the model barely learns (lr 1e-6); "reseed": switched off,
    # only the initial weights and batch order change (another seed): noise, no effect
    plant(monkeypatch, "planted", {"train.lr": 1e-6})
    plant(monkeypatch, "reseed", {"seed": 1})
    cfg = make_config(
        train={"epochs": 15, "lr": 0.02},
        ladder={"rungs": ["planted", "reseed"], "folds": 5, "repeats": 2},
    )
    doc = ladder(cfg, tmp_path / "run")
    steps = rows(doc)
    assert steps["planted"]["verdict"] == "helps"
    assert steps["planted"]["difference"] > 0.3 and steps["planted"]["p_holm"] < 0.05
    assert steps["planted"]["changes"] == {"train.lr": 0.02}
    assert steps["reseed"]["verdict"] == "no evidence"
    assert steps["reseed"]["difference"] != 0.0  # real, different fits: noise only
    out = rows(doc, "leave_one_out")
    assert out["planted"]["verdict"] == "helps" and out["reseed"]["verdict"] == "no evidence"
    assert doc["complete"] and doc["metric"] == "accuracy" and doc["greater_is_better"]
    # the ladder's top rung is the final recipe the leave-one-out view starts from: one variant
    assert steps["reseed"]["variant"] == out["final"]["variant"]
    assert len(doc["variants"]) == 4
    for variant in doc["variants"].values():
        assert len(variant["folds"]) == 10
        assert variant["summary"]["seconds_per_epoch"] > 0


def test_for_an_error_metric_a_lower_score_helps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plant(monkeypatch, "planted", {"train.lr": 1e-6})
    cfg = make_config(
        data={"source": "sklearn:diabetes"},
        train={"epochs": 10, "lr": 0.02},
        ladder={**SMALL, "rungs": ["planted"]},
    )
    doc = ladder(cfg, tmp_path / "run")
    assert doc["metric"] == "rmse" and doc["greater_is_better"] is False
    planted = rows(doc)["planted"]
    assert planted["difference"] < 0 and planted["verdict"] == "helps"


def test_a_variant_that_diverges_is_recorded_as_failed_and_the_ladder_goes_on(
    tmp_path: Path,
) -> None:
    # plain SGD at lr 1 diverges on diabetes without gradient clipping (the baseline's
    # regularization is off); the final recipe clips
    cfg = make_config(
        data={"source": "sklearn:diabetes"},
        train={"epochs": 3, "optimizer": "sgd", "lr": 1.0, "schedule": "constant"},
        regularization={"grad_clip": 0.5},
        ladder={**SMALL, "rungs": ["regularization", "batch_norm"], "leave_one_out": True},
    )
    doc = ladder(cfg, tmp_path / "run")
    baseline = rows(doc)["baseline"]
    assert baseline["status"] == "failed"
    assert baseline["reason"].startswith("fold 1 of 3: non-finite loss at epoch")
    climbed = rows(doc)["regularization"]
    assert climbed["status"] == "measured" and "difference" not in climbed  # nothing below
    assert rows(doc)["batch_norm"]["compared_to"] == "regularization"
    assert rows(doc, "leave_one_out")["regularization"]["status"] == "failed"
    assert doc["complete"]
    retried = Counter()  # a failure is tried again on the next run
    ladder(cfg, tmp_path / "run", retried)
    assert retried.trained == 0 and retried.planned_folds == 2 * 3


def test_a_second_run_measures_nothing_and_a_changed_config_measures_again(
    tmp_path: Path,
) -> None:
    cfg = make_config(ladder={**SMALL, "rungs": ["regularization", "batch_norm"]})
    first = Counter()
    doc = ladder(cfg, tmp_path / "run", first)
    assert first.trained == first.planned_folds == 9
    again = Counter()
    assert ladder(cfg, tmp_path / "run", again) == doc
    assert again.trained == again.planned_folds == 0
    stricter = Counter()  # the significance level changes no measurement
    rungs = ["regularization", "batch_norm"]
    ladder(make_config(ladder={**SMALL, "rungs": rungs, "alpha": 0.01}), tmp_path / "run", stricter)
    assert stricter.trained == 0
    changed = Counter()
    other = make_config(train={"lr": 0.005}, ladder={**SMALL, "rungs": ["regularization"]})
    ladder(other, tmp_path / "run", changed)
    assert changed.trained == changed.planned_folds == 6


def test_an_interrupted_ladder_keeps_its_measured_folds(tmp_path: Path) -> None:
    cfg = make_config(ladder={**SMALL, "rungs": ["regularization"]})
    with pytest.raises(KeyboardInterrupt):
        ladder(cfg, tmp_path / "run", Counter(stop_after=4))
    saved = json.loads(RunDir(tmp_path / "run").ladder.read_text())
    assert sum(len(v["folds"]) for v in saved["variants"].values()) == 4
    assert not saved["complete"]
    resumed = Counter()
    doc = ladder(cfg, tmp_path / "run", resumed)
    assert resumed.trained == 2 and doc["complete"]


@pytest.mark.parametrize(
    "content",
    ["[]", "{}", '"ladder"', '{"variants": []}', '{"variants": {"k": 5}}', '{"ladder": [', ""],
)
def test_a_ladder_json_of_the_wrong_shape_is_refused_like_a_truncated_one(
    tmp_path: Path, content: str
) -> None:
    """A valid JSON of the wrong shape ([]) was silently dropped and measured again."""
    cfg = make_config(ladder={**SMALL, "rungs": ["regularization"]})
    run = open_run_dir(cfg, tmp_path / "run")
    run.ladder.write_text(content)
    counter = Counter()
    with pytest.raises(FatalError, match=r"delete it to measure the ladder afresh"):
        run_ladder(cfg, run, observer=counter)
    assert counter.trained == 0
    assert run.ladder.read_text() == content  # kept for the user to look at


def test_a_stage_registered_later_is_measured_on_the_same_splits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[int] = []

    def perfect(context: StageContext) -> list[float]:
        seen.append(len(context.splits))
        return [1.0] * len(context.splits)

    monkeypatch.setitem(STAGES._items, "ensemble", Stage(name="ensemble", measure=perfect))
    cfg = make_config(ladder={**SMALL, "rungs": ["regularization", "ensemble"]})
    steps = rows(ladder(cfg, tmp_path / "run"))
    assert seen == [3]
    assert steps["ensemble"]["mean"] == 1.0
    assert steps["ensemble"]["changes"] == {"stage": "ensemble"}
    assert steps["ensemble"]["compared_to"] == "regularization"


def test_the_ensemble_rung_of_a_run_without_one_is_skipped_with_the_reason(
    tmp_path: Path,
) -> None:
    """One word for a rung that did not run: "skipped", in ladder.json and the table."""
    from rich.console import Console

    from tunelab.ladder.show import ladder_table

    cfg = make_config(ladder={**SMALL, "rungs": ["regularization", "ensemble"]})
    doc = ladder(cfg, tmp_path / "run")
    step = rows(doc)["ensemble"]
    assert step["status"] == "skipped" and "no ensemble in this run" in step["reason"]
    console = Console(width=200, record=True)
    console.print(ladder_table(doc))
    printed = console.export_text()
    assert "skipped + ensemble: no ensemble in this run" in printed and "failed" not in printed


def test_intervals_stay_inside_the_metric_range_and_name_their_method(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fold accuracies of 1, 0.9, 1 have a t-interval past 1; the ladder clips it."""
    from tunelab.ladder.show import markdown

    def near_perfect(context: StageContext) -> list[float]:
        return [1.0, 0.9, 1.0]

    monkeypatch.setitem(STAGES._items, "ensemble", Stage(name="ensemble", measure=near_perfect))
    cfg = make_config(ladder={**SMALL, "rungs": ["regularization", "ensemble"]})
    doc = ladder(cfg, tmp_path / "run")
    step = rows(doc)["ensemble"]
    assert step["high"] == 1.0 and step["low"] < step["mean"] < 1.0
    assert -1.0 <= step["difference_low"] <= step["difference_high"] <= 1.0
    assert doc["interval_method"].endswith("clipped to accuracy's range [0, 1]")
    assert f"{step['mean']:.4f} [{step['low']:.4f}, 1.0000]" in markdown(doc)


def test_a_tree_recipe_skips_the_rungs_trees_cannot_take_and_measures_the_rest(
    tmp_path: Path,
) -> None:
    """The study's best trial is ``sklearn:hgb``: the network techniques' rungs are
    skipped, each with its reason; tuning and early stopping (which boosting reads) are
    measured, also with early stopping switched off (the baseline)."""
    cfg = make_config(
        train={"epochs": 40},  # boosting rounds: enough for a patience of 2 to stop them
        early_stopping={"patience": 2},
        regularization={"dropout": 0.2},
        ladder={**SMALL, "leave_one_out": True},
    )
    run = open_run_dir(cfg, tmp_path / "run", resume=lambda run: True)
    doc = run_ladder(cfg, run, params={"model.source": "sklearn:hgb"})
    steps = rows(doc)
    for name in ("tuned", "early_stopping"):
        assert steps[name]["status"] == "measured", steps[name]
    assert steps["baseline"]["status"] == "measured"
    for name in ("regularization", "batch_norm", "augmentation", "finetuning"):
        assert steps[name]["status"] == "skipped"
        assert "sklearn:hgb is a tree model" in steps[name]["reason"], steps[name]
    assert rows(doc, "leave_one_out")["early_stopping"]["status"] == "measured"


def test_a_technique_that_cannot_act_within_the_epochs_did_nothing_and_is_not_trained(
    tmp_path: Path,
) -> None:
    cfg = make_config(
        early_stopping={"patience": 6, "restore_best": False},
        ladder={**SMALL, "epochs": 3, "rungs": ["early_stopping"], "leave_one_out": True},
    )
    counter = Counter()
    doc = ladder(cfg, tmp_path / "run", counter)
    step = rows(doc)["early_stopping"]
    assert step["status"] == "did nothing" and "verdict" not in step
    assert step["reason"].startswith("early stopping cannot stop within 3 epochs (patience 6")
    assert step["switches"] == {"early_stopping.enabled": True}  # what it would have switched
    assert rows(doc, "leave_one_out")["early_stopping"]["status"] == "did nothing"
    # the baseline (also the final recipe) alone was trained: 3 folds, one variant
    assert counter.planned_folds == 3 and len(doc["variants"]) == 1

    from rich.console import Console

    from tunelab.ladder.show import ladder_table, markdown

    assert "| + early stopping |  |  |  | did nothing here: early stopping cannot" in markdown(doc)
    console = Console(record=True, width=200)
    console.print(ladder_table(doc))
    shown = console.export_text()
    assert "did nothing here + early stopping: early stopping cannot stop" in shown
    assert "([low, high] where clipped)" in shown  # the caption is text, not rich markup


def test_a_planted_no_op_did_nothing_with_identical_predictions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # switched off, a gradient clip no gradient ever reaches (1e9) is no clip: the same fit
    plant(monkeypatch, "noop", {"regularization.grad_clip": None})
    plant(monkeypatch, "reseed", {"seed": 1})
    cfg = make_config(
        regularization={"grad_clip": 1e9},
        ladder={**SMALL, "rungs": ["noop", "reseed"]},
    )
    doc = ladder(cfg, tmp_path / "run")
    noop, reseed = rows(doc)["noop"], rows(doc)["reseed"]
    assert noop["status"] == "did nothing" and "p_value" not in noop
    assert noop["reason"] == (
        "identical predictions on every fold: what it switches changed nothing the model "
        "learned here"
    )
    assert noop["changes"] == {"regularization.grad_clip": 1e9}
    # the next rung is compared with the last one that did something, and is a test
    assert reseed["compared_to"] == "baseline" and reseed["p_holm"] == reseed["p_value"]
    assert "verdict" in reseed and "+0.0000 ± 0.0000" not in rows_text(doc)


def rows_text(doc: dict[str, Any]) -> str:
    from tunelab.ladder.show import markdown

    return markdown(doc) + markdown(doc, "leave_one_out")
