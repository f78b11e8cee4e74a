"""Stale trials: a trial whose process stopped sending heartbeats (killed, or cut off from
the storage) is failed by Optuna's ``fail_stale_trials`` and retried by its
``RetryHeartbeatStaleTrialCallback``. tunelab adds the why: the failed trial gets a
``fail_reason`` (written while it still runs, since Optuna refuses attributes on a finished
trial), and ``run.log`` says which trial went stale and whether it is retried.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import optuna
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial

FAIL_REASON = "fail_reason"  # the user attribute a failed trial's reason is kept in
log = logging.getLogger("tunelab")


def stale_reason(grace_period: int) -> str:
    return (
        f"stale: no heartbeat for more than {grace_period} s (its process was killed or lost "
        "the storage)"
    )


def mark_stale(storage: Any, trial_ids: list[int], grace_period: int) -> None:
    """Give each trial about to be failed as stale its reason. Best effort: another
    process may have failed it already (then its reason is there), or be writing the same
    reason at this moment; failing the trial must go on either way."""
    for trial_id in trial_ids:
        try:
            storage.set_trial_user_attr(trial_id, FAIL_REASON, stale_reason(grace_period))
        except Exception as exc:
            log.debug("stale trial %d: its reason not written (%s)", trial_id, exc)


class HeartbeatRDBStorage(RDBStorage):
    """Optuna's RDB storage whose stale trials carry their reason."""

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        stale = super()._get_stale_trial_ids(study_id)
        grace = self.grace_period or 2 * (self.heartbeat_interval or 0)
        mark_stale(self, stale, grace)
        return stale


class RetryStaleTrial:
    """Optuna's ``RetryHeartbeatStaleTrialCallback``, logged: which trial went stale, why,
    and whether it runs again (the retry does not inherit the reason)."""

    def __init__(self, max_retry: int) -> None:
        self.max_retry = max_retry
        with warnings.catch_warnings():  # "experimental" in Optuna
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            self._retry = RetryHeartbeatStaleTrialCallback(max_retry=max_retry)

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        reason = trial.user_attrs.get(FAIL_REASON) or "stale: no heartbeat"
        retries = len(trial.system_attrs.get("retry_history", [])) + 1
        if retries > self.max_retry:
            log.warning(
                "trial %d failed, %s; not retried: it ran %d times (search.max_retry: %d)",
                trial.number,
                reason,
                retries,
                self.max_retry,
            )
        else:
            log.warning(
                "trial %d failed, %s; retried with the same parameters (retry %d of %d)",
                trial.number,
                reason,
                retries,
                self.max_retry,
            )
        trial.user_attrs = {k: v for k, v in trial.user_attrs.items() if k != FAIL_REASON}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            self._retry(study, trial)
