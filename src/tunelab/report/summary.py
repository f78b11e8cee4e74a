"""The summary (the final score against the baseline and the best single trial), the
ensemble, and the resolved config with the environment it ran in."""

from __future__ import annotations

from typing import Any

from tunelab.report.contents import RunContents
from tunelab.report.html import Page, Section, cards, note, number, paragraph, pre, table
from tunelab.results.environment import environment
from tunelab.results.leaderboard import ranked
from tunelab.results.trial_record import record
from tunelab.tracking.outcome import outcome_lines


def summary_section(contents: RunContents) -> Section:
    """Headline numbers, what the run did, and the files that could not be read."""
    section = Section("summary", "Summary")
    metric = contents.metric or "score"
    section.parts.append(
        cards([_final(contents, metric), _best(contents, metric), _baseline(contents)])
    )
    section.parts += [paragraph(line) for line in _failed_stages(contents)]
    section.parts += [paragraph(line) for line in _facts(contents)]
    section.parts += [note(f"not shown: {problem}") for problem in contents.problems]
    return section


def _failed_stages(contents: RunContents) -> list[str]:
    """A stage that failed after the final predictor was written (``failed_stages``)."""
    failed = (contents.metrics or {}).get("failed_stages")
    return [
        f"Failed stage: {f.get('stage')}: {f.get('reason')} (the traceback is in run.log; "
        "the results above it are complete)"
        for f in (failed if isinstance(failed, list) else [])
        if isinstance(f, dict)
    ]


def _final(contents: RunContents, metric: str) -> tuple[str, str, str]:
    metrics = contents.metrics
    if metrics is None:
        return (
            f"test {metric}",
            "none",
            "no final predictor: the study stopped before a refit (see the leaderboard)",
        )
    score = (metrics.get("test") or {}).get(metric)
    interval = metrics.get("test_interval") or {}
    rows = (metrics.get("rows") or {}).get("test")
    level = interval.get("level")
    detail = (
        f"{number(100 * level, 0) if isinstance(level, float) else '95'}% interval "
        f"[{number(interval.get('low'))}, {number(interval.get('high'))}]"
        + (f" ({interval['method']})" if interval.get("method") else "")
        if interval
        else "no interval recorded"
    )
    if rows:
        detail += f", {rows} test rows"
    return f"test {metric} (final predictor)", number(score), detail


def _best(contents: RunContents, metric: str) -> tuple[str, str, str]:
    study = contents.study
    if study is not None and (best := ranked(study)):
        trial = best[0]
        folds = len(record(trial).get("fold_scores") or []) or 1
        spread = record(trial).get("std")
        detail = f"trial {trial.number}, mean of {folds} fold{'s' if folds > 1 else ''}"
        if spread is not None:
            detail += f", std {number(spread)}"
        return f"best single trial ({metric}, validation)", number(trial.value), detail
    metrics = contents.metrics or {}
    cv = metrics.get("cross_validation")
    if isinstance(cv, dict):
        return (
            f"cross-validation ({metric})",
            number(cv.get("mean")),
            f"{cv.get('folds')} folds, std {number(cv.get('std'))}",
        )
    validation = (metrics.get("validation") or {}).get(metric)
    return f"validation {metric} (best epoch)", number(validation), "no study in this run"


def _baseline(contents: RunContents) -> tuple[str, str, str]:
    ladder = contents.ladder
    baseline = ladder.baseline if ladder is not None else None
    if baseline is None:
        return "baseline (ladder)", "-", "no ladder in this run"
    detail = f"{baseline.name}: interval [{number(baseline.low)}, {number(baseline.high)}]"
    return "baseline (ladder)", number(baseline.mean), detail


def _facts(contents: RunContents) -> list[str]:
    """One line each: the trials, the rows, the refit, the time."""
    lines: list[str] = []
    metrics = contents.metrics or {}
    trials = metrics.get("trials")
    if isinstance(trials, dict):
        lines.append(
            "Trials: "
            + ", ".join(f"{count} {_STATES.get(state, state)}" for state, count in trials.items())
            + "."
        )
    elif contents.study is not None:
        lines.append(f"Trials: {len(contents.study.trials)} (no refit).")
    if metrics.get("best_trial_tie_break"):
        lines.append(f"Best trial by tie-break: {metrics['best_trial_tie_break']}.")
    rows = metrics.get("rows")
    if isinstance(rows, dict):
        lines.append(
            f"Rows: {rows.get('train')} train, {rows.get('validation')} validation, "
            f"{rows.get('test')} test (the test rows were used once, for the final score)."
        )
    if metrics.get("refit_epochs") is not None:
        lines.append(
            f"The best parameters were refit on all non-test rows for "
            f"{metrics['refit_epochs']} epochs (the best trial's folds' median)."
        )
    elif metrics.get("stop_reason"):
        lines.append(
            f"The final fit ran {metrics.get('epochs_run')} epochs and stopped: "
            f"{metrics['stop_reason']} (best epoch {_one_based(metrics.get('best_epoch'))})."
        )
    if contents.ensemble is not None:
        kept = contents.ensemble.get("kept")
        verdict = "is the final predictor" if kept else "was not kept"
        lines.append(
            f"An ensemble of the study's best trials {verdict}: "
            f"{contents.ensemble.get('reason')} (see Ensemble)."
        )
    lines += [line[0].upper() + line[1:] + "." for line in outcome_lines(metrics.get("tracking"))]
    return lines


_STATES = {"fail": "failed"}


def _one_based(epoch: Any) -> str:
    return str(epoch + 1) if isinstance(epoch, int) and epoch >= 0 else "-"


def ensemble_section(contents: RunContents, page: Page) -> Section:
    """The ensemble stage's decision (``ensemble.json``): why it was kept or not, the two
    out-of-fold comparisons with the best single trial, and, only for a kept ensemble, the
    members and their weights and the test comparison."""
    section = Section("ensemble", "Ensemble")
    data = contents.ensemble
    if data is None:
        section.parts.append(note("no ensemble in this run"))
        return section
    kept = data.get("kept") is True
    verdict = "kept: it is the final predictor" if kept else "not kept"
    section.parts.append(paragraph(f"{verdict}. {data.get('reason', '')}"))
    comparisons = data.get("comparisons")
    if isinstance(comparisons, dict):
        section.parts.append(_comparisons(comparisons))
    if not kept:
        return section  # an ensemble that was not kept has no members to show
    members = [m for m in data.get("members") or [] if isinstance(m, dict)]
    if members:
        rows = [
            [
                f"trial {m.get('trial')}",
                _cell(m.get("weight")),
                ", ".join(f"{k}={v}" for k, v in (m.get("params") or {}).items()),
            ]
            for m in members
        ]
        section.parts.append(
            table(["member", "weight", "parameters"], rows, numeric=[False, True, False])
        )
    test = data.get("test")
    if isinstance(test, dict):
        section.parts += _test_comparison(test)
    if isinstance(data.get("distillation"), dict):
        section.parts += _distillation(data["distillation"])
    weights = [m.get("weight") for m in members]
    if page.charts and members and all(isinstance(w, int | float) for w in weights):
        import plotly.graph_objects as go

        labels = [f"trial {m.get('trial')}" for m in members]
        fig = go.Figure(go.Bar(x=labels, y=weights))
        fig.update_layout(title="member weights", xaxis_type="category", height=320)
        section.parts.append(page.figure(fig))
    return section


def _comparisons(comparisons: dict[str, Any]) -> str:
    """The keep rule's two out-of-fold comparisons, one row each."""
    rows = []
    for key, label in (("user_metric", "your metric"), ("proper_score", "proper score")):
        found = comparisons.get(key)
        if not isinstance(found, dict):
            continue
        rows.append(
            [
                f"{label}: {found.get('metric')}",
                _cell(found.get("ensemble")),
                _cell(found.get("best_single")),
                "yes" if found.get("passes") else "no",
                str(found.get("rule", "")),
            ]
        )
    return table(
        ["out of fold", "ensemble", "best single trial", "passes", "rule"],
        rows,
        numeric=[False, True, True, False, False],
    )


def _test_comparison(test: dict[str, Any]) -> list[str]:
    ensemble, single = test.get("ensemble") or {}, test.get("best_single") or {}
    d = test.get("difference") or {}
    return [
        table(
            ["test metric", "ensemble", "best single trial"],
            [[k, _cell(v), _cell(single.get(k))] for k, v in ensemble.items()],
            numeric=[False, True, True],
        ),
        paragraph(
            f"ensemble - best single trial, {d.get('metric')}: "
            f"{_cell(d.get('ensemble_minus_single'))}, 95% interval "
            f"[{_cell(d.get('low'))}, {_cell(d.get('high'))}] (paired bootstrap over the "
            "test rows)"
        ),
    ]


def _distillation(record: dict[str, Any]) -> list[str]:
    """``ensemble.distill``: its verdict, and ensemble, student and best single trial on the
    test rows side by side, each with its inference time per row."""
    parts = [paragraph(f"distillation: {record.get('reason')}")]
    test = record.get("test")
    if isinstance(test, dict) and test:
        names = list(test)
        metrics = [k for k in test[names[0]] if k != "us_per_row"]
        rows = [[k, *(_cell(test[n].get(k)) for n in names)] for k in [*metrics, "us_per_row"]]
        header = ["test rows", *(n.replace("_", " ") for n in names)]
        parts.append(table(header, rows, numeric=[False, *([True] * len(names))]))
    return parts


def _cell(value: Any) -> str:
    return number(value) if isinstance(value, float) else str(value if value is not None else "-")


def config_section(contents: RunContents) -> Section:
    """``config.yaml`` as it ran, and the environment it ran in."""
    section = Section("config", "Config and environment")
    if contents.config_text is not None:
        section.parts.append(pre(contents.config_text))
    else:
        section.parts.append(note("no config.yaml in this run directory"))
    recorded = contents.environment
    if recorded is None:
        section.parts.append(
            note(
                "the run recorded no environment (environment.json); shown: the machine "
                "that built this report"
            )
        )
        recorded = environment()
    packages = recorded.get("packages")
    packages = packages if isinstance(packages, dict) else {}
    rows = [(k, _cell(v)) for k, v in recorded.items() if k != "packages"]
    rows += [(name, version or "not installed") for name, version in packages.items()]
    section.parts.append(table(["", "version"], rows))
    return section
