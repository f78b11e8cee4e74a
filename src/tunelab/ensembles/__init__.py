"""Ensembles of a study's best trials: chosen and weighted on out-of-fold predictions only.

``select`` holds the methods (mean, weighted, greedy selection, stacking), pure NumPy and
scikit-learn on out-of-fold predictions; ``build`` gathers the members from a study and
makes the ensemble predictor that ``tunelab run`` keeps when it beats the best single trial.
"""
