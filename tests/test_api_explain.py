"""The API's explanation adds up: ``base`` + the factors' contributions + ``remainder`` is the ``rul`` it serves.

Checked on 50 engines of the four test sets, scored by a tiny model trained on slices of the four training sets
(the page fixtures' recipe), and against the explainer computed outside the server.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from starlette.testclient import TestClient

from core.data.cmapss import COLUMNS
from tests.api_support import api_client, request_readings
from tests.conftest import trains

TOKEN = "test-token-explain-0123456789"
PAGE_FIXTURES = Path(__file__).resolve().parent / "pages" / "conftest.py"
SUBSETS = ("FD001", "FD002", "FD003", "FD004")
TRAIN_UNITS = 15
TEST_UNITS = {"FD001": 13, "FD002": 13, "FD003": 12, "FD004": 12}
"""Engines scored per test set: 50 in all."""


def _frame(lines: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame(np.array([line.split() for line in lines], dtype=float), columns=COLUMNS)
    frame[["unit", "cycle"]] = frame[["unit", "cycle"]].astype(int)
    return frame


@pytest.fixture(scope="module")
def test_sets(cmapss_slice: Callable[..., list[str]]) -> dict[str, pd.DataFrame]:
    return {subset: _frame(cmapss_slice(f"test_{subset}", units=TEST_UNITS[subset])) for subset in SUBSETS}


@pytest.fixture(scope="module")
@trains
def home(tmp_path_factory: pytest.TempPathFactory, cmapss_slice: Callable[..., list[str]]) -> Path:
    """Slices of the four training and test sets loaded, and a tiny champion trained on the four training slices."""
    folder = tmp_path_factory.mktemp("four_subsets")
    for subset in SUBSETS:
        (folder / f"train_{subset}.txt").write_text("\n".join(cmapss_slice(f"train_{subset}", units=TRAIN_UNITS)) + "\n")
        (folder / f"test_{subset}.txt").write_text(
            "\n".join(cmapss_slice(f"test_{subset}", units=TEST_UNITS[subset])) + "\n")
    spec = importlib.util.spec_from_file_location("page_fixtures", PAGE_FIXTURES)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    files = tuple(f"{part}_{subset}" for subset in SUBSETS for part in ("train", "test"))
    return module.build_home(tmp_path_factory.mktemp("explain_home"), folder, files,
                             tuple(f"train_{subset}" for subset in SUBSETS))


@pytest.fixture
def client(home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    with api_client(home, TOKEN, monkeypatch) as (client, _):
        yield client


def _bodies(frame: pd.DataFrame, subset: str) -> list[dict[str, Any]]:
    return [{"engine": f"{subset}-{unit}", "readings": request_readings(rows)}
            for unit, rows in frame.groupby("unit", sort=True)]


def _adds_up(answer: dict[str, Any]) -> float:
    """`answer`'s rul, after checking that its explanation adds up to it."""
    factors = answer["factors"]
    assert len(factors) == 5
    total = answer["base"] + sum(f["contribution"] for f in factors) + answer["remainder"]
    assert total == pytest.approx(answer["rul"], abs=0.5), answer
    assert answer["remainder"] == pytest.approx(answer["other_inputs"] + answer["approximation"], abs=1e-9)
    return float(answer["rul"])


def test_factors_base_and_remainder_add_up_to_the_rul_for_50_engines_of_the_four_test_sets(
        client: TestClient, test_sets: dict[str, pd.DataFrame]) -> None:
    from core.serving import scoring, whatif

    _, ensemble = scoring.load_model()
    explainer = whatif.build_explainer(ensemble)
    checked = 0
    for subset, frame in test_sets.items():
        response = client.post("/api/v1/batch-predict", json={"engines": _bodies(frame, subset), "factors": True})
        assert response.status_code == 200, response.text
        answers = response.json()["engines"]
        for answer in answers:
            assert 0.0 <= _adds_up(answer) <= ensemble.cap
        checked += len(answers)
        # The same numbers as the explanation computed outside the server, for the set's first engine.
        fs = ensemble.features(frame[frame["unit"] == 1].assign(dataset=subset), "last")
        rul = float(ensemble.predict_features(fs)["rul"].iloc[0])
        expected = explainer.explain(fs, rul=rul).breakdown(5)
        first = answers[0]
        assert first["rul"] == pytest.approx(rul, abs=1e-6)
        assert [f["column"] if f["name"] != "age" else "age" for f in first["factors"]] == [
            name for name, _ in expected.factors]
        assert [f["contribution"] for f in first["factors"]] == pytest.approx(
            [value for _, value in expected.factors], abs=1e-3)
        assert first["base"] == pytest.approx(expected.base, abs=1e-6)
        assert first["other_inputs"] == pytest.approx(expected.other_inputs, abs=1e-3)
        assert first["approximation"] == pytest.approx(expected.approximation, abs=1e-3)
    assert checked == 50


def test_predict_carries_base_and_remainder_only_with_factors(client: TestClient,
                                                               test_sets: dict[str, pd.DataFrame]) -> None:
    body = _bodies(test_sets["FD002"], "FD002")[3]
    answer = client.post("/api/v1/predict", json=body).json()
    _adds_up(answer)
    bare = client.post("/api/v1/predict?factors=false", json=body).json()
    assert bare["rul"] == answer["rul"]
    assert not {"factors", "base", "remainder", "other_inputs", "approximation"} & set(bare)


def test_the_schema_documents_how_the_factors_add_up(client: TestClient) -> None:
    schema = client.get("/api/v1/openapi.json").json()["components"]["schemas"]["Prediction"]["properties"]
    for field in ("base", "remainder", "other_inputs", "approximation"):
        assert schema[field]["description"], field
    assert "= rul" in schema["base"]["description"]
