"""The README's code runs as written: every Python block and shell command, in order, in a
scratch directory (see ``tests/docs_runner.py`` for what runs, what is skipped and why, and
the cheap settings added to training commands). Markdown files under ``docs/`` are run the
same way, each in its own directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.docs_runner import SKIP, blocks, commands, run_document, runnable

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("**/*.md"))]


@pytest.mark.slow
@pytest.mark.parametrize("path", DOCUMENTS, ids=[p.relative_to(ROOT).as_posix() for p in DOCUMENTS])
def test_every_code_block_runs(path: Path, tmp_path: Path) -> None:
    outcome = run_document(path, tmp_path, copy=(ROOT / "examples",))
    print(f"{path.name}: ran {len(outcome.ran)}, skipped:", *outcome.skipped, sep="\n  ")
    if path.name == "README.md":
        assert any(entry.endswith(" python") for entry in outcome.ran)
        assert any(" tunelab run " in f" {entry} " for entry in outcome.ran)


def test_every_skip_rule_still_matches_a_command() -> None:
    """A rule for a command the documents no longer hold is removed, not kept by habit."""
    every = [
        c for path in DOCUMENTS for b in blocks(path) if b.language == "shell" for c in commands(b)
    ]
    stale = [key for key in SKIP if not any(key in command.line for command in every)]
    assert not stale, f"SKIP rules that match no command: {stale}; remove them"


def test_set_up_is_dropped_and_fits_are_made_cheap() -> None:
    line = (
        "python3 -m venv .venv && . .venv/bin/activate && pip install -c constraints.txt torch"
        " && tunelab run examples/quickstart.yaml --set ladder.epochs=10  # a comment"
    )
    kept = runnable(line)
    assert kept.startswith("tunelab run examples/quickstart.yaml --set ladder.epochs=10 --set ")
    assert kept.endswith("--set ladder.epochs=1  # a comment")
    assert runnable("tunelab check c.yaml > study.yaml") == "tunelab check c.yaml > study.yaml"


def test_a_transcript_runs_its_commands_and_checks_what_it_shows(tmp_path: Path) -> None:
    document = tmp_path / "doc.md"
    document.write_text(
        "Text.\n\n    $ python -c \"print('hello'); raise SystemExit(2)\"\n    hello\n\n"
    )
    (tmp_path / "work").mkdir()
    outcome = run_document(document, tmp_path / "work")
    assert len(outcome.ran) == 1  # the shown output is not run as a command
    document.write_text("Text.\n\n    $ python -c \"print('hello')\"\n    goodbye\n\n")
    (tmp_path / "work2").mkdir()
    with pytest.raises(AssertionError, match="shown output"):
        run_document(document, tmp_path / "work2")
