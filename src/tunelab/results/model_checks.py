"""The model kind on load: the architecture ``predictor.json`` names, the weights in
``model.safetensors``, and a text model's ``tokenizer/`` and ``backbone/`` folders.

One pass, in an order that allocates nothing a file could inflate: the weights file's
header (names, dtypes, shapes) is compared with the architecture built on PyTorch's
``meta`` device (no memory), then the real model is built and the weights loaded, every
floating-point value checked finite, and the structure of a tree head checked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from torch import nn
from torch.overrides import TorchFunctionMode

from tunelab.data.encoding import Encoder
from tunelab.errors import FatalError, TunelabError
from tunelab.models import rebuild_model
from tunelab.models.base import BuiltModel
from tunelab.models.classical import TreeHead
from tunelab.models.lent import Digest, mark_lent
from tunelab.registry import MODEL_REBUILDERS
from tunelab.results.backbones import FOLDER as BACKBONES
from tunelab.results.backbones import BackboneStore
from tunelab.results.files import DAMAGED, WEIGHTS_LIMIT, checked_size
from tunelab.results.manifest import (
    FROZEN_BACKBONE,
    MODEL_FIELDS,
    check_fields,
    check_listed_files,
    check_model_files,
    first_line,
    load_encoder,
)
from tunelab.results.predictor import Loading, Predictor
from tunelab.results.rundir import MANIFEST
from tunelab.results.text_checks import check_text_files, check_tokenizer
from tunelab.results.trees import MAX_TREE_DEPTH, structure_problem

Header = dict[str, tuple[str, tuple[int, ...]]]
CALLS_PER_TENSOR = 100  # torch calls building one tensor may take (about 12 in practice)
SAFETENSORS_DTYPES = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
}


def load_model(directory: Path, manifest: dict[str, Any], loading: Loading) -> Predictor:
    """The ``model`` kind: one network with its encoder (``PREDICTOR_KINDS``)."""
    manifest_path = directory / MANIFEST
    backbones = loading.backbones or BackboneStore(directory / BACKBONES)
    built, encoder = load_network(
        directory, manifest, trust_code=loading.trust_code, backbones=backbones
    )
    built.module.to(torch.device(loading.device)).eval()
    scale = manifest.get("target_scale")
    return Predictor(
        model=built.module,
        built=built,
        encoder=encoder,
        task=manifest["task"],
        classes=manifest["classes"],
        modality=manifest["modality"],
        input_columns=manifest["input_columns"],
        target_scale=_target_scale(manifest_path, scale),
        info=manifest["info"],
    )


def _target_scale(path: Path, scale: Any) -> tuple[float, float] | None:
    if scale is None:
        return None
    if not (
        isinstance(scale, list)
        and len(scale) == 2
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in scale)
    ):
        raise FatalError(
            f"{path}: target_scale {scale!r:.60} is not [mean, std]; the predictor is damaged: "
            "train or save it again"
        )
    return float(scale[0]), float(scale[1])


def load_network(
    directory: Path, manifest: dict[str, Any], *, trust_code: bool, backbones: BackboneStore
) -> tuple[BuiltModel, Encoder]:
    """The model and encoder a model kind's ``predictor.json`` describes, checked; a frozen
    backbone it keeps apart is read from ``backbones`` and checked with its weights."""
    path = directory / MANIFEST
    check_fields(path, manifest, MODEL_FIELDS)
    check_model_files(path, manifest)
    check_listed_files(path, manifest)
    weights = directory / manifest["weights"]
    frozen = _frozen_backbone(directory, manifest, backbones)
    header = _combined(read_header(weights), frozen, weights)
    spec = manifest["model"]
    kind = spec.get("kind")
    if kind not in MODEL_REBUILDERS:
        raise FatalError(
            f"{path}: model.kind {kind!r:.40} is not an architecture tunelab rebuilds "
            f"({', '.join(MODEL_REBUILDERS)}); {DAMAGED}"
        )
    if kind == "hf":
        check_text_files(directory)
    encoder = load_encoder(directory, manifest)
    _check_ends(path, manifest, encoder)
    # a py: function runs once, and only with trust_code
    meta = _on_meta_device(path, spec, weights, tensors=len(header)) if kind != "py" else None
    if meta is not None:
        check_architecture(meta.module, header, weights)
    built = _rebuilt(path, spec, trust_code)
    if meta is None:
        check_architecture(built.module, header, weights)
    load_weights(built.module, weights, frozen=frozen)
    if frozen:
        mark_lent(built.module, set(frozen), Digest(manifest[FROZEN_BACKBONE]))
    if built.tokenizer is not None:
        check_tokenizer(directory, built, encoder, manifest)
    return built, encoder


def _frozen_backbone(
    directory: Path, manifest: dict[str, Any], backbones: BackboneStore
) -> dict[str, torch.Tensor]:
    """The frozen backbone a model keeps apart (none: empty), its digest checked."""
    if FROZEN_BACKBONE not in manifest:
        return {}
    digest = manifest[FROZEN_BACKBONE]
    tensors = backbones.load(digest, owner=directory)
    _check_finite(tensors, backbones.path(digest), thresholds=set())
    return tensors


def _combined(header: Header, frozen: dict[str, torch.Tensor], weights: Path) -> Header:
    """The weights file's tensors with the frozen backbone's: together they must be the
    architecture's, and neither may repeat a tensor of the other."""
    repeated = sorted(set(header) & set(frozen))
    if repeated:
        raise FatalError(
            f"{weights} repeats {_tensors(len(repeated))} of the frozen backbone it names, "
            f"e.g. {repeated[0]!r:.80}; {DAMAGED}"
        )
    return {**header, **{name: _described(tensor) for name, tensor in frozen.items()}}


def _check_ends(path: Path, manifest: dict[str, Any], encoder: Encoder) -> None:
    """The network takes what the encoder gives and gives one output per class."""
    spec, task, classes = manifest["model"], manifest["task"], manifest["classes"]
    wanted = 1 if task == "regression" else len(classes)
    head = spec.get("classical_head")
    given = {"model.num_outputs": spec.get("num_outputs")}
    if isinstance(head, dict):
        given["model.classical_head.outputs"] = head.get("outputs")
    for field, value in given.items():
        if value != wanted:
            raise FatalError(
                f"{path}: {field} is {value!r:.40}, but a {task} model of these classes has "
                f"{wanted}; {DAMAGED}"
            )
    shape = spec.get("input_shape")
    if shape is not None and shape != list(encoder.input_shape):
        raise FatalError(
            f"{path}: model.input_shape is {shape!r:.60}, but the encoder gives "
            f"{list(encoder.input_shape)}; {DAMAGED}"
        )


class _CallBudget(TorchFunctionMode):
    """Counts the torch calls that building an architecture makes. A legitimate build makes
    about a dozen per tensor; a file asking for far more (``num_hidden_layers: 10000000``)
    would keep a build going for hours, so it is stopped once the weights file could not
    hold what it builds."""

    def __init__(self, calls: int, path: Path, weights: Path) -> None:
        super().__init__()
        self.left = calls
        self.path, self.weights = path, weights

    def __torch_function__(
        self,
        func: Any,
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        self.left -= 1
        if self.left < 0:
            raise FatalError(
                f"{self.path}: the architecture it describes is far larger than the tensors "
                f"{self.weights} holds; the predictor is damaged: train or save it again"
            )
        return func(*args, **(kwargs or {}))


def _on_meta_device(
    path: Path, spec: dict[str, Any], weights: Path, *, tensors: int
) -> BuiltModel | None:
    """The architecture built on the meta device (no memory, no initialization), or None
    where it cannot be built there: it is then compared after the real build."""
    budget = _CallBudget(CALLS_PER_TENSOR * tensors + 1000, path, weights)
    try:
        with torch.device("meta"), budget:
            return rebuild_model(spec, path.parent, trust_code=False)
    except TunelabError:
        raise
    except Exception:  # e.g. timm reads its drop-path rates with .item(), which meta refuses
        return None


def _rebuilt(path: Path, spec: dict[str, Any], trust_code: bool) -> BuiltModel:
    try:
        return rebuild_model(spec, path.parent, trust_code=trust_code)
    except TunelabError:
        raise
    except Exception as exc:  # tokenizers raises a bare Exception on a bad file
        raise FatalError(
            f"{path}: its model cannot be rebuilt ({type(exc).__name__}: "
            f"{first_line(exc)}); {DAMAGED}"
        ) from None


def read_header(path: Path) -> Header:
    """Every tensor's name, dtype and shape, read from the header alone."""
    checked_size(path, WEIGHTS_LIMIT, "model.safetensors")
    try:
        with safe_open(str(path), framework="pt") as handle:
            slices = {name: handle.get_slice(name) for name in handle.keys()}  # noqa: SIM118
            return {
                name: (part.get_dtype(), tuple(part.get_shape())) for name, part in slices.items()
            }
    except (SafetensorError, OSError, ValueError) as exc:
        raise FatalError(
            f"{path} is not a readable safetensors file ({exc}); it is truncated or damaged: "
            "train or save the predictor again"
        ) from None


def check_architecture(module: nn.Module, header: Header, path: Path) -> None:
    """The weights file holds exactly the module's tensors, with their dtypes and shapes."""
    mismatch = _mismatch(module, header)
    if mismatch:
        raise FatalError(
            f"{path} does not match the architecture in predictor.json ({mismatch}); the "
            "weights were altered or belong to another model: train or save it again"
        )


def _tensors(count: int) -> str:
    return f"{count} tensor{'s' if count != 1 else ''}"


def _mismatch(module: nn.Module, header: Header) -> str:
    """What differs between a module's tensors and a weights file's, or "" when they fit."""
    own = {name: _described(tensor) for name, tensor in module.state_dict().items()}
    problems = []
    missing = sorted(set(own) - set(header))
    if missing:
        problems.append(f"{_tensors(len(missing))} missing, e.g. {missing[0]!r}")
    unexpected = sorted(set(header) - set(own))
    if unexpected:
        problems.append(
            f"{_tensors(len(unexpected))} the architecture lacks, e.g. {unexpected[0]!r:.80}"
        )
    for name in sorted(set(own) & set(header)):
        (dtype, shape), (wanted_dtype, wanted_shape) = header[name], own[name]
        if shape != wanted_shape:
            problems.append(f"{name!r} has shape {shape}, the model needs {wanted_shape}")
            break
        if dtype != wanted_dtype:
            problems.append(f"{name!r} is {dtype}, the model needs {wanted_dtype}")
            break
    return "; ".join(problems)


def load_weights(
    module: nn.Module, path: Path, *, frozen: dict[str, torch.Tensor] | None = None
) -> None:
    """Load the trained weights (whose names, dtypes and shapes fit ``module``, with the
    ``frozen`` backbone's, whose tensors the model shares with every other predictor of
    this process that names it): every floating-point value must be finite, a tree head's
    nodes must make trees."""
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise FatalError(
            f"{path} is not a readable safetensors file ({exc}); it is truncated or damaged: "
            "train or save the predictor again"
        ) from None
    shared = frozen or {}
    _check_finite(state, path, thresholds=_tree_thresholds(module))
    try:
        module.load_state_dict(state, strict=not shared)
    except RuntimeError:  # the file changed since its header was compared
        check_architecture(module, {k: _described(v) for k, v in state.items()}, path)
        raise
    if shared:  # the same tensors, not copies
        if set(state) | set(shared) != set(module.state_dict()):  # the file changed since
            check_architecture(module, {k: _described(v) for k, v in state.items()}, path)
        module.load_state_dict(shared, strict=False, assign=True)
    _check_model_values(module, path)


def _described(tensor: torch.Tensor) -> tuple[str, tuple[int, ...]]:
    return SAFETENSORS_DTYPES.get(tensor.dtype, str(tensor.dtype)), tuple(tensor.shape)


def _tree_thresholds(module: nn.Module) -> set[str]:
    # scikit-learn splits "everything but missing values goes left" at threshold +inf
    heads = [name for name, sub in module.named_modules() if isinstance(sub, TreeHead)]
    return {f"{name}.threshold" for name in heads}


def _check_finite(state: dict[str, torch.Tensor], path: Path, *, thresholds: set[str]) -> None:
    for name, tensor in state.items():
        if not tensor.is_floating_point():
            continue
        # numpy's test is several times faster than torch's on CPU (bf16 has no numpy type)
        values = tensor.float().numpy() if tensor.dtype == torch.bfloat16 else tensor.numpy()
        bad = np.isnan(values) if name in thresholds else ~np.isfinite(values)
        if bad.any():
            raise FatalError(
                f"{path}: tensor {name!r} holds {int(bad.sum())} NaN or infinite value(s) of "
                f"{values.size}; the model's weights must be finite: train or save it again"
            )


def _check_model_values(module: nn.Module, path: Path) -> None:
    for name, sub in module.named_modules():
        problem = None
        if isinstance(sub, TreeHead):
            problem = tree_head_problem(sub)
        elif _negative_variance(sub):
            problem = "has a negative running_var (a variance is never below 0)"
        if problem:
            raise FatalError(
                f"{path}: {name or 'the model'} {problem}; the weights were altered: train or "
                "save the predictor again"
            )


def _negative_variance(module: nn.Module) -> bool:
    variance = getattr(module, "running_var", None)
    return isinstance(module, nn.modules.batchnorm._BatchNorm) and (
        isinstance(variance, torch.Tensor) and bool((variance < 0).any())
    )


def tree_head_problem(head: TreeHead) -> str | None:
    """What keeps a tree head's buffers from being walked as saved, or None."""
    trees, nodes = head.feature.shape
    depth = int(head.depth)
    if not 0 <= depth <= min(nodes, MAX_TREE_DEPTH):
        return f"(a tree head) walks {depth} levels, more than its {nodes} nodes allow"
    if head.features is not None and bool(
        ((head.feature < 0) | (head.feature >= head.features)).any()
    ):
        return f"(a tree head) splits on a feature outside 0..{head.features - 1}"
    columns = head.baseline.shape[0]
    if bool(((head.column < 0) | (head.column >= columns)).any()):
        return f"(a tree head) adds a tree to an output outside 0..{columns - 1}"
    # node i of tree t is node t * nodes + i of one forest whose roots are each tree's 0
    offsets = (torch.arange(trees) * nodes)[:, None]
    leaf = head.leaf.reshape(-1).numpy()
    left, right = ((head.left + offsets).reshape(-1), (head.right + offsets).reshape(-1))
    local_ok = bool((((head.left >= 0) & (head.left < nodes)) | head.leaf).all()) and bool(
        (((head.right >= 0) & (head.right < nodes)) | head.leaf).all()
    )
    if not local_ok:
        return "(a tree head) has a child outside its tree's nodes"
    roots = (torch.arange(trees) * nodes).numpy()[:, None]
    problem = structure_problem(left.numpy(), right.numpy(), leaf, roots)
    if problem is None and _deepest(left.numpy(), right.numpy(), leaf, roots) > depth:
        problem = f"has trees deeper than the {depth} levels it walks"
    return f"(a tree head) {problem}" if problem else None


def _deepest(left: np.ndarray, right: np.ndarray, leaf: np.ndarray, roots: np.ndarray) -> int:
    frontier, depth = roots.ravel(), 0
    while True:  # ends: structure_problem found each node reached once at most
        frontier = frontier[~leaf[frontier]]
        if not frontier.size:
            return depth
        frontier = np.concatenate([left[frontier], right[frontier]])
        depth += 1
