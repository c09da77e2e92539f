"""Pure-Python core of the turbofan RUL dashboard: store, ingest, features, drift, jobs, registry, CLI.

Nothing in this package imports streamlit.
"""
