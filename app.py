"""Streamlit entry: page config, navigation over pages/, sidebar status, session defaults.

Start it with ``python app.py [streamlit options]`` (what ``make run`` does). Plain
``streamlit run app.py`` works too, but Streamlit then treats ``pages/`` as a legacy
multipage folder until this script has called ``st.navigation`` once: a deep link (or a click)
that arrives before that runs a page script on its own, without this entry. Launching
through this file switches that legacy mode off before the server starts.
"""

import sys

import streamlit as st

if __name__ == "__main__" and not st.runtime.exists():
    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.web import cli

    PagesManager.uses_pages_directory = False
    sys.argv = ["streamlit", "run", __file__, *sys.argv[1:]]
    sys.exit(cli.main())

st.set_page_config(page_title="Turbofan fleet RUL", page_icon=":material/flight:", layout="wide")
navigation = st.navigation(
    [
        st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
        st.Page("pages/data.py", title="Data", icon=":material/database:"),
        st.Page("pages/fleet.py", title="Fleet", icon=":material/flight:"),
        st.Page("pages/engine.py", title="Engine", icon=":material/settings:"),
        st.Page("pages/drift.py", title="Drift", icon=":material/monitoring:"),
        st.Page("pages/models.py", title="Models", icon=":material/model_training:"),
    ]
)

from pages import ui  # noqa: E402 - after st.navigation, which must run before this slow import

ui.init_session()
ui.sidebar_status()
navigation.run()
