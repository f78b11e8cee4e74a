"""Settings that cannot apply to the data's modality are refused before any training, set
or searched; far-out magnitudes are warned about with the field named."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from tunelab.cli import app

runner = CliRunner()


def write_config(folder: Path, data: str, **sections: Any) -> Path:
    raw = {
        "name": "applies",
        "data": {"source": data},
        "model": {"source": "builtin:mlp", "width": 8, "depth": 1},
        "train": {"epochs": 1, "threads": 1},
        **sections,
    }
    path = folder / "applies.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def one_line(text: str) -> str:
    return " ".join(text.split())


ROTATION = {"space": {"augmentation.rotation": {"type": "float", "low": 0.0, "high": 30.0}}}


def test_check_refuses_a_searched_image_augmentation_on_a_table(tmp_path: Path) -> None:
    config = write_config(tmp_path, "sklearn:iris", search=ROTATION)
    result = runner.invoke(app, ["check", str(config)])
    message = one_line(result.output)
    assert result.exit_code == 2, message
    assert "search.space: augmentation.rotation (float from 0 to 30) is searched" in message
    assert "tabular data (sklearn:iris)" in message and "augmentation.noise" in message
    assert "Traceback" not in message


def test_run_refuses_it_before_any_trial(tmp_path: Path) -> None:
    """Today's failure: five trials failed on it and the study exited 1."""
    config = write_config(tmp_path, "sklearn:iris", search={**ROTATION, "n_trials": 5})
    out = tmp_path / "run"
    result = runner.invoke(app, ["run", str(config), "--out", str(out), "--quiet"])
    assert result.exit_code == 2, result.output
    assert "augmentation.rotation" in one_line(result.output)
    assert not out.exists(), "refused before the run directory"


def test_a_table_file_refuses_image_augmentation(tmp_path: Path) -> None:
    table = tmp_path / "table.csv"
    table.write_text("a,b,target\n1,2,x\n3,4,y\n")
    config = write_config(tmp_path, f"csv:{table}", augmentation={"hflip": True})
    raw = yaml.safe_load(config.read_text())
    raw["data"]["target"] = "target"
    config.write_text(yaml.safe_dump(raw))
    result = runner.invoke(app, ["check", str(config)])
    assert result.exit_code == 2, result.output
    assert "augmentation.hflip=True does not apply to tabular data" in one_line(result.output)


def test_text_masking_on_signals_is_refused_from_the_npz_header(tmp_path: Path) -> None:
    path = tmp_path / "signals.npz"
    np.savez(path, X=np.zeros((30, 2, 16), np.float32), y=np.arange(30) % 2)
    config = write_config(tmp_path, f"npz:{path}", augmentation={"token_mask": 0.2})
    result = runner.invoke(app, ["check", str(config)])
    message = one_line(result.output)
    assert result.exit_code == 2, message
    assert "augmentation.token_mask=0.2 does not apply to signal data" in message
    assert "augmentation.time_mask" in message  # what fits signals


def test_a_py_source_is_loaded_to_learn_its_modality(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "tl_applies_source.py").write_text(
        "import numpy as np\n\n"
        "def waves():\n"
        "    return np.zeros((30, 1, 16), np.float32), np.arange(30) % 2\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "tl_applies_source", raising=False)
    config = write_config(tmp_path, "py:tl_applies_source:waves", augmentation={"hflip": True})
    result = runner.invoke(app, ["check", str(config)])
    assert result.exit_code == 2, result.output
    assert "does not apply to signal data" in one_line(result.output)


def test_augmentations_that_fit_pass_and_enabled_false_switches_them_off(tmp_path: Path) -> None:
    fits = write_config(tmp_path, "sklearn:digits", augmentation={"rotation": 10, "hflip": True})
    assert runner.invoke(app, ["check", str(fits)]).exit_code == 0
    off = write_config(tmp_path, "sklearn:iris", augmentation={"enabled": False, "hflip": True})
    assert runner.invoke(app, ["check", str(off)]).exit_code == 0
    searched_off = {"space": {"augmentation.hflip": {"type": "categorical", "choices": [False]}}}
    off = write_config(tmp_path, "sklearn:iris", search=searched_off)
    assert runner.invoke(app, ["check", str(off)]).exit_code == 0


def test_far_out_magnitudes_are_warned_about_with_the_field(tmp_path: Path) -> None:
    noise = {"space": {"augmentation.noise": {"type": "float", "low": 0.0, "high": 50.0}}}
    config = write_config(tmp_path, "sklearn:iris", augmentation={"mixup": 1e9}, search=noise)
    result = runner.invoke(app, ["check", str(config)])
    message = one_line(result.output)
    assert result.exit_code == 0, message
    assert "warning: augmentation.mixup is 1e+09: far outside any sensible range" in message
    assert "warning: augmentation.noise searched up to 50" in message
    assert yaml.safe_load(result.stdout)["augmentation"]["mixup"] == 1e9  # still printed


def test_a_sensible_config_gets_no_warning(tmp_path: Path) -> None:
    config = write_config(tmp_path, "sklearn:iris", augmentation={"noise": 0.1, "mixup": 0.2})
    result = runner.invoke(app, ["check", str(config)])
    assert result.exit_code == 0 and "warning" not in result.output


def test_the_bundled_sets_modality_table_lists_every_bundled_set() -> None:
    from tunelab.data.sklearn_source import _LOADERS, BUNDLED

    assert set(BUNDLED) == set(_LOADERS)


def test_an_unknown_bundled_set_is_named_as_such_not_as_a_modality(tmp_path: Path) -> None:
    config = write_config(tmp_path, "sklearn:digitz", augmentation={"rotation": 10})
    result = runner.invoke(app, ["check", str(config)])
    message = one_line(result.output)
    assert result.exit_code == 2 and "unknown scikit-learn dataset 'digitz'" in message
