"""Streamlit entry: page config, navigation over pages/, sidebar status, session defaults."""

import streamlit as st

from pages import ui

st.set_page_config(page_title="Turbofan fleet RUL", page_icon=":material/flight:", layout="wide")
ui.init_session()

navigation = st.navigation(
    [
        st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
        st.Page("pages/data.py", title="Data", icon=":material/database:"),
    ]
)
ui.sidebar_status()
navigation.run()
