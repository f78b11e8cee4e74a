"""Which searched fields apply to which model family, and a trial's effective settings.

A study may search ``model.source`` (``builtin:mlp`` against ``sklearn:hgb``) together with
fields that only one family reads: trees never read ``train.lr`` (their rate is
``model.options.learning_rate``), a built-in network never reads ``model.options``. A field
that does not apply to the family a trial samples is not sampled for it (``suggest`` asks
``applies``), so the trial carries no value that did nothing, and two trials that differ only
in such a field are the same training: the second reuses the first's result
(``search.reuse``), compared by ``search.reuse.settings_key``.

The facts come from the families themselves: what trees take is the techniques that
declare ``Needs.trees_take`` plus the fields below; every other training field is a
network's.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from tunelab.config import RunConfig
from tunelab.errors import ConfigError

# the model sources whose builder reads model.options (builtin models take width/depth)
OPTIONS_READ_BY = ("sklearn", "py", "timm", "file")
# the fields of the model and train sections that boosting reads (an iteration is an epoch)
TREES_READ = ("model.source", "model.options", "train.epochs", "train.metric", "train.threads")


@cache
def _training_sections() -> tuple[str, ...]:
    """The config sections that describe how a model trains: the model, the loop, and one
    per technique plug-in."""
    from tunelab.techniques import specs

    return ("model", "train", *(spec.name for spec in specs()))


@cache
def _trees_take() -> tuple[str, ...]:
    """The sections of the techniques whose settings boosted trees read."""
    from tunelab.techniques import specs

    return tuple(spec.name for spec in specs() if spec.needs.trees_take)


def is_tree_source(source: str) -> bool:
    return source.startswith("sklearn:")


def applies(field: str, source: str) -> bool:
    """Whether a searched ``field`` changes a model of ``source`` (``sklearn:hgb``, ...).

    Example::

        applies("train.lr", "sklearn:hgb")  # False: trees boost at model.options.learning_rate
    """
    prefix = source.partition(":")[0]
    if field == "model.options" or field.startswith("model.options."):
        return prefix in OPTIONS_READ_BY
    section = field.partition(".")[0]
    if not is_tree_source(source) or section not in _training_sections():
        return True
    if section in _trees_take():
        return True
    return any(field == read or field.startswith(read + ".") for read in TREES_READ)


def trial_source(chosen: dict[str, Any], base: RunConfig) -> str:
    """The model source of a trial: its own when ``model.source`` is searched."""
    return str(chosen.get("model.source", base.model.source))


def sources(cfg: RunConfig) -> list[str]:
    """The model sources a study's trials can use."""
    spec = cfg.search.space.get("model.source")
    if spec is None or not spec.choices:
        return [cfg.model.source]
    return [str(choice) for choice in spec.choices]


def fields_by_source(cfg: RunConfig) -> dict[str, list[str]]:
    """For ``tunelab check``: each model source the study can use, with the searched fields
    that apply to it (``model.source`` itself included)."""
    return {
        source: [field for field in cfg.search.space if applies(field, source)]
        for source in sources(cfg)
    }


def check_lines(cfg: RunConfig) -> list[str]:
    """``tunelab check``'s lines on the space: per model source, the fields searched for it
    and those left out (they do not apply)."""
    if not cfg.search.space:
        return []
    lines = ["searched fields per model family:"]
    for source, fields in fields_by_source(cfg).items():
        left = [field for field in cfg.search.space if field not in fields]
        skipped = f" (not searched for it, does not apply: {', '.join(left)})" if left else ""
        lines.append(f"  {source}: {', '.join(fields) or 'nothing'}{skipped}")
    return lines


def nothing_to_search(cfg: RunConfig) -> str | None:
    """Why ``cfg``'s study would train one recipe over and over, or None.

    ``tunelab run`` refuses such a config (``refuse_empty_space``); a caller with a space of
    its own (the automatic space) skips this check."""
    varied = [
        field
        for field in cfg.search.space
        if any(applies(field, source) for source in sources(cfg))
    ]
    if varied:
        return None
    if cfg.search.space:
        shown = ", ".join(cfg.search.space)
        return (
            f"search.space: nothing to search: {shown} does not apply to "
            f"{', '.join(sources(cfg))}, so every trial would train the same recipe; search "
            "fields that the model reads (e.g. model.options.learning_rate for sklearn:hgb, "
            "train.lr for a network), or train the recipe once with: tunelab train CONFIG"
        )
    return (
        "search.space: nothing to search: the space is empty, so every trial would train "
        "the same recipe; add fields to search.space (e.g. train.lr: {type: float, low: "
        "1.0e-4, high: 1.0e-2, log: true}) or set search.auto_space: true (the curated space), or "
        "train the recipe once with: tunelab train CONFIG"
    )


def refuse_empty_space(cfg: RunConfig) -> None:
    """Raise a ``ConfigError`` when ``cfg``'s study has nothing to search."""
    problem = nothing_to_search(cfg)
    if problem is not None:
        raise ConfigError(problem)
