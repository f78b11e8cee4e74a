"""Run the code of a Markdown file as a reader would: every Python block and every shell
command, in the order they appear, in one scratch directory.

What is run:

- fenced ```python blocks: each in a fresh interpreter, so a block cannot lean on an import
  or a variable of an earlier one (files written by earlier blocks and commands stay);
- fenced ```bash / ```sh / ```shell / ```console blocks, and indented blocks whose first
  word is a command (``tunelab``, ``python``, ``pip``, ``mkdir``...; a directory tree or a
  listing is not code): each command line in its own ``bash``, lines joined at a trailing
  backslash, a leading ``$ `` dropped;
- a transcript (a block whose commands start with ``$ ``): only the ``$ `` lines run; the
  lines after one are the output it shows, and every word of them must be in what the
  command printed (so a shown error stays true); such a command may exit non-zero;
- fenced ```yaml blocks are parsed, not run.

What is not run, and why (the rules live here so that a rewritten document needs no change):

- ``SETUP``: the parts of a command line that create or fill a virtual environment
  (``python3 -m venv``, ``. .venv/bin/activate``, ``pip install``): the test already runs
  inside the installed project; the rest of the line (``&& tunelab run ...``) runs;
- ``SKIP``: whole command lines that cannot run here, each with its reason. A rule that
  matches no command fails the test, so the list cannot go stale.

``CHEAP`` settings are appended (as ``--set``) to every ``tunelab train|run|ladder|lr-find``
command, last so that they win: one epoch, two trials, a two-fold ladder, one thread. They
change how long a command runs, not whether it works.

``tunelab``, ``python`` and ``python3`` are the interpreter running the tests.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

SETUP = (
    re.compile(r"^python3? -m venv\b"),
    re.compile(r"^(\.|source) \S*activate$"),
    re.compile(r"^(python3? -m )?pip install\b"),
)
SKIP = {
    "python -m pytest": "the test command itself (this test is part of it)",
    "bash .ci/run": "CI itself: a fresh .venv, apt-get and a PostgreSQL server; it runs this test",
    "sudo ": "changes the machine (installs and configures PostgreSQL)",
    "tunelab run study.yaml": "needs the PostgreSQL server of 'Many machines' (db-host); "
    "tests/search/test_postgres.py runs these steps on a real server",
    "tunelab worker": "needs the PostgreSQL server of 'Many machines' (db-host)",
}
CHEAP = (
    "train.epochs=1",
    "train.threads=1",
    "search.n_trials=2",
    "ladder.folds=2",
    "ladder.repeats=1",
    "ladder.epochs=1",
)
COMMAND_WORDS = frozenset(
    {"tunelab", "python", "python3", "pip", "mkdir", "cp", "export", "sudo", "bash", "cd", "$"}
)
SHELL_LANGUAGES = frozenset({"bash", "sh", "shell", "console"})
TIMEOUT = 900  # seconds a command may take: catches a hang, not a slow machine


@dataclass(frozen=True)
class Block:
    """A code block of a Markdown file: ``language`` is ``python``, ``shell`` or ``yaml``."""

    path: Path
    line: int
    language: str
    code: str

    @property
    def where(self) -> str:
        return f"{self.path.name}:{self.line}"


def blocks(path: Path) -> list[Block]:
    """The fenced and indented code blocks of ``path``, in order."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        fence = re.match(r"^(\s*)```(\w*)", lines[i])
        if fence:
            end = next(j for j in range(i + 1, len(lines)) if lines[j].strip() == "```")
            body = _dedent(lines[i + 1 : end], len(fence.group(1)))
            language = "shell" if fence.group(2) in SHELL_LANGUAGES else fence.group(2)
            found.append(Block(path, i + 2, language, "\n".join(body)))
            i = end + 1
        elif lines[i].startswith("    ") and (i == 0 or not lines[i - 1].strip()):
            end = i
            while end < len(lines) and (lines[end].startswith("    ") or not lines[end].strip()):
                end += 1
            body = [line.strip() for line in lines[i:end] if line.strip()]
            if body[0].split()[0] in COMMAND_WORDS:
                found.append(Block(path, i + 1, "shell", "\n".join(body)))
            i = end
        else:
            i += 1
    return found


def _dedent(lines: list[str], indent: int) -> list[str]:
    return [line[indent:] if line[:indent].isspace() else line for line in lines]


@dataclass(frozen=True)
class Command:
    """A command line; ``shown``: the output a transcript shows after it (None: not a
    transcript, the command must exit 0)."""

    line: str
    shown: str | None = None


def commands(block: Block) -> Iterator[Command]:
    """The command lines of a shell block (continuations joined, prompts dropped)."""
    joined = block.code.replace("\\\n", " ").splitlines()
    if any(line.strip().startswith("$ ") for line in joined):
        yield from _transcript(joined)
        return
    for line in joined:
        line = line.strip()
        if line and not line.startswith("#"):
            yield Command(line)


def _transcript(lines: list[str]) -> Iterator[Command]:
    command: str | None = None
    shown: list[str] = []
    for line in lines:
        if line.strip().startswith("$ "):
            if command:
                yield Command(command, " ".join(shown))
            command, shown = line.strip().removeprefix("$ ").strip(), []
        else:
            shown.append(line.strip())
    if command:
        yield Command(command, " ".join(shown))


def skip_reason(command: str) -> str | None:
    return next((why for key, why in SKIP.items() if key in command), None)


def runnable(command: str) -> str:
    """``command`` without its set-up parts, with ``CHEAP`` added to tunelab's fits."""
    parts = [part.strip() for part in command.split("&&")]
    kept = [part for part in parts if not any(rule.search(part) for rule in SETUP)]
    return " && ".join(_cheap(part) for part in kept)


def _cheap(part: str) -> str:
    if not re.match(r"^tunelab (train|run|ladder|lr-find)\b", part):
        return part
    # before a trailing comment or redirect, so the shell still reads them as such
    found = re.match(r"^(.*?)(\s+(?:#|>).*)?$", part)
    assert found is not None  # the pattern matches any line
    body, tail = found.groups()
    settings = " ".join(f"--set {setting}" for setting in CHEAP)
    return f"{body} {settings}{tail or ''}"


@dataclass
class Outcome:
    """What running a document did: what ran, and what was skipped and why."""

    ran: list[str]
    skipped: list[str]
    used_rules: set[str]


def run_document(path: Path, workdir: Path, *, copy: tuple[Path, ...] = ()) -> Outcome:
    """Run every block of ``path`` in ``workdir`` (``copy``: folders the code reads, such
    as ``examples/``, copied in first). An ``AssertionError`` names the block that failed."""
    import shutil

    for folder in copy:
        shutil.copytree(folder, workdir / folder.name)
    env = _environment(workdir)
    outcome = Outcome(ran=[], skipped=[], used_rules=set())
    for block in blocks(path):
        if block.language == "python":
            _run([sys.executable, "-c", block.code], block, block.code, workdir, env)
            outcome.ran.append(f"{block.where} python")
        elif block.language == "yaml":
            yaml.safe_load(block.code)
        elif block.language == "shell":
            for command in commands(block):
                _shell(command, block, workdir, env, outcome)
    return outcome


def _shell(
    command: Command, block: Block, workdir: Path, env: dict[str, str], outcome: Outcome
) -> None:
    why = skip_reason(command.line)
    if why is not None:
        outcome.used_rules.update(key for key in SKIP if key in command.line)
        outcome.skipped.append(f"{block.where} {command.line}: {why}")
        return
    line = runnable(command.line)
    if line:
        _run(["bash", "-e", "-c", line], block, line, workdir, env, shown=command.shown)
        outcome.ran.append(f"{block.where} {line}")


def _environment(workdir: Path) -> dict[str, str]:
    """PATH with ``tunelab``, ``python`` and ``python3`` running this interpreter."""
    shims = workdir / ".shims"
    shims.mkdir()
    for name, run in {"tunelab": "-m tunelab.cli", "python": "", "python3": ""}.items():
        shim = shims / name
        shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" {run} "$@"\n')
        shim.chmod(0o755)
    return {**os.environ, "PATH": f"{shims}{os.pathsep}{os.environ.get('PATH', '')}"}


def _run(
    argv: list[str],
    block: Block,
    line: str,
    workdir: Path,
    env: dict[str, str],
    *,
    shown: str | None = None,
) -> None:
    started = time.perf_counter()
    proc = subprocess.run(
        argv, cwd=workdir, env=env, capture_output=True, text=True, timeout=TIMEOUT
    )
    print(f"{block.where} {time.perf_counter() - started:5.1f}s {line[:100]!r}")
    output = (proc.stdout + proc.stderr)[-3000:]
    if shown:  # a transcript: what it shows must be what the command printed
        printed = " ".join((proc.stdout + proc.stderr).split())
        assert " ".join(shown.split()) in printed, (
            f"{block.where}: the shown output is not what\n{line}\nprinted:\n{output}"
        )
        return
    assert proc.returncode == 0, (
        f"{block.where}: exit {proc.returncode} running\n{line}\n--- output (end) ---\n{output}"
    )
