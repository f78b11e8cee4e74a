"""Live progress (a rich epoch bar with the current metrics) and the end-of-run summary."""

from __future__ import annotations

from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table


class EpochProgress:
    """A context manager whose ``update`` is an epoch callback for ``fit``.

    Args:
        epochs: the maximum number of epochs (the bar's length).
        metric: the selection metric, shown with the losses.
        console: where to draw; quiet consoles draw nothing.
    """

    def __init__(self, *, epochs: int, metric: str, console: Console) -> None:
        self.metric = metric
        self.best: float | None = None
        self._progress = Progress(
            TextColumn("[bold]epoch"),
            MofNCompleteColumn(),
            BarColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[status]}"),
            console=console,
            transient=False,
        )
        self._task = self._progress.add_task("train", total=epochs, status="starting")

    def __enter__(self) -> EpochProgress:
        self._progress.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._progress.stop()

    def __call__(self, record: dict[str, Any]) -> None:
        parts = [f"train_loss {record['train_loss']:.4f}"]
        if "val_loss" in record:
            parts.append(f"val_loss {record['val_loss']:.4f}")
        if self.metric in record:
            parts.append(f"{self.metric} {record[self.metric]:.4f}")
        parts.append(f"lr {record['lr']:.2e}")
        self._progress.update(self._task, advance=1, status="  ".join(parts))


def summary_table(metrics: dict[str, Any], run_dir: str) -> Table:
    """Validation (best epoch) and test metrics side by side."""
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
    table.caption = (
        f"test {interval['metric']} 95% CI [{interval['low']:.4f}, {interval['high']:.4f}] "
        f"(bootstrap); best epoch {metrics['best_epoch'] + 1} of {metrics['epochs_run']}, "
        f"stopped: {metrics['stop_reason']}; {metrics['seconds']:.1f}s"
    )
    return table
