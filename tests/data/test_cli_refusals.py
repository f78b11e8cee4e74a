"""What a user sees from ``tunelab`` when the data or the config is wrong: exit code 2 and
one clear message, never a traceback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from typer.testing import CliRunner

from tunelab.cli import app

runner = CliRunner()
QUICK = ["--set", "train.epochs=2", "--set", "train.threads=1", "--quiet"]


def write_config(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(
        yaml.safe_dump(
            {"name": "refusals", "data": data, "model": {"source": "builtin:mlp", "width": 8}}
        ),
        encoding="utf-8",
    )
    return path


def refused(args: list[str], *expected: str) -> str:
    """Run the CLI; check exit code 2, a one-message error holding ``expected``, no traceback."""
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    message = result.output.strip()
    assert message.startswith(("data error:", "config error:")), message
    for text in expected:
        assert text in message, message
    return message


def signals(rows: int = 40) -> tuple[np.ndarray, np.ndarray]:
    inputs = np.random.default_rng(0).normal(size=(rows, 1, 8))
    return inputs, (inputs[:, 0, 0] > 0).astype(int)


def test_train_on_npz_with_nan_exits_2_naming_the_row(tmp_path: Path) -> None:
    inputs, target = signals()
    inputs[17, 0, 5] = np.nan
    np.savez(tmp_path / "s.npz", X=inputs, y=target)
    config = write_config(tmp_path, {"source": f"npz:{tmp_path / 's.npz'}"})
    message = refused(
        ["train", str(config), "--out", str(tmp_path / "run"), *QUICK],
        "s.npz: the inputs hold 1 NaN or infinite value(s)",
        "at row 17, channel 0, position 5",
    )
    assert len(message.splitlines()) == 1
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_predict_with_an_infinite_value_exits_2_naming_row_and_column(tmp_path: Path) -> None:
    inputs, target = signals()
    np.savez(tmp_path / "s.npz", X=inputs, y=target)
    config = write_config(tmp_path, {"source": f"npz:{tmp_path / 's.npz'}"})
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", str(config), "--out", str(out), *QUICK])
    assert result.exit_code == 0, result.output
    new = pd.read_csv(out / "test_inputs.csv")
    new.loc[1, "x6"] = np.inf
    new.to_csv(tmp_path / "new.csv", index=False)
    refused(
        [
            "predict",
            str(out),
            "--input",
            str(tmp_path / "new.csv"),
            "--output",
            str(tmp_path / "p.csv"),
        ],
        "at row 1, channel 0, position 6 (value column x6)",
    )


def test_train_on_a_numeric_column_with_a_typo_exits_2_naming_the_row(tmp_path: Path) -> None:
    lines = [f"{20 + i},{i % 2}" for i in range(40)]
    lines[21] = "oops,1"
    (tmp_path / "t.csv").write_text("age,y\n" + "\n".join(lines) + "\n", encoding="utf-8")
    config = write_config(tmp_path, {"source": f"csv:{tmp_path / 't.csv'}", "target": "y"})
    refused(
        ["train", str(config), "--out", str(tmp_path / "run"), *QUICK],
        "column 'age' holds numbers in 39 of its 40 filled rows but text in 1: row 21 holds 'oops'",
    )


def test_a_single_group_exits_2_instead_of_a_scikit_learn_traceback(tmp_path: Path) -> None:
    inputs, target = signals()
    frame = pd.DataFrame({"x": inputs[:, 0, 0], "site": "paris", "y": target})
    frame.to_csv(tmp_path / "t.csv", index=False)
    config = write_config(
        tmp_path, {"source": f"csv:{tmp_path / 't.csv'}", "target": "y", "group_column": "site"}
    )
    refused(
        ["train", str(config), "--out", str(tmp_path / "run"), *QUICK],
        "data.group_column gives 1 group(s) ('paris')",
        "need at least 3 groups",
    )


def test_a_duplicate_key_in_the_config_exits_2_naming_key_and_lines(tmp_path: Path) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text(
        "data:\n  source: sklearn:iris\n  test_size: 0.3\n  test_size: 0.1\n"
        "model: {source: builtin:mlp}\n",
        encoding="utf-8",
    )
    refused(["train", str(path)], "the key 'test_size' appears twice", "(lines 3 and 4)")
    refused(["check", str(tmp_path)], "is a directory, not a file; it holds dup.yaml")


def test_a_test_file_with_other_columns_exits_2_naming_them(tmp_path: Path) -> None:
    frame = pd.DataFrame({"a": range(20), "b": range(20), "y": [0, 1] * 10})
    frame.to_csv(tmp_path / "train.csv", index=False)
    frame.rename(columns={"b": "B"}).to_csv(tmp_path / "test.csv", index=False)
    config = write_config(
        tmp_path,
        {
            "source": f"csv:{tmp_path / 'train.csv'}",
            "test_source": f"csv:{tmp_path / 'test.csv'}",
            "target": "y",
        },
    )
    refused(
        ["train", str(config), "--out", str(tmp_path / "run"), *QUICK],
        "the test file lacks the input column(s) 'b' and has the column(s) 'B'",
    )
