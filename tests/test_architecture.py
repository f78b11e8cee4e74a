"""The stages' boundaries, checked on the source: every import runs down the layers (imports
inside functions too), no files import each other in a circle, ``search/`` is only the
Optuna engine, the loop knows techniques only through the hook protocol, and techniques know
nothing of the loop. The layers are ``docs/architecture.md``'s "Layout"."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "tunelab"

# Bottom first. A module or subpackage of tunelab ("unit") imports only units of lower
# layers; tunelab/__init__.py is the package's face (it hands on load_predictor) and stands
# outside the layers.
LAYERS: list[set[str]] = [
    {"errors", "observer"},
    {"optional", "uris", "registry", "reach"},
    {"config"},
    {"training"},
    {"models"},
    {"data"},
    {"applies", "resolved"},
    {"techniques", "results"},
    {"evaluation", "tracking", "export"},
    {"search", "ensembles", "report"},
    {"ladder"},
    {"preflight"},
    {"flows"},
    {"progress", "sklearn"},
    {"cli"},
]
# Imports that run up a layer, each with the reason it is allowed; the test fails once one
# is gone so that its line goes too. None today.
KNOWN_UPWARD: set[tuple[str, str]] = set()
# Files that import each other (none today; a TYPE_CHECKING import counts).
KNOWN_CIRCLES: set[frozenset[str]] = set()


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


def unit_of(path: Path) -> str:
    """``search`` for ``search/study.py``, ``config`` for ``config.py``."""
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def module_of(path: Path) -> str:
    """``search.study`` for ``search/study.py``, ``ladder`` for ``ladder/__init__.py``."""
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def tunelab_files() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if p != PACKAGE / "__init__.py")


def layer(unit: str) -> int:
    return next(i for i, units in enumerate(LAYERS) if unit in units)


def upward_imports() -> set[tuple[str, str]]:
    """(the importing unit, the module) for each import of a unit on the same or a higher
    layer (within one unit, imports are free)."""
    found = set()
    units = {unit_of(path) for path in tunelab_files()}
    for path in tunelab_files():
        unit = unit_of(path)
        for name in imports_of(path):
            parts = name.split(".")
            # tunelab.__version__ is the face's; a unit's own imports are free
            if parts[0] != "tunelab" or len(parts) < 2 or parts[1] in (unit, "__version__"):
                continue
            assert parts[1] in units, f"{path} imports {name}, which is no module of tunelab"
            if layer(parts[1]) >= layer(unit):
                found.add((unit, ".".join(parts[:3])))
    return found


def test_every_unit_has_a_layer() -> None:
    units = {unit_of(path) for path in tunelab_files()}
    listed = set().union(*LAYERS)
    assert units == listed, f"not in LAYERS: {units - listed}; gone: {listed - units}"


def test_every_import_runs_down_the_layers() -> None:
    upward = upward_imports()
    assert upward <= KNOWN_UPWARD, f"imports that run up a layer: {sorted(upward - KNOWN_UPWARD)}"
    assert upward >= KNOWN_UPWARD, f"gone, delete from KNOWN_UPWARD: {KNOWN_UPWARD - upward}"


@pytest.mark.parametrize("engine", ["search"])
def test_the_search_engine_imports_no_flow_and_no_later_stage(engine: str) -> None:
    """``search/`` is Optuna behind a thin layer: what drives it (a flow, the ladder, the
    ensembles, the report, the live views) is above it."""
    above = ("flows", "ladder", "ensembles", "report", "progress", "preflight", "cli")
    for path in sorted((PACKAGE / engine).glob("*.py")):
        bad = {n for n in imports_of(path) if n.startswith(tuple(f"tunelab.{a}" for a in above))}
        assert not bad, f"{engine}/{path.name} imports {sorted(bad)}"


def import_graph() -> dict[str, set[str]]:
    """Module -> the tunelab modules it imports, at any depth of the file (``from
    tunelab.ladder import stats`` is the module ``ladder.stats``; a package's name stands
    for its ``__init__.py``)."""
    modules = {module_of(path): path for path in tunelab_files()}

    def resolved(dotted: str) -> str:
        while dotted and dotted not in modules:  # a name inside a module
            dotted = dotted.rpartition(".")[0]
        return dotted

    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                targets = [f"{node.module}.{alias.name}" for alias in node.names]
            else:
                continue
            for target in targets:
                if target.startswith("tunelab."):
                    graph[name].add(resolved(target.removeprefix("tunelab.")))
        graph[name] -= {name, ""}
    return graph


def circles(graph: dict[str, set[str]]) -> set[frozenset[str]]:
    """The strongly connected groups of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: set[frozenset[str]] = set()

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                found.add(frozenset(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_files_import_each_other_in_a_circle() -> None:
    found = circles(import_graph())
    assert found <= KNOWN_CIRCLES, f"circles: {[sorted(c) for c in found - KNOWN_CIRCLES]}"
    assert found >= KNOWN_CIRCLES, f"gone, delete from KNOWN_CIRCLES: {KNOWN_CIRCLES - found}"


def test_the_circle_check_sees_a_circle() -> None:
    """The check above would pass vacuously if it found none."""
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == {frozenset("abc")}


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
    assert "tunelab.flows.study" in found and "tunelab.config.load_config" in found


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
