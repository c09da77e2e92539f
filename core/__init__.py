"""Pure-Python core of the turbofan RUL dashboard; nothing in this package imports streamlit.

Sub-packages by domain, imports only going downwards:
``commands`` (CLI) and ``serving`` -> ``monitoring`` / ``operations`` -> ``models`` -> ``data`` -> the
shared top-level modules ``config``, ``errors`` and ``metrics``.
"""
