"""Out of experience on the pages (AppTest): with a champion trained on FD001 alone, the Fleet page counts,
lists and filters the test_FD002 engines it flags, and the Engine page explains the flag in a banner."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.operations import scoring_job

APP = str(Path(__file__).resolve().parents[2] / "app.py")
FILES = ("train_FD001", "test_FD001", "RUL_FD001", "test_FD002")


@pytest.fixture(scope="module")
def mixed_home(trained_home_factory: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """test_FD001 and test_FD002 scored by an FD001 champion (one operating regime; FD002 flies six)."""
    home = Path(shutil.copytree(trained_home_factory(files=FILES), tmp_path_factory.mktemp("ood") / "home"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PM_HOME", str(home))
        scoring_job.score_stale()
    return home


@pytest.fixture
def app_env(mixed_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PM_HOME", str(mixed_home))
    for var in ("PM_DUCKDB", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(var, raising=False)
    return mixed_home


def _page(path: str, state: dict[str, object] | None = None) -> AppTest:
    app = AppTest.from_file(APP, default_timeout=120)
    app.run()  # through app.py (navigation, session defaults), then to the page
    for key, value in (state or {}).items():
        app.session_state[key] = value
    app.switch_page(path)
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    assert not app.error, [e.value for e in app.error]
    return app


def test_fleet_page_counts_lists_and_filters_engines_out_of_experience(app_env: Path) -> None:
    app = _page("pages/fleet.py")
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Engines"] == "359" and metrics["Out of experience"] == "259"
    app.selectbox(key="fleet_experience").set_value("outside").run()
    assert not app.exception, [e.value for e in app.exception]
    assert {m.label: m.value for m in app.metric}["Engines"] == "259"
    table = app.dataframe[0].value
    assert table["ood"].all() and set(table["dataset"]) == {"test_FD002"}
    assert table["ood_reason"].str.contains("operating regime never seen in training").all()
    app.selectbox(key="fleet_experience").set_value("within").run()
    table = app.dataframe[0].value
    assert {m.label: m.value for m in app.metric}["Engines"] == "100"
    assert not table["ood"].any() and set(table["dataset"]) == {"test_FD001"}


def test_engine_page_explains_why_an_engine_is_out_of_experience(app_env: Path) -> None:
    flagged = _page("pages/engine.py", {"engine": ("test_FD002", "1")})
    banner = " ".join(w.value for w in flagged.warning)
    assert "Out of the model's experience" in banner and "operating regime never seen in training" in banner
    known = _page("pages/engine.py", {"engine": ("test_FD001", "1")})
    assert not any("experience" in w.value for w in known.warning)
