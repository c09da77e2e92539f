"""Running the model's life: background jobs, training runs, the MLflow registry, retraining.

May import ``core.data`` and ``models``; never ``core.monitoring``, ``core.serving`` or ``core.commands``.
"""
