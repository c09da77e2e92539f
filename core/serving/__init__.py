"""Serving the champion: scoring datasets, the fleet table and its policies, what-if with SHAP.

May import ``core.data``, ``core.operations`` (the registry) and ``models``; never ``core.commands``.
"""
