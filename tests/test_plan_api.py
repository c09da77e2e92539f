"""``POST /api/v1/plan``: the same plan as ``python -m core plan``, accepting needs an operator, refusals are
sentences; an engine's own utilisation (stored or asked for) moves its slot cycles; a week's work package explains
each engine's predicted RUL in words (on the same trained, scored home)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from core.cli import main as cli_main
from tests.api_support import api_client, build_trained_home

TOKEN = "plan-token-0123456789abcdef"
PASSWORD = "a long enough password 1"
BODY = {"weeks": 4, "slots": [2, 1, 3, 2], "start": "2025-06-02", "utilisation": {"test_FD001": 3},
        "costs": {"failure": 40_000, "removal": 1_500, "life_per_cycle": 8},
        "engine_utilisation": [{"dataset": "test_FD001", "engine": "7", "cycles_per_day": 6}],
        "excluded": [{"dataset": "test_FD001", "engine": "3"}],
        "scheduled": [{"dataset": "test_FD001", "engine": "5", "week": 1}]}
CLI_ARGS = ["plan", "--weeks", "4", "--slots", "2,1,3,2", "--start", "2025-06-02", "--utilisation", "test_FD001=3",
            "--failure-cost", "40000", "--removal-cost", "1500", "--life-cost", "8",
            "--engine-utilisation", "test_FD001", "7", "6", "--exclude", "test_FD001", "3",
            "--scheduled", "test_FD001", "5", "1", "--json"]


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory, cmapss_dir: Path) -> Path:
    """FD001 loaded, a tiny champion, and its scores of test_FD001 stored (what the scoring job leaves)."""
    home = build_trained_home(tmp_path_factory.mktemp("plan_api_home"), cmapss_dir)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PM_HOME", str(home))
        from core.operations import scoring_job

        scoring_job.score_stale()
    return home


@pytest.fixture
def home(scored: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(scored, tmp_path / "home"))


@pytest.fixture
def client(home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    with api_client(home, TOKEN, monkeypatch) as (test_client, _parts):
        yield test_client


def _without_timing(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k != "solve_seconds"}


def test_the_api_plans_as_the_command_line_does(client: TestClient, capsys: pytest.CaptureFixture[str]) -> None:
    response = client.post("/api/v1/plan", json=BODY)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert cli_main(CLI_ARGS) == 0
    printed = json.loads(capsys.readouterr().out)
    assert _without_timing(answer) == _without_timing(printed)
    rows = {e["engine"]: e for e in answer["engines"]}
    assert rows["3"]["status"] == "excluded" and rows["5"]["status"] == "scheduled before" and rows["5"]["week"] == 1
    assert rows["7"]["cycles_per_day"] == 6.0 and rows["8"]["cycles_per_day"] == 3.0
    assert answer["accepted_plan"] is None and [w["slots"] for w in answer["calendar"]] == [2, 1, 3, 2]
    assert all(w["planned"] <= w["slots"] for w in answer["calendar"])
    champion = client.post("/api/v1/plan?model=1", json=BODY).json()
    assert _without_timing(champion) == _without_timing(answer), "the champion is version 1"


def test_accepting_needs_an_operator_and_stores_who_accepted(client: TestClient, home: Path) -> None:
    from core.access import users
    from core.access.roles import Role
    from core.data import store
    from core.planning import accepted

    tokens = {}
    for name, role in (("vic", Role.VIEWER), ("opal", Role.OPERATOR)):
        users.add_user(name, role, PASSWORD)
        tokens[name] = users.issue_token(name)[0]
    body = {"weeks": 2, "slots": 1, "start": "2025-06-02", "accept": True}
    refused = client.post("/api/v1/plan", json=body, headers={"Authorization": f"Bearer {tokens['vic']}"})
    assert refused.status_code == 403
    assert refused.json()["detail"] == "Only the operator role or higher may accept a plan; 'vic' is a viewer."
    viewed = client.post("/api/v1/plan", json={**body, "accept": False},
                         headers={"Authorization": f"Bearer {tokens['vic']}"})
    assert viewed.status_code == 200 and viewed.json()["accepted_plan"] is None, "a viewer may still read a plan"
    with store.connect(read_only=True) as con:
        assert accepted.list_plans(con).empty, "the refused acceptance stored nothing"
    done = client.post("/api/v1/plan", json=body, headers={"Authorization": f"Bearer {tokens['opal']}"})
    assert done.status_code == 200, done.text
    plan_id = done.json()["accepted_plan"]
    with store.connect(read_only=True) as con:
        listed = accepted.list_plans(con)
        rows = accepted.plan_rows(con, plan_id)
    assert list(listed["id"]) == [plan_id] and list(listed["accepted_by"]) == ["opal"]
    assert list(listed["model_version"]) == ["1"] and len(rows) == done.json()["engines_in_service"]


@pytest.mark.parametrize(("body", "field", "words"), [
    ({"weeks": 0}, "weeks", ["weeks"]),
    ({"weeks": 53}, "weeks", ["weeks"]),
    ({"weeks": 3, "slots": [1, 2]}, None, ["one per week (3)"]),
    ({"slots": -1}, "slots", ["slots"]),
    ({"costs": {"failure": -5}}, "costs.failure", ["costs.failure"]),
    ({"costs": {"life_per_cycle": False}}, "costs.life_per_cycle", ["number"]),
    ({"utilisation": {"test_FD001": 0}}, "utilisation.test_FD001", ["utilisation"]),
    ({"start": "June"}, "start", ["start"]),
    ({"start": 20250602}, "start", ["YYYY-MM-DD"]),
    ({"accept": "yes"}, "accept", ["accept"]),
    ({"horizon": 4}, "horizon", ["does not take"]),
    ({"scheduled": [{"dataset": "test_FD001", "engine": "nope", "week": 0}]}, None, ["not among the engines"]),
    ({"scheduled": [{"dataset": "test_FD001", "engine": "2", "week": 8}]}, None, ["outside weeks 0 to 7"]),
    ({"engine_utilisation": [{"dataset": "test_FD001", "engine": "nope", "cycles_per_day": 2}]}, None,
     ["not among the engines"]),
])
def test_a_bad_body_is_refused_with_a_sentence(client: TestClient, body: dict[str, Any], field: str | None,
                                               words: list[str]) -> None:
    response = client.post("/api/v1/plan", json=body)
    assert response.status_code == 422, response.text
    answer = response.json()
    assert set(answer) == {"detail", "field"} and answer["detail"].endswith(".")
    assert answer["field"] == field
    assert all(word in answer["detail"] for word in words), answer["detail"]


def test_an_unknown_model_or_dataset_or_no_token_is_refused(client: TestClient) -> None:
    assert client.post("/api/v1/plan", json={}, headers={"Authorization": ""}).status_code == 401
    unknown = client.post("/api/v1/plan?model=99", json={})
    assert unknown.status_code == 422 and unknown.json()["detail"].endswith(".")
    missing = client.post("/api/v1/plan", json={"datasets": ["test_FD001", "nope"]})
    assert missing.status_code == 404 and missing.json()["detail"] == "No dataset named 'nope' is loaded."


def test_an_engine_s_stored_utilisation_moves_its_slots_and_a_request_overrides_it(home: Path, client: TestClient
                                                                                   ) -> None:
    from core.errors import UserError
    from core.planning import utilisation

    utilisation.save_engines({("test_FD001", "7"): 5.0, ("test_FD001", "9"): 4.0}, by="ada")
    with pytest.raises(UserError, match="no engine 'nope'"):
        utilisation.save_engines({("test_FD001", "9"): 1.0, ("test_FD001", "nope"): 2.0}, by="ada")
    utilisation.save_engines({("test_FD001", "9"): None}, by="ada")
    body = {"weeks": 2, "start": "2025-06-02",
            "engine_utilisation": [{"dataset": "test_FD001", "engine": "8", "cycles_per_day": 0.5}]}
    answer = client.post("/api/v1/plan", json=body).json()
    rows = {e["engine"]: e for e in answer["engines"]}
    assert rows["7"]["cycles_per_day"] == 5.0, "the stored value of engine 7"
    assert rows["9"]["cycles_per_day"] == 2.0, "the refused save kept 4, the removal put it back to the default"
    assert rows["8"]["cycles_per_day"] == 0.5 and rows["1"]["cycles_per_day"] == 2.0
    assert answer["engine_utilisation"] == [["test_FD001", "7", 5.0], ["test_FD001", "8", 0.5]]


def test_a_work_package_explains_each_engine_s_predicted_rul(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import re
    from datetime import date

    from core.planning import exports, planner, service
    from core.serving import scoring, whatif

    monkeypatch.setenv("PM_HOME", str(home))
    version, ensemble = scoring.load_model("champion")
    plan = service.fleet_plan(version, ensemble.conformal, planner.PlanRequest(weeks=2, slots=(3,),
                                                                               start=date(2025, 6, 2)))
    week = plan.engines[plan.engines["week"] == 0]
    assert len(week) == 3
    why = service.week_explanations(plan, 0, ensemble, whatif.build_explainer(ensemble))
    assert set(why) == {(d, int(u)) for d, u in zip(week["dataset"], week["unit"], strict=True)}
    for _, row in week.iterrows():
        lines = why[(row["dataset"], int(row["unit"]))]
        start = re.search(r"predicted RUL to (\d+) cycle", lines[0])
        assert start is not None and int(start.group(1)) == round(row["rul"]), "it explains the RUL the plan used"
        assert len(lines) >= 4 and all("RUL" in line for line in lines[1:4]), lines
    page = exports.work_package_html(plan, 0, service.week_readings(plan, 0), version, ["sensor_2"], why)
    assert "What drives each engine" in page
    assert all(f"<h3>{e} (test_FD001)</h3>" in page for e in week["engine"])
    assert page.count("<li>") == sum(len(v) for v in why.values())


def test_the_plan_inputs_stamp_changes_with_what_a_plan_reads_only(home: Path, monkeypatch: pytest.MonkeyPatch
                                                                    ) -> None:
    from datetime import date

    from core.planning import accepted, planner, service, utilisation
    from core.serving import scoring

    monkeypatch.setenv("PM_HOME", str(home))
    version, ensemble = scoring.load_model("champion")
    before = service.inputs_stamp(version)
    plan = service.fleet_plan(version, ensemble.conformal, planner.PlanRequest(weeks=2, start=date(2025, 6, 2)))
    accepted.accept(plan, version, "ada")
    assert service.inputs_stamp(version) == before, "an accepted plan is not an input of the next"
    utilisation.save({"test_FD001": 3.0}, "ada")
    dataset_level = service.inputs_stamp(version)
    assert dataset_level != before
    utilisation.save_engines({("test_FD001", "7"): 4.0}, "ada")
    assert service.inputs_stamp(version) != dataset_level
    assert service.inputs_stamp(version + 1) != service.inputs_stamp(version), "another model's scores"
