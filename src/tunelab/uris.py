"""Passwords in the URIs a config names (``search.storage``, ``tracking.mlflow``, any other).

One rule for every URI: a password is never written in one. It could sit in the user info
(``postgresql://user:PW@host/db``), in the query string (``?password=PW``, and libpq's other
keywords: ``sslpassword``, ``passfile``), or in a libpq connection string given as the
database name (``?dbname=host=h password=PW``); in each place only a ``${NAME}`` reference is
accepted, which ``expand`` replaces by the environment variable NAME at connection time.
So ``config.yaml``, ``tunelab check`` and every message show the reference, never the value.

Example::

    problem("search.storage", "postgresql://u@h/db?password=pw", variable="DB_PASSWORD")
    # "search.storage: 'postgresql://u@h/db?password=***' holds a password (...); write ..."
    masked("postgresql://u:pw@h/db")  # 'postgresql://u:***@h/db'
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote, unquote_plus

from tunelab.errors import ConfigError

# a value made only of ${NAME} references: read from the environment when connecting
_REFERENCES = re.compile(r"(?:\$\{[A-Za-z_][A-Za-z0-9_]*\})+")
_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# query and libpq keywords whose value is a secret (or names where one is kept)
_SECRET_KEY = re.compile(r"pass|pwd|secret|token|credential|api_?key|^auth(orization)?$")
# one libpq ``keyword = value`` pair; a value may be single-quoted with backslash escapes
_CONNINFO_PAIR = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*=\s*('(?:[^'\\]|\\.)*'|[^\s']*)")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")


@dataclass(frozen=True)
class Secret:
    """A literal secret in a URI: where it is, and the span of the text that holds it."""

    where: str
    start: int
    end: int


def secrets_in(uri: str) -> list[Secret]:
    """Every literal secret of ``uri`` (``${NAME}`` references are not secrets)."""
    found: list[Secret] = []
    scheme = _SCHEME.match(uri)
    if scheme is None:
        if "=" in uri:  # a libpq connection string on its own
            found += _conninfo(uri, 0)
        return found
    found += _user_info(uri, scheme.end())
    rest, cut = uri[scheme.end() :], len(uri)
    for mark in "?#":
        index = rest.find(mark)
        if index >= 0:
            cut = min(cut, scheme.end() + index)
    slash = uri.find("/", scheme.end())
    if 0 <= slash < cut:  # the path: a database name, which libpq also reads as conninfo
        found += _nested(uri, slash + 1, cut, "the database name")
    for start, end in _query_parts(uri, cut):
        found += _query(uri, start, end)
    return found


def _user_info(uri: str, after: int) -> list[Secret]:
    """``user:PW@``, as urllib reads it (up to the last ``@`` of the host part) and as
    SQLAlchemy does (up to the first ``@``): the union, so neither reading leaks."""
    spans: list[tuple[int, int]] = []
    host_end = len(uri)
    for mark in "/?#":
        index = uri.find(mark, after)
        if index >= 0:
            host_end = min(host_end, index)
    at = uri.rfind("@", after, host_end)
    colon = uri.find(":", after, at) if at >= 0 else -1
    if colon >= 0:
        spans.append((colon + 1, at))
    sqlalchemy = re.compile(r"[^:/]*:([^@]*)@").match(uri, after)
    if sqlalchemy is not None:
        spans.append(sqlalchemy.span(1))
    if not spans:
        return []
    start, end = min(s for s, _ in spans), max(e for _, e in spans)
    value = unquote_plus(uri[start:end])
    if not value or _REFERENCES.fullmatch(value):
        return []
    return [Secret("user:PASSWORD@", start, end)]


def _query_parts(uri: str, cut: int) -> list[tuple[int, int]]:
    """The spans of the ``key=value`` parts after ``?`` (and after ``#``)."""
    parts: list[tuple[int, int]] = []
    start = cut + 1
    for index in range(cut + 1, len(uri) + 1):
        if index == len(uri) or uri[index] in "&;#":
            if index > start:
                parts.append((start, index))
            start = index + 1
    return parts


def _query(uri: str, start: int, end: int) -> list[Secret]:
    key, sep, _ = uri[start:end].partition("=")
    if not sep:
        return []
    value_start = start + len(key) + 1
    name = unquote_plus(key).strip().lower()
    if _SECRET_KEY.search(name):
        value = unquote_plus(uri[value_start:end])
        if value and not _REFERENCES.fullmatch(value):
            return [Secret(f"?{name}=", value_start, end)]
        return []
    return _nested(uri, value_start, end, f"?{name}=")


def _nested(uri: str, start: int, end: int, where: str) -> list[Secret]:
    """A value that is itself a connection string or a URI (libpq reads a database name
    holding ``=`` or ``://`` as one): any secret in it masks the whole value."""
    value = unquote_plus(uri[start:end])
    if "=" not in value and "://" not in value:
        return []
    if secrets_in(value):
        return [Secret(f"a connection string in {where}", start, end)]
    return []


def _conninfo(text: str, offset: int) -> list[Secret]:
    found = []
    for pair in _CONNINFO_PAIR.finditer(text):
        value = pair.group(2).strip("'")
        secret = _SECRET_KEY.search(pair.group(1).lower()) is not None
        if secret and value and not _REFERENCES.fullmatch(value):
            start, end = pair.span(2)
            found.append(Secret(f"{pair.group(1)}=", offset + start, offset + end))
    return found


def _replaced(uri: str, secrets: list[Secret], text: str) -> str:
    """``uri`` with every secret's span replaced by ``text``."""
    out, position = [], 0
    for secret in sorted(secrets, key=lambda s: s.start):
        if secret.start < position:  # overlapping spans: the first covers it
            continue
        out += [uri[position : secret.start], text]
        position = secret.end
    return "".join([*out, uri[position:]])


def masked(uri: str) -> str:
    """``uri`` for messages and logs: every literal secret shown as ``***``."""
    return _replaced(uri, secrets_in(uri), "***")


def problem(field: str, uri: str, *, variable: str, hint: str = "") -> str | None:
    """Why ``uri`` cannot be accepted in ``field`` (it holds a literal password), with the
    fix, and without the password; None when it holds none.

    Args:
        variable: the environment variable the example fix names.
        hint: another way to give the password (e.g. ``export PGPASSWORD``).
    """
    found = secrets_in(uri)
    if not found:
        return None
    where = "; ".join(dict.fromkeys(s.where for s in found))
    example = _replaced(uri, found, "${" + variable + "}")
    return (
        f"{field}: {masked(uri)!r} holds a password ({where}), which would be written to "
        "RUN/config.yaml and printed by tunelab check; write ${NAME} in its place and export "
        f"NAME (for example {example!r}){hint}"
    )


def expand(uri: str, *, field: str) -> str:
    """``uri`` with each ``${NAME}`` replaced by the environment variable NAME, escaped for
    where it stands (a password may then hold any character).

    Raises:
        ConfigError: a variable it names is not set.
    """
    if "${" not in uri:
        return uri
    safe_at = _escaping(uri)

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise ConfigError(
                f"{field}: the environment variable {name} (named in the URI as ${{{name}}}) "
                "is not set; export it in the shell that starts tunelab (on every machine "
                "that runs a worker)"
            )
        text, safe = os.environ[name], safe_at(match.start())
        return text if safe is None else quote(text, safe=safe)

    return _REFERENCE.sub(value, uri)


def _escaping(uri: str) -> Callable[[int], str | None]:
    """How a reference at a position is percent-encoded when expanded (the characters left
    as they are), or None for not at all: a password may hold ``@``, ``/`` or ``&``, and a
    folder in ``sqlite:///${DIR}/study.db`` any character a path may. A value that is not a
    ``scheme://`` URI (``journal:PATH``) is expanded as it is."""
    scheme = _SCHEME.match(uri)
    if scheme is None:
        return lambda position: None
    ends = [i for i in (uri.find(m, scheme.end()) for m in "/?#") if i >= 0]
    host_end = min(ends, default=len(uri))
    at = uri.rfind("@", scheme.end(), host_end)
    query = uri.find("?", scheme.end())

    def safe(position: int) -> str | None:
        if position < at or 0 <= query < position:
            return ""  # user info, query string
        if position > host_end:
            return "/"  # the path
        return None  # the host

    return safe


def secret_values(uri: str) -> list[str]:
    """The secrets of an expanded URI as they may appear in a driver's error message."""
    values = []
    for secret in secrets_in(uri):
        raw = uri[secret.start : secret.end]
        values += [raw, unquote_plus(raw)]
    return sorted({v for v in values if v}, key=len, reverse=True)


def scrub(text: str, uri: str) -> str:
    """``text`` (an error message) with the secrets of ``uri`` replaced by ``***``."""
    for value in secret_values(uri):
        text = text.replace(value, "***")
    return text
