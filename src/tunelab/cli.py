"""The ``tunelab`` command line: parse, call the library, print. Nothing else lives here."""

from __future__ import annotations

import os
import re
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.console import Console
from rich.markup import escape

from tunelab.errors import ConfigError, DataError, FatalError, TunelabError

if TYPE_CHECKING:  # numpy, pandas and torch load only when a command needs them
    import numpy as np
    import pandas as pd

    from tunelab.config import RunConfig
    from tunelab.results.stages import StageFailure

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Fine-tune a model on your data and show which techniques helped.",
)
console = Console(stderr=True)
# when this process started (set by main; None when the commands run inside another
# program, e.g. a test's CliRunner): where a run's time budget starts
_started: float | None = None

ConfigArg = Annotated[Path, typer.Argument(help="the run's YAML config", show_default=False)]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", help="override a field, e.g. --set train.lr=0.01 (repeatable)"),
]
OverwriteOutputOpt = Annotated[
    bool, typer.Option("--overwrite", help="replace the --output file if it exists")
]
TrustCodeOpt = Annotated[
    bool,
    typer.Option(
        "--trust-code",
        help="import and call the Python function a file names as its architecture "
        "(a py: predictor, a checkpoint's metadata); it runs with your rights, so only for "
        "files you trust. --trust-code=MODULE[,MODULE...] trusts only those modules",
    ),
]


def _fail(exc: TunelabError) -> None:
    label = {ConfigError: "config error", DataError: "data error"}.get(type(exc), "error")
    console.print(f"[bold red]{label}:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


@app.command()
def check(config: ConfigArg, overrides: SetOpt = None) -> None:
    """Validate a config, look at its data files (they must exist and be readable), and
    print it resolved: every default filled in, values that do not apply marked.

    Settings that cannot apply to the data's modality are refused; magnitudes far outside
    any sensible range are warned about. Every stage's settings are checked too (the
    ensemble's metric against the task, the ladder's rungs, the search space's conditions
    and bounds); with data.task auto the data is loaded when the task decides one of them.
    """
    from tunelab.applies import check_settings
    from tunelab.config import load_config
    from tunelab.preflight import check_stages, task_for_check
    from tunelab.resolved import annotated_yaml, check_facts

    try:
        cfg = load_config(config, overrides=overrides)
        facts = check_facts(cfg)
        warnings = check_settings(cfg, modality=facts.modality)
        check_stages(cfg, task=task_for_check(cfg))
    except TunelabError as exc:
        _fail(exc)
    _warn(console, warnings)
    typer.echo(annotated_yaml(cfg, facts), nl=False)


def _warn(view: Console, warnings: list[str]) -> None:
    for warning in warnings:
        view.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False, soft_wrap=True)


@app.command()
def train(
    config: ConfigArg,
    overrides: SetOpt = None,
    out: Annotated[Path | None, typer.Option(help="run directory [default: runs/NAME]")] = None,
    overwrite: Annotated[bool, typer.Option(help="replace an existing run directory")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no live progress")] = False,
    params: Annotated[
        Path | None,
        typer.Option(help="best_params.json of a study: replay its best trial without the study"),
    ] = None,
    trust_code: TrustCodeOpt = False,
) -> None:
    """Fine-tune once with the config's settings, then evaluate on the held-out test rows.

    With cv.strategy kfold, the recipe is first cross-validated on the non-test rows (fold
    scores and out-of-fold predictions go into the run directory).
    """
    from tunelab.applies import far_out
    from tunelab.config import load_config
    from tunelab.evaluation.prepare import prepare
    from tunelab.flows.train import describe_data
    from tunelab.flows.train import train as train_flow
    from tunelab.models.local import check_checkpoint_code
    from tunelab.observer import Observers
    from tunelab.progress.train import EpochProgress, FoldProgress, summary_table

    view = Console(stderr=True, quiet=quiet)
    try:
        cfg = load_config(config, overrides=overrides)
        if params is not None:
            cfg = _with_params(cfg, params)
        _warn(view, far_out(cfg))
        check_checkpoint_code(cfg.model, trust_code=trust_code)
        with view.status("loading data"):
            prepared = prepare(cfg)
        view.print(describe_data(prepared), highlight=False)
        folds = cfg.cv.folds * cfg.cv.repeats if cfg.cv.strategy == "kfold" else 0
        fold_view = FoldProgress(
            folds=folds, epochs=cfg.train.epochs, metric=prepared.metric, console=view
        )
        epoch_view = EpochProgress(epochs=cfg.train.epochs, metric=prepared.metric, console=view)
        with fold_view if folds else nullcontext(), epoch_view:
            summary = train_flow(
                cfg,
                out=out,
                overwrite=overwrite,
                observer=Observers(fold_view, epoch_view),
                prepared=prepared,
                trust_code=trust_code,
            )
    except TunelabError as exc:
        _fail(exc)
    for note in summary.metrics["notes"]:
        view.print(f"note: {note}", highlight=False)
    _print_tracking(view, summary.metrics)
    Console(quiet=quiet).print(summary_table(summary.metrics, str(summary.run_dir)))
    _point_to_report(view, summary.run_dir)
    _stages_failed(summary.failed_stages, summary.run_dir)
    typer.echo(str(summary.run_dir))
    if summary.failed_stages:
        raise typer.Exit(1)


@app.command()
def run(
    config: ConfigArg,
    overrides: SetOpt = None,
    out: Annotated[Path | None, typer.Option(help="run directory [default: runs/NAME]")] = None,
    overwrite: Annotated[bool, typer.Option(help="start over instead of resuming")] = False,
    jobs: Annotated[
        str,
        typer.Option(
            "--jobs",
            "-j",
            help="trials side by side (local worker processes): N, or auto (from the free "
            "cores and the model)",
        ),
    ] = "auto",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no live progress")] = False,
) -> None:
    """Search the config's space with Optuna, refit the best, evaluate once on the test rows.

    Re-running the same command resumes the study: finished trials are kept.
    """
    from tunelab.applies import far_out
    from tunelab.config import load_config
    from tunelab.flows.study import run_study
    from tunelab.ladder.document import read_ladder
    from tunelab.ladder.show import print_ladder
    from tunelab.models.local import check_checkpoint_code
    from tunelab.observer import Observers
    from tunelab.progress.ladder import LadderProgress
    from tunelab.progress.study import StudyProgress, study_summary
    from tunelab.results.rundir import RunDir

    view = Console(stderr=True, quiet=quiet)
    try:
        workers = _jobs(jobs)
        cfg = load_config(config, overrides=overrides)
        _warn(view, far_out(cfg))
        check_checkpoint_code(cfg.model, trust_code=False)  # else every trial fails on it
        with StudyProgress(cfg, console=view) as progress:
            result = run_study(
                cfg,
                out=out,
                overwrite=overwrite,
                observer=Observers(progress, LadderProgress(console=view, live=False)),
                jobs=workers,
                started=_started,  # the budget counts from the process's start
                quiet_workers=quiet or view.is_terminal,  # their lines would break the bar
            )
    except KeyboardInterrupt:
        console.print("interrupted: finished trials are saved; run the same command to resume")
        raise typer.Exit(130) from None
    except TunelabError as exc:
        _fail(exc)
    if result.finisher is not None:  # another process owns the run: say so, and leave
        _say_joined(result.run_dir, result.finisher, result.failed, result.stop_reason)
        return
    out_console = Console(quiet=quiet)
    for part in study_summary(result, terminal=out_console.is_terminal):
        out_console.print(part, soft_wrap=True)
    failed_stages = {failure.stage for failure in result.failed_stages}
    if result.metrics is not None and cfg.ladder.enabled and "ladder" not in failed_stages:
        print_ladder(read_ladder(result.run_dir), console=out_console)
    _print_tracking(view, result.metrics)
    _point_to_report(view, result.run_dir)
    _stages_failed(result.failed_stages, result.run_dir)
    if result.metrics is None:
        what = "the study stopped" if result.failed else "no trial completed"
        console.print(
            f"[bold red]{what}[/]: {escape(result.stop_reason)}; "
            f"see {escape(str(RunDir(result.run_dir).leaderboard))}",
            soft_wrap=True,
        )
        raise typer.Exit(1)
    typer.echo(str(result.run_dir))
    if result.failed_stages:
        raise typer.Exit(1)


def _stages_failed(failures: list[StageFailure], run_dir: Path) -> None:
    """Name each stage that failed after the results were written (then exit 1)."""
    log = run_dir / "run.log"
    for failure in failures:
        console.print(
            f"[bold red]stage {escape(failure.stage)} failed[/]: {escape(failure.reason)}; "
            f"what finished is in {escape(str(run_dir))}"
            + (f" (traceback: {escape(str(log))})" if log.is_file() else ""),
            soft_wrap=True,
        )


def _print_tracking(view: Console, metrics: dict[str, object] | None) -> None:
    """What became of each tracker (metrics.json's tracking), one line each."""
    from tunelab.tracking import outcome_lines

    for line in outcome_lines((metrics or {}).get("tracking")):
        view.print(escape(line), highlight=False, soft_wrap=True)


def _say_joined(run_dir: Path, finisher: str, failed: bool, reason: str) -> None:
    console.print(
        f"joined the study in {escape(str(run_dir))} and ran trials until it had enough; "
        f"{escape(finisher)} holds the run and does the rest (refit, ensemble, final/, "
        "metrics, report)",
        highlight=False,
        soft_wrap=True,
    )
    if failed:
        console.print(f"[bold red]the search stopped[/]: {escape(reason)}", soft_wrap=True)
        raise typer.Exit(1)


def _jobs(value: str) -> int | Literal["auto"]:
    """``--jobs``: auto or a whole number of at least 1."""
    if value == "auto":
        return "auto"
    try:
        jobs = int(value)
    except ValueError:
        jobs = 0
    if jobs < 1:
        raise FatalError(
            f"--jobs {value!r} is not a number of trials side by side; give a whole number "
            "of at least 1, or auto (the default: from the free cores and the model)"
        )
    return jobs


def _point_to_report(view: Console, run_dir: Path) -> None:
    from tunelab.results.rundir import RunDir

    report = RunDir(run_dir).report
    if report.is_file():
        view.print(f"report: {escape(str(report))}", highlight=False, soft_wrap=True)


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="a run directory (tunelab train or run)")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="[default: RUN/report.html]")
    ] = None,
    overwrite: OverwriteOutputOpt = False,
) -> None:
    """Write the run's report: one HTML file that opens offline (no training, no network)."""
    from tunelab.report import write_report
    from tunelab.results.outputs import check_output
    from tunelab.results.rundir import RunDir

    try:
        if output is not None:
            run = RunDir(run_dir)
            check_output(output, run=run, overwrite=overwrite, default=run.report)
        path = write_report(run_dir, output=output)
    except TunelabError as exc:
        _fail(exc)
    typer.echo(str(path))


@app.command()
def ladder(
    config: ConfigArg,
    overrides: SetOpt = None,
    out: Annotated[Path | None, typer.Option(help="run directory [default: runs/NAME]")] = None,
    params: Annotated[
        Path | None,
        typer.Option(help="best_params.json of a study [default: the run directory's]"),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no live progress")] = False,
) -> None:
    """Measure what each technique contributes: the ablation ladder on repeated k folds.

    Re-running the same command resumes: measured folds in ladder.json are kept.
    """
    from tunelab.config import load_config
    from tunelab.flows.ladder import ladder as ladder_flow
    from tunelab.ladder.show import print_ladder
    from tunelab.models.local import check_checkpoint_code
    from tunelab.progress.ladder import LadderProgress

    view = Console(stderr=True, quiet=quiet)
    try:
        cfg = load_config(config, overrides=overrides)
        values = _read_params(params) if params is not None else None
        check_checkpoint_code(cfg.model, trust_code=False)
        with LadderProgress(console=view) as progress:
            summary = ladder_flow(
                cfg,
                out=out,
                observer=progress,
                params=values,
                params_source=str(params) if params else None,
            )
    except KeyboardInterrupt:
        console.print("interrupted: measured folds are in ladder.json; run the same command again")
        raise typer.Exit(130) from None
    except TunelabError as exc:
        _fail(exc)
    print_ladder(summary.document, console=Console(quiet=quiet))
    _point_to_report(view, summary.run_dir)
    typer.echo(str(summary.run_dir))


@app.command("lr-find")
def lr_find(
    config: ConfigArg,
    overrides: SetOpt = None,
    out: Annotated[
        Path | None, typer.Option(help="where the plot goes [default: runs/NAME-lr-find]")
    ] = None,
    steps: Annotated[int, typer.Option(min=5, help="batches in the sweep")] = 100,
    trust_code: TrustCodeOpt = False,
) -> None:
    """Sweep the learning rate exponentially on the training rows and suggest one (like
    fastai's lr_find); writes lr_find.png and lr_find.json. Use the suggestion as train.lr,
    or set train.lr to auto to run the sweep before training."""
    from tunelab.config import load_config
    from tunelab.evaluation.lr_find import lr_sweep, write_plot, write_sweep
    from tunelab.evaluation.prepare import prepare
    from tunelab.results.outputs import only_files_of
    from tunelab.results.rundir import open_run_dir, release_run_dir

    try:
        cfg = load_config(config, overrides=overrides)
        if cfg.model.head != "linear":
            raise ConfigError(
                f"model.head: {cfg.model.head!r} is fitted by scikit-learn without a learning "
                "rate; lr-find is for heads trained by the loop (model.head linear)"
            )
        prepared = prepare(cfg)
        folder = out or Path("runs") / f"{cfg.name}-lr-find"
        # a folder of its own: never a run's directory, whose files it would replace
        run = open_run_dir(cfg, folder, resume=only_files_of("lr_find", "lr_find_plot"))
        try:
            with console.status("sweeping the learning rate"):
                rows = prepared.split.train
                sweep = lr_sweep(cfg, prepared, rows, steps=steps, trust_code=trust_code)
            write_sweep(sweep, run.lr_find)
            write_plot(sweep, run.lr_find_plot)
        finally:
            release_run_dir(run)
    except TunelabError as exc:
        _fail(exc)
    typer.echo(sweep.text_plot())
    ended = "the loss diverged" if sweep.stopped == "diverged" else "all steps ran"
    typer.echo(
        f"lowest smoothed loss at lr {sweep.lowest:.2g} ({len(sweep.lrs)} steps; {ended})\n"
        f"suggested train.lr: {sweep.suggestion:.2g}\n"
        f"plot: {run.lr_find_plot}"
    )


@app.command()
def worker(
    run_dir: Annotated[Path, typer.Argument(help="the run directory of a started study")],
    threads: Annotated[int | None, typer.Option(help="torch CPU threads")] = None,
    deadline: Annotated[
        float | None, typer.Option(help="stop starting trials after this Unix time")
    ] = None,
    budget_end: Annotated[
        float | None, typer.Option(help="the run's time budget ends at this Unix time")
    ] = None,
    parent: Annotated[
        int | None, typer.Option(hidden=True, help="stop when this process ends")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="print nothing")] = False,
    share: Annotated[
        int, typer.Option(hidden=True, min=1, help="workers of one run splitting the cores")
    ] = 1,
) -> None:
    """Join a study and run trials until it has enough (used by run --jobs; start more on
    other machines with a shared run directory whose search.storage is a PostgreSQL URL:
    the default SQLite file needs a local disk). Prints a line when it joins and when each
    of its trials starts and ends."""
    from tunelab.search.workers import run_worker

    view = Console(stderr=True, quiet=quiet)
    try:
        reason, failed = run_worker(
            run_dir,
            threads=threads,
            deadline=deadline,
            budget_end=budget_end,
            parent=parent,
            say=lambda line: view.print(line, highlight=False, markup=False, soft_wrap=True),
            share=share,
        )
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    except TunelabError as exc:
        _fail(exc)
    if failed:
        console.print(f"[bold red]worker stopped[/]: {escape(reason)}", soft_wrap=True)
    if _started is not None:  # its own process (not inside a test's CliRunner)
        # its trials are in the storage and its log is closed: skip the interpreter's
        # teardown (seconds of unloading torch), which its parent and the budget wait for
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(1 if failed else 0)
    if failed:
        raise typer.Exit(1)


@app.command()
def predict(
    run: Annotated[Path, typer.Argument(help="run directory (or its final/ folder)")],
    input: Annotated[
        Path, typer.Option("--input", "-i", help="csv, parquet, jsonl, npz, or a folder of images")
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="where to write the csv")],
    overwrite: OverwriteOutputOpt = False,
    trust_code: TrustCodeOpt = False,
) -> None:
    """Predict on new raw inputs with a trained run's predictor."""
    from tunelab.results.outputs import check_output
    from tunelab.results.predictions import predictions_frame
    from tunelab.results.predictor import load_predictor
    from tunelab.results.rundir import RunDir

    try:
        paths = image_files(input) if input.is_dir() else [input]
        # before predicting, not after
        check_output(output, run=RunDir(run), inputs=paths, overwrite=overwrite)
        predictor = load_predictor(run, trust_code=trust_code)
        if input.is_dir():
            frame = predictions_frame(predictor, predictor.load_images(paths))
            frame.insert(0, "path", [str(p) for p in paths])
        else:
            frame = predictions_frame(predictor, read_inputs(input))
        _write_csv(frame, output)
    except TunelabError as exc:
        _fail(exc)
    console.print(f"wrote {len(frame)} predictions to {output}")


@app.command()
def export(
    run: Annotated[Path, typer.Argument(help="run directory (or its final/ folder)")],
    format: Annotated[
        str, typer.Option("--format", "-f", help="onnx | torchscript", show_default=False)
    ],
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="[default: RUN/model.onnx or RUN/model.pt]"),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option(help="replace an earlier export at --output (and its .json)")
    ] = False,
    trust_code: TrustCodeOpt = False,
) -> None:
    """Export a neural predictor, its preprocessing inside, as ONNX or TorchScript.

    An existing file is replaced only with --overwrite, and only when tunelab exported it;
    nothing is ever written into the run's final/ folder or over its other files.
    """
    from tunelab.export import FORMATS, export_predictor

    try:
        if format not in FORMATS:
            raise FatalError(
                f"--format {format!r} is not an export format; use one of {', '.join(FORMATS)}"
            )
        exported = export_predictor(
            run,
            format=format,  # checked against FORMATS above
            output=output,
            overwrite=overwrite,
            trust_code=trust_code,
        )
    except TunelabError as exc:
        _fail(exc)
    console.print(f"wrote {exported.path} (its inputs: {exported.inputs_path})", soft_wrap=True)
    if exported.max_abs_difference is None:
        console.print("not checked: the run has no test_inputs.csv to compare outputs on")
    else:
        console.print(
            f"checked on {exported.rows_checked} test rows: outputs within "
            f"{exported.max_abs_difference:.2g} of the predictor's"
        )


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    try:
        frame.to_csv(path, index=False)
    except OSError as exc:
        raise FatalError(f"--output {path}: cannot write it ({exc.strerror or exc})") from None


JSON_KINDS = {list: "list", str: "string", int: "number", float: "number", bool: "boolean"}


def _with_params(cfg: RunConfig, path: Path) -> RunConfig:
    from tunelab.config import apply_params

    return apply_params(cfg, _read_params(path))


def _read_params(path: Path) -> dict[str, object]:
    import json

    if not path.is_file():
        raise ConfigError(f"--params: {str(path)!r} does not exist")
    try:
        values = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--params: {path} is not JSON ({exc})") from None
    if not isinstance(values, dict):
        raise ConfigError(
            f"--params: {path} holds a JSON {JSON_KINDS.get(type(values), 'value')}, not an "
            "object of dotted field names to values; give a "
            'study\'s best_params.json, e.g. {"train.lr": 0.003, "model.depth": 2}'
        )
    return values


def image_files(folder: Path) -> list[Path]:
    """Every image file under ``folder``, sorted."""
    from tunelab.data.images import IMAGE_SUFFIXES

    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise DataError(f"{folder} holds no image files ({', '.join(IMAGE_SUFFIXES)})")
    return paths


def read_inputs(path: Path) -> pd.DataFrame | np.ndarray:
    """Read a prediction input file by its extension; it must hold at least one row."""
    import pandas as pd

    if not path.is_file():
        raise DataError(f"input file {str(path)!r} does not exist")
    inputs = _read_by_suffix(path)
    if len(inputs) == 0:
        columns = (
            f" (only the header: {len(inputs.columns)} columns)"
            if isinstance(inputs, pd.DataFrame)
            else ""
        )
        raise DataError(
            f"input file {path} has no rows{columns}; give at least one row to predict on"
        )
    return inputs


def _read_by_suffix(path: Path) -> pd.DataFrame | np.ndarray:
    import numpy as np
    import pandas as pd

    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return pd.read_csv(path)
        if suffix == ".parquet":
            return pd.read_parquet(path)
        if suffix in (".jsonl", ".json"):
            return pd.read_json(path, lines=suffix == ".jsonl")
        if suffix == ".npz":
            with np.load(path) as arrays:
                for key in ("X", "x", "inputs"):
                    if key in arrays:
                        return np.asarray(arrays[key])
                raise DataError(
                    f"{path}: no array named X, x or inputs (found "
                    f"{', '.join(arrays.files)}); save the inputs as X"
                )
    except (ValueError, OSError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    raise DataError(
        f"{path}: unsupported input type {suffix!r}; use .csv, .parquet, .jsonl or .npz"
    )


TRUST_CODE_IN = "--trust-code="
MODULE_NAME = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")


def split_trust_code(args: list[str]) -> tuple[list[str], list[str] | None]:
    """``--trust-code=mymodels,lab.nets`` -> ``--trust-code`` and the modules it names
    (None when no argument names modules).

    Raises:
        FatalError: a name that is not a module name.
    """
    modules: list[str] | None = None
    plain = []
    for arg in args:
        if not arg.startswith(TRUST_CODE_IN):
            plain.append(arg)
            continue
        names = [name.strip() for name in arg.removeprefix(TRUST_CODE_IN).split(",")]
        bad = [name for name in names if not MODULE_NAME.fullmatch(name)]
        if bad or not names:
            raise FatalError(
                f"{arg}: {', '.join(map(repr, bad))} is not a module name; give the modules "
                "you trust, e.g. --trust-code=mymodels,lab.nets, or --trust-code alone to "
                "trust code from any module"
            )
        modules = [*(modules or []), *names]
        plain.append("--trust-code")
    return plain, modules


def main() -> None:
    """Console-script entry point."""
    global _started
    from tunelab.flows.timeline import process_start

    _started = process_start() or time.time()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        args, modules = split_trust_code(sys.argv[1:])
        if modules is None:
            app(args=args)
        else:
            from tunelab.models.trust import trusted_modules

            with trusted_modules(*modules):
                app(args=args)
    except FatalError as exc:  # a bad --trust-code=...; the commands catch their own
        console.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
