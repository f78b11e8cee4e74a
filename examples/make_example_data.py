"""Write the small data sets the examples read, into examples/data/ (seeded: the same rows,
pixels and series on every run; they are committed, so you need not run this).

    python examples/make_example_data.py

- ``data/wine.csv`` (examples/table_csv.yaml): scikit-learn's bundled wine table (178 rows,
  3 cultivars) made to look like a table a user has: the ``alcohol`` column becomes the
  text category ``alcohol_level`` (low / medium / high, by tertile), and about 5% of the
  cells of five columns are left empty, so the one-hot encoding and the imputation show.
- ``data/digits_png/DIGIT/NNN.png`` (examples/images_folder.yaml): the first 50 of each
  digit of scikit-learn's bundled 8x8 digits (500 images), as greyscale PNGs, one folder
  per class: the layout of ``images:DIR``.
- ``data/waveforms.npz`` (examples/signal.yaml): 480 synthetic one-channel series of 128
  steps, ``X`` (480, 1, 128) and ``y`` (the class name): a sine, square, triangle or
  sawtooth wave of random frequency, phase and amplitude, with Gaussian noise and a random
  offset. Nothing like it ships with scikit-learn, so it is drawn here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from sklearn.datasets import load_digits, load_wine

DATA = Path(__file__).resolve().parent / "data"
SEED = 0


def wine_table(seed: int = SEED) -> pd.DataFrame:
    """The wine table with one text category and some empty cells (see the docstring)."""
    rng = np.random.default_rng(seed)
    bunch = load_wine(as_frame=True)
    table = bunch.frame.drop(columns="target").round(3)
    table.columns = [name.replace("/", "_") for name in table.columns]  # od280/od315_...
    level = pd.qcut(table.pop("alcohol"), 3, labels=["low", "medium", "high"])
    table.insert(0, "alcohol_level", level.astype(str))
    for column in ["alcohol_level", "malic_acid", "ash", "magnesium", "color_intensity"]:
        table.loc[rng.random(len(table)) < 0.05, column] = None
    table["cultivar"] = [f"cultivar_{chr(ord('a') + i)}" for i in bunch.target]
    return table


def write_digit_folders(root: Path, per_class: int = 50) -> int:
    """The first ``per_class`` images of each digit as PNGs under ``root/DIGIT/``."""
    digits = load_digits()
    written = 0
    for label in range(10):
        folder = root / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        rows = np.flatnonzero(digits.target == label)[:per_class]
        for n, row in enumerate(rows):
            pixels = np.round(digits.images[row] * 255 / 16).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{n:03d}.png", optimize=True)
            written += 1
    return written


WAVES = ("sine", "square", "triangle", "sawtooth")


def waveforms(n: int = 480, length: int = 128, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """``n`` noisy series (N, 1, length), an equal number of each wave in ``WAVES``."""
    rng = np.random.default_rng(seed)
    labels = np.resize(np.arange(len(WAVES)), n)
    rng.shuffle(labels)
    steps = np.arange(length) / length
    series = np.empty((n, 1, length), dtype=np.float32)
    for i, label in enumerate(labels):
        cycles = rng.uniform(2.0, 6.0)
        phase = (steps * cycles + rng.uniform(0, 1)) % 1.0  # 0..1 within each cycle
        wave = {
            "sine": np.sin(2 * np.pi * phase),
            "square": np.where(phase < 0.5, 1.0, -1.0),
            "triangle": 4 * np.abs(phase - 0.5) - 1,
            "sawtooth": 2 * phase - 1,
        }[WAVES[label]]
        amplitude, offset = rng.uniform(0.5, 2.0), rng.normal(0, 0.5)
        series[i, 0] = amplitude * wave + offset + rng.normal(0, 0.4, length)
    return np.round(series, 2), np.array(WAVES)[labels]


def main() -> None:
    DATA.mkdir(exist_ok=True)
    table = wine_table()
    table.to_csv(DATA / "wine.csv", index=False)
    images = write_digit_folders(DATA / "digits_png")
    series, labels = waveforms()
    np.savez_compressed(DATA / "waveforms.npz", X=series, y=labels)
    print(
        f"wrote {DATA / 'wine.csv'} ({len(table)} rows), {images} PNGs under "
        f"{DATA / 'digits_png'}, {DATA / 'waveforms.npz'} ({len(labels)} series)"
    )


if __name__ == "__main__":
    main()
