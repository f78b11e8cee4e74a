"""What re-running ``tunelab run`` on a run directory does, said in its first line; and the
budget's clock kept in the study, so a killed run resumed later spends only what is left.

- a study whose last run ended stopped for a reason: ``n_trials`` reached (a re-run refits
  and reports only; raise ``search.n_trials`` to search more), or its time budget or
  ``search.timeout`` spent (a re-run spends another one; ``--no-extend`` refits and reports
  only);
- a study whose last run did not end (killed, interrupted, a failure) resumes: with a
  ``budget``, only what is left of it (``SPENT_ATTR``, saved every ``SAVE_EVERY_S`` seconds
  while the run goes on).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, replace
from types import TracebackType

import optuna
from optuna.trial import TrialState

from tunelab.config import RunConfig
from tunelab.results.rundir import RunDir
from tunelab.search.study import make_storage, storage_url

# seconds of the current budget spent by the runs of the study so far
SPENT_ATTR = "budget_spent_s"
# why the last run of the study stopped searching; absent while a run goes on
ENDED_ATTR = "ended"
SAVE_EVERY_S = 1.0
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
log = logging.getLogger("tunelab")


@dataclass(frozen=True)
class Rerun:
    """What this run of a study does.

    Attributes:
        line: what it will do, in words (None for a new study).
        search: whether it runs trials.
        spent: seconds of its budget that earlier runs spent (a killed run's).
        stopped: why the last run stopped searching (None: it did not end).
    """

    line: str | None = None
    search: bool = True
    spent: float = 0.0
    stopped: str | None = None

    def ended_because(self, reason: str) -> str:
        """Why the study stopped searching, after this run's search stopped for ``reason``."""
        return reason if self.search or self.stopped is None else self.stopped


def plan_rerun(cfg: RunConfig, run: RunDir, *, no_extend: bool = False) -> Rerun:
    """What running ``cfg`` in ``run`` does, from the study it holds (read, not changed)."""
    if not run.started_study():
        return Rerun()
    try:
        storage = make_storage(storage_url(cfg, run.path), cfg.search)
        study = optuna.load_study(study_name=cfg.search.study_name or cfg.name, storage=storage)
    except (KeyError, ValueError):  # no study of that name yet
        return Rerun()
    done = len(study.get_trials(deepcopy=False, states=FINISHED))
    plan = decide(cfg, study.user_attrs, done=done, no_extend=no_extend)
    ended = study.user_attrs.get(ENDED_ATTR)
    return replace(plan, stopped=None if ended is None else str(ended))


def decide(cfg: RunConfig, attrs: dict[str, object], *, done: int, no_extend: bool) -> Rerun:
    """The plan for a study with ``done`` finished trials and user attributes ``attrs``."""
    wanted, budget = cfg.search.n_trials, cfg.budget
    ended = attrs.get(ENDED_ATTR)
    spent = attrs.get(SPENT_ATTR)
    spent = float(spent) if isinstance(spent, int | float) else 0.0
    if done == 0 and (ended is not None or not spent):
        return Rerun()  # nothing to refit, no budget spent: as a new study
    refit_only = "refit and report only, no new trials"
    if done >= wanted:
        return Rerun(
            f"study finished ({done} of {wanted} trials); {refit_only} - raise "
            "search.n_trials to search more",
            search=False,
        )
    if ended is None and budget is not None and spent < budget:
        left = f"; {spent:.0f} s of its {budget:g} s budget spent, {budget - spent:.0f} s left"
        action = refit_only + " (--no-extend)" if no_extend else "resuming it"
        return Rerun(
            f"study resumed ({done} of {wanted} trials finished{left}); {action}",
            search=not no_extend,
            spent=spent,
        )
    if ended is None and budget is None:
        action = refit_only + " (--no-extend)" if no_extend else "resuming it"
        return Rerun(f"study resumed ({done} of {wanted} trials finished); {action}", not no_extend)
    why = {"time budget": "budget spent", "n_trials": f"{done} trials"}.get(str(ended), str(ended))
    if no_extend:
        return Rerun(f"study finished ({why}); {refit_only} (--no-extend)", search=False)
    more = f"another {budget:g} s budget" if budget is not None else "more trials"
    timeout = cfg.search.timeout
    more += f" (search.timeout {timeout:g} s)" if timeout and budget is None else ""
    return Rerun(f"study finished ({why}); running {more} - pass --no-extend to only refit/report")


class BudgetClock:
    """Saves in the study, every ``SAVE_EVERY_S`` seconds from a background thread (and when
    the block ends), the seconds of the budget spent: ``spent`` before this run plus this
    run's, from ``started``. Marks the study as running until ``ended`` is called."""

    def __init__(self, study: optuna.Study, *, started: float, spent: float) -> None:
        self.study, self.started, self.before = study, started, spent
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tunelab-budget", daemon=True)

    def __enter__(self) -> BudgetClock:
        self.study.set_user_attr(ENDED_ATTR, None)
        self._save()
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._save()

    def ended(self, reason: str) -> None:
        """The run ended its stages after the search stopped for ``reason``."""
        self.study.set_user_attr(ENDED_ATTR, reason)

    def spent(self) -> float:
        return self.before + time.time() - self.started

    def _run(self) -> None:
        while not self._stop.wait(SAVE_EVERY_S):
            self._save()

    def _save(self) -> None:
        try:
            self.study.set_user_attr(SPENT_ATTR, round(self.spent(), 2))
        except Exception as exc:  # a busy storage: the next save tries again
            log.info("could not save the budget's time: %s", exc)
