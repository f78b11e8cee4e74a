"""Is ``train.device`` usable on this machine? Checked when a run starts, not in the config.

A config stays loadable anywhere (a study's config is written on one machine and read by
workers on others); whether ``cuda`` or ``mps`` exists is a fact of the machine that runs
it, so ``check_device`` is called at the start of a run, before any data is loaded.
"""

from __future__ import annotations

import torch

from tunelab.errors import ConfigError

FIX = "set train.device: auto (the best device here) or cpu"


def check_device(name: str) -> None:
    """Refuse a ``train.device`` this machine's torch cannot use.

    Args:
        name: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps`` (the config's value).

    Raises:
        ConfigError: naming the value, why it cannot be used here and the fix.
    """
    kind, _, index = name.partition(":")
    if kind == "cuda":
        _check_cuda(name, index)
    elif kind == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(
            f"train.device: {name!r}, but MPS (Apple-silicon GPUs) is not available on this "
            f"machine; {FIX}"
        )


def _check_cuda(name: str, index: str) -> None:
    # ROCm builds also answer to "cuda" (torch.version.hip instead of torch.version.cuda)
    if torch.version.cuda is None and torch.version.hip is None:
        raise ConfigError(
            f"train.device: {name!r}, but this torch ({torch.__version__}) is a CPU-only build; "
            f"{FIX}, or install a CUDA build of torch"
        )
    if not torch.cuda.is_available():
        raise ConfigError(
            f"train.device: {name!r}, but torch sees no CUDA GPU on this machine "
            f"(check the driver and CUDA_VISIBLE_DEVICES); {FIX}"
        )
    if index == "":
        return
    count = torch.cuda.device_count()
    if not index.isdigit() or int(index) >= count:
        raise ConfigError(
            f"train.device: {name!r}, but this machine has {count} CUDA device"
            f"{'s' if count != 1 else ''} (cuda:0 to cuda:{count - 1}); set train.device to "
            "one of them, auto or cpu"
        )
