"""Streamlit entry and the one server: the dashboard at ``/``, the REST API at ``/api/v1``, Prometheus at ``/metrics``.

Start it with ``python app.py [--server.port 8501 --server.address 127.0.0.1 ...]`` (what ``make run``
does), ``streamlit run app.py`` or ``uvicorn app:app``: each serves Streamlit's ASGI app (``st.App``)
with the routes of :mod:`core.server` in one process, which owns the DuckDB file and the model cache.
Imported as a module, this file builds that server; executed by Streamlit's runtime for a browser
session, it is the dashboard script: page config, navigation over ``pages/``, sidebar, session defaults.
"""

import sys

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx


def dashboard() -> None:
    """The dashboard script: the sign-in when one is needed (on the page a deep link asked for, which then
    runs), else navigation over the pages, sidebar status, then the chosen page."""
    st.set_page_config(page_title="Turbofan fleet RUL", page_icon=":material/flight:", layout="wide")
    from pages import access

    access.guard_widget_states()
    pages = [
        st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
        st.Page("pages/data.py", title="Data", icon=":material/database:"),
        st.Page("pages/fleet.py", title="Fleet", icon=":material/flight:"),
        st.Page("pages/plan.py", title="Plan", icon=":material/event:"),
        st.Page("pages/engine.py", title="Engine", icon=":material/settings:"),
        st.Page("pages/explain.py", title="Explain", icon=":material/insights:"),
        st.Page("pages/drift.py", title="Drift", icon=":material/monitoring:"),
        st.Page("pages/models.py", title="Models", icon=":material/model_training:"),
    ]
    if not access.gate(pages):
        return
    navigation = st.navigation(pages)
    from pages import ui  # after st.navigation, which must run before this slow import

    ui.init_session()
    access.sidebar_user()
    ui.sidebar_status()
    navigation.run()


def run_config(argv: list[str]) -> dict[str, object]:
    """Streamlit options given as ``--section.option value`` (or ``=value``) flags, values typed as JSON would."""
    import json

    options: dict[str, object] = {}
    args = iter(argv)
    for arg in args:
        if not arg.startswith("--") or "." not in arg:
            raise SystemExit(f"app.py takes Streamlit options such as --server.port 8501; '{arg}' is not one.")
        key, has_value, value = arg[2:].partition("=")
        if not has_value:
            value = next(args, None)
            if value is None:
                raise SystemExit(f"The option --{key} needs a value.")
        try:
            options[key] = json.loads(value)
        except ValueError:
            options[key] = value
    return options


def bind_without_nagle() -> None:
    """Make ``App.run`` listen on a socket whose connections send small responses at once (TCP_NODELAY).

    Streamlit 1.67 binds the listening socket itself with protocol 0, so asyncio does not set
    TCP_NODELAY on accepted connections, and each response written in two parts (headers, body) waits
    for the client's delayed ACK: about 40 ms per API call. Accepted sockets inherit the option from
    the listening one.
    """
    import socket

    from streamlit.web.server.starlette import starlette_server

    bind = starlette_server._bind_socket

    def bind_nodelay(address: str, port: int, backlog: int) -> socket.socket:
        sock = bind(address, port, backlog)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    starlette_server._bind_socket = bind_nodelay


if get_script_run_ctx(suppress_warning=True) is not None:
    dashboard()
else:
    from streamlit.runtime.pages_manager import PagesManager

    from core.errors import UserError
    from core.server import asgi
    from pages import access

    access.guard_widget_states()  # before any session, so a crafted first message is dropped too

    # Streamlit would run a deep link such as /fleet in its legacy pages/ mode (the page alone, no
    # navigation) until this script has called st.navigation once, st.App included; the app never
    # uses that mode.
    PagesManager.uses_pages_directory = False
    try:
        server = asgi.build()
    except UserError as err:
        raise SystemExit(f"The server cannot start: {err}") from err
    app = st.App(__file__, routes=server.routes, middleware=server.middleware, lifespan=server.lifespan)
    if __name__ == "__main__":
        from streamlit.errors import StreamlitAPIException

        bind_without_nagle()
        options = run_config(sys.argv[1:])
        if "server.address" not in options and not st.get_option("server.address"):
            options["server.address"] = "127.0.0.1"  # no .streamlit/config.toml here: loopback, not every interface
        try:
            app.run(config=options)
        except StreamlitAPIException as err:
            raise SystemExit(f"app.py: {err}") from err
