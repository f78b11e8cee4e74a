"""Pretrain the quickstart's CNN backbone on synthetic pen strokes (not on digits).

The quickstart fine-tunes this backbone on scikit-learn's digits, so it needs weights that
were learned on a *different* task, as a real pretrained model would be. Here the task is
telling the orientation of random pen strokes drawn on an 8x8 grid (values 0..16, like the
digits). The backbone learns stroke detectors; whether they help on digits is what
``finetuning.strategy: scratch`` measures.

    python examples/pretrain_strokes.py        # writes examples/pretrained/strokes_cnn2d.safetensors
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
OUTPUT = HERE / "pretrained" / "strokes_cnn2d.safetensors"
ANGLES = np.deg2rad([0, 45, 90, 135])


def strokes(n: int = 6000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` 8x8 images of 1-3 blurred pen strokes; the label is the first stroke's angle."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n, 1, 8, 8), dtype=np.float32)
    labels = rng.integers(0, len(ANGLES), n)
    grid = np.stack(np.meshgrid(np.arange(8), np.arange(8), indexing="ij"), -1) + 0.5
    for i in range(n):
        for k in range(rng.integers(1, 4)):
            angle = ANGLES[labels[i]] if k == 0 else rng.uniform(0, np.pi)
            centre = rng.uniform(2, 6, 2)
            direction = np.array([np.sin(angle), np.cos(angle)])
            offset = grid - centre
            along = offset @ direction
            across = np.abs(offset @ np.array([-direction[1], direction[0]]))
            length = rng.uniform(2.0, 3.5)
            ink = np.exp(-(across**2) / 0.5) * (np.abs(along) < length)
            images[i, 0] = np.maximum(images[i, 0], ink * (16.0 if k == 0 else 10.0))
    noise = rng.uniform(0, 1.0, images.shape).astype(np.float32)
    return np.clip(np.round(images + noise), 0, 16), labels


def main() -> None:
    from tunelab.config import config_from_dict
    from tunelab.flows.train import train

    sys.path.insert(0, str(HERE))
    cfg = config_from_dict(
        {
            "name": "strokes",
            "data": {"source": "py:pretrain_strokes:strokes", "modality": "image"},
            "model": {"source": "builtin:cnn2d", "width": 32, "depth": 3},
            "train": {"epochs": 15, "lr": 0.003, "batch_size": 128},
            "regularization": {"dropout": 0.0},
            "early_stopping": {"monitor": "val_loss", "patience": 4},
        }
    )
    with tempfile.TemporaryDirectory() as tmp:
        summary = train(cfg, out=Path(tmp) / "run")
        OUTPUT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(summary.run_dir / "final" / "model.safetensors", OUTPUT)
    print(f"strokes test accuracy {summary.metrics['test']['accuracy']:.3f}; wrote {OUTPUT}")


if __name__ == "__main__":
    main()
