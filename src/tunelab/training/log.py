"""Progress of library calls through ``logging``, as Hugging Face's Trainer reports through
its library logger: ``train()``, ``cross_validate`` and a study log to the logger
``tunelab`` at INFO, so ``logging.basicConfig(level=logging.INFO)`` shows what they do.

The command line draws its own live view (``tunelab.progress``) and leaves logging
unconfigured, so these records show nowhere there except ``run.log`` during a study.

Example::

    import logging
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    train(load_config("examples/quickstart.yaml"))  # epoch 1/30  train_loss 1.2 ...
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger("tunelab")


def epoch_status(record: dict[str, Any], metric: str) -> str:
    """``train_loss 0.1234  val_loss 0.2345  accuracy 0.9876  lr 1.00e-03``"""
    # boosted trees without early stopping record no losses per iteration
    parts = [f"{key} {record[key]:.4f}" for key in ("train_loss", "val_loss") if key in record]
    if isinstance(record.get(metric), float):
        parts.append(f"{metric} {record[metric]:.4f}")
    parts.append(f"lr {record['lr']:.2e}")
    return "  ".join(parts)


def log_epochs(*, epochs: int, metric: str) -> Callable[[dict[str, Any]], None]:
    """An epoch callback that logs ``epoch 3/30  train_loss ...  1.2s``."""

    def logged(record: dict[str, Any]) -> None:
        if log.isEnabledFor(logging.INFO):
            seconds = f"  {record['seconds']:.1f}s" if "seconds" in record else ""
            status = epoch_status(record, metric)
            log.info("epoch %d/%d  %s%s", record["epoch"] + 1, epochs, status, seconds)

    return logged


def log_fold_epochs(
    *, folds: int, epochs: int, metric: str, then: Callable[[int, dict[str, Any]], None] | None
) -> Callable[[int, dict[str, Any]], None]:
    """A (fold, record) hook that logs ``fold 2/5  epoch 3/30  ...``, then calls ``then``."""

    def logged(fold: int, record: dict[str, Any]) -> None:
        if log.isEnabledFor(logging.INFO):
            status = epoch_status(record, metric)
            log.info(
                "fold %d/%d  epoch %d/%d  %s", fold + 1, folds, record["epoch"] + 1, epochs, status
            )
        if then is not None:
            then(fold, record)

    return logged
