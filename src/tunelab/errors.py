"""The errors tunelab raises.

User mistakes (a bad config, bad data) are ``ConfigError`` / ``DataError``: the CLI prints
their message and exits without a traceback. ``TrialFailed`` marks one failed training run
(a study goes on); ``FatalError`` stops everything.
"""

from __future__ import annotations


class TunelabError(Exception):
    """Base class of every error tunelab raises on purpose."""


class ConfigError(TunelabError):
    """The config (file, override or field value) is invalid.

    Args:
        problems: one line per problem, each naming the field, the value, what is allowed
            and how to fix it.
    """

    def __init__(self, problems: list[str] | str, *, source: str | None = None) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        self.source = source
        where = f" in {source}" if source else ""
        count = len(self.problems)
        head = f"{count} problem{'s' if count != 1 else ''}{where}:"
        super().__init__("\n".join([head, *(f"  - {p}" for p in self.problems)]))


class DataError(TunelabError):
    """The data (file, column, row, image) cannot be used as configured."""


class TrialFailed(TunelabError):
    """One training run failed (non-finite loss, out of memory, bad parameter combination)."""

    def __init__(self, message: str, *, reason: str = "error") -> None:
        self.reason = reason
        super().__init__(message)


class FatalError(TunelabError):
    """Something that no retry fixes (missing dependency, unwritable run directory)."""


class NonFiniteOutputs(FatalError):
    """A predictor's outputs hold NaN or infinite values, which are never turned into labels
    or predictions; the message names the first rows and the likely cause."""


class MissingDependency(FatalError):
    """An optional dependency is not installed."""

    def __init__(self, package: str, *, extra: str, purpose: str) -> None:
        super().__init__(
            f"{purpose} needs the package '{package}', which is not installed. "
            f"Install it with: pip install -c constraints.txt 'tunelab[{extra}]'"
        )
