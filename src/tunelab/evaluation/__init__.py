"""The unit of work: fit a fresh model on rows, and cross-validate a config on splits.

Every stage calls these (``tunelab train``, each trial of a study, the ablation ladder,
the benchmarks); none of them imports Optuna.
"""
