"""The one training loop, its optimizers, schedules and metrics. Never imports Optuna."""
