"""AppTest of the Drift page's report, multivariate score, drift over time and kept default comparison, and of the
Data page's data-quality section (issue 28 item 2, issue 26 item 3)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from core.data import ingest

ROOT = Path(__file__).resolve().parents[2]
DRIFT = str(ROOT / "pages" / "drift.py")
DATA = str(ROOT / "pages" / "data.py")


@pytest.fixture
def home(trained_home_factory: Callable[..., Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A copy of a home with train_FD001 and train_FD002 and a tiny champion trained on train_FD001."""
    import shutil

    built = trained_home_factory(files=("train_FD001", "train_FD002"), train=("train_FD001",))
    copy = tmp_path / "home"
    shutil.copytree(built, copy)
    monkeypatch.setenv("PM_HOME", str(copy))
    for var in ("PM_DUCKDB", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(var, raising=False)
    st.cache_data.clear()
    st.cache_resource.clear()
    return copy


def _chart(at: AppTest, key: str) -> dict:
    (chart,) = [c for c in at.get("plotly_chart") if c.proto.id.endswith(key) or key in c.proto.id]
    return json.loads(chart.proto.spec)


def test_drift_page_shows_multivariate_drift_history_and_keeps_its_default(home: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    at = AppTest.from_file(DRIFT, default_timeout=240).run()
    assert not at.exception
    assert any("Multivariate drift beyond the reference band" in w.value for w in at.warning)
    assert at.get("download_button"), "the report can be downloaded"
    points = _chart(at, "drift_history")["data"][0]
    assert points["x"] == ["load 1"], "one point for the one load of train_FD002"
    assert (home / "drift" / "default.json").is_file(), "the default comparison is kept for the next start"

    from core.monitoring import verdicts

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the default comparison was computed again")

    monkeypatch.setattr(verdicts, "against_training", refuse)
    st.cache_data.clear()
    st.cache_resource.clear()
    again = AppTest.from_file(DRIFT, default_timeout=240).run()
    assert not again.exception, "a first visit after a restart reads the kept comparison"
    assert any("Retraining recommended" in e.value for e in again.error)


def test_data_page_checks_quality_per_load(home: Path, tmp_path: Path, cmapss_text: Callable[[str], str]) -> None:
    lines = [line for line in cmapss_text("train_FD001").splitlines() if int(line.split()[0]) <= 3]
    kept = [line for line in lines if not (line.split()[0] == "2" and line.split()[1] in ("7", "8", "9"))]
    path = tmp_path / "gappy.txt"
    path.write_text("\n".join(kept) + "\n")
    ingest.load([path], role="fleet", dataset="gappy")
    at = AppTest.from_file(DATA, default_timeout=240).run()
    assert not at.exception
    at.selectbox(key="quality_name").set_value("gappy").run()
    at.button(key="quality_check").click().run()
    assert not at.exception
    texts = [t.value for t in at.text]
    assert any("3 missing cycles in 1 engines" in t for t in texts), texts
