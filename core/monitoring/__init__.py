"""Watching the fleet: drift statistics and verdicts, prediction drift, the production simulation.

May import ``core.data``, ``core.operations`` (jobs, registry, retraining) and ``models``; never serving or commands.
"""
