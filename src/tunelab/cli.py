"""The ``tunelab`` command line: parse, call the library, print. Nothing else lives here."""

from __future__ import annotations

import os
import sys
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

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Fine-tune a model on your data and show which techniques helped.",
)
console = Console(stderr=True)

ConfigArg = Annotated[Path, typer.Argument(help="the run's YAML config", show_default=False)]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", help="override a field, e.g. --set train.lr=0.01 (repeatable)"),
]
TrustCodeOpt = Annotated[
    bool,
    typer.Option(
        "--trust-code",
        help="import and call the Python function a file names as its architecture "
        "(a py: predictor, a checkpoint's metadata); only for files you trust",
    ),
]


def _fail(exc: TunelabError) -> None:
    label = {ConfigError: "config error", DataError: "data error"}.get(type(exc), "error")
    console.print(f"[bold red]{label}:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


@app.command()
def check(config: ConfigArg, overrides: SetOpt = None) -> None:
    """Validate a config and print it resolved (with every default filled in)."""
    from tunelab.config import load_config

    try:
        cfg = load_config(config, overrides=overrides)
    except TunelabError as exc:
        _fail(exc)
    typer.echo(cfg.to_yaml(), nl=False)


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
    from tunelab.config import load_config
    from tunelab.evaluation.prepare import prepare
    from tunelab.models.local import check_checkpoint_code
    from tunelab.pipeline import train as run_train
    from tunelab.progress import EpochProgress, FoldProgress, summary_table

    view = Console(stderr=True, quiet=quiet)
    try:
        cfg = load_config(config, overrides=overrides)
        if params is not None:
            cfg = _with_params(cfg, params)
        check_checkpoint_code(cfg.model, trust_code=trust_code)
        with view.status("loading data"):
            prepared = prepare(cfg)
        rows = prepared.split
        view.print(
            f"{prepared.raw.origin}: {prepared.raw.modality}, {prepared.target.task}; "
            f"{len(rows.train)} train / {len(rows.validation)} validation / "
            f"{len(rows.test)} test rows",
            highlight=False,
        )
        folds = cfg.cv.folds * cfg.cv.repeats if cfg.cv.strategy == "kfold" else 0
        fold_view = FoldProgress(
            folds=folds, epochs=cfg.train.epochs, metric=prepared.metric, console=view
        )
        epoch_view = EpochProgress(epochs=cfg.train.epochs, metric=prepared.metric, console=view)
        with fold_view if folds else nullcontext(), epoch_view:
            summary = run_train(
                cfg,
                out=out,
                overwrite=overwrite,
                callbacks=[epoch_view],
                on_fold_epoch=fold_view if folds else None,
                prepared=prepared,
                trust_code=trust_code,
            )
    except TunelabError as exc:
        _fail(exc)
    for note in summary.metrics["notes"]:
        view.print(f"note: {note}", highlight=False)
    Console(quiet=quiet).print(summary_table(summary.metrics, str(summary.run_dir)))
    _point_to_report(view, summary.run_dir)
    typer.echo(str(summary.run_dir))


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
    from tunelab.config import load_config
    from tunelab.ladder.document import read_ladder
    from tunelab.ladder.rungs import rung_names
    from tunelab.ladder.show import LadderProgress, print_ladder
    from tunelab.models.local import check_checkpoint_code
    from tunelab.search.progress import StudyProgress, study_summary
    from tunelab.search.run import run_study

    view = Console(stderr=True, quiet=quiet)
    try:
        workers = _jobs(jobs)
        cfg = load_config(config, overrides=overrides)
        check_checkpoint_code(cfg.model, trust_code=False)  # else every trial fails on it
        if cfg.ladder.enabled:
            rung_names(cfg)  # a misspelt rung is said now, not after the study
        with StudyProgress(cfg, console=view) as progress:
            result = run_study(
                cfg,
                out=out,
                overwrite=overwrite,
                jobs=workers,
                on_epoch=progress.on_epoch,
                hooks=[progress.on_trial],
                poll=progress.poll,
                ladder_watcher=LadderProgress(console=view, live=False),
            )
    except KeyboardInterrupt:
        console.print("interrupted: finished trials are saved; run the same command to resume")
        raise typer.Exit(130) from None
    except TunelabError as exc:
        _fail(exc)
    out_console = Console(quiet=quiet)
    for part in study_summary(result, terminal=out_console.is_terminal):
        out_console.print(part, soft_wrap=True)
    if result.metrics is not None and cfg.ladder.enabled:
        print_ladder(read_ladder(result.run_dir), console=out_console)
    _point_to_report(view, result.run_dir)
    if result.metrics is None:
        what = "the study stopped" if result.failed else "no trial completed"
        console.print(
            f"[bold red]{what}[/]: {escape(result.stop_reason)}; "
            f"see {escape(str(result.run_dir / 'leaderboard.csv'))}",
            soft_wrap=True,
        )
        raise typer.Exit(1)
    typer.echo(str(result.run_dir))


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
) -> None:
    """Write the run's report: one HTML file that opens offline (no training, no network)."""
    from tunelab.report import write_report

    try:
        if output is not None:
            _check_output(output)
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
    from tunelab.ladder.command import ladder_in_run_dir
    from tunelab.ladder.show import LadderProgress, print_ladder
    from tunelab.models.local import check_checkpoint_code

    view = Console(stderr=True, quiet=quiet)
    try:
        cfg = load_config(config, overrides=overrides)
        values = _read_params(params) if params is not None else None
        check_checkpoint_code(cfg.model, trust_code=False)
        with LadderProgress(console=view) as progress:
            run_dir, doc = ladder_in_run_dir(
                cfg,
                out=out,
                params=values,
                params_source=str(params) if params else None,
                watcher=progress,
            )
    except KeyboardInterrupt:
        console.print("interrupted: measured folds are in ladder.json; run the same command again")
        raise typer.Exit(130) from None
    except TunelabError as exc:
        _fail(exc)
    print_ladder(doc, console=Console(quiet=quiet))
    typer.echo(str(run_dir.path))


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
    from tunelab.results.rundir import open_run_dir

    try:
        cfg = load_config(config, overrides=overrides)
        if cfg.model.head != "linear":
            raise ConfigError(
                f"model.head: {cfg.model.head!r} is fitted by scikit-learn without a learning "
                "rate; lr-find is for heads trained by the loop (model.head linear)"
            )
        prepared = prepare(cfg)
        run = open_run_dir(cfg, out or Path("runs") / f"{cfg.name}-lr-find", overwrite=True)
        with console.status("sweeping the learning rate"):
            rows = prepared.split.train
            sweep = lr_sweep(cfg, prepared, rows, steps=steps, trust_code=trust_code)
        write_sweep(sweep, run.lr_find)
        write_plot(sweep, run.lr_find_plot)
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
    share: Annotated[
        int, typer.Option(hidden=True, min=1, help="workers of one run splitting the cores")
    ] = 1,
) -> None:
    """Join a study and run trials until it has enough (used by run --jobs; start more on
    other machines with a shared run directory whose search.storage is a PostgreSQL URL:
    the default SQLite file needs a local disk)."""
    from tunelab.search.run import run_worker

    try:
        reason, failed = run_worker(
            run_dir,
            threads=threads,
            deadline=deadline,
            budget_end=budget_end,
            parent=parent,
            share=share,
        )
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    except TunelabError as exc:
        _fail(exc)
    if failed:
        console.print(f"[bold red]worker stopped[/]: {escape(reason)}", soft_wrap=True)
        raise typer.Exit(1)


@app.command()
def predict(
    run: Annotated[Path, typer.Argument(help="run directory (or its final/ folder)")],
    input: Annotated[
        Path, typer.Option("--input", "-i", help="csv, parquet, jsonl, npz, or a folder of images")
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="where to write the csv")],
    trust_code: TrustCodeOpt = False,
) -> None:
    """Predict on new raw inputs with a trained run's predictor."""
    from tunelab.evaluation.holdout import predictions_frame
    from tunelab.results.predictor import load_predictor

    try:
        _check_output(output)  # before predicting, not after
        predictor = load_predictor(run, trust_code=trust_code)
        if input.is_dir():
            paths = image_files(input)
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
    trust_code: TrustCodeOpt = False,
) -> None:
    """Export a neural predictor, its preprocessing inside, as ONNX or TorchScript."""
    from tunelab.export import FORMATS, export_predictor

    try:
        if format not in FORMATS:
            raise FatalError(
                f"--format {format!r} is not an export format; use one of {', '.join(FORMATS)}"
            )
        if output is not None:
            _check_output(output)
        exported = export_predictor(
            run,
            format=format,  # checked against FORMATS above
            output=output,
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


def _check_output(path: Path) -> None:
    if path.is_dir():
        raise FatalError(
            f"--output {path} is a folder; give a file name, e.g. {path / 'preds.csv'}"
        )
    if not path.parent.is_dir():
        raise FatalError(
            f"--output {path}: the folder {str(path.parent)!r} does not exist; create it first "
            "or write into an existing one (e.g. the run directory)"
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


def main() -> None:
    """Console-script entry point."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        app()
    except FatalError as exc:  # pragma: no cover - the commands catch their own
        console.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
