"""The ladder on screen: progress while it measures, and the table at the end.

On a terminal a live bar counts the folds; anywhere else (a log file, CI) one plain line
per variant as it finishes. The table is built from ``ladder.json``'s content alone, as
rich (terminal) or Markdown (README, benchmarks).
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from tunelab.ladder.run import Watcher
from tunelab.progress import PlainLines
from tunelab.training.log import epoch_status

VIEWS = {"ladder": "ablation ladder", "leave_one_out": "leave one out"}
CHANCES_HEADER = "P(helps/equivalent/hurts)"


class LadderProgress(Watcher):
    """A live bar over the folds to train (a terminal), else one line per finished variant.

    Args:
        console: where to draw; quiet consoles draw nothing.
        live: draw the bar on a terminal; False prints lines only (inside another live
            view, such as ``tunelab run``'s).
    """

    def __init__(self, *, console: Console, live: bool = True) -> None:
        self.console, self.metric = console, ""
        self._plain = PlainLines(console) if not (live and console.is_terminal) else None
        self._progress = Progress(
            TextColumn("[bold]ladder"),
            MofNCompleteColumn(),
            BarColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[status]}"),
            console=console,
            disable=self._plain is not None,
        )
        self._task = self._progress.add_task("folds", total=None, status="starting")
        self._done = 0

    def __enter__(self) -> LadderProgress:
        self._progress.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._progress.stop()

    def planned(self, *, folds: int, reused: int, metric: str) -> None:
        self.metric = metric
        self._progress.update(self._task, total=folds)
        if reused:
            self._say(f"ladder: {reused} folds already measured in ladder.json, {folds} to train")

    def epoch(self, label: str, fold: int, folds: int, record: dict[str, Any]) -> None:
        status = f"{label}  fold {fold + 1}/{folds}  epoch {record['epoch'] + 1}"
        if self.metric:
            status += f"  {epoch_status(record, self.metric)}"
        self._progress.update(self._task, status=status)

    def fold_done(self, label: str, fold: int, folds: int, score: float) -> None:
        self._done += 1
        self._progress.update(self._task, completed=self._done)

    def variant_done(self, label: str, summary: dict[str, Any]) -> None:
        line = f"ladder: {label}"
        if summary.get("mean") is not None:
            interval = _interval(summary["mean"], summary["low"], summary["high"])
            line += f"  {self.metric or 'score'} {interval}"
        if summary.get("seconds") is not None:
            line += f"  {_time(summary['seconds'], summary.get('seconds_per_epoch'))}"
        self._say(line)

    def _say(self, line: str) -> None:
        if self._plain is not None:
            self._plain(line, last=True)
        else:
            self._progress.console.print(line, highlight=False, markup=False)


def rows(doc: dict[str, Any], view: str) -> tuple[list[str], list[list[str]], list[str]]:
    """One view (``ladder`` or ``leave_one_out``) as text: the header, the rows, and the
    reason of each skipped or failed step in row order (its verdict cell says which)."""
    compared = "change" if view == "ladder" else "it adds"
    header = ["step", doc["metric"], compared, "p (Holm)", "verdict", CHANCES_HEADER, "time"]
    body, skipped = [], []
    for row in doc[view]:
        if row["status"] in ("skipped", "failed"):
            body.append([row["label"], "", "", "", row["status"], "", ""])
            skipped.append(row["reason"])
            continue
        difference = (row.get("difference"), row.get("difference_low"), row.get("difference_high"))
        body.append(
            [
                row["label"],
                _interval(row.get("mean"), row.get("low"), row.get("high")),
                _interval(*difference, signed=True),
                _p(row.get("p_holm")),
                row.get("verdict") or ("pending" if row["status"] == "pending" else ""),
                chances_cell(row),
                _time(row.get("seconds"), row.get("seconds_per_epoch")),
            ]
        )
    return header, body, skipped


def ladder_table(doc: dict[str, Any], view: str = "ladder") -> Table:
    """One view as a rich table; how it was measured and what was skipped in the caption."""
    header, body, reasons = rows(doc, view)
    table = Table(
        title=VIEWS[view], title_justify="left", caption_justify="left", box=box.SIMPLE_HEAD
    )
    for i, name in enumerate(header):
        # the numbers and verdicts stay whole; the step names wrap when the width is short
        table.add_column(name, justify="right" if 0 < i < 4 else "left", no_wrap=i > 0)
    notes = iter(reasons)
    lines = [caption(doc)]
    for line in body:
        table.add_row(*line)
        if line[4] in ("skipped", "failed"):
            lines.append(f"{line[4]} {line[0]}: {next(notes)}")
    table.caption = "\n".join(lines)
    return table


def print_ladder(doc: dict[str, Any], *, console: Console) -> None:
    """Both views (the leave-one-out one when it was measured); 120 columns wide at least
    when not on a terminal, where nothing can be resized."""
    if not console.is_terminal and console.width < 120:
        console = Console(file=console.file, quiet=console.quiet, width=120)
    for view in VIEWS:
        if doc[view]:
            console.print(ladder_table(doc, view))


def markdown(doc: dict[str, Any], view: str = "ladder") -> str:
    """One view as a Markdown table (the README, the benchmarks), the skipped steps' reasons
    in their rows."""
    header, body, reasons = rows(doc, view)
    notes = iter(reasons)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for line in body:
        if line[4] in ("skipped", "failed"):
            line = [*line[:4], f"{line[4]}: {next(notes)}", *line[5:]]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in line) + " |")
    return "\n".join(lines)


def caption(doc: dict[str, Any]) -> str:
    """How the numbers were measured, in one line."""
    epochs = f", {doc['epochs']} epochs" if doc.get("epochs") else ""
    level = round(100 * doc["level"])
    method = doc.get("interval_method") or "corrected resampled t-test (Nadeau & Bengio 2003)"
    return (
        f"{doc['folds']}-fold x {doc['repeats']} repeats (seed {doc['seed']}{epochs}); "
        f"± {level}% intervals ([low, high] where clipped) and p-values: {method}; "
        f"p-values Holm-corrected; {verdicts(doc)}; time: all folds, s/epoch"
    )


def verdicts(doc: dict[str, Any]) -> str:
    """How the verdicts were reached, in a few words (older documents: by Holm's p)."""
    threshold = doc.get("probability_threshold")
    if threshold is None:
        return f"verdicts at alpha {doc['alpha']}"
    rope = "auto" if doc.get("rope") is None else f"{doc['rope']:g}"
    return (
        f"verdicts: P >= {threshold:g} of the Bayesian correlated t-test "
        f"(+ helps, = within the rope {rope}, - hurts)"
    )


def chances_cell(row: dict[str, Any], width: int = 10) -> str:
    """P(helps), P(equivalent), P(hurts) as one bar of ``width`` characters (``+``, ``=``,
    ``-``) and the numbers: ``++++++++=- 0.81/0.12/0.07``."""
    found = [row.get(name) for name in ("p_helps", "p_equivalent", "p_hurts")]
    chances = [float(chance) for chance in found if chance is not None]
    if len(chances) != 3:
        return ""
    cells = _shares(chances, width)
    bar = "".join(mark * count for mark, count in zip("+=-", cells, strict=True))
    return f"{bar} " + "/".join(f"{chance:.2f}" for chance in chances)


def _shares(chances: list[float], width: int) -> list[int]:
    """``width`` cells split by the largest remainder, so the bar is always ``width`` long."""
    exact = [chance * width for chance in chances]
    cells = [int(value) for value in exact]
    by_remainder = sorted(range(len(exact)), key=lambda i: exact[i] - cells[i], reverse=True)
    for i in by_remainder[: width - sum(cells)]:
        cells[i] += 1
    return cells


def _interval(
    mean: float | None, low: float | None, high: float | None, *, signed: bool = False
) -> str:
    """``0.9712 ± 0.0061`` for a symmetric interval (the t-interval), ``0.9951 [0.9842,
    1.0000]`` for one clipped to the metric's range."""
    if mean is None:
        return ""
    text = f"{mean:+.4f}" if signed else f"{mean:.4f}"
    if low is None or high is None:
        return text
    if abs((high - mean) - (mean - low)) < 5e-5:  # the same at the four digits shown
        return f"{text} ± {(high - low) / 2:.4f}"
    bounds = f"[{low:+.4f}, {high:+.4f}]" if signed else f"[{low:.4f}, {high:.4f}]"
    return f"{text} {bounds}"


def _p(value: float | None) -> str:
    if value is None:
        return ""
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def _time(seconds: float | None, per_epoch: float | None) -> str:
    if seconds is None:
        return ""
    return f"{seconds:.1f}s" + (f", {per_epoch:.3f}s/ep" if per_epoch is not None else "")
