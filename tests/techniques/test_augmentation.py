"""Batch augmentation: every field changes what it should and nothing else, reproducibly."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from tunelab.config import AugmentationConfig
from tunelab.errors import ConfigError, DataError
from tunelab.techniques.augmentation import (
    FIELDS_BY_MODALITY,
    AugmentContext,
    Augmenter,
    Mix,
    build_augmenter,
    mixed_loss,
)

CLS, SEP, PAD, MASK = 101, 102, 0, 103


def _images(channels: int, size: int, n: int = 32) -> tuple[torch.Tensor, AugmentContext]:
    """Standardized digit-like images (raw 0..16) and the context the encoder would give."""
    generator = torch.Generator().manual_seed(7)
    raw = torch.randint(0, 17, (n, channels, size, size), generator=generator).float()
    mean = raw.mean(dim=(0, 2, 3))
    std = raw.std(dim=(0, 2, 3))
    x = (raw - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)
    context = AugmentContext(
        "image", channel_mean=tuple(mean.tolist()), channel_std=tuple(std.tolist())
    )
    return x, context


def _signals(n: int = 16, channels: int = 2, length: int = 50) -> torch.Tensor:
    # Offset by 5 so that no value is 0 before a time mask sets some to 0.
    return torch.randn(n, channels, length, generator=torch.Generator().manual_seed(3)) + 5.0


def _texts(n: int = 64, length: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
    """[CLS] words [SEP] [PAD]... with random real lengths."""
    generator = torch.Generator().manual_seed(5)
    ids = torch.randint(1000, 2000, (n, length), generator=generator)
    lengths = torch.randint(10, length + 1, (n,), generator=generator)
    positions = torch.arange(length).view(1, -1)
    ids[:, 0] = CLS
    ids[positions == (lengths.view(-1, 1) - 1)] = SEP
    ids[positions >= lengths.view(-1, 1)] = PAD
    attention = (positions < lengths.view(-1, 1)).long()
    return ids, attention


TEXT_CONTEXT = AugmentContext(
    "text", mask_token_id=MASK, pad_token_id=PAD, special_token_ids=(CLS, SEP, PAD, MASK)
)


def _build(context: AugmentContext, **fields: Any) -> Augmenter:
    augmenter = build_augmenter(AugmentationConfig(**fields), context)
    assert augmenter is not None
    return augmenter


def _run(augmenter: Augmenter, features: tuple[torch.Tensor, ...], seed: int = 0) -> Any:
    torch.manual_seed(seed)
    return augmenter(features, torch.arange(len(features[0])))


# -- every field changes the inputs ------------------------------------------------------

IMAGE_FIELDS = [
    ("rotation", 30.0),
    ("zoom", 0.3),
    ("crop", 0.5),
    ("hflip", True),
    ("vflip", True),
    ("color_jitter", 0.5),
    ("policy", "randaugment"),
    ("policy", "trivialaugment"),
    ("noise", 0.1),
    ("mixup", 1.0),
    ("cutmix", 1.0),
]


@pytest.mark.parametrize(("channels", "size"), [(1, 8), (3, 8), (1, 16), (3, 16)])
@pytest.mark.parametrize(("field", "value"), IMAGE_FIELDS)
def test_augment_image_field_changes_batch(
    channels: int, size: int, field: str, value: Any
) -> None:
    x, context = _images(channels, size)
    original = x.clone()
    (out,), _ = _run(_build(context, **{field: value}), (x,))
    assert out.shape == x.shape
    assert torch.isfinite(out).all()
    assert not torch.allclose(out, x, atol=1e-3)
    assert torch.equal(x, original), "the input batch was modified in place"


def test_augment_randaugment_runs_on_grayscale_every_time() -> None:
    # kornia's saturation op needs 3 channels; the grayscale policy must leave it out.
    x, context = _images(1, 8)
    augmenter = _build(context, policy="randaugment")
    torch.manual_seed(0)
    for _ in range(30):
        (out,), _ = augmenter((x,), torch.zeros(len(x)))
        assert out.shape == x.shape


def test_augment_images_without_channel_statistics() -> None:
    x, _ = _images(3, 8)
    (out,), _ = _run(_build(AugmentContext("image"), rotation=20, color_jitter=0.5), (x,))
    assert out.shape == x.shape
    assert torch.isfinite(out).all()
    assert not torch.allclose(out, x, atol=1e-3)


def test_augment_warp_fills_uncovered_area_with_raw_zero() -> None:
    # Raw value 10 everywhere, mean 4 and std 2: the image is 3.0 standardized, and raw 0
    # (what a rotation uncovers in the corners) is -2.0.
    context = AugmentContext("image", channel_mean=(4.0,), channel_std=(2.0,))
    x = torch.full((16, 1, 8, 8), 3.0)
    (out,), _ = _run(_build(context, rotation=45), (x,))
    assert out.min() >= -2.0 - 1e-5 and out.max() <= 3.0 + 1e-5
    assert torch.isclose(out, torch.tensor(-2.0), atol=1e-4).any()


def test_augment_flips_are_exact_mirror_images() -> None:
    x, context = _images(1, 8)
    (out,), _ = _run(_build(context, hflip=True), (x,))
    flipped = torch.tensor([torch.equal(o, i.flip(-1)) for o, i in zip(out, x, strict=True)])
    kept = torch.tensor([torch.equal(o, i) for o, i in zip(out, x, strict=True)])
    assert (flipped | kept).all() and flipped.any() and kept.any()


SIGNAL_FIELDS = [
    ("shift", 0.2),
    ("amplitude", 0.3),
    ("time_mask", 0.2),
    ("noise", 0.1),
    ("mixup", 1.0),
]


@pytest.mark.parametrize(("field", "value"), SIGNAL_FIELDS)
def test_augment_signal_field_changes_batch(field: str, value: Any) -> None:
    x = _signals()
    original = x.clone()
    (out,), _ = _run(_build(AugmentContext("signal"), **{field: value}), (x,))
    assert out.shape == x.shape
    assert not torch.allclose(out, x, atol=1e-3)
    assert torch.equal(x, original), "the input batch was modified in place"


def test_augment_shift_rolls_each_row_within_range() -> None:
    x = _signals(length=50)
    (out,), _ = _run(_build(AugmentContext("signal"), shift=0.1), (x,))
    for row_in, row_out in zip(x, out, strict=True):
        # All channels of a row move together, by at most 0.1 * 50 = 5 steps.
        matches = [k for k in range(-5, 6) if torch.equal(torch.roll(row_in, k, dims=-1), row_out)]
        assert len(matches) == 1


def test_augment_amplitude_scales_each_row_within_range() -> None:
    x = _signals()
    (out,), _ = _run(_build(AugmentContext("signal"), amplitude=0.2), (x,))
    ratio = out / x
    per_row = ratio[:, :1, :1]
    assert torch.allclose(ratio, per_row.expand_as(ratio), atol=1e-5)
    assert per_row.min() >= 0.8 - 1e-6 and per_row.max() <= 1.2 + 1e-6
    assert per_row.std() > 0


def test_augment_time_mask_zeroes_one_short_span_per_row() -> None:
    x = _signals(length=50)
    (out,), _ = _run(_build(AugmentContext("signal"), time_mask=0.2), (x,))
    zero = (out == 0).all(dim=1)  # (rows, length): every channel masked together
    assert torch.equal(out == 0, zero.unsqueeze(1).expand_as(out))
    assert torch.equal(out[~zero.unsqueeze(1).expand_as(out)], x[~zero.unsqueeze(1).expand_as(x)])
    for row in zero:
        span = row.nonzero().flatten()
        assert len(span) <= 10
        if len(span):
            assert span[-1] - span[0] + 1 == len(span)
    assert zero.any()


def test_augment_tabular_noise_only_on_numeric_columns() -> None:
    numeric = torch.randn(32, 3)
    one_hot = torch.nn.functional.one_hot(torch.randint(0, 4, (32,)), 4).float()
    x = torch.cat([numeric, one_hot], dim=1)
    (out,), _ = _run(_build(AugmentContext("tabular", numeric_columns=3), noise=0.1), (x,))
    assert torch.equal(out[:, 3:], one_hot)
    assert (out[:, :3] != numeric).all()
    assert (out[:, :3] - numeric).abs().max() < 1.0


def test_augment_tabular_noise_without_numeric_columns_is_config_error() -> None:
    with pytest.raises(ConfigError, match=r"augmentation\.noise"):
        build_augmenter(AugmentationConfig(noise=0.1), AugmentContext("tabular"))


@pytest.mark.parametrize("rate", [0.15, 0.4])
def test_augment_token_mask_hits_only_ordinary_tokens_at_the_rate(rate: float) -> None:
    ids, attention = _texts()
    (out_ids, out_attention), mix = _run(_build(TEXT_CONTEXT, token_mask=rate), (ids, attention))
    ordinary = (attention == 1) & (ids != CLS) & (ids != SEP)
    masked = out_ids != ids
    assert mix is None
    assert (out_ids[masked] == MASK).all()
    assert not (masked & ~ordinary).any(), "a special or padding token was masked"
    assert torch.equal(out_attention, attention)
    assert masked.sum() / ordinary.sum() == pytest.approx(rate, abs=0.03)


def test_augment_token_dropout_pads_and_unmasks_ordinary_tokens() -> None:
    ids, attention = _texts()
    (out_ids, out_attention), _ = _run(_build(TEXT_CONTEXT, token_dropout=0.2), (ids, attention))
    ordinary = (attention == 1) & (ids != CLS) & (ids != SEP)
    dropped = out_ids != ids
    assert (out_ids[dropped] == PAD).all()
    assert torch.equal(out_attention == 0, (attention == 0) | dropped)
    assert not (dropped & ~ordinary).any()
    assert dropped.sum() / ordinary.sum() == pytest.approx(0.2, abs=0.03)


def test_augment_token_mask_without_mask_token_is_config_error() -> None:
    context = AugmentContext("text", pad_token_id=PAD, special_token_ids=(CLS, SEP, PAD))
    with pytest.raises(ConfigError, match=r"augmentation\.token_mask.*no mask token"):
        build_augmenter(AugmentationConfig(token_mask=0.1), context)


# -- reproducibility ---------------------------------------------------------------------

_IMAGES_3, _IMAGE_CONTEXT_3 = _images(3, 16)
REPRO_CASES = [
    (
        _IMAGE_CONTEXT_3,
        {"rotation": 20, "zoom": 0.2, "crop": 0.3, "hflip": True, "vflip": True,
         "color_jitter": 0.3, "policy": "trivialaugment", "noise": 0.05, "mixup": 0.4,
         "cutmix": 1.0},
        (_IMAGES_3,),
    ),
    (
        AugmentContext("signal"),
        {"shift": 0.2, "amplitude": 0.2, "time_mask": 0.1, "noise": 0.1, "mixup": 0.4},
        (_signals(),),
    ),
    (
        AugmentContext("tabular", numeric_columns=4),
        {"noise": 0.1, "mixup": 0.4},
        (torch.randn(32, 6),),
    ),
    (TEXT_CONTEXT, {"token_mask": 0.2, "token_dropout": 0.1}, _texts()),
]  # fmt: skip


@pytest.mark.parametrize(("context", "fields", "features"), REPRO_CASES, ids=lambda c: "")
def test_augment_same_seed_same_batch_other_seed_other_batch(
    context: AugmentContext, fields: dict[str, Any], features: tuple[torch.Tensor, ...]
) -> None:
    augmenter = _build(context, **fields)
    first, mix_first = _run(augmenter, features, seed=0)
    again, mix_again = _run(augmenter, features, seed=0)
    other, _ = _run(augmenter, features, seed=1)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(first, other, strict=True))
    if mix_first is not None:
        assert mix_again is not None and mix_first.lam == mix_again.lam
        assert torch.equal(mix_first.target_b, mix_again.target_b)


# -- off and misfits ---------------------------------------------------------------------


@pytest.mark.parametrize("modality", list(FIELDS_BY_MODALITY))
def test_augment_off_builds_nothing(modality: Any) -> None:
    context = AugmentContext(modality, mask_token_id=MASK, pad_token_id=PAD, numeric_columns=2)
    assert build_augmenter(AugmentationConfig(), context) is None
    explicit_off = AugmentationConfig(rotation=0, hflip=False, policy="none", noise=0.0, mixup=0)
    assert build_augmenter(explicit_off, context) is None
    on_values: dict[str, Any] = {"hflip": True, "vflip": True, "policy": "trivialaugment"}
    fits = {name: on_values.get(name, 0.1) for name in FIELDS_BY_MODALITY[modality]}
    assert build_augmenter(AugmentationConfig(**fits), context) is not None
    assert build_augmenter(AugmentationConfig(enabled=False, **fits), context) is None


@pytest.mark.parametrize(
    ("modality", "field", "value"),
    [("tabular", "rotation", 15.0), ("image", "token_mask", 0.1), ("signal", "cutmix", 1.0)],
)
def test_augment_misfit_names_field_and_lists_fitting_ones(
    modality: Any, field: str, value: Any
) -> None:
    context = AugmentContext(modality, numeric_columns=2, channel_mean=(0.0,), channel_std=(1.0,))
    with pytest.raises(ConfigError) as caught:
        build_augmenter(AugmentationConfig(**{field: value}), context)
    message = str(caught.value)
    assert f"augmentation.{field}" in message
    assert modality in message
    listed = message.split("are:")[1]
    for fitting in FIELDS_BY_MODALITY[modality]:
        assert f"augmentation.{fitting}" in listed
    assert f"augmentation.{field}" not in listed


def test_augment_misfits_are_named_together() -> None:
    with pytest.raises(ConfigError) as caught:
        build_augmenter(AugmentationConfig(rotation=10, hflip=True, noise=0.1), TEXT_CONTEXT)
    message = str(caught.value)
    assert "augmentation.rotation" in message and "augmentation.hflip" in message
    assert "augmentation.noise" in message and "1 problem" in message


def test_augment_image_augmenter_refuses_flat_rows() -> None:
    _, context = _images(1, 8)
    with pytest.raises(DataError, match="4 dimensions"):
        _run(_build(context, rotation=10), (torch.randn(8, 64),))


def test_augment_describe_lists_the_fields_that_are_on() -> None:
    _, context = _images(1, 8)
    augmenter = _build(context, rotation=15, hflip=True, policy="randaugment")
    assert augmenter.describe() == {"rotation": 15.0, "hflip": True, "policy": "randaugment"}


# -- mixup, cutmix and the mixed loss ----------------------------------------------------


@pytest.mark.parametrize(
    ("context", "features"),
    [
        (_IMAGE_CONTEXT_3, _IMAGES_3),
        (AugmentContext("signal"), _signals()),
        (AugmentContext("tabular", numeric_columns=2), torch.randn(32, 5)),
    ],
    ids=["image", "signal", "tabular"],
)
def test_augment_mixup_blends_each_row_with_its_partner(
    context: AugmentContext, features: torch.Tensor
) -> None:
    augmenter = _build(context, mixup=0.4)
    lams = []
    for seed in range(5):
        # Targets 0..n-1, so the partner targets are the permutation itself.
        (out,), mix = _run(augmenter, (features,), seed=seed)
        assert isinstance(mix, Mix) and 0.0 <= mix.lam <= 1.0
        assert torch.equal(mix.target_b.sort().values, torch.arange(len(features)))
        expected = mix.lam * features + (1 - mix.lam) * features[mix.target_b]
        assert torch.allclose(out, expected, atol=1e-5)
        lams.append(mix.lam)
    assert len(set(lams)) == len(lams)


def test_augment_cutmix_pastes_one_box_and_lam_is_the_kept_area() -> None:
    n, size = 16, 16
    _, context = _images(1, size)
    # Row i is the constant i, so every output pixel says which row it came from.
    x = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 1, size, size)
    augmenter = _build(context, cutmix=1.0)
    for seed in range(5):
        (out,), mix = _run(augmenter, (x,), seed=seed)
        assert mix is not None and 0.0 <= mix.lam <= 1.0
        partner = mix.target_b.view(n, 1, 1, 1).float()
        from_self, from_partner = out == x, out == partner
        assert (from_self | from_partner).all()
        moved = mix.target_b != torch.arange(n)
        box = from_partner[moved] & ~from_self[moved]
        assert (box == box[:1]).all(), "the box differs between rows"
        kept = 1.0 - box[0].float().mean().item() if moved.any() else 1.0
        assert mix.lam == pytest.approx(kept)
        rows, cols = box[0, 0].any(dim=1), box[0, 0].any(dim=0)
        assert box[0, 0].sum() == rows.sum() * cols.sum(), "the pasted area is not a rectangle"


def test_augment_mixup_and_cutmix_alternate_between_batches() -> None:
    x, context = _images(1, 8, n=16)
    augmenter = _build(context, mixup=1.0, cutmix=1.0)
    kinds = set()
    for seed in range(12):
        (out,), mix = _run(augmenter, (x,), seed=seed)
        assert mix is not None
        pure = ((out == x) | (out == x[mix.target_b])).all().item()
        kinds.add("cutmix" if pure else "mixup")
    assert kinds == {"cutmix", "mixup"}


def test_augment_mixed_loss_is_the_lam_weighted_sum() -> None:
    outputs = torch.randn(8, 4, generator=torch.Generator().manual_seed(1))
    target = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    target_b = target.flip(0)
    loss_fn = torch.nn.CrossEntropyLoss()
    assert torch.equal(mixed_loss(loss_fn, outputs, target, None), loss_fn(outputs, target))
    loss = mixed_loss(loss_fn, outputs, target, Mix(target_b=target_b, lam=0.3))
    expected = 0.3 * loss_fn(outputs, target) + 0.7 * loss_fn(outputs, target_b)
    assert loss.item() == pytest.approx(expected.item())
    assert loss.item() != pytest.approx(loss_fn(outputs, target).item())


def test_augment_mixed_mse_has_the_gradient_of_the_mixed_target() -> None:
    # The documented regression behaviour: lam-weighted MSE trains like MSE on the mixed target.
    outputs = torch.randn(8, requires_grad=True)
    y, y_b, lam = torch.randn(8), torch.randn(8), 0.35
    mse = torch.nn.functional.mse_loss
    (grad_weighted,) = torch.autograd.grad(
        mixed_loss(mse, outputs, y, Mix(target_b=y_b, lam=lam)), outputs
    )
    (grad_target,) = torch.autograd.grad(mse(outputs, lam * y + (1 - lam) * y_b), outputs)
    assert torch.allclose(grad_weighted, grad_target, atol=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_augment_runs_on_cuda_batches() -> None:
    x, context = _images(3, 16)
    fields = {"rotation": 20, "crop": 0.3, "hflip": True, "color_jitter": 0.3,
              "policy": "randaugment", "noise": 0.05, "mixup": 0.4, "cutmix": 1.0}  # fmt: skip
    augmenter = _build(context, **fields)
    for seed in range(4):
        (out,), mix = _run(augmenter, (x.cuda(),), seed=seed)
        assert out.device.type == "cuda" and mix is not None
        assert mix.target_b.device.type == "cpu"  # _run's targets live on the CPU
    ids, attention = _texts()
    (out_ids, _), _ = _run(_build(TEXT_CONTEXT, token_mask=0.2), (ids.cuda(), attention.cuda()))
    assert out_ids.device.type == "cuda"


def _max_draws(monkeypatch: pytest.MonkeyPatch, value: float) -> None:
    """Make every uniform draw ``value``: 1.0 gives the largest angle, zoom and crop."""

    def rand(*shape: Any, dtype: torch.dtype | None = None, **_: Any) -> torch.Tensor:
        return torch.full(shape, value, dtype=dtype or torch.float32)

    monkeypatch.setattr(torch, "rand", rand)


def test_augment_rotation_by_the_largest_angle_turns_the_image(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    square = torch.arange(64.0).view(1, 1, 8, 8)
    wide = torch.arange(60.0).view(1, 1, 6, 10)
    quarter, half = (
        _build(AugmentContext("image"), rotation=90),
        _build(AugmentContext("image"), rotation=180),
    )
    _max_draws(monkeypatch, 1.0)
    (out,), _ = quarter((square,), torch.zeros(1))
    assert torch.allclose(out, torch.rot90(square, 1, (2, 3)), atol=1e-4)
    (out,), _ = half((wide,), torch.zeros(1))
    assert torch.allclose(out, wide.flip(-1).flip(-2), atol=1e-4)
    # A quarter turn of a wide image: its column ramp becomes a row ramp, one step per pixel
    # (a wrong aspect correction would stretch it), in the middle columns it covers.
    columns = torch.arange(10.0).view(1, 1, 1, 10).expand(1, 1, 6, 10)
    rows = torch.arange(6.0).view(1, 1, 6, 1).expand(1, 1, 6, 10)
    (turned,), _ = quarter((torch.cat([columns, rows]),), torch.zeros(2))
    middle = turned[0, 0, :, 3:7]
    assert torch.allclose((middle[1:] - middle[:-1]).abs(), torch.ones(5, 4), atol=1e-4)
    assert torch.allclose(middle, middle[:, :1].expand_as(middle), atol=1e-4)
    middle = turned[1, 0, :, 3:7]
    assert torch.allclose((middle[:, 1:] - middle[:, :-1]).abs(), torch.ones(6, 3), atol=1e-4)
    assert torch.allclose(middle, middle[:1].expand_as(middle), atol=1e-4)


def test_augment_warp_with_neutral_draws_keeps_a_non_square_image(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    wide = torch.arange(60.0).view(1, 1, 6, 10)
    augmenter = _build(AugmentContext("image"), rotation=30, zoom=0.3, hflip=True, vflip=True)
    _max_draws(monkeypatch, 0.5)  # angle 0, scale 1, no flip
    (out,), _ = augmenter((wide,), torch.zeros(1))
    assert torch.allclose(out, wide, atol=1e-4)


@pytest.mark.parametrize("draw", [0.0, 1.0])
def test_augment_crop_keeps_the_drawn_area_at_extreme_ratios(
    monkeypatch: pytest.MonkeyPatch, draw: float
) -> None:
    # draw 0.0: the whole area at ratio 3/4; 1.0: half the area at ratio 4/3. A 6x10 image
    # cannot hold the first box, so its ratio bends; the zoomed-in content shows the area.
    ramp = torch.arange(10.0).view(1, 1, 1, 10).expand(1, 1, 6, 10)
    augmenter = _build(AugmentContext("image"), crop=0.5)
    _max_draws(monkeypatch, draw)
    (out,), _ = augmenter((ramp,), torch.zeros(1))
    slope = (out[0, 0, :, 1:] - out[0, 0, :, :-1]).mean().item()
    # Widths in pixel-centre spans: the box is sqrt(area * ratio * 5 / 9) of the 9 wide.
    expected_width = 1.0 if draw == 0.0 else (0.5 * 4 / 3 * 5 / 9) ** 0.5
    assert slope == pytest.approx(expected_width, abs=0.02)
