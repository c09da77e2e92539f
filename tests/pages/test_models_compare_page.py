"""AppTest: two versions compared on the Models page (differing parameters, metric deltas, loss curves, lineage)."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.operations import jobs
from tests.test_compare import log_version

REPO = Path(__file__).resolve().parents[2]


def test_two_versions_compared_side_by_side(fd001_store: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    a = log_version(tmp_path, "a", {"epochs": 1, "n_trees": 20}, {"val_rmse": 14.0, "test_FD001_rmse": 15.0},
                    "train_FD001", epochs=1)
    b = log_version(tmp_path, "b", {"epochs": 3, "n_trees": 20}, {"val_rmse": 13.0, "test_FD001_rmse": 14.5},
                    "train_FD001,train_FD003", epochs=3)
    monkeypatch.setattr(jobs, "list_jobs", lambda **_: [])
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    at.run()
    at.switch_page("pages/models.py").run()
    assert not at.exception
    at.selectbox(key="compare_a").set_value(a)
    at.selectbox(key="compare_b").set_value(b)
    at.button(key="compare").click().run()
    assert not at.exception and not at.error
    tables = {tuple(map(str, t.value.columns)): t.value for t in at.dataframe}
    params = at.table[0].value
    assert params.to_dict(orient="index") == {"epochs": {f"v{a}": "1", f"v{b}": "3"}}
    metrics = tables[("Set", "Metric", f"v{a}", f"v{b}", "Delta (B - A)")].set_index("Metric")
    assert metrics.at["Validation RMSE", "Delta (B - A)"] == pytest.approx(-1.0)
    assert metrics.at["Test FD001 RMSE", "Set"] == "test"
    lineage = tables[("", f"v{a}", f"v{b}", "Same")].set_index("")
    assert lineage.at["Training datasets", f"v{b}"] == "train_FD001,train_FD003"
    assert lineage.at["Training datasets", "Same"] == "no"
    chart = next(c for c in at.get("plotly_chart") if "compare_losses" in str(c.proto.id))
    spec = chart.proto.spec
    assert f"v{a} lstm: validation" in spec and f"v{b} xgboost rul regressor: training" in spec
