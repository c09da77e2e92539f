"""Make AppTest navigate as the server does, for tests that go through the sign-in.

AppTest resets ``PagesManager.uses_pages_directory`` before every run, so a run whose page is one of
``pages/*.py`` executes that file alone, in Streamlit's legacy multipage mode, without ``app.py`` and its
sign-in. The server never runs in that mode (``app.py`` turns it off before serving), so these tests turn it
off after each reset, as the server does.
"""

from __future__ import annotations

import pytest
from streamlit.runtime.pages_manager import PagesManager


def navigate_as_served(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every PagesManager made from now on (one per AppTest run) runs ``app.py``, never a page file alone."""
    made = PagesManager.__init__

    def init(self: PagesManager, *args: object, **kwargs: object) -> None:
        made(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "__init__", init)
