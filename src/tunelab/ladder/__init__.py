"""The ablation ladder: what each technique contributed, with evidence.

Every variant (the baseline, each rung, the final recipe without each technique) is
cross-validated on the same seeded repeated k-fold splits, so the differences are paired;
each step gets the corrected resampled t-test (Nadeau & Bengio), Holm-corrected, and a
verdict. ``rungs`` decides the variants, ``run`` measures them into ``ladder.json``,
``document`` and ``stats`` turn fold scores into the table, ``show`` prints it; the
``tunelab ladder`` flow (its run directory, resuming) is ``tunelab.flows.ladder``.
"""

from tunelab.ladder.run import run_ladder

__all__ = ["run_ladder"]
