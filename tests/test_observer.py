"""One observer protocol: every event is optional, and ``Observers`` tells each watcher."""

from __future__ import annotations

import inspect
from typing import Any

from tunelab.observer import Observer, Observers


class Said(Observer):
    def __init__(self, name: str, heard: list[str]) -> None:
        self.name, self.heard = name, heard

    def stage(self, text: str) -> None:
        self.heard.append(f"{self.name}: {text}")

    def variant_done(self, label: str, summary: dict[str, Any]) -> None:
        self.heard.append(f"{self.name}: {label} done")


def events() -> list[str]:
    return [name for name, _ in inspect.getmembers(Observer, inspect.isfunction)]


def test_every_event_is_optional() -> None:
    quiet = Observer()
    for name in events():
        parameters = list(inspect.signature(getattr(Observer, name)).parameters)[1:]
        getattr(quiet, name)(**dict.fromkeys(parameters))  # a no-op, whatever it is told


def test_observers_tell_each_watcher_in_order_and_skip_none() -> None:
    heard: list[str] = []
    both = Observers(Said("view", heard), None, Said("log", heard))
    both.stage("search")
    both.variant_done("baseline", {})
    assert heard == ["view: search", "log: search", "view: baseline done", "log: baseline done"]


def test_observers_pass_on_every_event() -> None:
    """A new event added to Observer and not to Observers would be dropped silently."""
    for name in events():
        assert getattr(Observers, name) is not getattr(Observer, name), name
        heard: list[str] = []

        class Records(Observer):
            pass

        def record(
            self: Observer, *args: Any, _name: str = name, _heard: list[str] = heard, **kwargs: Any
        ) -> None:
            _heard.append(_name)

        setattr(Records, name, record)
        parameters = list(inspect.signature(getattr(Observer, name)).parameters)[1:]
        getattr(Observers(Records(), Records()), name)(**dict.fromkeys(parameters))
        assert heard == [name, name]
