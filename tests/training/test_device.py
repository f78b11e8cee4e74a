from __future__ import annotations

import pytest
import torch

from tunelab.errors import ConfigError
from tunelab.training.device import check_device


def test_devices_every_machine_has_pass() -> None:
    check_device("auto")
    check_device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("name", ["cuda", "cuda:0", "cuda:3"])
def test_cuda_without_cuda_names_the_value_and_the_fix(name: str) -> None:
    with pytest.raises(ConfigError, match=rf"train.device: '{name}', but .*set train.device: auto"):
        check_device(name)


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="this machine has MPS")
def test_mps_without_mps_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"train.device: 'mps', but MPS .* is not available"):
        check_device("mps")
