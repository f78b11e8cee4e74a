"""The optimization study: search space, Optuna study, trials, workers and the run."""
