"""Data augmentation on training batches (never validation or test batches).

Interface (fixed; the training loop relies on it)::

    context = AugmentContext(modality=..., channel_mean=..., channel_std=...,
                             numeric_columns=..., mask_token_id=..., pad_token_id=...,
                             special_token_ids=...)
    augmenter = build_augmenter(cfg.augmentation, context)   # None when nothing is on
    features, mix = augmenter(features, target)               # training batches only
    loss = mixed_loss(loss_fn, outputs, target, mix)          # mix is None without mixup/cutmix

What each modality gets (``FIELDS_BY_MODALITY``, in ``tunelab.applies``):

- image ``(N, C, H, W)``, standardized per channel: rotation, zoom, crop and the flips are
  fused into one random affine warp per image (one resampling, one ``grid_sample`` per batch);
  color_jitter and policy (RandAugment / TrivialAugment) run through kornia on a ``[0, 1]``
  view of the batch; then noise, then mixup or cutmix.
- signal ``(N, C, L)``, standardized per channel: shift (circular), amplitude, time_mask,
  noise, mixup.
- tabular ``(N, F)``: noise on the numeric (first) columns only, mixup.
- text ``(input_ids, attention_mask)``: token_mask, token_dropout; special tokens and padding
  are never touched.

Randomness comes only from torch's global generators, so seeding the run seeds every batch.
Per-row parameters (angles, shifts, permutations, lam) are drawn on the CPU generator and
moved to the batch's device; element-wise noise and token coin flips are drawn on the device.
Inputs are never modified in place: the loop slices them from the in-memory dataset.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from tunelab.applies import FIELDS_BY_MODALITY, is_on
from tunelab.config import AugmentationConfig, RunConfig
from tunelab.errors import ConfigError, DataError
from tunelab.optional import optional_import
from tunelab.techniques.base import TECHNIQUES, DataFacts, Needs, TechniqueSpec
from tunelab.training.hooks import Batch, FitState, Technique

Modality = Literal["tabular", "image", "signal", "text"]
Features = tuple[Tensor, ...]
LossFn = Callable[[Tensor, Tensor], Tensor]

# torchvision's RandAugment defaults (num_ops=2, magnitude=9), on kornia's 0..30 scale.
_RANDAUGMENT_OPS = 2
_RANDAUGMENT_MAGNITUDE = 9
# RandomResizedCrop's usual aspect-ratio range (torchvision, kornia).
_CROP_LOG_RATIO = math.log(4 / 3)


@dataclass(frozen=True)
class AugmentContext:
    """What the augmenter must know about the encoded data.

    Attributes:
        modality: the kind of data.
        channel_mean: images: the ArrayEncoder's per-channel mean, in the raw units.
        channel_std: images: the ArrayEncoder's per-channel std.
        numeric_columns: tabular: the first ``numeric_columns`` encoded columns are numeric.
        mask_token_id: text: the tokenizer's mask token (needed by token_mask).
        pad_token_id: text: the tokenizer's padding token (needed by token_dropout).
        special_token_ids: text: tokens never masked or dropped (CLS, SEP, PAD, ...).
    """

    modality: Modality
    channel_mean: tuple[float, ...] | None = None
    channel_std: tuple[float, ...] | None = None
    numeric_columns: int = 0
    mask_token_id: int | None = None
    pad_token_id: int | None = None
    special_token_ids: tuple[int, ...] = ()


@dataclass(frozen=True)
class Mix:
    """What mixup or cutmix did to a batch.

    Attributes:
        target_b: the targets of each row's partner row.
        lam: the weight of the original targets (for cutmix, the kept area fraction).
    """

    target_b: Tensor
    lam: float


Step = Callable[[Tensor], Tensor]


class Augmenter:
    """Augments one training batch: ``features, mix = augmenter(features, target)``.

    Built by ``build_augmenter``; everything that can be prepared (kornia modules, fill
    values, distributions) is prepared once there, so a call is only the random draws and
    the tensor operations.
    """

    def __init__(
        self,
        *,
        modality: Modality,
        settings: dict[str, object],
        steps: list[Step],
        tokens: _TokenCorruption | None = None,
        mixer: _Mixer | None = None,
    ) -> None:
        self.modality = modality
        self._settings = settings
        self._steps = steps
        self._tokens = tokens
        self._mixer = mixer
        self._rank = {"image": 4, "signal": 3, "tabular": 2}.get(modality)

    def __call__(self, features: Features, target: Tensor) -> tuple[Features, Mix | None]:
        """Return the augmented features and, when mixup/cutmix ran, the ``Mix``."""
        if self._rank is not None and features[0].ndim != self._rank:
            raise DataError(
                f"augmentation for {self.modality} data expects batches with {self._rank} "
                f"dimensions, got shape {tuple(features[0].shape)}; check data.modality"
            )
        with torch.no_grad():
            if self._tokens is not None:
                features = self._tokens(features)
            if self._steps:
                x = features[0]
                for step in self._steps:
                    x = step(x)
                features = (x, *features[1:])
            if self._mixer is None:
                return features, None
            return self._mixer(features, target)

    def describe(self) -> dict[str, object]:
        """The fields that are on and their values, e.g. ``{"rotation": 15.0, "hflip": True}``."""
        return dict(self._settings)


def build_augmenter(cfg: AugmentationConfig, context: AugmentContext) -> Augmenter | None:
    """Build the augmenter for ``cfg`` on data described by ``context``.

    Args:
        cfg: the augmentation section of the run config.
        context: the modality and encoding facts of the data.

    Returns:
        None when ``cfg.enabled`` is False or every field is at its off value (0, False,
        ``"none"``); otherwise the augmenter.

    Raises:
        ConfigError: a field that is on does not fit the modality (the message lists the
            fields that do), or the data cannot support it (no mask token, no numeric column).
        MissingDependency: color_jitter or policy without kornia installed.

    Example::

        aug = build_augmenter(AugmentationConfig(rotation=15, hflip=True),
                              AugmentContext("image", channel_mean=(4.9,), channel_std=(6.0,)))
        features, mix = aug((images,), labels)
    """
    if not cfg.enabled:
        return None
    on = {name: getattr(cfg, name) for name in _field_names() if is_on(getattr(cfg, name))}
    if not on:
        return None
    modality = context.modality
    if modality not in FIELDS_BY_MODALITY:
        raise ValueError(f"unknown modality {modality!r}; expected {list(FIELDS_BY_MODALITY)}")
    _check_fit(on, modality)
    _check_data(on, context)
    mixer = None
    if "mixup" in on or "cutmix" in on:
        mixer = _Mixer(mixup=cfg.mixup, cutmix=cfg.cutmix)
    if modality == "text":
        tokens = _TokenCorruption(cfg.token_mask, cfg.token_dropout, context)
        return Augmenter(modality=modality, settings=on, steps=[], tokens=tokens)
    steps = _STEP_BUILDERS[modality](cfg, context)
    return Augmenter(modality=modality, settings=on, steps=steps, mixer=mixer)


def mixed_loss(loss_fn: LossFn, outputs: Tensor, target: Tensor, mix: Mix | None) -> Tensor:
    """The training loss of a batch that mixup or cutmix may have mixed.

    ``loss_fn(outputs, target)`` when ``mix`` is None, else
    ``lam * loss_fn(outputs, target) + (1 - lam) * loss_fn(outputs, mix.target_b)``.

    For class targets this is the usual mixup loss (cross-entropy is linear in the target
    distribution, so it equals the loss against the mixed one-hot target). For regression
    with mean squared error it has exactly the gradient of the loss against the mixed target
    ``lam * y + (1 - lam) * y_b``; its value is larger by the constant
    ``lam * (1 - lam) * mean((y - y_b) ** 2)``, so a mixed training loss reads higher than an
    unmixed one. Losses that are not quadratic (L1, Huber) do not have that equivalence.
    """
    if mix is None:
        return loss_fn(outputs, target)
    return mix.lam * loss_fn(outputs, target) + (1.0 - mix.lam) * loss_fn(outputs, mix.target_b)


# -- validation --------------------------------------------------------------------------


def _field_names() -> list[str]:
    return [name for name in AugmentationConfig.model_fields if name != "enabled"]


def _check_fit(on: dict[str, object], modality: str) -> None:
    fits = FIELDS_BY_MODALITY[modality]
    misfits = [name for name in on if name not in fits]
    if not misfits:
        return
    named = ", ".join(f"augmentation.{name}={on[name]!r}" for name in misfits)
    verb = "does" if len(misfits) == 1 else "do"
    valid = ", ".join(f"augmentation.{name}" for name in fits)
    raise ConfigError(
        f"{named} {verb} not apply to {modality} data; the augmentation fields for "
        f"{modality} data are: {valid}. Set {'it' if len(misfits) == 1 else 'them'} to 0 "
        "(false, or 'none' for policy), or pick fields from that list"
    )


def _check_data(on: dict[str, object], context: AugmentContext) -> None:
    if "token_mask" in on and context.mask_token_id is None:
        raise ConfigError(
            f"augmentation.token_mask={on['token_mask']!r}: the model's tokenizer has no mask "
            "token; set augmentation.token_mask to 0 and use augmentation.token_dropout instead"
        )
    if "token_dropout" in on and context.pad_token_id is None:
        raise ConfigError(
            f"augmentation.token_dropout={on['token_dropout']!r}: the model's tokenizer has no "
            "padding token; set augmentation.token_dropout to 0"
        )
    if context.modality == "tabular" and "noise" in on and context.numeric_columns <= 0:
        raise ConfigError(
            f"augmentation.noise={on['noise']!r}: the table has no numeric columns (noise is "
            "added to numeric columns only); set augmentation.noise to 0"
        )


# -- images ------------------------------------------------------------------------------


def _image_steps(cfg: AugmentationConfig, context: AugmentContext) -> list[Step]:
    steps: list[Step] = []
    if cfg.rotation or cfg.zoom or cfg.crop or cfg.hflip or cfg.vflip:
        steps.append(_AffineWarp(cfg, _fill_value(context)))
    if cfg.color_jitter or cfg.policy != "none":
        steps.append(_UnitRangeOps(cfg, context))
    if cfg.noise:
        steps.append(_Noise(cfg.noise))
    return steps


def _channel_stats(context: AugmentContext) -> tuple[Tensor, Tensor] | None:
    if context.channel_mean is None or context.channel_std is None:
        return None
    mean = torch.tensor(context.channel_mean, dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(context.channel_std, dtype=torch.float32).view(1, -1, 1, 1)
    return mean, std


def _fill_value(context: AugmentContext) -> Tensor | None:
    # Areas a warp uncovers get raw 0 (torchvision's fill=0: black), which in standardized
    # units is -mean/std. Without the statistics, 0 (the channel mean) is all we know.
    stats = _channel_stats(context)
    return None if stats is None else -stats[0] / stats[1]


def _like(value: Tensor, x: Tensor) -> Tensor:
    return value.to(device=x.device, dtype=x.dtype)


class _AffineWarp:
    """Rotation, zoom, random resized crop and flips as one affine warp per image.

    Fusing them resamples each image once (so an 8x8 digit is blurred once, not three times)
    and costs one ``affine_grid`` + ``grid_sample`` per batch instead of one kornia module
    per transform. With only flips on, rows are flipped exactly, without resampling.
    """

    def __init__(self, cfg: AugmentationConfig, fill: Tensor | None) -> None:
        self.rotation = math.radians(cfg.rotation)
        self.zoom = cfg.zoom
        self.crop = cfg.crop
        self.hflip = cfg.hflip
        self.vflip = cfg.vflip
        self.fill = fill
        self.warps = bool(cfg.rotation or cfg.zoom or cfg.crop)

    def __call__(self, x: Tensor) -> Tensor:
        n, _, h, w = x.shape
        if not self.warps:
            return self._flip(x)
        theta = self._theta(n, h, w)
        # align_corners=True: -1 and 1 are the centres of the corner pixels, so a crop box
        # at the image's edge samples no padding, and flips and quarter turns are exact.
        grid = F.affine_grid(_like(theta, x), [n, x.shape[1], h, w], align_corners=True)
        if self.fill is None:
            return F.grid_sample(x, grid, align_corners=True)
        # Sampling (x - fill) with zero padding, then adding fill back, pads with ``fill``:
        # bilinear interpolation commutes with a constant shift.
        fill = _like(self.fill, x)
        return F.grid_sample(x - fill, grid, align_corners=True) + fill

    def _flip(self, x: Tensor) -> Tensor:
        n = x.shape[0]
        for flag, dim in ((self.hflip, -1), (self.vflip, -2)):
            if flag:
                rows = (torch.rand(n) < 0.5).to(x.device).view(n, 1, 1, 1)
                x = torch.where(rows, x.flip(dim), x)
        return x

    def _theta(self, n: int, h: int, w: int) -> Tensor:
        """(n, 2, 3) maps from output to input coordinates, normalized to [-1, 1]."""
        # One draw from torch's generator, then the arithmetic on 8 x n numbers in numpy:
        # some thirty tiny ops, each a few microseconds cheaper than a torch dispatch.
        u = (torch.rand(8, n, dtype=torch.float64) * 2 - 1).numpy()
        # Pixel centres span (w - 1) x (h - 1) pixels in the normalized square [-1, 1]^2.
        aspect = max(h - 1, 1) / max(w - 1, 1)
        angle = u[0] * self.rotation
        inv_scale = 1 / (1 + u[1] * self.zoom)
        flip_x = np.where(u[2] < 0, -1.0, 1.0) if self.hflip else 1.0
        flip_y = np.where(u[3] < 0, -1.0, 1.0) if self.vflip else 1.0
        # The crop box, as fractions of the width and height and a centre in [-1, 1]:
        # area fraction U(1 - crop, 1), aspect ratio log-uniform in [3/4, 4/3] (in pixels).
        box_w: np.ndarray | float = 1.0
        box_h: np.ndarray | float = 1.0
        centre_x: np.ndarray | float = 0.0
        centre_y: np.ndarray | float = 0.0
        if self.crop:
            area = 1 - (u[4] + 1) / 2 * self.crop
            ratio = np.exp(u[5] * _CROP_LOG_RATIO)
            # A box wider or taller than the image bends the ratio, never the area.
            box_w = np.clip(np.sqrt(area * ratio * aspect), area, 1.0)
            box_h = area / box_w
            centre_x, centre_y = u[6] * (1 - box_w), u[7] * (1 - box_h)
        cos, sin = np.cos(angle) * inv_scale, np.sin(angle) * inv_scale
        # A rotation in pixels is, in normalized coordinates of a non-square image,
        # S^-1 R S with S = diag(w - 1, h - 1) / 2.
        theta = np.empty((n, 2, 3), dtype=np.float32)  # columns broadcast the scalars
        theta[:, 0, 0] = box_w * cos * flip_x
        theta[:, 0, 1] = -box_w * sin * flip_y * aspect
        theta[:, 0, 2] = centre_x
        theta[:, 1, 0] = box_h * sin * flip_x / aspect
        theta[:, 1, 1] = box_h * cos * flip_y
        theta[:, 1, 2] = centre_y
        return torch.from_numpy(theta)


class _UnitRangeOps:
    """kornia's colour jitter and policies, which expect images in [0, 1].

    The batch is un-standardized with the encoder's statistics and min-max scaled over the
    whole batch (all channels together, so colours keep their balance), augmented, and
    mapped back exactly. Min-max rather than an assumed 0..255: sklearn's digits are 0..16,
    photos 0..255, float arrays 0..1, and a batch of 64 images spans nearly the full range
    of any of them, so the darkest pixel of the batch is black and the brightest white.
    """

    def __init__(self, cfg: AugmentationConfig, context: AugmentContext) -> None:
        augmentation = _kornia()
        modules: list[Any] = []
        if cfg.color_jitter:
            strength = cfg.color_jitter
            modules.append(augmentation.ColorJitter(brightness=strength, contrast=strength, p=1.0))
        if cfg.policy == "randaugment":
            modules.append(
                augmentation.auto.RandAugment(
                    n=_RANDAUGMENT_OPS,
                    m=_RANDAUGMENT_MAGNITUDE,
                    policy=_randaugment_policy(context),
                )
            )
        elif cfg.policy == "trivialaugment":
            modules.append(augmentation.auto.TrivialAugment())
        self.ops = torch.nn.Sequential(*modules)
        self.stats = _channel_stats(context)

    def __call__(self, x: Tensor) -> Tensor:
        mean: Tensor | float = 0.0
        std: Tensor | float = 1.0
        if self.stats is not None:
            mean, std = _like(self.stats[0], x), _like(self.stats[1], x)
        raw = x * std + mean
        low = raw.amin()
        span = (raw.amax() - low).clamp_min(1e-6)
        out: Tensor = self.ops((raw - low) / span)
        return (out * span + low - mean) / std


def _randaugment_policy(context: AugmentContext) -> list[Any] | None:
    # kornia's "color" (saturation) operation needs 3 channels; other images get the
    # default policy without it (None means the default policy).
    channels = len(context.channel_mean) if context.channel_mean is not None else None
    if channels == 3:
        return None
    from kornia.augmentation.auto.rand_augment.rand_augment import default_policy

    return [sub for sub in default_policy if sub[0][0] != "color"]


def _kornia() -> Any:
    return optional_import(
        "kornia.augmentation",
        package="kornia",
        extra="augment",
        purpose="augmentation.color_jitter and augmentation.policy",
    )


# -- signals and tables ------------------------------------------------------------------


class _Noise:
    """Adds N(0, std) in standardized units, to the first ``columns`` columns if given."""

    def __init__(self, std: float, columns: int | None = None) -> None:
        self.std = std
        self.columns = columns

    def __call__(self, x: Tensor) -> Tensor:
        if self.columns is None:
            return x + torch.randn_like(x) * self.std
        numeric = x[:, : self.columns]
        noisy = numeric + torch.randn_like(numeric) * self.std
        return torch.cat([noisy, x[:, self.columns :]], dim=1)


def _signal_steps(cfg: AugmentationConfig, context: AugmentContext) -> list[Step]:
    steps: list[Step] = []
    if cfg.shift:
        steps.append(lambda x: _shift(x, cfg.shift))
    if cfg.amplitude:
        steps.append(lambda x: _amplitude(x, cfg.amplitude))
    if cfg.time_mask:
        steps.append(lambda x: _time_mask(x, cfg.time_mask))
    if cfg.noise:
        steps.append(_Noise(cfg.noise))
    return steps


def _shift(x: Tensor, fraction: float) -> Tensor:
    """Rolls each row (all its channels together) by a random integer in ±fraction·L.

    Circular, so no values are invented at the ends: right for periodic or stationary
    signals; for others the wrapped-around end is a seam the model sees.
    """
    n, channels, length = x.shape
    most = int(fraction * length)
    if most == 0:
        return x
    offsets = torch.randint(-most, most + 1, (n, 1))
    index = (torch.arange(length).view(1, -1) - offsets) % length
    index = index.to(x.device).view(n, 1, length).expand(n, channels, length)
    return torch.gather(x, 2, index)


def _amplitude(x: Tensor, fraction: float) -> Tensor:
    # Scales the standardized values, i.e. each row's deviation from the channel mean;
    # a constant offset in the raw signal is left where it is.
    factor = 1 + (torch.rand(x.shape[0]) * 2 - 1) * fraction
    return x * _like(factor, x).view(-1, 1, 1)


def _time_mask(x: Tensor, fraction: float) -> Tensor:
    """Sets a random span of up to fraction·L steps per row to 0 (the channel mean)."""
    n, _, length = x.shape
    span = torch.randint(0, int(fraction * length) + 1, (n, 1))
    start = (torch.rand(n, 1) * (length - span + 1)).floor()
    steps = torch.arange(length).view(1, -1)
    masked = ((steps >= start) & (steps < start + span)).to(x.device).view(n, 1, length)
    return x.masked_fill(masked, 0.0)


def _tabular_steps(cfg: AugmentationConfig, context: AugmentContext) -> list[Step]:
    # One-hot columns stay 0/1: noise there would describe categories that do not exist.
    return [_Noise(cfg.noise, columns=context.numeric_columns)] if cfg.noise else []


_STEP_BUILDERS: dict[str, Callable[[AugmentationConfig, AugmentContext], list[Step]]] = {
    "image": _image_steps,
    "signal": _signal_steps,
    "tabular": _tabular_steps,
}


# -- text --------------------------------------------------------------------------------


class _TokenCorruption:
    """token_mask replaces tokens with the mask token; token_dropout with the padding token
    and a 0 in the attention mask (positions stay where they are, so later tokens keep their
    position ids). Special tokens and padding are never chosen."""

    def __init__(self, mask_rate: float, drop_rate: float, context: AugmentContext) -> None:
        self.mask_rate = mask_rate
        self.drop_rate = drop_rate
        self.mask_id = context.mask_token_id
        self.pad_id = context.pad_token_id
        kept = {*context.special_token_ids, self.mask_id, self.pad_id} - {None}
        self.protected = torch.tensor(sorted(kept), dtype=torch.long)

    def __call__(self, features: Features) -> Features:
        ids, rest = features[0], features[1:]
        attention = rest[0] if rest else None
        eligible = ~torch.isin(ids, self.protected.to(ids.device))
        if attention is not None:
            eligible &= attention.bool()
        if self.mask_rate and self.mask_id is not None:
            chosen = (torch.rand(ids.shape, device=ids.device) < self.mask_rate) & eligible
            ids = ids.masked_fill(chosen, self.mask_id)
        if self.drop_rate and self.pad_id is not None:
            chosen = (torch.rand(ids.shape, device=ids.device) < self.drop_rate) & eligible
            ids = ids.masked_fill(chosen, self.pad_id)
            if attention is not None:
                attention = attention.masked_fill(chosen, 0)
        if attention is None:
            return (ids, *rest)
        return (ids, attention, *rest[1:])


# -- mixup and cutmix --------------------------------------------------------------------


class _Mixer:
    """Mixup and cutmix with a random partner row; picks one per batch when both are on."""

    def __init__(self, *, mixup: float, cutmix: float) -> None:
        self.mixup = _beta(mixup) if mixup > 0 else None
        self.cutmix = _beta(cutmix) if cutmix > 0 else None

    def __call__(self, features: Features, target: Tensor) -> tuple[Features, Mix]:
        n = target.shape[0]
        perm = torch.randperm(n)
        use_cutmix = self.cutmix is not None and (self.mixup is None or bool(torch.rand(()) < 0.5))
        if use_cutmix:
            assert self.cutmix is not None
            features, lam = self._cut(features, perm, float(self.cutmix.sample()))
        else:
            assert self.mixup is not None
            lam = float(self.mixup.sample())
            features = tuple(
                torch.lerp(f[perm.to(f.device)], f, lam) if f.is_floating_point() else f
                for f in features
            )
        return features, Mix(target_b=target[perm.to(target.device)], lam=lam)

    @staticmethod
    def _cut(features: Features, perm: Tensor, lam: float) -> tuple[Features, float]:
        """Pastes a box of about (1 - lam) of the area from the partner image; the same box
        for the whole batch. Returns the exact kept fraction as the new lam."""
        h, w = features[0].shape[-2:]
        cut = math.sqrt(1.0 - lam)
        cut_h, cut_w = round(h * cut), round(w * cut)
        centre_y, centre_x = int(torch.randint(h, ())), int(torch.randint(w, ()))
        top, bottom = max(centre_y - cut_h // 2, 0), min(centre_y - cut_h // 2 + cut_h, h)
        left, right = max(centre_x - cut_w // 2, 0), min(centre_x - cut_w // 2 + cut_w, w)
        mixed = []
        for f in features:
            if f.ndim == 4 and f.is_floating_point():
                f = f.clone()
                partner = f[perm.to(f.device), :, top:bottom, left:right]
                f[:, :, top:bottom, left:right] = partner
            mixed.append(f)
        kept = 1.0 - (bottom - top) * (right - left) / (h * w)
        return tuple(mixed), kept


def _beta(alpha: float) -> torch.distributions.Beta:
    concentration = torch.tensor(float(alpha))
    return torch.distributions.Beta(concentration, concentration, validate_args=False)


# -- the plug-in ---------------------------------------------------------------------------


class Augmentation(Technique):
    """Augments every training batch; with mixup or cutmix the batch's loss mixes the two
    targets (``mixed_loss``)."""

    name = "augmentation"

    def __init__(self, augmenter: Augmenter) -> None:
        self.augmenter = augmenter

    def on_batch(self, batch: Batch, fit: FitState) -> Batch:
        features, mix = self.augmenter(batch.features, batch.target)
        if mix is None:
            return Batch(features, batch.target)
        target = batch.target
        return Batch(features, target, loss=lambda out, fn: mixed_loss(fn, out, target, mix))

    def describe(self) -> dict[str, Any]:
        return self.augmenter.describe()


def context_of(facts: DataFacts) -> AugmentContext:
    """The encoding facts the augmenter needs, read off the fitted encoder and tokenizer."""
    encoder, tokenizer = facts.encoder, facts.tokenizer
    mean, std = getattr(encoder, "mean", None), getattr(encoder, "std", None)
    return AugmentContext(
        modality=facts.modality,  # type: ignore[arg-type]
        channel_mean=tuple(mean) if mean is not None else None,
        channel_std=tuple(std) if std is not None else None,
        numeric_columns=len(getattr(encoder, "numeric", []) or []),
        mask_token_id=getattr(tokenizer, "mask_token_id", None),
        pad_token_id=getattr(tokenizer, "pad_token_id", None),
        special_token_ids=tuple(getattr(tokenizer, "all_special_ids", []) or []),
    )


def _build(cfg: RunConfig, facts: DataFacts) -> Augmentation | None:
    augmenter = build_augmenter(cfg.augmentation, context_of(facts))
    return Augmentation(augmenter) if augmenter is not None else None


# fields that change a batch of features, not the raw inputs: they apply to a frozen
# backbone's cached features (in standardized units, like a table's)
FEATURE_AUGMENTATIONS = ("noise", "mixup")


def _changes_inputs(cfg: RunConfig, model: Any, head_only: bool) -> str | None:
    aug = cfg.augmentation
    allowed = FEATURE_AUGMENTATIONS if head_only else ()
    raw = [
        name
        for name, value in aug.model_dump().items()
        if name != "enabled" and value not in (0, False, "none") and name not in allowed
    ]
    if aug.enabled and raw:
        return f"augmentation.{raw[0]} changes the raw inputs every epoch"
    return None


TECHNIQUES.register("augmentation")(
    TechniqueSpec(
        name="augmentation",
        order=40,
        off={"augmentation.enabled": False},
        build=_build,
        needs=Needs(changes_inputs=_changes_inputs),
    )
)
