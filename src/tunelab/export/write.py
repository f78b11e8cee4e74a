"""``tunelab export``: write a neural predictor as ONNX or TorchScript, with its inputs
described in JSON next to it, and check the file against the predictor.

Example::

    exported = export_predictor("runs/tabular", format="onnx")
    exported.path, exported.max_abs_difference  # runs/tabular/model.onnx, about 1e-7
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch

from tunelab.errors import FatalError
from tunelab.export.boosters import booster_onnx, exportable
from tunelab.export.graph import Graph, build_graph
from tunelab.export.inputs import describe_booster, describe_inputs, feed
from tunelab.optional import optional_import
from tunelab.results.boosters import BoosterPredictor
from tunelab.results.guard import check_outputs
from tunelab.results.outputs import check_output
from tunelab.results.predictor import AnyPredictor, Predictor, load_predictor
from tunelab.results.rundir import FINAL, MANIFEST, RunDir

Format = Literal["onnx", "torchscript"]
FORMATS: tuple[Format, ...] = ("onnx", "torchscript")
# What the exported file's outputs may differ from the predictor's by (float32 arithmetic
# in another order, softmax in float32 instead of float64): absolute for probabilities,
# times the largest value for regression (float32 holds about 7 significant digits).
TOLERANCE = 1e-5
_OPSET = 18
# the run-directory files export writes (RunDir names them): the only ones it may replace
EXPORT_NAMES = ("model.onnx", "model.onnx.json", "model.pt", "model.pt.json")


@dataclass(frozen=True)
class Exported:
    """Where the model and its inputs' description went, and how well it was checked.

    Attributes:
        max_abs_difference: the largest difference between the file's outputs and the
            predictor's on the rows checked (None when none were).
        rows_checked: the run's test rows (``test_inputs.csv``), 0 without them.
        tolerance: the largest difference allowed (``TOLERANCE``, times the largest
            absolute value for regression).
    """

    path: Path
    inputs_path: Path
    max_abs_difference: float | None
    rows_checked: int
    tolerance: float


def export_predictor(
    run: str | Path,
    *,
    format: Format,
    output: str | Path | None = None,
    overwrite: bool = False,
    trust_code: bool = False,
) -> Exported:
    """Export the predictor of ``run`` (a run directory or a predictor folder).

    Args:
        format: ``onnx`` (needs ``tunelab[export]``) or ``torchscript``.
        output: the file to write; default ``RUN/model.onnx`` or ``RUN/model.pt``. Its
            inputs' description goes to the same name plus ``.json``. Never a file in
            the run's ``final/`` or another of its own files.
        overwrite: replace ``output`` and its ``.json`` when they exist (only an earlier
            export: a file tunelab did not write is never replaced).
        trust_code: a ``py:`` architecture may be imported (see ``load_predictor``).

    Raises:
        FatalError: not a neural predictor (an ensemble, boosted trees), a text model, a
            network the exporter cannot trace, an output that exists (without
            ``overwrite``) or belongs to the run; MissingDependency without onnx.
    """
    if format not in FORMATS:
        raise FatalError(f"--format {format!r} is not one of {', '.join(FORMATS)}")
    if format == "onnx":  # before the predictor loads: a missing package is said at once
        _onnx_packages()
    path = Path(output) if output is not None else _default_path(Path(run), format)
    inputs_path = Path(f"{path}.json")
    for target in (path, inputs_path):  # before any work: nothing is written if refused
        check_output(
            target,
            overwrite=overwrite,
            own=EXPORT_NAMES,
            made_by_tunelab=lambda _: _earlier_export(path),
        )
    predictor, described = _export_model(
        load_predictor(run, trust_code=trust_code), run, path, format
    )
    description = {"format": format, "file": path.name, **described}
    difference, rows, tolerance = _check(predictor, path, format, Path(run))
    description["check"] = {
        "rows": rows,
        "max_abs_difference": difference,
        "tolerance": tolerance,
    }
    _replace_with(
        inputs_path, lambda partial: partial.write_text(json.dumps(description, indent=2) + "\n")
    )
    if difference is not None and difference > tolerance:
        raise FatalError(
            f"{path}: the exported model's outputs differ from the predictor's by up to "
            f"{difference:.3g} on {rows} test rows (more than {tolerance:.3g}); the network "
            "uses an operation the exporter does not reproduce: report it with the run's config"
        )
    return Exported(path, inputs_path, difference, rows, tolerance)


def _export_model(
    loaded: AnyPredictor, run: str | Path, path: Path, format: Format
) -> tuple[Predictor | BoosterPredictor, dict[str, Any]]:
    """Write ``loaded``'s model to ``path``; the predictor it exported and its inputs and
    output."""
    if isinstance(loaded, BoosterPredictor):  # LightGBM, XGBoost: through onnxmltools
        exportable(loaded, run, format)
        onnx_bytes = booster_onnx(loaded)
        _replace_with(path, lambda partial: partial.write_bytes(onnx_bytes))
        return loaded, describe_booster(loaded)
    predictor = _neural(loaded, run)
    graph = build_graph(predictor)
    _write(graph, path, format)
    return predictor, describe_inputs(predictor, graph)


def run_exported(path: Path, format: Format, inputs: dict[str, np.ndarray]) -> np.ndarray:
    """The outputs of an exported file on named inputs (onnxruntime, or torch.jit)."""
    if format == "onnx":
        runtime = _onnx_packages()
        session = runtime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        names = [output.name for output in session.get_outputs()]
        outputs = session.run(None, inputs)  # a tree classifier's also give the label
        return np.asarray(outputs[names.index("probabilities") if "probabilities" in names else 0])
    module = torch.jit.load(str(path))  # type: ignore[no-untyped-call]
    with torch.no_grad():
        return np.asarray(module(*(torch.from_numpy(v) for v in inputs.values())).numpy())


def _onnx_packages() -> Any:
    purpose = "tunelab export --format onnx"
    optional_import("onnx", package="onnx", extra="export", purpose=purpose)
    return optional_import("onnxruntime", package="onnxruntime", extra="export", purpose=purpose)


def _neural(predictor: AnyPredictor, run: str | Path) -> Predictor:
    if not isinstance(predictor, Predictor):
        raise FatalError(
            f"export supports neural predictors; {run} holds a {predictor.kind} predictor "
            "(an ensemble or boosted trees). Export a run whose final predictor is one network "
            "(ensemble.method: none, a builtin:/file:/py: model), or use tunelab predict"
        )
    if predictor.modality == "text":
        raise FatalError(
            f"export supports tables, images and signals; {run} holds a text model, whose "
            "tokenizer cannot go inside the exported graph. Use tunelab predict for it"
        )
    return predictor


def _earlier_export(path: Path) -> bool:
    """Whether ``path`` is a file tunelab exported: the description beside it names it."""
    try:
        description = json.loads(Path(f"{path}.json").read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return (
        isinstance(description, dict)
        and description.get("file") == path.name
        and description.get("format") in FORMATS
    )


def _replace_with(path: Path, write: Callable[[Path], object]) -> None:
    """Write beside ``path``, then rename over it: a failed export leaves the earlier one."""
    partial = path.with_name(f".{path.name}.partial")
    try:
        write(partial)
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)


def _default_path(run: Path, format: Format) -> Path:
    folder = run.parent if run.name == FINAL and (run / MANIFEST).is_file() else run
    return RunDir(folder).onnx if format == "onnx" else RunDir(folder).torchscript


def _write(graph: Graph, path: Path, format: Format) -> None:
    try:
        with warnings.catch_warnings():
            # both exporters say they are deprecated in favour of torch.export
            warnings.simplefilter("ignore", DeprecationWarning)
            if format == "onnx":
                _replace_with(path, lambda partial: _write_onnx(graph, partial))
            else:
                traced = torch.jit.trace(graph.module, graph.examples)  # type: ignore[no-untyped-call]
                _replace_with(path, lambda partial: traced.save(str(partial)))
    except OSError as exc:
        raise FatalError(f"cannot write {path}: {exc.strerror or exc}") from None
    except (RuntimeError, TypeError, ValueError) as exc:
        raise FatalError(
            f"the network cannot be exported as {format} ({type(exc).__name__}: "
            f"{str(exc)[:300]}); its forward pass uses something the exporter does not trace"
        ) from None


def _write_onnx(graph: Graph, path: Path) -> None:
    rows = {name: {0: "rows"} for name in [*graph.input_names, graph.output_name]}
    torch.onnx.export(
        graph.module,
        graph.examples,
        str(path),
        input_names=graph.input_names,
        output_names=[graph.output_name],
        dynamic_axes=rows,
        opset_version=_OPSET,
        dynamo=False,
    )


def _check(
    predictor: Predictor | BoosterPredictor, path: Path, format: Format, run: Path
) -> tuple[float | None, int, float]:
    """The largest difference from the predictor's outputs on the run's test rows, their
    number, and the difference allowed."""
    folder = run.parent if run.name == FINAL else run
    test_inputs = RunDir(folder).test_inputs
    if not test_inputs.is_file():
        return None, 0, TOLERANCE
    frame = pd.read_csv(test_inputs)
    # the predictor's own outputs first: it refuses non-finite ones, naming their cause
    if predictor.task == "regression":
        expected = predictor.predict(frame)
    else:
        expected = predictor.predict_proba(frame)
    exported = check_outputs(
        run_exported(path, format, feed(predictor, frame)),
        what=f"{path}'s outputs on {test_inputs.name}",
        cause=lambda: (
            "the predictor's own outputs on these rows are finite, so the exported graph "
            "computes something else: report it with the run's config"
        ),
    )
    exported = exported.astype(np.float64).reshape(expected.shape)
    difference = float(np.max(np.abs(exported - expected)))
    tolerance = TOLERANCE
    if predictor.task == "regression":
        tolerance *= max(1.0, float(np.max(np.abs(expected))))
    return difference, len(frame), tolerance
