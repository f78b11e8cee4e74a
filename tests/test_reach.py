"""The checks with a timeout and the bounded call that trackers share, against real sockets."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from tests.network import FakeMlflow, SilentServer, closed_port
from tunelab import reach
from tunelab.reach import folder_problem, http_problem, tcp_problem, within


def test_within_returns_what_the_call_returns_and_raises_what_it_raises() -> None:
    assert within(5, lambda a, b: a + b, 2, 3) == 5
    with pytest.raises(KeyError, match="missing"):
        within(5, {}.__getitem__, "missing")


def test_within_gives_up_on_a_call_that_hangs() -> None:
    release = threading.Event()
    started = time.monotonic()
    with pytest.raises(TimeoutError, match=r"no answer within 0.2 s"):
        within(0.2, release.wait, 30)
    assert time.monotonic() - started < 5
    release.set()


def test_a_closed_port_is_refused_at_once() -> None:
    port = closed_port()
    started = time.monotonic()
    assert http_problem(f"http://127.0.0.1:{port}/", seconds=5) == (
        "connection refused: nothing listens there"
    )
    assert tcp_problem("127.0.0.1", port, seconds=5) == "connection refused: nothing listens there"
    assert time.monotonic() - started < 3


def test_a_server_that_never_answers_is_given_up_after_the_timeout() -> None:
    with SilentServer() as server:
        started = time.monotonic()
        assert http_problem(f"http://127.0.0.1:{server.port}/", seconds=0.5) == (
            "no answer within 0.5 s"
        )
        assert time.monotonic() - started < 5


def test_any_http_answer_below_500_counts_as_reachable() -> None:
    for status, problem in [(200, None), (401, None), (404, None), (503, "it answered HTTP 503")]:
        with FakeMlflow(status=status) as server:
            assert http_problem(server.uri + "/api", seconds=5) == problem, status


def test_an_address_that_is_not_one_is_named() -> None:
    for url in ("http://127.0.0.1:port/", "nonsense"):
        assert (http_problem(url, seconds=1) or "").startswith("not a valid address"), url


def test_a_folder_is_writable_when_it_or_the_folder_that_would_hold_it_is(tmp_path: Path) -> None:
    assert folder_problem(tmp_path / "not" / "made" / "yet") is None
    assert list(tmp_path.iterdir()) == []  # the check leaves nothing behind
    (tmp_path / "file").write_text("")
    assert folder_problem(tmp_path / "file" / "tb") == f"{str(tmp_path / 'file')!r} is not a folder"


def test_a_folder_that_refuses_writes_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(**_: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(reach.tempfile, "TemporaryFile", refuse)
    assert folder_problem(tmp_path) == f"cannot write in {str(tmp_path)!r} (Permission denied)"
