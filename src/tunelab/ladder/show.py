"""The ladder's table, built from ``ladder.json``'s content alone, as rich (terminal) or
Markdown (README, benchmarks). The progress while it measures is ``progress.ladder``.
"""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

VIEWS = {"ladder": "ablation ladder", "leave_one_out": "leave one out"}


# a step with a reason instead of numbers, and the words its verdict cell shows
NOT_TESTED = {"skipped": "skipped", "failed": "failed", "did nothing": "did nothing here"}


def rows(doc: dict[str, Any], view: str) -> tuple[list[str], list[list[str]], list[str]]:
    """One view (``ladder`` or ``leave_one_out``) as text: the header, the rows, and the
    reason of each skipped, failed or idle step in row order (its verdict cell says which)."""
    compared = "change" if view == "ladder" else "it adds"
    header = ["step", doc["metric"], compared, "p (Holm)", "verdict", "time"]
    body, skipped = [], []
    for row in doc[view]:
        if row["status"] in NOT_TESTED:
            body.append([row["label"], "", "", "", NOT_TESTED[row["status"]], ""])
            skipped.append(row["reason"])
            continue
        difference = (row.get("difference"), row.get("difference_low"), row.get("difference_high"))
        body.append(
            [
                row["label"],
                interval_text(row.get("mean"), row.get("low"), row.get("high")),
                interval_text(*difference, signed=True),
                _p(row.get("p_holm")),
                row.get("verdict") or ("pending" if row["status"] == "pending" else ""),
                time_text(row.get("seconds"), row.get("seconds_per_epoch")),
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
        if line[4] in NOT_TESTED.values():
            lines.append(f"{line[4]} {line[0]}: {next(notes)}")
    # plain text: "[low, high]" and user-named values are not rich markup
    table.caption = Text("\n".join([*lines, *explained(doc, view)]))
    return table


def explained(doc: dict[str, Any], view: str) -> list[str]:
    """The lines under a view's table: each step's note (no change; the repeats "no
    evidence" would need), the fields each rung switches (the ladder), the warnings."""
    lines = [f"{row['label']}: {row['note']}" for row in doc[view] if row.get("note")]
    if view == "ladder":
        lines += [
            f"{row['label']} switches {_fields(row['switches'])}"
            for row in doc[view]
            if row.get("switches")
        ]
    return lines + [f"warning: {line}" for line in doc.get("warnings") or []]


def _fields(changes: dict[str, Any]) -> str:
    return ", ".join(f"{name} {_value(value)}" for name, value in changes.items())


def _value(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value).lower() if value is not None else "null"
    return f"{value:g}" if isinstance(value, float) else str(value)


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
        if line[4] in NOT_TESTED.values():
            line = [*line[:4], f"{line[4]}: {next(notes)}", line[5]]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in line) + " |")
    below = explained(doc, view)
    return "\n".join(lines + ([""] + [f"- {line}" for line in below] if below else []))


def caption(doc: dict[str, Any]) -> str:
    """How the numbers were measured, in one line."""
    epochs = f", {doc['epochs']} epochs" if doc.get("epochs") else ""
    level = round(100 * doc["level"])
    method = doc.get("interval_method") or "corrected resampled t-test (Nadeau & Bengio 2003)"
    return (
        f"{doc['folds']}-fold x {doc['repeats']} repeats (seed {doc['seed']}{epochs}); "
        f"± {level}% intervals ([low, high] where clipped) and p-values: {method}; "
        f"p-values Holm-corrected; verdicts at alpha {doc['alpha']}; time: all folds, s/epoch"
    )


def interval_text(
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


def time_text(seconds: float | None, per_epoch: float | None) -> str:
    if seconds is None:
        return ""
    return f"{seconds:.1f}s" + (f", {per_epoch:.3f}s/ep" if per_epoch is not None else "")
