"""Where a command may write a file the user names (``--output``, ``--out``).

One rule for every such file: its folder exists; it never lands on what a run needs or on
what the command reads: a file named by ``RunDir`` (``config.yaml``, ``metrics.json``, the
study, the lock ...), anything inside a run's ``final/``, ``artifacts/`` or ``features/``,
or the command's own input; not even with ``--overwrite``. An existing file anywhere else
is replaced only with ``--overwrite`` (and, for a command that says how to tell, only when
tunelab made it).

Example::

    check_output(Path("runs/x/preds.csv"), run=RunDir(Path("runs/x")), overwrite=False)
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from pathlib import Path

from tunelab.errors import FatalError
from tunelab.results.rundir import FINAL, MANIFEST, MARKER, RunDir


def check_output(
    path: Path,
    *,
    run: RunDir | None = None,
    inputs: Sequence[Path] = (),
    overwrite: bool = False,
    default: Path | None = None,
    option: str = "--output",
    own: Collection[str] = (),
    made_by_tunelab: Callable[[Path], bool] | None = None,
) -> Path:
    """Check that ``path`` may be written; returns it.

    Args:
        path: the file the user named.
        run: the run directory the command reads (any run directory that holds ``path`` is
            found by its mark as well).
        inputs: the files the command reads.
        overwrite: an existing file (outside runs and inputs) may be replaced.
        default: the file the command writes when no output is named (``RUN/report.html``):
            naming it is allowed, and it is replaced as it would be without the option.
        option: the option's name, for messages.
        own: names of run-directory files this command writes itself (``model.onnx``),
            which it may write into a run directory.
        made_by_tunelab: whether an existing file is one tunelab wrote (None: any file may
            be replaced with ``overwrite``).

    Raises:
        FatalError: a folder, a missing folder, a run's own file, an input, or an existing
            file without ``overwrite`` (or not made by tunelab).
    """
    check_folder(path, option=option)
    target = path.resolve()
    if default is not None and target == default.resolve():
        return path
    held = _final_folder(target)
    if held is not None:
        raise FatalError(
            f"{option} {path} is inside a run's final/ folder ({held}): tunelab's predictor, "
            "which tunelab never writes over (not even with --overwrite); give a file outside "
            "final/ with a name of your own"
        )
    for owner in _runs_around(target, run):
        _refuse_run_file(path, target, owner, option, own)
    for given in inputs:
        if target == given.resolve() or _same_file(target, given):
            raise FatalError(
                f"{option} {path} is the command's input {given}; writing it would replace "
                "what it reads. Give another file name"
            )
    if not _exists(path):
        return path
    if not overwrite:
        raise FatalError(
            f"{option} {path} already exists; pass --overwrite to replace it, or give a new "
            "file name"
        )
    if made_by_tunelab is not None and not made_by_tunelab(path):
        raise FatalError(
            f"{option} {path} exists and tunelab did not write it; --overwrite replaces only "
            "what tunelab made: move the file away or choose another name"
        )
    return path


def check_folder(path: Path, *, option: str = "--output") -> None:
    """``path`` names a file in a folder that exists.

    Raises:
        FatalError: ``path`` is a folder, or its folder does not exist.
    """
    if path.is_dir():
        raise FatalError(f"{option} {path} is a folder; give a file name, e.g. {path / 'out.csv'}")
    if not path.parent.is_dir():
        raise FatalError(
            f"{option} {path}: the folder {str(path.parent)!r} does not exist; create it first "
            "or write into an existing one"
        )


def only_files_of(*names: str) -> Callable[[RunDir], bool]:
    """For ``open_run_dir``'s ``resume``: a folder may be written again by a command whose
    files are the ``RunDir`` properties ``names`` (``lr-find``'s), but not a folder that
    holds another command's results (a run's ``final/``, its study).

    Raises (from the returned check):
        FatalError: the folder holds tunelab files of another command, named.
    """

    def check(run: RunDir) -> bool:
        mine = {getattr(run, name) for name in names}
        mine |= {run.marker, run.lock, run.config, run.environment, run.log}
        others = [p.name for p in run.own_files() if p not in mine and _exists(p)]
        if others:
            raise FatalError(
                f"{run.path} holds another run's results ({', '.join(sorted(others)[:6])}); "
                f"this command writes its own files there and would replace its config.yaml. "
                "Pass --out with a new or empty folder"
            )
        return True

    return check


def _final_folder(target: Path) -> Path | None:
    """The predictor folder (a ``final/`` holding ``predictor.json``) that holds
    ``target``, also outside a marked run directory (a copied ``final/``)."""
    for folder in target.parents:
        if folder.name == FINAL and (folder / MANIFEST).is_file():
            return folder
    return None


def _runs_around(target: Path, run: RunDir | None) -> list[RunDir]:
    """``run`` and the run directory (a folder with tunelab's mark) that holds ``target``."""
    found = [RunDir(run.path.resolve())] if run is not None else []
    for folder in target.parents:
        if (folder / MARKER).is_file():
            found.append(RunDir(folder))
            break
    return found


def _refuse_run_file(
    path: Path, target: Path, run: RunDir, option: str, own: Collection[str]
) -> None:
    for held in run.own_files():
        if held.name in own and target == held:
            continue  # a file this command itself writes into a run directory
        if target.is_relative_to(held):  # the file itself, or inside one of tunelab's folders
            what = f"its {held.name}" if target == held else f"inside its {held.name}/"
            raise FatalError(
                f"{option} {path} is {what}: the run directory {run.path} is tunelab's, and "
                "tunelab never writes over the run's files (not even with --overwrite). Give "
                f"a file outside its final/ with a name of your own, e.g. "
                f"{run.path / 'predictions.csv'}"
            )


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.samefile(b)  # a hard link, or the same file by another path
    except OSError:
        return False


def _exists(path: Path) -> bool:
    return path.exists() or path.is_symlink()
