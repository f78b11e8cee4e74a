"""What ``tunelab train`` shows while it runs, and the summary at the end.

On a terminal: a live bar with the current epoch's numbers. Anywhere else: one plain line
per epoch, at most one a second (the last epoch always).
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from tunelab.progress.base import LiveView, PlainLines
from tunelab.training.log import epoch_status


class EpochProgress(LiveView):
    """The one fit's epochs (``epoch``).

    Args:
        epochs: the maximum number of epochs (the bar's length).
        metric: the selection metric, shown with the losses.
        console: where to draw; quiet consoles draw nothing.
        label: what the bar counts (``epoch``, ``fold 2/5 epoch``).
    """

    def __init__(self, *, epochs: int, metric: str, console: Console, label: str = "epoch") -> None:
        plain = None if console.is_terminal else PlainLines(console)
        super().__init__(label, total=epochs, console=console, plain=plain)
        self.metric, self.epochs, self.label = metric, epochs, label

    def epoch(self, record: dict[str, Any]) -> None:
        status = epoch_status(record, self.metric)
        if self._plain is not None:
            epoch = record["epoch"] + 1
            self._plain(f"{self.label} {epoch}/{self.epochs}  {status}", last=epoch == self.epochs)
            return
        self.show(advance=1, status=status)


def summary_table(metrics: dict[str, Any], run_dir: str) -> Table:
    """Validation and test metrics side by side (and the k-fold estimate, when there is one)."""
    table = Table(title=f"tunelab train: {run_dir}", title_justify="left")
    table.add_column("metric")
    table.add_column("validation", justify="right")
    table.add_column("test", justify="right")
    for name, value in metrics["test"].items():
        val = metrics["validation"].get(name)
        table.add_row(
            name, "-" if val is None else f"{val:.4f}", "-" if value is None else f"{value:.4f}"
        )
    interval = metrics["test_interval"]
    best = metrics["best_epoch"]
    kept = f"epoch {best + 1}" if best >= 0 else "averaged weights"
    caption = (
        f"test {interval['metric']} 95% CI [{interval['low']:.4f}, {interval['high']:.4f}] "
        f"({interval['method']}); kept {kept} of {metrics['epochs_run']}, stopped: "
        f"{metrics['stop_reason']}; {metrics['seconds']:.1f}s"
    )
    cv = metrics.get("cross_validation")
    if cv:
        spread = f" ± {cv['std']:.4f}" if cv.get("std") is not None else ""
        caption += (
            f"\n{cv['folds']}-fold {cv['metric']} {cv['mean']:.4f}{spread} (mean ± std over folds)"
        )
    table.caption = caption
    return table


class FoldProgress(LiveView):
    """The k-fold estimate of ``tunelab train`` (``fold_epoch``): one bar over the folds (a
    plain line per epoch, rate-limited, when not on a terminal)."""

    def __init__(self, *, folds: int, epochs: int, metric: str, console: Console) -> None:
        plain = None if console.is_terminal else PlainLines(console)
        super().__init__("k-fold estimate", total=folds, console=console, plain=plain)
        self.folds, self.epochs, self.metric = folds, epochs, metric

    def fold_epoch(self, fold: int, record: dict[str, Any]) -> None:
        where = f"fold {fold + 1}/{self.folds} epoch {record['epoch'] + 1}/{self.epochs}"
        status = f"{where}  {epoch_status(record, self.metric)}"
        if self._plain is not None:
            self._plain(status)
            return
        self.show(completed=fold, status=status)
