"""Transfer-learning strategies, as data: which layers train, and at what learning rate.

The backbone is split into layer groups from the input up (embeddings, then each block);
the head is always trained at the full learning rate.

- ``full``: the backbone trains at the full learning rate.
- ``linear_probe``: the backbone is frozen (no gradients, no optimizer state, eval mode).
- ``freeze_then_unfreeze``: frozen until epoch ``unfreeze_epoch``, then trained at
  lr x ``backbone_lr_mult``; with ``gradual``, one more group per epoch, top first.
- ``discriminative``: the backbone trains at lr x ``backbone_lr_mult``.
- ``llrd``: group i of L (0 = nearest the input) trains at lr x ``layer_decay`` ** (L - i).
- ``lora``: the backbone's weights stay frozen; low-rank adapters (``peft``'s LoRA, rank
  ``lora_rank``, scale ``lora_alpha / lora_rank``, dropout ``lora_dropout``) on the layers
  ``lora_target_modules`` names train with the head. After training the adapters are merged
  into the weights (``merge_lora``), so the saved model is the plain architecture: it
  predicts without ``peft`` and loads like any other.
- ``scratch``: weights re-initialized, then trained as ``full``: what pretraining is worth.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from tunelab.config import FinetuningConfig, ModelConfig, RunConfig
from tunelab.errors import ConfigError
from tunelab.optional import optional_import
from tunelab.techniques.base import TECHNIQUES, DataFacts, Needs, TechniqueSpec
from tunelab.training.hooks import FitState, Technique

NEEDS_BACKBONE = ("linear_probe", "freeze_then_unfreeze", "discriminative", "llrd", "lora")


def layer_groups(model: nn.Module) -> list[list[nn.Parameter]]:
    """The backbone's parameters in groups, from the input up (see ``layers``)."""
    return [params for _, params in layers(model)]


def layers(model: nn.Module) -> list[tuple[nn.Module | None, list[nn.Parameter]]]:
    """The backbone's layer groups from the input up, each with the module that holds it.

    Transformers: embeddings, each encoder layer, then anything left (pooler; no single
    module). Sequential backbones (builtin models): each child with parameters. Others: the
    backbone's direct children with parameters.
    """
    backbone = backbone_of(model)
    children: list[nn.Module]
    encoder_layers = getattr(getattr(backbone, "encoder", None), "layer", None)
    embeddings = getattr(backbone, "embeddings", None)
    if isinstance(encoder_layers, nn.ModuleList) and isinstance(embeddings, nn.Module):
        children = [embeddings, *encoder_layers]
    else:
        children = list(backbone.children())
    found: list[tuple[nn.Module | None, list[nn.Parameter]]] = [
        (child, params) for child in children if (params := list(child.parameters()))
    ]
    seen = {id(p) for _, params in found for p in params}
    rest = [p for p in backbone.parameters() if id(p) not in seen]
    if rest:
        found.append((None, rest))
    return found


def backbone_of(model: nn.Module) -> nn.Module:
    backbone = getattr(model, "backbone", None)
    if not isinstance(backbone, nn.Module):
        raise ConfigError(
            f"finetuning.strategy: {type(model).__name__} has no 'backbone' submodule; give "
            "your py: model 'backbone' and 'head' attributes, or use strategy 'full'"
        )
    return backbone


def check_model(model: nn.Module, cfg: FinetuningConfig) -> None:
    if cfg.strategy in NEEDS_BACKBONE and not (
        isinstance(getattr(model, "backbone", None), nn.Module)
        and isinstance(getattr(model, "head", None), nn.Module)
    ):
        raise ConfigError(
            f"finetuning.strategy: {cfg.strategy!r} needs a model with 'backbone' and 'head' "
            f"submodules, but {type(model).__name__} has none; give your py: model those two "
            "attributes, or use strategy 'full' or 'scratch'"
        )


def lr_scales(model: nn.Module, cfg: FinetuningConfig) -> dict[int, float]:
    """Learning-rate multiplier per parameter id (parameters not listed: 1.0)."""
    if cfg.strategy not in ("discriminative", "llrd", "freeze_then_unfreeze"):
        return {}
    groups = layer_groups(model)
    scales: dict[int, float] = {}
    for index, group in enumerate(groups):
        if cfg.strategy == "llrd":
            scale = cfg.layer_decay ** (len(groups) - index)
        else:
            scale = cfg.backbone_lr_mult
        scales.update((id(p), scale) for p in group)
    return scales


def frozen_at_start(
    model: nn.Module, cfg: FinetuningConfig
) -> list[tuple[nn.Module | None, list[nn.Parameter]]]:
    """The layer groups to freeze before training (``linear_probe``,
    ``freeze_then_unfreeze``), each with its module (see ``layers``)."""
    if cfg.strategy in ("linear_probe", "freeze_then_unfreeze"):
        return layers(model)
    return []


def to_unfreeze(epoch: int, groups: list[Any], cfg: FinetuningConfig) -> list[int]:
    """Indices of the groups that become trainable at the start of ``epoch`` (0-based).

    ``unfreeze_epoch`` N means epochs 0..N-1 train the head alone; with ``gradual`` the top
    group unfreezes at N, the next at N+1, and so on.
    """
    if cfg.strategy != "freeze_then_unfreeze" or epoch < cfg.unfreeze_epoch:
        return []
    top = len(groups) - 1
    if not cfg.gradual:
        return list(range(len(groups))) if epoch == cfg.unfreeze_epoch else []
    index = top - (epoch - cfg.unfreeze_epoch)
    return [index] if index >= 0 else []


def reinitialize(model: nn.Module) -> int:
    """Re-initialize every layer that can (``scratch``); returns how many were reset."""
    count = 0
    for module in model.modules():
        reset = getattr(module, "reset_parameters", None)
        if callable(reset):
            reset()
            count += 1
    backbone = getattr(model, "backbone", None)
    hf_init = getattr(backbone, "_init_weights", None)
    if isinstance(backbone, nn.Module) and callable(hf_init):
        # transformers: its own scheme (e.g. normal(0, 0.02)) instead of PyTorch's defaults
        backbone.apply(hf_init)
    return count


def add_lora(model: nn.Module, cfg: FinetuningConfig) -> str:
    """Wrap ``model.backbone`` in peft's LoRA adapters (its own weights frozen); returns
    what was done, for the run's events.

    Raises:
        MissingDependency: peft is not installed.
        ConfigError: ``lora_target_modules`` names no layer of the backbone, or peft cannot
            choose the layers for this architecture (the message lists candidates).
    """
    peft = optional_import("peft", package="peft", extra="lora", purpose="finetuning.strategy lora")
    backbone = backbone_of(model)
    config = peft.LoraConfig(
        r=cfg.lora_rank,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=cfg.lora_target_modules,
        bias="none",
    )
    try:
        wrapped = peft.get_peft_model(backbone, config)
    except ValueError as exc:
        candidates = sorted(
            {name.rsplit(".", 1)[-1] for name, m in backbone.named_modules() if _adaptable(m)}
        )
        raise ConfigError(
            f"finetuning.lora_target_modules: got {cfg.lora_target_modules}; peft found no "
            f"layers to adapt ({str(exc).splitlines()[0]}). Name some of the backbone's "
            f"linear or convolution layers: {', '.join(candidates[:12]) or 'none found'}"
        ) from None
    model.backbone = wrapped
    trainable = sum(p.numel() for p in wrapped.parameters() if p.requires_grad)
    total = sum(p.numel() for p in wrapped.parameters())
    targets = sorted(getattr(wrapped.peft_config["default"], "target_modules", None) or [])
    return (
        f"finetuning: lora rank {cfg.lora_rank}, alpha {cfg.lora_alpha} on "
        f"{', '.join(map(str, targets))}: {trainable} of {total} backbone parameters train"
    )


def _adaptable(module: nn.Module) -> bool:
    return isinstance(module, nn.Linear | nn.Conv1d | nn.Conv2d | nn.Embedding)


def merge_lora(model: nn.Module) -> bool:
    """Merge LoRA adapters into the backbone's weights and drop peft's wrapper (the model is
    then its plain architecture again); False when the backbone has none."""
    backbone = getattr(model, "backbone", None)
    merge = getattr(backbone, "merge_and_unload", None)
    if not callable(merge):
        return False
    model.backbone = merge()
    return True


class Finetuning(Technique):
    """The transfer strategy: re-initialize (scratch), freeze and unfreeze layer groups,
    and give the backbone its own learning rates."""

    name = "finetuning"

    def __init__(self, cfg: FinetuningConfig) -> None:
        self.cfg = cfg
        self._frozen: list[tuple[nn.Module | None, list[nn.Parameter]]] = []
        self._backbone: nn.Module | None = None

    def setup(self, fit: FitState) -> None:
        model, cfg = fit.model, self.cfg
        check_model(model, cfg)
        if cfg.strategy == "scratch":
            fit.note(f"finetuning: scratch, re-initialized {reinitialize(model)} layers")
        if cfg.strategy == "lora":
            fit.note(add_lora(model, cfg))
        frozen = frozen_at_start(model, cfg)
        if frozen:
            for _, params in frozen:
                for param in params:
                    param.requires_grad_(False)
            self._frozen, self._backbone = frozen, backbone_of(model)
            count = sum(p.numel() for _, params in frozen for p in params)
            fit.note(f"finetuning: {cfg.strategy}, backbone frozen ({count} parameters)")
        fit.lr_scales = lr_scales(model, cfg)

    def on_epoch_start(self, fit: FitState) -> None:
        indices = to_unfreeze(fit.epoch, self._frozen, self.cfg)
        assert fit.add_trainable is not None
        for index in indices:
            _, params = self._frozen[index]
            for param in params:
                param.requires_grad_(True)
            fit.add_trainable(params, self.cfg.backbone_lr_mult)
        if indices:
            fit.note(f"finetuning: unfroze backbone group(s) {indices} of {len(self._frozen)}")
        self._frozen_eval()

    def _frozen_eval(self) -> None:
        """Frozen layers run in eval mode (no dropout, BN statistics kept); an unfrozen one
        trains in full, while the layers below it may still be frozen (``gradual``)."""
        still = [
            (module, not any(p.requires_grad for p in params)) for module, params in self._frozen
        ]
        if self._backbone is not None and still and all(frozen for _, frozen in still):
            self._backbone.eval()  # the whole backbone, modules outside the groups too
            return
        for module, frozen in still:
            if frozen and module is not None:
                module.eval()

    def describe(self) -> dict[str, Any]:
        return self.cfg.model_dump()


def _build(cfg: RunConfig, facts: DataFacts) -> Finetuning:
    return Finetuning(cfg.finetuning)


# model sources whose weights are pretrained by construction; timm: and torchvision: have
# them when model.pretrained is true; builtin: and py: build fresh weights
PRETRAINED_SOURCES = ("file", "hf", "st")
OPTIONALLY_PRETRAINED_SOURCES = ("timm", "torchvision")
# how long each strategy keeps the backbone frozen (strategies not named: never)
_FROZEN = {"linear_probe": "always", "freeze_then_unfreeze": "until_unfrozen"}


def has_pretrained_weights(model: ModelConfig) -> bool:
    """Whether the model source loads pretrained weights (what transfer learning needs)."""
    prefix = model.source.partition(":")[0]
    if prefix in OPTIONALLY_PRETRAINED_SOURCES:
        return model.pretrained
    return prefix in PRETRAINED_SOURCES


def _no_pretrained_weights(cfg: RunConfig, model: nn.Module | None) -> str | None:
    if has_pretrained_weights(cfg.model):
        return None
    return (
        f"the model {cfg.model.source} has no pretrained weights to transfer (file:, hf:, "
        "st:, or timm:/torchvision: with model.pretrained have them)"
    )


def _merge(model: nn.Module) -> None:
    merge_lora(model)  # the saved model is the plain architecture


TECHNIQUES.register("finetuning")(
    TechniqueSpec(
        name="finetuning",
        order=0,
        off={"finetuning.strategy": "scratch"},
        build=_build,
        needs=Needs(
            freezes_backbone=lambda cfg: _FROZEN.get(cfg.finetuning.strategy),
            model_request=lambda cfg: {"scratch": cfg.finetuning.strategy == "scratch"},
            after_fit=_merge,
            does_nothing_for=_no_pretrained_weights,
        ),
    )
)
