"""Fleet data: C-MAPSS facts, file parsing and validation, ingest, the DuckDB store, snapshots, features.

May import only ``core.config``, ``core.errors`` and ``core.metrics``; never models, serving, monitoring or operations.
"""
