"""The generated reference pages: every config field documented, every command listed, and
the pages in docs/reference/ exactly what ``python -m tunelab.docs_reference`` writes."""

from __future__ import annotations

from pathlib import Path

from tunelab import docs_reference
from tunelab.config import ParamSpec, RunConfig

REFERENCE = Path(__file__).resolve().parents[1] / "docs" / "reference"


def test_every_config_field_has_a_description() -> None:
    missing = docs_reference.undocumented()
    assert not missing, f"add Field(description=...) in config.py for: {missing}"


def test_every_config_field_has_a_row_with_its_default() -> None:
    page = docs_reference.config_page()
    every = [*docs_reference.fields(RunConfig), *docs_reference.fields(ParamSpec, "")]
    assert len(every) > 100
    for name, _ in docs_reference.fields(RunConfig):
        assert f"| `{name}` |" in page, name
    assert "| `ladder.rope` | number or null | `null` | >= 0 |" in page
    assert "| `train.optimizer` | choice | `adamw` | `sgd`, `adam`, `adamw`, `rmsprop` |" in page


def test_every_command_and_option_is_in_the_cli_reference() -> None:
    page = docs_reference.cli_page()
    for command in ("check", "train", "run", "report", "ladder", "lr-find", "worker", "predict"):
        assert f"## `tunelab {command}`" in page
    assert "`tunelab predict [OPTIONS] RUN`" in page
    assert "| `--jobs` / `-j` | `auto` |" in page


def test_the_pages_on_disk_are_what_the_code_generates() -> None:
    assert docs_reference.main(["--check", str(REFERENCE)]) == 0, (
        "docs/reference is stale: run python -m tunelab.docs_reference"
    )


def test_a_stale_page_is_found(tmp_path: Path) -> None:
    assert docs_reference.main([str(tmp_path)]) == 0
    assert docs_reference.main(["--check", str(tmp_path)]) == 0
    page = tmp_path / "config.md"
    page.write_text(page.read_text().replace("ladder.rope", "ladder.rop"))
    assert docs_reference.main(["--check", str(tmp_path)]) == 1
