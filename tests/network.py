"""Places a tracker (or any remote store) may point at that fail the way networks do: a port
where nothing listens, a server that accepts connections and never answers, and a stand-in
MLflow server that answers the REST calls tunelab makes until it is told to die."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import pytest

T = TypeVar("T")


def closed_port() -> int:
    """A local port where nothing listens (it was free a moment ago)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


class SilentServer:
    """A local port whose server accepts every connection and never says a word."""

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port: int = self.listener.getsockname()[1]
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:  # closed
                return
            self.held.append(connection)  # open and silent until the server closes

    def __enter__(self) -> SilentServer:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.listener.close()
        for connection in self.held:
            connection.close()


class _Answers(BaseHTTPRequestHandler):
    """The REST calls MLflow's client makes for tunelab, each with the least it accepts."""

    server: FakeMlflow

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._answer()

    def _answer(self) -> None:
        url = urlsplit(self.path)
        self.server.calls.append(url.path)
        name = url.path.rpartition("/mlflow/")[2]
        body: dict[str, Any] = {}  # experiments/search, runs/search, log-batch, update ...
        if name == "experiments/get-by-name":
            experiment = parse_qs(url.query).get("experiment_name", ["test"])[0]
            found = {"experiment_id": "1", "name": experiment, "lifecycle_stage": "active"}
            body = {"experiment": found}
        elif name == "runs/create":
            run_id = f"run{len(self.server.calls)}"
            info = {"run_id": run_id, "run_uuid": run_id, "experiment_id": "1"}
            body = {"run": {"info": {**info, "status": "RUNNING", "lifecycle_stage": "active"}}}
        data = json.dumps(body).encode()
        self.send_response(self.server.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class FakeMlflow(ThreadingHTTPServer):
    """Stands in for an MLflow tracking server (for the network, not for MLflow's logic).

    Args:
        status: the HTTP status of every answer.
    """

    daemon_threads = True

    def __init__(self, status: int = 200) -> None:
        super().__init__(("127.0.0.1", 0), _Answers)
        self.status = status
        self.calls: list[str] = []
        self._dead = False
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def die(self) -> None:
        """Stop answering and close the port: every later connection is refused."""
        if not self._dead:
            self._dead = True
            self.shutdown()
            self.server_close()

    def __exit__(self, *args: object) -> None:
        self.die()


def finishes_within(seconds: float, call: Callable[[], T]) -> T:
    """``call()``, failing the test when it has not returned after ``seconds`` (rather than
    waiting minutes for a client's retries). It runs on a thread of its own."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = call()
        except BaseException as exc:  # handed to the test
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        pytest.fail(f"still running after {seconds} s")
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]
