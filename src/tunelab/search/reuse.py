"""No duplicate work: a trial whose effective settings equal an earlier complete trial's
takes that trial's result instead of training again.

The earlier trials are read from the study's storage when the trial starts, so trials that
``--jobs`` workers or other machines finished count too. The copy tells Optuna the same value
(the sampler learns that the region is known), records ``reused_from`` (the leaderboard and
the log say so), and shares the earlier trial's out-of-fold predictions and histories, never
its fold models: the copy is left out of the ranking (``results.leaderboard.ranked``), so it
neither takes an ensemble's place nor counts in the time a trial takes.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from tunelab.config import RunConfig, apply_params, recipe
from tunelab.errors import ConfigError
from tunelab.results.artifacts import PREDICTORS
from tunelab.results.trial_record import RECORD, REUSED_ATTR, record
from tunelab.search.applicable import applies, trial_source
from tunelab.search.space import lookup

log = logging.getLogger("tunelab")


def settings_key(params: dict[str, Any], base: RunConfig) -> str:
    """A trial's effective settings as one text: the sampled fields that apply to its family,
    with the values the model sees (validated by the config: an int field as an int).

    Two trials with the same key train the same model. Parameters as Optuna stores them
    (``trial.params``) or as ``suggest`` returns them both work.
    """
    values = recipe(base, params)
    source = trial_source(values, base)
    kept = {field: value for field, value in values.items() if applies(field, source)}
    try:
        seen = apply_params(base, kept)
    except ConfigError:
        return json.dumps(kept, sort_keys=True, default=str)  # the trial fails on its own
    return json.dumps({field: lookup(seen, field) for field in kept}, sort_keys=True, default=str)


class Reuse:
    """Finds an earlier complete trial with a trial's effective settings (``settings_key``),
    remembering the keys it computed."""

    def __init__(self, cfg: RunConfig) -> None:
        self.cfg = cfg
        self._keys: dict[int, str] = {}

    def earlier(self, trial: optuna.Trial, params: dict[str, Any]) -> FrozenTrial | None:
        """The first complete trial of the study that trained ``params``' settings."""
        wanted = settings_key(params, self.cfg)
        complete = trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        for other in sorted(complete, key=lambda t: t.number):
            if other.number == trial.number or REUSED_ATTR in other.user_attrs:
                continue
            if self._key(other) == wanted:
                return other
        return None

    def _key(self, trial: FrozenTrial) -> str:
        if trial.number not in self._keys:
            self._keys[trial.number] = settings_key(trial.params, self.cfg)
        return self._keys[trial.number]


def take_result(trial: optuna.Trial, earlier: FrozenTrial) -> float:
    """Record ``earlier``'s result as ``trial``'s (its fold models stay the earlier trial's
    alone) and return its value."""
    copied = dict(record(earlier))
    copied["artifacts"] = {
        key: value for key, value in copied.get("artifacts", {}).items() if key != PREDICTORS
    }
    trial.set_user_attr(RECORD, copied)
    trial.set_user_attr(REUSED_ATTR, earlier.number)
    log.info(
        "trial %d reuses trial %d's result: the same effective settings (fields that do not "
        "apply to its model are not trained on); not trained again",
        trial.number,
        earlier.number,
    )
    assert earlier.value is not None
    return earlier.value
