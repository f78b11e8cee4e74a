"""The stages' boundaries, checked on the source: the loop knows techniques only through
the hook protocol, and techniques know nothing of the loop."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "tunelab"


def imports_of(path: Path) -> set[str]:
    """Every module a file imports (absolute names), at any depth of the file."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_no_training_module_imports_a_technique() -> None:
    for path in sorted((PACKAGE / "training").glob("*.py")):
        bad = {name for name in imports_of(path) if name.startswith("tunelab.techniques")}
        assert not bad, f"training/{path.name} imports {sorted(bad)}"


def test_no_technique_imports_the_loop() -> None:
    for path in sorted((PACKAGE / "techniques").glob("*.py")):
        bad = {name for name in imports_of(path) if name.startswith("tunelab.training.loop")}
        assert not bad, f"techniques/{path.name} imports {sorted(bad)}"


def test_the_import_walk_sees_imports_inside_functions() -> None:
    """The check above would pass vacuously if it missed nested imports."""
    found = imports_of(PACKAGE / "cli.py")
    assert "tunelab.search.run" in found and "tunelab.config.load_config" in found


def test_every_technique_is_a_registered_plug_in_with_an_off_state() -> None:
    from tunelab.config import RunConfig
    from tunelab.techniques import specs

    names = [spec.name for spec in specs()]
    assert sorted(names) == sorted(
        [
            "augmentation",
            "batch_norm",
            "early_stopping",
            "finetuning",
            "regularization",
            "weight_averaging",
        ]
    )
    for spec in specs():
        assert spec.name in RunConfig.model_fields, f"{spec.name} has no config section"
        assert spec.off, f"{spec.name} has no off state"
        for dotted in spec.off:
            section, field = dotted.split(".")
            assert (
                section == spec.name
                and field in RunConfig.model_fields[section].annotation.model_fields
            )  # type: ignore[union-attr]
