"""HTTP side of the one server: the REST API at /api/v1, Prometheus /metrics, bearer-token auth and alerts.
Never imports streamlit (app.py mounts these routes on st.App); may import core.data/serving/monitoring/operations and models."""
