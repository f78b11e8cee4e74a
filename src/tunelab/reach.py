"""Reaching something outside the run (an experiment tracker, a remote store) without ever
waiting on it for long.

Two tools, shared by every tracker: a check before the run (``http_problem``,
``tcp_problem``, ``folder_problem``: why a place cannot be reached, found with a short
timeout), and ``within``, which bounds any call in time. A client library's own retries
(MLflow retries a refused connection with back-off for minutes) then never stall a run.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import tempfile
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def within(seconds: float, call: Callable[..., T], *args: Any) -> T:
    """``call(*args)``, waited for at most ``seconds``.

    The call runs on a daemon thread. When it has not returned in time, ``TimeoutError``
    is raised and the thread is left to finish (or to hang) on its own: it holds none of
    the caller's locks and never keeps the process alive. A caller that gets a timeout
    should stop using what hung, since the abandoned call may still complete later.

    Raises:
        TimeoutError: the call had not returned after ``seconds``.
        Exception: whatever ``call`` raised.
    """
    result: Future[T] = Future()

    def run() -> None:
        try:
            result.set_result(call(*args))
        except BaseException as exc:  # handed to the caller
            result.set_exception(exc)

    threading.Thread(target=run, name="tunelab-bounded-call", daemon=True).start()
    try:
        return result.result(timeout=seconds)
    except TimeoutError:
        if result.done():  # the call itself raised TimeoutError
            raise
        raise TimeoutError(f"no answer within {seconds:g} s") from None


def http_problem(url: str, *, seconds: float) -> str | None:
    """Why no HTTP server answers a GET of ``url`` within ``seconds`` (None: one does).

    Any answer below 500 counts, a refusal of the credentials too (the client library
    sends them, this check does not); so does a TLS handshake this check cannot verify (the
    client may be set up to trust that server).
    """
    try:
        with urllib.request.urlopen(urllib.request.Request(url), timeout=seconds) as response:
            response.read(1024)
    except urllib.error.HTTPError as exc:
        return f"it answered HTTP {exc.code}" if exc.code >= 500 else None
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, ssl.SSLError):
            return None
        return _why(reason, seconds) if isinstance(reason, OSError) else str(reason)
    except ssl.SSLError:
        return None
    except OSError as exc:
        return _why(exc, seconds)
    except (ValueError, http.client.InvalidURL) as exc:  # not a URL urllib can open
        return f"not a valid address ({exc})"
    except http.client.HTTPException as exc:  # something answered, but not in HTTP
        return f"it does not speak HTTP ({type(exc).__name__})"
    return None


def tcp_problem(host: str, port: int, *, seconds: float) -> str | None:
    """Why nothing accepts a connection on ``host:port`` within ``seconds`` (None: it does)."""
    try:
        socket.create_connection((host, port), timeout=seconds).close()
    except OSError as exc:
        return _why(exc, seconds)
    return None


def folder_problem(folder: Path) -> str | None:
    """Why files cannot be written in ``folder``, or in the folder that would hold it when it
    is made (None: they can). Writes nothing that stays."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{str(existing)!r} is not a folder"
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        return f"cannot write in {str(existing)!r} ({exc.strerror or exc})"
    return None


def _why(exc: OSError, seconds: float) -> str:
    """What a failed connection means, in a few words."""
    if isinstance(exc, TimeoutError):
        return f"no answer within {seconds:g} s"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused: nothing listens there"
    if isinstance(exc, socket.gaierror):
        return f"unknown host ({exc.strerror or exc})"
    if isinstance(exc, ConnectionError):
        return f"the connection was dropped ({exc.strerror or type(exc).__name__})"
    return f"{type(exc).__name__}: {exc.strerror or exc}"
