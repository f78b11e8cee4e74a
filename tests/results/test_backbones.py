"""A frozen backbone is stored once: the fold models of kept trials and the members of the
final ensemble name it by its digest, and every way of loading them still works."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from safetensors.torch import load, load_file
from typer.testing import CliRunner

from tests.conftest import make_config
from tunelab.cli import app
from tunelab.errors import FatalError
from tunelab.flows.study import run_study
from tunelab.results import backbones
from tunelab.results.artifacts import TrialArtifacts
from tunelab.results.leaderboard import ranked
from tunelab.results.predictor import load_predictor
from tunelab.results.trial_record import record

TRIALS = 3


def probe_config(model: Path, **extra: Any) -> Any:
    return make_config(
        data={"source": "csv:examples/data/reviews.csv", "target": "label",
              "text_column": "text", "max_length": 16},
        model={"source": f"hf:{model}", "head": "logistic"},
        finetuning={"strategy": "linear_probe"},
        cv={"strategy": "kfold", "folds": 3},
        search={"n_trials": TRIALS, "sampler": "random", "pruner": "none", "keep_top_k": TRIALS,
                "space": {"model.head_c": {"type": "float", "low": 0.01, "high": 10.0,
                                           "log": True}}},
        ensemble={"method": "mean", "keep": "ensemble", "size": 2},
        **extra,
    )  # fmt: skip


@pytest.fixture(scope="module")
def probe_run(tmp_path_factory: pytest.TempPathFactory, tiny_berts: tuple[Path, Path]) -> Path:
    out = tmp_path_factory.mktemp("probe") / "run"
    result = run_study(probe_config(tiny_berts[0]), out=out)
    assert result.metrics is not None and result.metrics["final"] == "ensemble"
    backbones._memory.clear()  # loads below read the files, as a new process would
    return out


def backbone_tensors(tiny_bert: Path) -> set[str]:
    return {f"backbone.{name}" for name in load_file(str(tiny_bert / "model.safetensors"))}


def stored(folder: Path) -> list[Path]:
    return sorted((folder / backbones.FOLDER).glob("*.safetensors"))


def test_the_kept_trials_store_the_backbone_once_and_only_their_heads_per_fold(
    probe_run: Path, tiny_berts: tuple[Path, Path]
) -> None:
    artifacts = probe_run / "artifacts"
    assert len(stored(artifacts)) == 1, "one backbone for every fold of every kept trial"
    study_trials = ranked_trials(probe_run)
    assert len(study_trials) == TRIALS
    names = backbone_tensors(tiny_berts[0])
    for trial in study_trials:
        folds = TrialArtifacts(artifacts).predictors(trial)
        assert len(folds) == 3
    archives = [artifacts / record(t)["artifacts"]["predictors"] for t in study_trials]
    for archive in archives:  # three fold models: their heads, no backbone tensor
        with zipfile.ZipFile(archive) as bundle:
            for fold in range(3):
                weights = load(bundle.read(f"fold_{fold}/model.safetensors"))
                assert weights and not names & set(weights)
                manifest = json.loads(bundle.read(f"fold_{fold}/predictor.json"))
                assert manifest["frozen_backbone"] == stored(artifacts)[0].stem
    assert names <= set(load_file(str(stored(artifacts)[0])))


def ranked_trials(run: Path) -> list[Any]:
    import optuna

    study = optuna.load_study(study_name="test", storage=f"sqlite:///{run / 'study.db'}")
    return ranked(study)


def test_the_final_ensemble_holds_one_copy_and_predicts_what_the_run_wrote(
    probe_run: Path, tiny_berts: tuple[Path, Path]
) -> None:
    final = probe_run / "final"
    assert len(stored(final)) == 1
    member = json.loads((final / "member_0" / "member_0" / "predictor.json").read_text())
    assert member["frozen_backbone"] == stored(final)[0].stem
    weights = load_file(str(final / "member_0" / "member_0" / "model.safetensors"))
    assert not backbone_tensors(tiny_berts[0]) & set(weights), "only the head per model"
    assert_predicts_as_written(probe_run, probe_run)


def assert_predicts_as_written(predictor_dir: Path, run: Path) -> None:
    predictor = load_predictor(predictor_dir)
    inputs = pd.read_csv(run / "test_inputs.csv")
    written = pd.read_csv(run / "test_predictions.csv")
    columns = [c for c in written.columns if c.startswith("proba_")]
    np.testing.assert_allclose(predictor.predict_proba(inputs), written[columns], atol=1e-6)


def test_a_copied_final_folder_loads_on_its_own(probe_run: Path, tmp_path: Path) -> None:
    copy = tmp_path / "elsewhere" / "final"
    shutil.copytree(probe_run / "final", copy)
    assert not [p for p in copy.rglob("*") if p.is_symlink()]
    backbones._memory.clear()
    assert_predicts_as_written(copy, probe_run)


def test_one_member_copied_alone_is_refused_with_the_fix(probe_run: Path, tmp_path: Path) -> None:
    lone = tmp_path / "member"
    shutil.copytree(probe_run / "final" / "member_0" / "member_0", lone)
    backbones._memory.clear()
    with pytest.raises(FatalError, match=r"copy the whole predictor folder"):
        load_predictor(lone)


def test_an_altered_backbone_file_is_refused(probe_run: Path, tmp_path: Path) -> None:
    copy = tmp_path / "final"
    shutil.copytree(probe_run / "final", copy)
    blob = stored(copy)[0]
    tensors = load_file(str(blob))
    name = sorted(tensors)[0]
    tensors[name] = tensors[name] + 1.0
    from safetensors.torch import save_file

    save_file(tensors, str(blob))
    backbones._memory.clear()
    with pytest.raises(FatalError, match="does not hold the backbone its name says"):
        load_predictor(copy)


def test_predict_and_export_commands_read_it(probe_run: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    output = tmp_path / "preds.csv"
    done = runner.invoke(
        app,
        ["predict", str(probe_run), "--input", str(probe_run / "test_inputs.csv"),
         "--output", str(output)],
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    written = pd.read_csv(probe_run / "test_predictions.csv")
    assert list(pd.read_csv(output)["prediction"]) == list(written["prediction"])
    refused = runner.invoke(app, ["export", str(probe_run), "--format", "torchscript"])
    assert refused.exit_code == 2, refused.output  # an ensemble, as before
    assert "Traceback" not in refused.output


def test_overwrite_starts_again_with_one_copy(
    probe_run: Path, tmp_path: Path, tiny_berts: tuple[Path, Path]
) -> None:
    out = tmp_path / "again"
    shutil.copytree(probe_run, out)
    result = run_study(probe_config(tiny_berts[0]), out=out, overwrite=True)
    assert result.metrics is not None
    assert len(stored(out / "artifacts")) == 1 and len(stored(out / "final")) == 1


def test_a_lent_backbone_that_changed_is_not_taken_for_the_frozen_one() -> None:
    import torch
    from torch import nn

    from tunelab.models.lent import content_digest, frozen_part, mark_lent

    model = nn.Module()
    model.backbone = nn.Linear(4, 3)
    model.head = nn.Linear(3, 2)
    mark_lent(model, {"backbone.weight", "backbone.bias"})
    found = frozen_part(model)
    assert found is not None and set(found[1]) == {"backbone.weight", "backbone.bias"}
    assert found[0] == content_digest(found[1])
    with torch.no_grad():
        model.backbone.weight.add_(1.0)  # an optimizer step, merged LoRA weights
    assert frozen_part(model) is None
    assert frozen_part(nn.Linear(2, 2)) is None, "a model lent nothing stores everything"


def copied_final(probe_run: Path, tmp_path: Path) -> tuple[Path, Path]:
    copy = tmp_path / "final"
    shutil.copytree(probe_run / "final", copy)
    backbones._memory.clear()
    return copy, stored(copy)[0]


def restored_under_new_digest(final: Path, tensors: dict[str, Any]) -> None:
    """Save ``tensors`` as the backbone under their own digest and point every member at it,
    as a hostile editor who knows the format would."""
    from safetensors.torch import save_file

    from tunelab.models.lent import content_digest

    old = stored(final)[0]
    digest = content_digest(tensors)
    save_file(tensors, str(old.parent / f"{digest}.safetensors"))
    old.unlink()
    for manifest_path in final.rglob("predictor.json"):
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("frozen_backbone") == old.stem:
            manifest["frozen_backbone"] = digest
            manifest_path.write_text(json.dumps(manifest))


def test_a_backbone_with_nan_under_its_own_digest_is_refused(
    probe_run: Path, tmp_path: Path
) -> None:
    final, blob = copied_final(probe_run, tmp_path)
    tensors = load_file(str(blob))
    name = next(n for n in sorted(tensors) if tensors[n].is_floating_point())
    tensors[name] = tensors[name].clone().fill_(float("nan"))
    restored_under_new_digest(final, tensors)
    with pytest.raises(FatalError, match="NaN or infinite"):
        load_predictor(final)


def test_a_backbone_missing_a_tensor_is_refused_as_another_architecture(
    probe_run: Path, tmp_path: Path
) -> None:
    final, blob = copied_final(probe_run, tmp_path)
    tensors = load_file(str(blob))
    del tensors[sorted(tensors)[-1]]
    restored_under_new_digest(final, tensors)
    with pytest.raises(FatalError, match=r"does not match the architecture .*missing"):
        load_predictor(final)


def test_weights_that_repeat_a_backbone_tensor_are_refused(probe_run: Path, tmp_path: Path) -> None:
    from safetensors.torch import save_file

    final, blob = copied_final(probe_run, tmp_path)
    weights_path = final / "member_0" / "member_0" / "model.safetensors"
    weights = load_file(str(weights_path))
    name, tensor = next(iter(load_file(str(blob)).items()))
    save_file({**weights, name: tensor}, str(weights_path))
    with pytest.raises(FatalError, match="repeats 1 tensor of the frozen backbone"):
        load_predictor(final)


@pytest.mark.parametrize("digest", ["../../elsewhere", "/etc/passwd", "A" * 64, 7])
def test_a_frozen_backbone_that_is_not_a_digest_is_refused(
    probe_run: Path, tmp_path: Path, digest: object
) -> None:
    final, _ = copied_final(probe_run, tmp_path)
    manifest_path = final / "member_0" / "member_0" / "predictor.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["frozen_backbone"] = digest
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(FatalError, match="is not the SHA-256 digest of a stored backbone"):
        load_predictor(final)


def test_a_backbone_linked_from_outside_the_folder_is_refused(
    probe_run: Path, tmp_path: Path
) -> None:
    final, blob = copied_final(probe_run, tmp_path)
    outside = tmp_path / "outside.safetensors"
    shutil.move(blob, outside)
    blob.symlink_to(outside)
    with pytest.raises(FatalError, match="link"):
        load_predictor(final)
