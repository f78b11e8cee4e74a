"""Where a command may write a file the user names (``--output``).

One rule for every such file: its folder exists; it is never inside a run directory's
``final/`` (the predictor), ``artifacts/`` or ``features/``, nor one of the files a run
directory holds (``RunDir``), except the ones the command itself writes there; and a file
that exists is replaced only with ``--overwrite``, and only when tunelab made it.

Example::

    check_output(Path("runs/x/model.onnx"), overwrite=False, own=("model.onnx",))
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from pathlib import Path

from tunelab.errors import FatalError
from tunelab.results.rundir import MARKER, RunDir


def check_folder(path: Path, *, option: str = "--output") -> None:
    """``path`` names a file in a folder that exists.

    Raises:
        FatalError: ``path`` is a folder, or its folder does not exist.
    """
    if path.is_dir():
        raise FatalError(
            f"{option} {path} is a folder; give a file name, e.g. {path / 'preds.csv'}"
        )
    if not path.parent.is_dir():
        raise FatalError(
            f"{option} {path}: the folder {str(path.parent)!r} does not exist; create it first "
            "or write into an existing one (e.g. the run directory)"
        )


def check_output(
    path: Path,
    *,
    overwrite: bool,
    option: str = "--output",
    own: Collection[str] = (),
    made_by_tunelab: Callable[[Path], bool] | None = None,
) -> None:
    """Refuse to write ``path`` unless the rule above allows it.

    Args:
        overwrite: the user passed ``--overwrite``.
        own: the names of run-directory files this command writes (``model.onnx``), which
            it may write into a run directory.
        made_by_tunelab: whether an existing file is one tunelab wrote (None: any file may
            be replaced with ``overwrite``).

    Raises:
        FatalError: naming the path, why it is refused, and the fix.
    """
    check_folder(path, option=option)
    held = run_file(path, own=own)
    if held is not None:
        raise FatalError(
            f"{option} {path} is {held}, which tunelab never writes over (not even with "
            "--overwrite: the run needs it); choose a new file name, outside the run's final/"
        )
    if not (path.exists() or path.is_symlink()):
        return
    if not overwrite:
        raise FatalError(
            f"{option} {path} already exists; pass --overwrite to replace it, or choose "
            "another file name"
        )
    if made_by_tunelab is not None and not made_by_tunelab(path):
        raise FatalError(
            f"{option} {path} exists and tunelab did not write it; --overwrite replaces only "
            "what tunelab made: move the file away or choose another name"
        )


def run_file(path: Path, *, own: Collection[str] = ()) -> str | None:
    """What ``path`` is in a run directory, when it is one of that run's files (or inside
    one of its folders) and not in ``own``; None otherwise."""
    real = path.resolve()
    for folder in real.parents:
        if folder.name == "final" and (folder / "predictor.json").is_file():
            return f"inside a run's final/ folder ({folder})"
        if not (folder / MARKER).is_file():
            continue
        run = RunDir(folder)
        for held in run.own_files():
            if held.name in own and real == held:
                continue
            if real == held or held in real.parents:
                kind = "inside a run's final/ folder" if held == run.final else "a run's own file"
                return f"{kind} ({held})"
    return None
