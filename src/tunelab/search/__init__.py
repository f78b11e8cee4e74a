"""The Optuna engine: search space, study, objective, pruning, trial loop, budget, workers.

What drives it (``tunelab run``'s flow, the ladder, the ensembles, the report) lives above
it, in ``tunelab.flows``; nothing here imports those."""
