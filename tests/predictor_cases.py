"""The damages tests/test_fuzz_predictors.py applies (see tests/predictor_damage.py): every
file of every predictor broken as a copy or a download breaks it, then each array, tensor and
entry altered as a hostile user would."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tests.predictor_damage import (
    FILES,
    Change,
    Damage,
    any_tensor,
    cut,
    edit_forest,
    edit_json,
    edit_tensors,
    fifo,
    flip,
    float_tensor,
    huge,
    inside_header,
    internal_node,
    leaf_node,
    link_out,
    link_to,
    remove,
    set_entry,
    steps,
    write,
)

NAN, INF = float("nan"), float("inf")


def all_cases(*, text: bool) -> list[Damage]:
    cases = [
        *file_cases(),
        *tensor_cases(),
        *forest_cases(),
        *tree_head_cases(),
        *ensemble_cases(),
        *manifest_cases(),
        *odd_file_cases(),
        *text_cases(),
    ]
    return [case for case in cases if text or case.predictor != "text"]


def file_cases() -> list[Damage]:
    """Every file of every predictor: missing, emptied, cut in half, a byte flipped at its
    start and inside (a safetensors file's header), or moved out and linked to."""
    ways: dict[str, Callable[[str], Change]] = {
        "missing": remove,
        "empty": lambda f: cut(f, lambda size: 0),
        "half": lambda f: cut(f, lambda size: size // 2),
        "flip-first-byte": lambda f: flip(f, lambda data: 0),
        "flip-inside": lambda f: flip(f, inside_header),
        "link-out": link_out,
    }
    return [
        Damage(f"{kind}-{relative}-{way}", kind, make(relative), relative)
        for kind, files in FILES.items()
        for relative in files
        for way, make in ways.items()
    ]


def _tensor(
    relative: str,
    index: int,
    replace: Callable[[torch.Tensor], torch.Tensor | None],
    *,
    floats: bool = False,
) -> Change:
    """Replace the ``index``-th tensor (of the floating-point ones) by ``replace(tensor)``,
    or drop it where that is None."""

    def change(state: dict[str, torch.Tensor]) -> str:
        name = (float_tensor if floats else any_tensor)(state, index)
        new = replace(state.pop(name))
        if new is not None:
            state[name] = new
        return name

    return edit_tensors(relative, change)


def _first_value(value: float) -> Callable[[torch.Tensor], torch.Tensor]:
    def replace(tensor: torch.Tensor) -> torch.Tensor:
        changed = tensor.clone()
        changed.view(-1)[0] = value
        return changed

    return replace


def _one_more_row(tensor: torch.Tensor) -> torch.Tensor:
    shape = (1,) if tensor.dim() == 0 else (tensor.shape[0] + 1, *tensor.shape[1:])
    return torch.zeros(shape, dtype=tensor.dtype)


def _other_dtype(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.to(torch.float32 if tensor.dtype != torch.float32 else torch.float64)


def _add(relative: str) -> Change:
    def change(state: dict[str, torch.Tensor]) -> str:
        state["extra.weight"] = torch.zeros(2)
        return "extra.weight"

    return edit_tensors(relative, change)


def tensor_cases() -> list[Damage]:
    """NaN and infinity in each tensor, wrong shapes and dtypes, tensors missing and extra."""
    plan = {  # predictor: (float tensors, tensors, the ones to damage)
        "net": (range(8), range(9)),
        "text": (range(0, 25, 4), (0, 7, 13)),
        "treehead": ((), range(0, 12, 3)),
        "ensemble": ((0, 5), (2,)),
    }
    changes: dict[str, Callable[[torch.Tensor], torch.Tensor | None]] = {
        "shape": _one_more_row,
        "dtype": _other_dtype,
        "missing": lambda tensor: None,
    }
    cases = []
    for kind, (floats, tensors) in plan.items():
        relative = "member_0/model.safetensors" if kind == "ensemble" else "model.safetensors"
        values = {"nan": NAN} if kind == "text" else {"nan": NAN, "inf": -INF}
        for i in floats:
            for name, value in values.items():
                change = _tensor(relative, i, _first_value(value), floats=True)
                cases.append(Damage(f"{kind}-tensor{i}-{name}", kind, change, relative))
        for i in tensors:
            for name, replace in changes.items():
                change = _tensor(relative, i, replace)
                cases.append(Damage(f"{kind}-tensor{i}-{name}", kind, change, relative))
        cases.append(Damage(f"{kind}-tensor-extra", kind, _add(relative), relative))
    return cases


def _forest(change: Callable[[dict[str, np.ndarray]], None], field: str) -> Change:
    forest = edit_forest("forest.npz", change)
    return steps(forest, lambda folder, outside: field)


def _node_set(
    array: str, value: Any, *, leaf: bool = False, which: int = 0
) -> Callable[[dict[str, np.ndarray]], None]:
    def change(arrays: dict[str, np.ndarray]) -> None:
        node = leaf_node(arrays) if leaf else internal_node(arrays, which)
        arrays[array][node] = value(arrays, node) if callable(value) else value

    return change


def _chain(arrays: dict[str, np.ndarray]) -> None:
    """Replace the forest by three trees, the first a chain 5000 splits deep."""
    splits = 5000
    count = 2 * splits + 3  # splits, a leaf beside each and one at the end, two more trees
    arrays["feature"] = np.zeros(count, np.int64)
    arrays["threshold"] = np.zeros(count)
    arrays["missing_left"] = np.zeros(count, bool)
    arrays["value"] = np.zeros(count)
    arrays["is_leaf"] = np.arange(count) >= splits
    arrays["left"] = np.minimum(np.arange(count) + 1, 2 * splits)
    arrays["right"] = np.arange(count) + splits
    arrays["left"][splits - 1] = 2 * splits  # the last split ends in the last leaf
    arrays["roots"] = np.array([[0, count - 2, count - 1]])


def forest_cases() -> list[Damage]:
    """The trees of ``forest.npz``: NaN and infinity, cycles, indices out of range, arrays of
    the wrong shape or kind, missing and extra arrays, a tree too deep to walk."""
    changes: dict[str, tuple[Callable[[dict[str, np.ndarray]], None], str]] = {
        "threshold-nan": (_node_set("threshold", NAN), "threshold"),
        "leaf-nan": (_node_set("value", NAN, leaf=True), "value"),
        "leaf-inf": (_node_set("value", INF, leaf=True), "value"),
        "baseline-nan": (lambda a: a["baseline"].__setitem__(0, NAN), "baseline"),
        "child-is-itself": (_node_set("left", lambda a, node: node), "cycle"),
        "child-is-its-root": (
            _node_set("right", lambda a, node: a["roots"][0, 0], which=1),
            "cycle",
        ),
        "child-beyond": (_node_set("left", lambda a, node: len(a["left"])), "left"),
        "child-negative": (_node_set("right", -1), "right"),
        "feature-beyond": (_node_set("feature", 4), "feature"),
        "feature-negative": (_node_set("feature", -3), "feature"),
        "root-beyond": (lambda a: a["roots"].__setitem__((0, 0), 10**9), "root"),
        "roots-shared": (lambda a: a["roots"].__setitem__((1, 0), a["roots"][0, 0]), "share"),
        "node-array-short": (lambda a: a.__setitem__("value", a["value"][:-1]), "value"),
        "roots-shape": (lambda a: a.__setitem__("roots", a["roots"][:, :2]), "roots"),
        "baseline-shape": (lambda a: a.__setitem__("baseline", a["baseline"][:2]), "baseline"),
        "feature-floats": (lambda a: a.__setitem__("feature", a["feature"] * 1.0), "feature"),
        "leaf-flags-ints": (lambda a: a.__setitem__("is_leaf", a["is_leaf"] * 1), "is_leaf"),
        "array-missing": (lambda a: a.pop("missing_left"), "missing_left"),
        "array-extra": (lambda a: a.__setitem__("extra", np.zeros(3)), "extra"),
        "objects": (
            lambda a: a.__setitem__("value", np.array(list(a["value"]), dtype=object)),
            "value",
        ),
        "chain-too-deep": (_chain, "deeper"),
    }
    cases = [
        Damage(f"trees-{name}", "trees", _forest(change, field), "forest.npz")
        for name, (change, field) in changes.items()
    ]
    for name in ("threshold-nan", "child-is-itself"):  # a member's forest names its folder
        change, field = changes[name]
        member = steps(edit_forest("member_1/forest.npz", change), lambda f, o, x=field: x)
        cases.append(Damage(f"ensemble-member-{name}", "ensemble", member, "member_1/forest.npz"))
    return cases


def _buffer(name: str, change: Callable[[torch.Tensor], None], field: str) -> Change:
    def apply(state: dict[str, torch.Tensor]) -> str:
        tensor = state[f"head.{name}"].clone()
        change(tensor)
        state[f"head.{name}"] = tensor
        return field

    return edit_tensors("model.safetensors", apply)


def tree_head_cases() -> list[Damage]:
    """A network's tree head (``model.head: hgb``), stored as tensors."""
    changes = {
        "feature-beyond": _buffer("feature", lambda t: t.view(-1).__setitem__(0, 100), "feature"),
        "child-is-itself": _buffer("left", lambda t: t.__setitem__((0, 0), 0), "cycle"),
        "child-beyond": _buffer("right", lambda t: t.__setitem__((0, 0), 10**6), "child"),
        "walks-too-far": _buffer("depth", lambda t: t.fill_(10**9), "walks"),
        "walks-too-short": _buffer("depth", lambda t: t.fill_(0), "deeper"),
        "column-beyond": _buffer("column", lambda t: t.__setitem__(0, 7), "output"),
        "threshold-nan": _buffer("threshold", lambda t: t.__setitem__((0, 0), NAN), "threshold"),
        "value-inf": _buffer("value", lambda t: t.__setitem__((0, 1), INF), "value"),
        "no-leaves": _buffer("leaf", lambda t: t.fill_(False), "cycle"),
    }
    return [
        Damage(f"treehead-{name}", "treehead", change, "model.safetensors")
        for name, change in changes.items()
    ]


def _field(change: Change, field: str) -> Change:
    return steps(change, lambda folder, outside: field)


def _nested(levels: int) -> Change:
    """Wrap member_1 in ``levels`` ensembles of one member each."""

    def apply(folder: Path, outside: Path) -> str:
        top = json.loads((folder / "predictor.json").read_text())
        inner = folder / "member_1"
        inner.rename(folder / "tree")
        current = inner
        for _ in range(levels):
            current.mkdir()
            manifest = {**top, "members": ["m"], "weights": [1.0], "stacker": None}
            (current / "predictor.json").write_text(json.dumps(manifest))
            current = current / "m"
        (folder / "tree").rename(current)
        return "nested"

    return apply


def _member_loop(folder: Path, outside: Path) -> str:
    """member_0 becomes an ensemble whose member leads back to the top."""
    top = json.loads((folder / "predictor.json").read_text())
    member = folder / "member_0"
    (member / "model.safetensors").unlink()
    (member / "up").symlink_to("..")
    manifest = {**top, "members": ["up"], "weights": [1.0], "stacker": None}
    (member / "predictor.json").write_text(json.dumps(manifest))
    return "'up'"


def ensemble_cases() -> list[Damage]:
    """Weights, members and the stacker in an ensemble's ``predictor.json``."""
    top = "predictor.json"
    many = [f"member_{i}" for i in range(1001)]
    changes: dict[str, tuple[str, Change]] = {
        "weights-nan": ("ensemble", _field(set_entry(top, "weights", [NAN, NAN]), "weights")),
        "weights-negative": ("ensemble", _field(set_entry(top, "weights", [-1, 2]), "weights")),
        "weights-inf": ("ensemble", _field(set_entry(top, "weights", [INF, 0]), "weights")),
        "weights-sum": ("ensemble", _field(set_entry(top, "weights", [0.2, 0.2]), "sum")),
        "weights-text": ("ensemble", _field(set_entry(top, "weights", ["a", "b"]), "weights")),
        "weights-one": ("ensemble", _field(set_entry(top, "weights", [1.0]), "weights")),
        "weights-gone": ("ensemble", _field(edit_json(top, lambda d: d.pop("weights")), "weights")),
        "members-1001": (
            "ensemble",
            _field(
                edit_json(top, lambda d: d.update(members=many, weights=[1 / 1001] * 1001)),
                "at most 1000",
            ),
        ),
        "member-twice": ("ensemble", _field(set_entry(top, "members", ["member_0"] * 2), "twice")),
        "member-dot": ("ensemble", _field(set_entry(top, "members.0", "."), "member")),
        "member-up": ("ensemble", _field(set_entry(top, "members.0", ".."), "member")),
        "member-absolute": (
            "ensemble",
            _field(set_entry(top, "members.0", "/absolute/member"), "member"),
        ),
        "member-path": ("ensemble", _field(set_entry(top, "members.0", "a/../member_1"), "member")),
        "member-is-the-ensemble": ("ensemble", _field(link_to("member_0", "."), "member_0")),
        "member-is-another": ("ensemble", _field(link_to("member_1", "member_0"), "member_1")),
        "member-leads-back": ("ensemble", _member_loop),
        "nested-too-deep": ("ensemble", _nested(4)),
        "member-other-classes": (
            "ensemble",
            _field(set_entry("member_1/predictor.json", "classes", ["a", "b", "c"]), "classes"),
        ),
        "stacker-nan": ("stacking", _field(set_entry(top, "stacker.coef.0.0", NAN), "coef")),
        "stacker-inf": (
            "stacking",
            _field(set_entry(top, "stacker.intercept.1", INF), "intercept"),
        ),
        "stacker-rows": (
            "stacking",
            _field(edit_json(top, lambda d: d["stacker"]["coef"].pop()), "coef"),
        ),
        "stacker-columns": (
            "stacking",
            _field(edit_json(top, lambda d: d["stacker"]["coef"][0].pop()), "coef"),
        ),
        "stacker-intercept": (
            "stacking",
            _field(set_entry(top, "stacker.intercept", [0.0]), "intercept"),
        ),
        "stacker-kind": ("stacking", _field(set_entry(top, "stacker.kind", "ridge"), "kind")),
        "stacker-text": ("stacking", _field(set_entry(top, "stacker.coef", [["x"]]), "stacker")),
        "stacker-list": ("stacking", _field(set_entry(top, "stacker", [1, 2]), "stacker")),
        "stacker-3d": ("stacking", _field(set_entry(top, "stacker.coef", [[[1.0]]]), "coef")),
    }
    return [
        Damage(f"{kind}-{name}", kind, change, "predictor.json")
        for name, (kind, change) in changes.items()
    ]


def manifest_cases() -> list[Damage]:
    """Entries of a single model's or a forest's ``predictor.json``."""
    top = "predictor.json"
    entries: dict[str, tuple[str, str, Any, str]] = {
        "format": ("net", "format", 2, "format"),
        "kind": ("net", "kind", "modell", "kind"),
        "task": ("net", "task", "clustering", "task"),
        "classes-null": ("net", "classes", None, "classes"),
        "classes-four": ("net", "classes", ["a", "b", "c", "d"], "num_outputs"),
        "info-list": ("net", "info", [], "info"),
        "scale-zero": ("net", "encoder.numeric.0.scale", 0.0, "scale"),
        "scale-nan": ("net", "encoder.numeric.1.scale", NAN, "scale"),
        "median-inf": ("trees", "encoder.numeric.0.median", INF, "median"),
        "mean-text": ("trees", "encoder.numeric.0.mean", "x", "encoder"),
        "target-scale-nan": ("net", "target_scale", [0.0, NAN], "target_scale"),
        "weights-elsewhere": ("net", "weights", "../elsewhere.safetensors", "weights"),
        "forest-elsewhere": ("trees", "forest", "/etc/hostname", "forest"),
        "width-huge": ("net", "model.options.width", 10**9, "model.safetensors"),
        "width-negative": ("net", "model.options.width", -4, "model"),
        "depth-huge": ("net", "model.options.depth", 10**8, "model.safetensors"),
        "input-shape": ("net", "model.input_shape", [5], "input_shape"),
        "model-kind": ("net", "model.kind", "onnx", "model.kind"),
        "files-outside": ("net", "files", ["../x"], "files"),
        "tree-head-trees-huge": ("treehead", "model.classical_head.trees", 10**12, "safetensors"),
        "tree-head-outputs": ("treehead", "model.classical_head.outputs", 5, "outputs"),
        "temperature-zero": ("net", "temperature", 0.0, "temperature"),
        "temperature-negative": ("trees", "temperature", -1.5, "temperature"),
        "temperature-nan": ("net", "temperature", NAN, "temperature"),
        "temperature-text": ("trees", "temperature", "2", "temperature"),
        "temperature-huge": ("net", "temperature", 1e300, "temperature"),
    }
    return [
        Damage(f"{kind}-manifest-{name}", kind, _field(set_entry(top, dotted, value), field), top)
        for name, (kind, dotted, value, field) in entries.items()
    ]


def _deep_json(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def _duplicate(relative: str, key: str) -> Change:
    def apply(folder: Path, outside: Path) -> str:
        path = folder / relative
        text = path.read_text().rstrip()
        value = json.dumps(json.loads(text)[key])
        path.write_text(text[:-1] + f', "{key}": {value}}}')
        return key

    return apply


def odd_file_cases() -> list[Damage]:
    """Files no writer makes: FIFOs, sparse giants, deep nesting, a key given twice, links
    that lead out, loop or dangle."""
    big = 65 << 20
    cases = [
        Damage("net-fifo-manifest", "net", fifo("predictor.json"), "predictor.json"),
        Damage("net-fifo-weights", "net", fifo("model.safetensors"), "model.safetensors"),
        Damage("trees-fifo-forest", "trees", fifo("forest.npz"), "forest.npz"),
        Damage("ensemble-fifo-member", "ensemble", fifo("member_1/forest.npz"), "forest.npz"),
        Damage("net-huge-manifest", "net", huge("predictor.json", big), "predictor.json"),
        Damage(
            "ensemble-huge-member",
            "ensemble",
            huge("member_0/predictor.json", big),
            "member_0/predictor.json",
        ),
        Damage("trees-huge-forest", "trees", huge("forest.npz", 3 << 30), "forest.npz"),
        Damage(
            "net-deep-json", "net", write("predictor.json", _deep_json(100_000)), "predictor.json"
        ),
        Damage(
            "net-duplicate-weights",
            "net",
            _duplicate("predictor.json", "weights"),
            "predictor.json",
        ),
        Damage(
            "ensemble-duplicate-weights",
            "ensemble",
            _duplicate("predictor.json", "weights"),
            "predictor.json",
        ),
        Damage(
            "trees-duplicate-forest",
            "trees",
            _duplicate("predictor.json", "forest"),
            "predictor.json",
        ),
        Damage("net-latin1-manifest", "net", _latin1("predictor.json"), "predictor.json"),
        Damage(
            "net-link-weights-device",
            "net",
            link_to("model.safetensors", "/dev/zero"),
            "model.safetensors",
        ),
        Damage(
            "net-link-loop",
            "net",
            steps(
                link_to("model.safetensors", "b"),
                lambda f, o: (f / "b").symlink_to("model.safetensors"),
            ),
            "in a loop",
        ),
        Damage("ensemble-link-member-out", "ensemble", link_out("member_0"), "member_0"),
        Damage(
            "ensemble-link-dangling", "ensemble", link_to("member_1", "/nonexistent/m"), "member_1"
        ),
        Damage("trees-link-extra", "trees", _extra_link, "notes"),
    ]
    return cases


def _extra_link(folder: Path, outside: Path) -> None:
    """A file tunelab never reads, linked out: refused all the same."""
    (outside / "notes.txt").write_text("elsewhere")
    (folder / "notes").symlink_to(outside / "notes.txt")


def _latin1(relative: str) -> Change:
    def apply(folder: Path, outside: Path) -> None:
        path = folder / relative
        path.write_bytes(path.read_bytes().replace(b'"', '"\xe9'.encode("latin-1"), 1))

    return apply


def _tokenizer_config(key: str, value: Any) -> Change:
    return set_entry("tokenizer/tokenizer_config.json", key, value)


def text_cases() -> list[Damage]:
    """The text model's tokenizer and backbone folders."""
    tokenizer, config = "tokenizer/tokenizer.json", "backbone/config.json"
    changes = {
        "tokenizer-latin1": (_latin1(tokenizer), tokenizer),
        "tokenizer-config-latin1": (
            _latin1("tokenizer/tokenizer_config.json"),
            "tokenizer_config.json",
        ),
        "config-latin1": (_latin1(config), config),
        "tokenizer-huge": (huge(tokenizer, 65 << 20), tokenizer),
        "config-huge": (huge(config, 65 << 20), config),
        "tokenizer-deep": (write(tokenizer, _deep_json(100_000)), tokenizer),
        "tokenizer-duplicate": (_duplicate(tokenizer, "model"), tokenizer),
        "tokenizer-not-a-tokenizer": (write(tokenizer, b'{"model": 3}'), "tokenizer"),
        "tokenizer-file-elsewhere": (
            _tokenizer_config("tokenizer_file", "/etc/hostname"),
            "tokenizer_file",
        ),
        "vocabulary-altered": (set_entry("predictor.json", "encoder.vocabulary", 100), "tokenizer"),
        "vocabulary-emptied": (
            steps(remove(tokenizer), set_entry("predictor.json", "files", [])),
            "tokenizer",
        ),
        "max-length": (set_entry("predictor.json", "encoder.max_length", 4096), "max_length"),
        "config-remote-code": (
            steps(
                set_entry(config, "model_type", "custom"),
                set_entry(config, "auto_map", {"AutoConfig": "x.Y", "AutoModel": "x.Z"}),
            ),
            "backbone",
        ),
        "config-unknown-type": (set_entry(config, "model_type", "nonesuch"), "backbone"),
        "config-hidden-huge": (set_entry(config, "hidden_size", 10**6), "model.safetensors"),
        "config-layers-huge": (set_entry(config, "num_hidden_layers", 10**7), "model.safetensors"),
        "config-vocab-small": (set_entry(config, "vocab_size", 100), "model.safetensors"),
        "tokenizer-folder-out": (link_out("tokenizer"), "tokenizer"),
        "backbone-folder-out": (link_out("backbone"), "backbone"),
    }
    return [
        Damage(f"text-{name}", "text", change, names) for name, (change, names) in changes.items()
    ]
