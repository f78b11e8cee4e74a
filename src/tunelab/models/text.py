"""``hf:PATH_OR_ID`` and ``st:PATH_OR_ID``: pretrained text backbones with a new head.

``hf:`` loads any transformers encoder (``AutoModel``) and its tokenizer from a local
directory or from the Hugging Face cache, and pools its token states as ``model.pooling``
says. ``st:`` loads a sentence-transformers model and takes its pooling and normalization
from the model itself, so the pooled embedding is the one ``SentenceTransformer.encode``
gives. Both build a ``TextClassifier``; both save and rebuild the same way (kind ``hf``).

tunelab never downloads: a model id must already be in the local cache.

Example::

    model:
      source: st:/models/all-MiniLM-L6-v2
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, get_args

import torch
import torch.nn.functional as F
from torch import nn

from tunelab.config import ModelConfig
from tunelab.errors import ConfigError, FatalError
from tunelab.models.base import BuiltModel, ModelRequest
from tunelab.models.heads import Head
from tunelab.optional import optional_import
from tunelab.registry import POOLINGS, PoolingName, did_you_mean

if TYPE_CHECKING:
    from transformers import PreTrainedModel

T = TypeVar("T")


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    # Sum in float32 like sentence-transformers does: bf16 sums over hundreds of tokens lose
    # digits, and the pooled vector is what the head (and the equivalence test) sees.
    total = (hidden * weights).sum(dim=1, dtype=torch.float32)
    count = weights.sum(dim=1, dtype=torch.float32).clamp(min=1e-9)
    return total / count


def cls_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return hidden[:, 0]


def max_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    # The dtype's lowest value rather than -inf: identical on real inputs, but an all-padding
    # row cannot turn into -inf and then NaN gradients.
    padding = mask.unsqueeze(-1) == 0
    return hidden.masked_fill(padding, torch.finfo(hidden.dtype).min).amax(dim=1)


# model.pooling: the function NAME_pool (the names: tunelab.registry.PoolingName)
POOLING_NAMES: tuple[str, ...] = get_args(PoolingName)


class TextClassifier(nn.Module):
    """A transformers encoder, pooling, optional L2 normalization, dropout and a linear head.

    Args:
        backbone: a transformers ``PreTrainedModel`` whose output has ``last_hidden_state``.
        num_outputs: classes (or regression targets) the head produces.
        pooling: ``mean`` (attention-mask-weighted mean of the token states), ``cls`` (the
            first token) or ``max`` (element-wise maximum over real tokens).
        normalize: L2-normalize the pooled embedding, as sentence-transformers models that
            end with a ``Normalize`` module do.
        dropout: dropout rate before the head.

    Example::

        model = TextClassifier(bert, num_outputs=2, pooling="mean")
        logits = model(input_ids, attention_mask)  # (batch, 2)
    """

    def __init__(
        self,
        backbone: PreTrainedModel,
        *,
        num_outputs: int,
        pooling: str = "mean",
        normalize: bool = False,
        dropout: float = 0.1,
        head_batch_norm: bool = False,
    ) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ConfigError(
                f"model.pooling: got {pooling!r}; valid: {', '.join(POOLING_NAMES)}; "
                f"set model.pooling to one of them.{did_you_mean(pooling, POOLING_NAMES)}"
            )
        self.backbone = backbone
        self.pooling = pooling
        self.normalize = normalize
        self.head = Head(
            _hidden_size(backbone), num_outputs, dropout=dropout, batch_norm=head_batch_norm
        )

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The pooled (and, if ``normalize``, unit-length) embedding the head reads."""
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask)
        pool = POOLINGS.get(self.pooling)
        pooled: torch.Tensor = pool(hidden.last_hidden_state, attention_mask)
        return F.normalize(pooled, p=2.0, dim=-1) if self.normalize else pooled

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Logits (or regression outputs) of shape (batch, num_outputs)."""
        return self.head(self.embed(input_ids, attention_mask))  # type: ignore[no-any-return]

    def save_extras(self, directory: Path) -> None:
        """Write the backbone's config (not its weights: the trainer saves the state dict)."""
        self.backbone.config.save_pretrained(str(directory / "backbone"))


def _hidden_size(backbone: PreTrainedModel) -> int:
    size = getattr(backbone.config, "hidden_size", None)
    if not isinstance(size, int):
        raise ConfigError(
            f"model.source: the {type(backbone).__name__} backbone's config has no integer "
            "hidden_size, so tunelab cannot size the head; use a text encoder such as BERT, "
            "RoBERTa or MiniLM"
        )
    return size


def _transformers() -> Any:
    transformers = optional_import(
        "transformers", package="transformers", extra="hf", purpose="hf: models"
    )
    return transformers


@contextmanager
def _no_progress_bars() -> Iterator[None]:
    """Without transformers' per-tensor "Loading weights" bar, which would break into
    tunelab's own progress (and print under --quiet); what loaded is in the run's notes.
    The setting is put back afterwards (it also governs huggingface_hub's bars)."""
    hub_logging: Any = _transformers().utils.logging  # untyped
    was_enabled = hub_logging.is_progress_bar_enabled()
    hub_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hub_logging.enable_progress_bar()


def _need_text(prefix: str, request: ModelRequest) -> None:
    if request.modality != "text":
        raise ConfigError(
            f"model.source: {prefix}: models read text, but the data is {request.modality}; "
            "set data.text_column to the column holding the text, or pick a model for "
            f"{request.modality} data (builtin:, timm:, torchvision:)"
        )


def _load(
    prefix: str, value: str, what: str, load: Callable[[str], T], *, markers: tuple[str, ...]
) -> T:
    with _no_progress_bars():
        return _load_from(prefix, value, what, load, markers=markers)


def _load_from(
    prefix: str, value: str, what: str, load: Callable[[str], T], *, markers: tuple[str, ...]
) -> T:
    """Call ``load`` on a local directory or a cached model id, with errors that say the fix.

    ``markers``: files of which a model directory holds at least one. Only the local cache is
    searched (the loaders pass ``local_files_only``): tunelab never downloads.
    """
    path = Path(value).expanduser()
    offline = "tunelab works offline and never downloads"
    if path.is_dir():
        if not any((path / marker).is_file() for marker in markers):
            raise ConfigError(
                f"model.source: {prefix}:{value} is a directory without {' or '.join(markers)}; "
                "point it at the folder that holds the model (as written by save_pretrained)"
            )
        try:
            return load(str(path))
        except (OSError, ValueError) as exc:
            if _is_remote_code(exc):
                raise _remote_code_error(prefix, value) from None
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(
                f"model.source: {prefix}:{value}: its {what} could not be loaded ({reason}); "
                "the folder must hold config.json, the weights and the tokenizer files (as "
                "written by save_pretrained)"
            ) from None
    if path.exists():
        raise ConfigError(
            f"model.source: {prefix}:{value} is a file; give the directory that holds it "
            "(with config.json), or a model id from the Hugging Face cache"
        )
    # Hub ids look like "name" or "org/name"; anything else was meant as a path.
    if path.is_absolute() or value.startswith((".", "~")) or value.count("/") > 1:
        raise ConfigError(
            f"model.source: {prefix}:{value}: no such directory. Give a local directory "
            f"containing config.json, or the id of a model already in the HF cache; {offline}"
        )
    try:
        return load(value)
    except ValueError as exc:
        if not _is_remote_code(exc):
            raise
        raise _remote_code_error(prefix, value) from None
    except OSError:
        raise ConfigError(
            f"model.source: {prefix}:{value} is neither a local directory nor a model in the "
            "HF cache. Give a local directory containing config.json (e.g. "
            f"{prefix}:/models/my-model), or pre-download the model into the HF cache on a "
            f"machine with network (hf download {value}); {offline}"
        ) from None


def _limit_length(
    prefix: str, value: str, backbone: PreTrainedModel, request: ModelRequest
) -> None:
    # Longer inputs would crash deep inside the position embeddings mid-training.
    limit = getattr(backbone.config, "max_position_embeddings", None)
    length = request.input_shape[0]
    if isinstance(limit, int) and length > limit:
        raise ConfigError(
            f"data.max_length: got {length}, but {prefix}:{value} takes at most {limit} tokens; "
            f"set data.max_length to {limit} or less"
        )


def _build(
    backbone: PreTrainedModel,
    tokenizer: Any,
    *,
    loader: str,
    value: str,
    pooling: str,
    normalize: bool,
    cfg: ModelConfig,
    request: ModelRequest,
) -> BuiltModel:
    _limit_length(loader, value, backbone, request)
    # A checkpoint stored in fp16/bf16 would otherwise train in that dtype; the trainer
    # keeps fp32 weights and decides mixed precision itself (train.precision).
    backbone = backbone.float()  # type: ignore[no-untyped-call]  # transformers wraps it untyped
    module = TextClassifier(
        backbone,
        num_outputs=request.num_outputs,
        pooling=pooling,
        normalize=normalize,
        dropout=request.dropout,
        head_batch_norm=request.head_batch_norm,
    )
    spec = {
        "kind": "hf",
        "loader": loader,
        "source": value,
        "pooling": pooling,
        "normalize": normalize,
        "dropout": request.dropout,
        "head_batch_norm": request.head_batch_norm,
        "num_outputs": request.num_outputs,
    }
    return BuiltModel(module=module, tokenizer=tokenizer, spec=spec)


def load_hf(value: str, cfg: ModelConfig, request: ModelRequest) -> BuiltModel:
    """``hf:PATH_OR_ID``: a transformers encoder pooled as ``model.pooling`` says."""
    transformers = _transformers()
    _need_text("hf", request)
    backbone = _load(
        "hf",
        value,
        "model",
        lambda where: transformers.AutoModel.from_pretrained(
            where, local_files_only=True, trust_remote_code=False
        ),
        markers=("config.json",),
    )
    tokenizer = _load(
        "hf",
        value,
        "tokenizer",
        lambda where: transformers.AutoTokenizer.from_pretrained(
            where, local_files_only=True, trust_remote_code=False
        ),
        markers=("config.json",),
    )
    return _build(
        backbone,
        tokenizer,
        loader="hf",
        value=value,
        pooling=cfg.pooling,
        normalize=False,
        cfg=cfg,
        request=request,
    )


def load_st(value: str, cfg: ModelConfig, request: ModelRequest) -> BuiltModel:
    """``st:PATH_OR_ID``: a sentence-transformers model; its pooling and normalization are kept.

    ``model.pooling`` is ignored: the model's own Pooling module decides, so that the pooled
    embedding equals ``SentenceTransformer.encode``.
    """
    SentenceTransformer = optional_import(  # noqa: N806 (the class, as the package names it)
        "sentence_transformers", package="sentence-transformers", extra="hf", purpose="st: models"
    ).SentenceTransformer
    _need_text("st", request)
    st_model = _load(
        "st",
        value,
        "sentence-transformers model",
        lambda where: SentenceTransformer(
            where, device="cpu", local_files_only=True, trust_remote_code=False
        ),
        # An st: folder may keep its transformer in a subfolder (older layout).
        markers=("modules.json", "config.json"),
    )
    backbone, tokenizer, pooling, normalize, notes = _st_parts(value, st_model)
    if "pooling" in cfg.model_fields_set and cfg.pooling != pooling:
        notes.append(
            f"model.pooling {cfg.pooling!r} is ignored: st: models pool as they were "
            f"trained ({pooling!r}); use hf:{value} to choose the pooling"
        )
    built = _build(
        backbone,
        tokenizer,
        loader="st",
        value=value,
        pooling=pooling,
        normalize=normalize,
        cfg=cfg,
        request=request,
    )
    built.notes.extend(notes)
    return built


def _st_parts(value: str, st_model: Any) -> tuple[Any, Any, str, bool, list[str]]:
    """Backbone, tokenizer, pooling, normalize and notes from a SentenceTransformer."""
    backbone: Any = None
    tokenizer: Any = None
    pooling: str | None = None
    normalize = False
    ignored: list[str] = []
    for module in st_model:
        name = type(module).__name__
        # The class names are the stable part: the classes moved between modules across
        # sentence-transformers versions (models.* in 2-5, base.modules.* in 6).
        if backbone is None and name == "Transformer":
            # 6.x keeps the HF model in .model (auto_model is a property); older in .auto_model.
            backbone = getattr(module, "auto_model", None) or getattr(module, "model", None)
            tokenizer = getattr(module, "tokenizer", None)
        elif name == "Pooling":
            pooling = _st_pooling(value, module)
        elif name == "Normalize":
            normalize = True
        else:
            ignored.append(name)
    if backbone is None or tokenizer is None:
        modules = ", ".join(type(m).__name__ for m in st_model)
        raise ConfigError(
            f"model.source: st:{value} has no transformers text encoder with a tokenizer "
            f"(its modules: {modules}); st: takes models that start with a Transformer "
            "module, such as all-MiniLM-L6-v2"
        )
    if pooling is None:
        raise ConfigError(
            f"model.source: st:{value} has no Pooling module, so its sentence embedding is "
            "not defined; use hf:PATH instead and choose model.pooling"
        )
    notes = [f"st:{value}: pooling {pooling!r}, normalize {normalize} (from the model)"]
    if ignored:
        notes.append(
            f"st:{value}: modules {', '.join(ignored)} are not used; the head reads the "
            "pooled embedding before them"
        )
    prompt = getattr(st_model, "default_prompt_name", None)
    if prompt:
        notes.append(f"st:{value}: the default prompt {prompt!r} is not prepended to texts")
    return backbone, tokenizer, pooling, normalize, notes


def _st_pooling(value: str, module: Any) -> str:
    mode = getattr(module, "pooling_mode", None)  # 6.x: a name, or a tuple of names
    if mode is None and callable(getattr(module, "get_pooling_mode_str", None)):
        mode = module.get_pooling_mode_str()  # before 6.x: names joined by "+"
    if isinstance(mode, (list, tuple)):
        mode = "+".join(str(m) for m in mode)
    if mode not in POOLINGS:
        raise ConfigError(
            f"model.source: st:{value} pools with {mode!r}, which tunelab does not reproduce; "
            f"supported: {', '.join(POOLING_NAMES)}. Use hf:{value} with model.pooling instead "
            "(the embedding then differs from the sentence-transformers one)"
        )
    return str(mode)


REMOTE_CODE_REFUSED = (
    "its config names the model's own Python code (auto_map), which tunelab never imports "
    "(transformers' trust_remote_code stays off)"
)


def _is_remote_code(exc: Exception) -> bool:
    return "trust_remote_code" in str(exc)


def _remote_code_error(prefix: str, value: str) -> ConfigError:
    return ConfigError(
        f"model.source: {prefix}:{value}: {REMOTE_CODE_REFUSED}; use a model whose "
        "architecture ships with transformers"
    )


@contextmanager
def _refusing_remote_code(folder: Path) -> Iterator[None]:
    """A predictor folder that cannot be loaded without running its own code: one line."""
    try:
        yield
    except (OSError, ValueError) as exc:
        if _is_remote_code(exc):
            raise FatalError(
                f"{folder}: {REMOTE_CODE_REFUSED}; do not use this predictor"
            ) from None
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FatalError(
            f"{folder} cannot be loaded ({reason}); the predictor is damaged: train or save "
            "it again"
        ) from None


def rebuild_hf(spec: dict[str, Any], directory: Path, *, trust_code: bool) -> BuiltModel:
    """The saved architecture from ``backbone/`` and ``tokenizer/`` (no pretrained weights)."""
    transformers = _transformers()
    for part in ("backbone", "tokenizer"):
        if not (directory / part).is_dir():
            raise FatalError(
                f"predictor directory {str(directory)!r} has no {part}/ folder, so the text "
                "model cannot be rebuilt; it was not saved completely. Train or save it again"
            )
    # Never the folder's own code (a config's auto_map): transformers would import it, and
    # --trust-code is about tunelab's py: architectures, not a model's Python files.
    with _refusing_remote_code(directory / "backbone"):
        config = transformers.AutoConfig.from_pretrained(
            str(directory / "backbone"), trust_remote_code=False
        )
        backbone = transformers.AutoModel.from_config(config, trust_remote_code=False).float()
    module = TextClassifier(
        backbone,
        num_outputs=int(spec["num_outputs"]),
        pooling=str(spec["pooling"]),
        normalize=bool(spec["normalize"]),
        dropout=float(spec["dropout"]),
        head_batch_norm=bool(spec.get("head_batch_norm", False)),
    )
    if torch.empty(0).is_meta:  # a first build on the meta device only compares the tensors
        return BuiltModel(module=module, spec=dict(spec))
    with _refusing_remote_code(directory / "tokenizer"):
        tokenizer = transformers.AutoTokenizer.from_pretrained(
            str(directory / "tokenizer"), trust_remote_code=False
        )
    return BuiltModel(module=module, tokenizer=tokenizer, spec=dict(spec))
