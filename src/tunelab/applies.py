"""Which settings apply to the data, checked before any training (``tunelab check``, ``run``).

A setting that cannot apply to the data's modality (rotating table rows, masking tokens of
a signal) is refused, whether the config sets it or ``search.space`` searches it: a study
would only fail each trial on it. A magnitude far outside any sensible range (noise of a
million standard deviations) is allowed but warned about, with the field named.

The modality comes without loading the data where the source tells it (``peek_modality``):
``images:`` gives images, a table file a table (or text with ``data.text_column``), an
``npz:`` file says it in its array header. Only a ``py:`` source has to be called. This
module imports neither torch nor the data package unless it must (``tunelab check`` stays
quick).
"""

from __future__ import annotations

from typing import Any

from tunelab.config import AugmentationConfig, DataConfig, ParamSpec, RunConfig
from tunelab.errors import ConfigError, TunelabError

TABLES = ("csv", "parquet", "jsonl", "hfds")

# the augmentation fields that apply to each modality (techniques/augmentation.py uses them)
FIELDS_BY_MODALITY: dict[str, tuple[str, ...]] = {
    "image": (
        "rotation", "zoom", "crop", "hflip", "vflip", "color_jitter", "policy",
        "cutmix", "mixup", "noise",
    ),
    "signal": ("shift", "amplitude", "time_mask", "noise", "mixup"),
    "tabular": ("noise", "mixup"),
    "text": ("token_mask", "token_dropout"),
}  # fmt: skip

# field -> (the value past which it is far outside any sensible range, why)
FAR_OUT: dict[str, tuple[float, str]] = {
    "augmentation.noise": (10.0, "standard deviations of noise drown the standardized inputs"),
    "augmentation.mixup": (10.0, "a Beta(alpha, alpha) this peaked mixes every pair half-half"),
    "augmentation.cutmix": (10.0, "a Beta(alpha, alpha) this peaked cuts every image in half"),
    "train.lr": (10.0, "a learning rate this large diverges (lr-find sweeps up to 10)"),
    "regularization.weight_decay": (10.0, "a weight decay this large shrinks the weights to 0"),
}


def is_on(value: object) -> bool:
    """The off value of every augmentation field: 0 / 0.0 / False or ``"none"``."""
    return value not in (0, "none")


def check_settings(cfg: RunConfig, *, modality: str | None = None) -> list[str]:
    """``tunelab check``: refuse the settings that cannot apply to the data (whose modality
    the source tells, or loading it); return the warnings about far-out magnitudes.

    Raises:
        ConfigError: one problem per setting that cannot apply.
        DataError: the data had to be loaded to know their modality, and cannot be.
    """
    modality = modality or peek_modality(cfg.data)
    if modality is None:
        from tunelab.data import load_data

        modality = load_data(cfg.data).modality
    refuse_misfits(cfg, modality)
    return far_out(cfg)


def peek_modality(cfg: DataConfig) -> str | None:
    """The modality of ``cfg.source``, or None when only loading the data can tell (a
    ``py:`` source, an unreadable ``npz:`` file: loading says what is wrong with it)."""
    if cfg.modality != "auto":
        return cfg.modality
    if cfg.text_column is not None:
        return "text"
    prefix, _, value = cfg.source.partition(":")
    if prefix == "sklearn":
        from tunelab.data.sklearn_source import BUNDLED

        return BUNDLED.get(value)  # an unknown name: loading says which names there are
    if prefix in TABLES:
        return "tabular"
    if prefix == "images":
        return "image"
    if prefix == "npz":  # the inputs array's header (its shape), not its values
        from tunelab.data.peek import peek_data

        try:
            return peek_data(cfg).modality
        except TunelabError:
            return None  # loading says what is wrong with the file
    return None


def refuse_misfits(cfg: RunConfig, modality: str) -> None:
    """Raise a ``ConfigError`` naming every setting that cannot apply to ``modality``."""
    problems = refusals(cfg, modality, origin=cfg.data.source)
    if problems:
        raise ConfigError(problems)


def refusals(cfg: RunConfig, modality: str, *, origin: str) -> list[str]:
    """One message per setting of ``cfg`` (set, or searched) that cannot apply to
    ``modality`` data; ``origin`` names the data in them."""
    fits = FIELDS_BY_MODALITY[modality]
    allowed = ", ".join(f"augmentation.{name}" for name in fits)
    data = f"{modality} data ({origin})"
    problems = []
    space = cfg.search.space
    enabled = space.get("augmentation.enabled")
    if cfg.augmentation.enabled or (enabled is not None and _can_be_on(enabled)):
        for name in AugmentationConfig.model_fields:
            value = getattr(cfg.augmentation, name)
            searched = f"augmentation.{name}" in space
            if name not in (*fits, "enabled") and is_on(value) and not searched:
                problems.append(
                    f"augmentation.{name}={value!r} does not apply to {data}; the augmentation "
                    f"fields for {modality} data are: {allowed}. Set it to 0 (false, or 'none' "
                    "for policy)"
                )
    for dotted, spec in space.items():
        section, _, name = dotted.partition(".")
        misfit = section == "augmentation" and name not in (*fits, "enabled")
        if misfit and _can_be_on(spec):
            problems.append(
                f"search.space: {dotted} ({_shown(spec)}) is searched, but it does not "
                f"apply to {data}, so every trial would fail on it; the augmentation "
                f"fields for {modality} data are: {allowed}. Remove it from search.space"
            )
    return problems


def far_out(cfg: RunConfig) -> list[str]:
    """One warning per field whose value (or searched range) is far outside any sensible
    range (``FAR_OUT``)."""
    raw = cfg.model_dump(mode="json")
    warnings = []
    for dotted, (limit, why) in FAR_OUT.items():
        section, _, name = dotted.partition(".")
        spec = cfg.search.space.get(dotted)
        value = _largest(spec) if spec is not None else raw[section][name]
        if isinstance(value, int | float) and not isinstance(value, bool) and value > limit:
            where = "searched up to" if spec is not None else "is"
            warnings.append(
                f"{dotted} {where} {value:g}: far outside any sensible range (above "
                f"{limit:g}; {why}); the model may train to chance. Check the value"
            )
    return warnings


def _can_be_on(spec: ParamSpec) -> bool:
    if spec.type == "categorical":
        return any(is_on(choice) for choice in spec.choices or [])
    return spec.high is not None and spec.high > 0


def _largest(spec: ParamSpec) -> Any:
    if spec.type == "categorical":
        numbers = [
            c for c in spec.choices or [] if isinstance(c, int | float) and not isinstance(c, bool)
        ]
        return max(numbers, default=None)
    return spec.high


def _shown(spec: ParamSpec) -> str:
    if spec.type == "categorical":
        return f"choices {spec.choices}"
    return f"{spec.type} from {spec.low:g} to {spec.high:g}"
