"""Headless Chromium over the DevTools protocol, for opening reports as a person would.

The protocol runs over a pipe (``--remote-debugging-pipe``: JSON messages ending in a NUL
byte, Chromium reading fd 3 and writing fd 4), so no websocket client or port is needed.
It records console errors, uncaught exceptions, error log entries (a failed load among
them), JavaScript dialogs (an injected ``alert`` would open one) and every request that is
not to a local file: the report must open offline. ``hostile_run`` is a small study full
of user strings that are markup.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import select
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-pipe",
]
TIMEOUT = 90.0  # seconds for one protocol answer (a loaded 2-core machine is slow)


@dataclass
class Opened:
    """What happened while a page loaded and rendered."""

    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    sections: list[dict[str, Any]] = field(default_factory=list)
    values: dict[str, Any] = field(default_factory=dict)


class Chromium:
    """One headless Chromium, driven over the DevTools pipe."""

    def __init__(self, profile: Path) -> None:
        assert CHROMIUM is not None
        to_chrome_read, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_write = os.pipe()

        def use_fds_3_and_4() -> None:  # in the child, before exec
            os.dup2(to_chrome_read, 3)
            os.dup2(from_chrome_write, 4)

        self.process = subprocess.Popen(
            [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=use_fds_3_and_4,
            pass_fds=(3, 4),
        )
        os.close(to_chrome_read)
        os.close(from_chrome_write)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def send(
        self, method: str, params: dict[str, Any] | None = None, *, session: str | None = None
    ) -> dict[str, Any]:
        """Send a command and wait for its answer (events that arrive meanwhile are kept)."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._receive(TIMEOUT)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                result: dict[str, Any] = reply.get("result", {})
                return result
            self._keep(reply)

    def wait_for(self, method: str, timeout: float = TIMEOUT) -> dict[str, Any]:
        for event in self.events:
            if event.get("method") == method:
                return event
        deadline = time.monotonic() + timeout
        while True:
            event = self._receive(deadline - time.monotonic())
            self._keep(event)
            if event.get("method") == method:
                return event

    def _keep(self, event: dict[str, Any]) -> None:
        """Keep an event; a dialog (which blocks the page) is dismissed at once."""
        self.events.append(event)
        if event.get("method") == "Page.javascriptDialogOpening":
            self._next_id += 1
            dismiss = {
                "id": self._next_id,
                "method": "Page.handleJavaScriptDialog",
                "params": {"accept": False},
                "sessionId": event.get("sessionId"),
            }
            os.write(self._to_chrome, json.dumps(dismiss).encode() + b"\0")

    def _receive(self, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self._from_chrome], [], [], max(left, 0))
            if not ready:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self._from_chrome, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        decoded: dict[str, Any] = json.loads(message)
        return decoded

    def close(self) -> None:
        with contextlib.suppress(RuntimeError, TimeoutError, OSError):
            self.send("Browser.close")
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._to_chrome)
        os.close(self._from_chrome)


# every section's rendered state: figures drawn (an SVG inside), empty plot boxes, table
# rows, notes, text length
SECTIONS_JS = """
JSON.stringify(Array.from(document.querySelectorAll('section[data-section]')).map(s => ({
  key: s.dataset.section,
  plots: Array.from(s.querySelectorAll('.plot')).filter(p => p.querySelector('.main-svg')).length,
  empty_plots: Array.from(s.querySelectorAll('.plot'))
    .filter(p => !p.querySelector('.main-svg')).length,
  rows: s.querySelectorAll('tbody tr').length,
  pre: s.querySelectorAll('pre').length,
  cards: s.querySelectorAll('.card').length,
  notes: Array.from(s.querySelectorAll('.note')).map(n => n.textContent),
  text: s.textContent,
})))
"""


def open_report(
    path: Path,
    *,
    profile: Path,
    screenshot: Path | None = None,
    evaluate: dict[str, str] | None = None,
) -> Opened:
    """Open ``path`` in headless Chromium, let it render, and say what happened."""
    browser = Chromium(profile)
    opened = Opened()
    try:
        target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        for domain in ("Page", "Runtime", "Log", "Network"):
            browser.send(f"{domain}.enable", session=session)
        browser.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False},
            session=session,
        )
        browser.events.clear()
        browser.send("Page.navigate", {"url": path.resolve().as_uri()}, session=session)
        browser.wait_for("Page.loadEventFired")
        # let Plotly finish drawing (newPlot resolves after layout)
        browser.send(
            "Runtime.evaluate",
            {"expression": "new Promise(r => setTimeout(r, 500))", "awaitPromise": True},
            session=session,
        )
        result = browser.send(
            "Runtime.evaluate", {"expression": SECTIONS_JS, "returnByValue": True}, session=session
        )
        opened.sections = json.loads(result["result"]["value"])
        for name, expression in (evaluate or {}).items():
            answer = browser.send(
                "Runtime.evaluate",
                {"expression": expression, "returnByValue": True},
                session=session,
            )
            opened.values[name] = answer["result"].get("value")
        if screenshot is not None:
            metrics = browser.send("Page.getLayoutMetrics", session=session)
            size = metrics["cssContentSize"]
            shot = browser.send(
                "Page.captureScreenshot",
                {
                    "format": "png",
                    "captureBeyondViewport": True,
                    "clip": {
                        "x": 0,
                        "y": 0,
                        "width": size["width"],
                        "height": size["height"],
                        "scale": 1,
                    },
                },
                session=session,
            )
            screenshot.write_bytes(base64.b64decode(shot["data"]))
        _collect(browser.events, opened)
    finally:
        browser.close()
    return opened


def _collect(events: list[dict[str, Any]], opened: Opened) -> None:
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            opened.errors.append(
                " ".join(str(a.get("value", a.get("description"))) for a in params.get("args", []))
            )
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            opened.errors.append(
                str(details.get("exception", {}).get("description") or details.get("text"))
            )
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            opened.errors.append(str(params["entry"].get("text")))
        elif method == "Page.javascriptDialogOpening":
            opened.dialogs.append(str(params.get("message")))
        elif method == "Network.requestWillBeSent":
            url = str(params.get("request", {}).get("url", ""))
            if not url.startswith(("file:", "data:", "about:")):
                opened.requests.append(url)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    """``open(path, screenshot=None, evaluate=None) -> Opened``; skips without Chromium."""
    if CHROMIUM is None:
        pytest.skip(
            "needs Chromium, which is not installed; to run it, `apt-get install chromium` "
            "(Debian's, as CI does), or `bash .ci/run`, which installs it when missing"
        )

    def open_(path: Path, **kwargs: Any) -> Opened:
        return open_report(path, profile=tmp_path / "chromium-profile", **kwargs)

    yield open_


# strings a user controls, each of which would run or inject markup if written unescaped
SCRIPT_CLASS = "<script>alert(1)</script>"
QUOTES_CLASS = "\"&'"
IMG_CLASS = "<img src=x onerror=alert(2)>"
HOSTILE_FOLDER = "<img src=x onerror=alert(3)>"  # no '/': it is a folder name
HOSTILE_TARGET = "<b>label</b>"
HOSTILE_PARAM = "model.options.<i>tag</i>"  # builtin models ignore options: a free param
HOSTILE_CHOICES = ["<script>alert(4)</script>", "\"&'<u>x</u>"]


@pytest.fixture
def hostile_run(tmp_path: Path, config_factory: Any) -> Path:
    """A small study whose class names, target column, data path and searched parameter
    (name and values) are markup: the report must show them as text."""
    from sklearn.datasets import load_iris

    from tunelab.flows.study import run_study

    iris = load_iris(as_frame=True)
    frame = iris.data.copy()
    names = [SCRIPT_CLASS, QUOTES_CLASS, IMG_CLASS]
    frame[HOSTILE_TARGET] = [names[i] for i in iris.target]
    folder = tmp_path / HOSTILE_FOLDER
    folder.mkdir()
    frame.to_csv(folder / "data.csv", index=False)
    cfg = config_factory(
        data={"source": f"csv:{folder / 'data.csv'}", "target": HOSTILE_TARGET},
        train={"epochs": 2},
        search={
            "n_trials": 3,
            "pruner": "median",  # reports every epoch (three trials: none is pruned)
            "space": {
                HOSTILE_PARAM: {"type": "categorical", "choices": HOSTILE_CHOICES},
                "train.lr": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True},
            },
        },
    )
    out = tmp_path / "run"
    result = run_study(cfg, out=out)
    assert result.metrics is not None
    return out
