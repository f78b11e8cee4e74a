"""evaluation/'s shape, checked on the source: no import circle among its modules (imports
inside functions count), and no function past 60 lines or 6 parameters (constructors
aside)."""

from __future__ import annotations

import ast

from tests.test_architecture import PACKAGE, imports_of

EVALUATION = PACKAGE / "evaluation"


def _graph() -> dict[str, set[str]]:
    modules = {path.stem for path in EVALUATION.glob("*.py") if path.stem != "__init__"}
    prefix = "tunelab.evaluation."
    graph: dict[str, set[str]] = {}
    for name in modules:
        found = imports_of(EVALUATION / f"{name}.py")
        graph[name] = {m[len(prefix) :].split(".")[0] for m in found if m.startswith(prefix)}
        graph[name] &= modules - {name}
    return graph


def _circle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle, as the modules on it, or None."""
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> list[str] | None:
        if name in path:
            return [*path[path.index(name) :], name]
        if name in done:
            return None
        for other in sorted(graph[name]):
            found = visit(other, [*path, name])
            if found:
                return found
        done.add(name)
        return None

    for name in sorted(graph):
        found = visit(name, [])
        if found:
            return found
    return None


def test_the_circle_check_finds_a_circle() -> None:
    assert _circle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _circle({"a": {"b"}, "b": set()}) is None


def test_no_evaluation_module_imports_one_that_imports_it_back() -> None:
    assert _circle(_graph()) is None


def test_no_function_past_60_lines_or_6_parameters() -> None:
    too_big = []
    for path in sorted(EVALUATION.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.FunctionDef) or node.name == "__init__":
                continue
            args = node.args
            named = [*args.posonlyargs, *args.args, *args.kwonlyargs]
            count = len([a for a in named if a.arg not in ("self", "cls")])
            lines = (node.end_lineno or node.lineno) - node.lineno + 1
            if lines > 60 or count > 6:
                too_big.append(f"{path.name}:{node.lineno} {node.name} ({lines} lines, {count})")
    assert not too_big
