"""Run directory layout, the saved predictor, and what gets written after a run."""
