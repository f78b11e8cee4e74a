"""The techniques of one training run, gathered for the loop.

``TechniquePlan`` is the only thing ``training/loop.py`` knows about techniques: it prepares
the model before training (re-initialize, freeze, re-estimate BN), gives learning-rate
multipliers for the optimizer, switches layers at the start of each epoch, augments training
batches and computes the training loss (label smoothing, mixup, L1). Everything it does is
written into ``events`` so the run's history says what happened.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from tunelab.config import (
    AugmentationConfig,
    BatchNormConfig,
    FinetuningConfig,
    RegularizationConfig,
    RunConfig,
)
from tunelab.techniques import batchnorm, finetuning, regularization
from tunelab.training.batching import Batches
from tunelab.training.losses import loss_function

if TYPE_CHECKING:
    from tunelab.techniques.augmentation import Augmenter, Mix

LossFn = Any  # Callable[[Tensor, Tensor], Tensor]


@dataclass
class TechniquePlan:
    """What the techniques do to one training run.

    Args:
        loss_fn: the training loss before mixing and L1 (label smoothing included).
        regularization: dropout, L1, L2, smoothing, clipping (``enabled`` already applied).
        batch_norm: BN momentum and backbone BN mode.
        finetuning: the transfer strategy.
        augmenter: batch augmentation, or None.
    """

    loss_fn: LossFn
    regularization: RegularizationConfig = field(default_factory=lambda: regularization.OFF)
    batch_norm: BatchNormConfig = field(default_factory=BatchNormConfig)
    finetuning: FinetuningConfig = field(default_factory=FinetuningConfig)
    augmenter: Augmenter | None = None
    events: list[str] = field(default_factory=list)
    _frozen_bn: list[nn.Module] = field(default_factory=list)
    _frozen_layers: list[tuple[nn.Module | None, list[nn.Parameter]]] = field(
        default_factory=list
    )
    _backbone: nn.Module | None = None
    _l1_weights: list[nn.Parameter] = field(default_factory=list)

    @property
    def weight_decay(self) -> float:
        return self.regularization.weight_decay

    @property
    def grad_clip(self) -> float | None:
        return self.regularization.grad_clip

    # -- before training -------------------------------------------------------------------

    def prepare(self, model: nn.Module, train: Batches) -> list[str]:
        """Apply the build-time techniques to a fresh model; returns what was done."""
        done: list[str] = []
        strategy = self.finetuning.strategy
        finetuning.check_model(model, self.finetuning)
        if strategy == "scratch":
            count = finetuning.reinitialize(model)
            done.append(f"finetuning: scratch, re-initialized {count} layers")
        rate = self.regularization.backbone_dropout
        if rate is not None:
            count = regularization.set_backbone_dropout(model, rate)
            done.append(f"regularization: backbone dropout {rate} on {count} layers")
        if self.batch_norm.momentum is not None:
            count = batchnorm.set_momentum(model, self.batch_norm.momentum)
            done.append(f"batch_norm: momentum {self.batch_norm.momentum} on {count} layers")
        if self.batch_norm.backbone != "trainable" and hasattr(model, "backbone"):
            layers = batchnorm.backbone_bn_layers(model)
            if self.batch_norm.backbone == "reestimate" and layers:
                rows = batchnorm.reestimate(model, list(layers), train)
                done.append(
                    f"batch_norm: re-estimated {len(layers)} backbone BN layers on "
                    f"{rows} training rows"
                )
            self._frozen_bn = list(layers)
            batchnorm.freeze(layers)
            done.append(f"batch_norm: {len(layers)} backbone BN layers frozen")
        frozen = finetuning.frozen_at_start(model, self.finetuning)
        if frozen:
            for _, params in frozen:
                for param in params:
                    param.requires_grad_(False)
            self._frozen_layers = frozen
            self._backbone = finetuning.backbone_of(model)
            count = sum(p.numel() for _, params in frozen for p in params)
            done.append(f"finetuning: {strategy}, backbone frozen ({count} parameters)")
        if self.regularization.l1 > 0:
            self._l1_weights = regularization.penalized_weights(model)
        self.events.extend(done)
        return done

    def lr_scales(self, model: nn.Module) -> dict[int, float]:
        return finetuning.lr_scales(model, self.finetuning)

    # -- every epoch -----------------------------------------------------------------------

    def on_epoch_start(self, epoch: int, model: nn.Module, add_params: Any) -> list[str]:
        """Unfreeze what the strategy says, then re-apply eval modes after ``model.train()``.

        Args:
            add_params: ``add_params(params, lr_scale)`` adds newly trainable parameters to
                the optimizer.
        """
        done: list[str] = []
        indices = finetuning.to_unfreeze(epoch, self._frozen_layers, self.finetuning)
        for index in indices:
            _, params = self._frozen_layers[index]
            for param in params:
                param.requires_grad_(True)
            add_params(params, self.finetuning.backbone_lr_mult)
            if self.regularization.l1 > 0:
                self._l1_weights += [p for p in params if p.ndim >= 2]
        if indices:
            total = len(self._frozen_layers)
            done.append(f"finetuning: unfroze backbone group(s) {indices} of {total}")
        self._frozen_eval()
        if self._frozen_bn:
            batchnorm.freeze(self._frozen_bn)  # type: ignore[arg-type]
        self.events.extend(f"epoch {epoch}: {d}" for d in done)
        return done

    def _frozen_eval(self) -> None:
        """Frozen layers run in eval mode (no dropout, BN statistics kept); an unfrozen one
        trains in full, while the layers below it may still be frozen (``gradual``)."""
        still = [(module, not any(p.requires_grad for p in params))
                 for module, params in self._frozen_layers]
        if self._backbone is not None and still and all(frozen for _, frozen in still):
            self._backbone.eval()  # the whole backbone, modules outside the groups too
            return
        for module, frozen in still:
            if frozen and module is not None:
                module.eval()

    # -- every batch -----------------------------------------------------------------------

    def augment(
        self, features: tuple[torch.Tensor, ...], target: torch.Tensor
    ) -> tuple[tuple[torch.Tensor, ...], Mix | None]:
        if self.augmenter is None:
            return features, None
        return self.augmenter(features, target)

    def loss(self, outputs: torch.Tensor, target: torch.Tensor, mix: Mix | None) -> torch.Tensor:
        loss: torch.Tensor
        if mix is None:
            loss = self.loss_fn(outputs, target)
        else:
            from tunelab.techniques.augmentation import mixed_loss

            loss = mixed_loss(self.loss_fn, outputs, target, mix)
        if self._l1_weights:
            loss = loss + self.regularization.l1 * regularization.l1_penalty(self._l1_weights)
        return loss

    def describe(self) -> dict[str, Any]:
        """What is on, for metrics.json."""
        return {
            "regularization": regularization.describe(self.regularization),
            "batch_norm": self.batch_norm.model_dump(),
            "finetuning": self.finetuning.model_dump(),
            "augmentation": self.augmenter.describe() if self.augmenter else None,
            "events": list(self.events),
        }


def build_plan(
    cfg: RunConfig, *, task: str, modality: str, encoder: Any, tokenizer: Any = None
) -> TechniquePlan:
    """The plan for one run of ``cfg`` on data of ``task`` and ``modality``.

    Raises:
        ConfigError: an augmentation that does not fit the data (it names those that do).
    """
    reg = regularization.effective(cfg.regularization)
    return TechniquePlan(
        loss_fn=loss_function(task, label_smoothing=reg.label_smoothing),
        regularization=reg,
        batch_norm=cfg.batch_norm,
        finetuning=cfg.finetuning,
        augmenter=_augmenter(cfg, modality=modality, encoder=encoder, tokenizer=tokenizer),
    )


def _augmenter(cfg: RunConfig, *, modality: str, encoder: Any, tokenizer: Any) -> Augmenter | None:
    if not cfg.augmentation.enabled or cfg.augmentation == AugmentationConfig():
        return None  # off: do not even import kornia
    from tunelab.techniques.augmentation import AugmentContext, build_augmenter

    mean, std = getattr(encoder, "mean", None), getattr(encoder, "std", None)
    specials = tuple(getattr(tokenizer, "all_special_ids", []) or [])
    context = AugmentContext(
        modality=modality,  # type: ignore[arg-type]
        channel_mean=tuple(mean) if mean is not None else None,
        channel_std=tuple(std) if std is not None else None,
        numeric_columns=len(getattr(encoder, "numeric", []) or []),
        mask_token_id=getattr(tokenizer, "mask_token_id", None),
        pad_token_id=getattr(tokenizer, "pad_token_id", None),
        special_token_ids=specials,
    )
    return build_augmenter(cfg.augmentation, context)
