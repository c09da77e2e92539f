"""The monitoring files in deploy/: Prometheus' config, alert rules and their unit tests, Alertmanager's routes and
Grafana's dashboards pass the tools' own checks, every metric they use is exported by the server, and Prometheus'
evaluation of the real rules on a real scrape fires the drift and PSI alerts for FD002 engines under an FD001
champion and not for FD001 engines.

promtool and amtool come from Debian's ``prometheus`` and ``prometheus-alertmanager`` packages (``.ci/run`` installs
them); without them these tests skip, which fails under CI (tests/conftest.py).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.api_support import api_client, build_trained_home

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
RULES = DEPLOY / "prometheus" / "rules" / "pm_alerts.yml"
RULE_TESTS = DEPLOY / "prometheus" / "tests" / "pm_alerts_test.yml"
DASHBOARDS = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
TOKEN = "deploy-token-0123456789abcdef"
EXPORTED_PREFIXES = ("pm_", "process_", "python_")
"""Metrics the server exports; ``up`` and ``ALERTS`` are Prometheus' own."""


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (Debian package {'prometheus' if name == 'promtool' else 'prometheus-alertmanager'})")
    return found


def _run(*args: str | Path) -> str:
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, f"{' '.join(map(str, args))} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def _panel_queries() -> list[tuple[str, str]]:
    """(dashboard uid, PromQL) of every panel target."""
    out = []
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        out += [(board["uid"], target["expr"]) for panel in board["panels"] for target in panel["targets"]]
    return out


def _metric_names(expr: str) -> set[str]:
    """Names of the server's metrics in a PromQL expression (identifiers with the exported prefixes)."""
    without_strings = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    return {name for name in re.findall(r"\b[a-zA-Z_:][a-zA-Z0-9_:]*\b", without_strings)
            if name.startswith(EXPORTED_PREFIXES)}


def test_prometheus_config_and_rules_pass_promtool(tmp_path: Path) -> None:
    promtool = _tool("promtool")
    (tmp_path / "rules").mkdir()
    shutil.copy(RULES, tmp_path / "rules" / RULES.name)
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "metrics_token").write_text(TOKEN + "\n")
    config = (DEPLOY / "prometheus" / "prometheus.yml").read_text().replace("/etc/prometheus/", f"{tmp_path}/")
    (tmp_path / "prometheus.yml").write_text(config)
    out = _run(promtool, "check", "config", tmp_path / "prometheus.yml")
    assert "9 rules found" in out
    scrape = yaml.safe_load(config)["scrape_configs"][0]
    assert scrape["metrics_path"] == "/metrics" and scrape["authorization"]["type"] == "Bearer"
    assert _run(promtool, "check", "rules", RULES).count("SUCCESS") == 1


def test_every_alert_the_issue_lists_exists_has_a_severity_and_a_unit_test_that_passes() -> None:
    promtool = _tool("promtool")
    alerts = {rule["alert"]: rule for rule in _rules()}
    assert set(alerts) == {"PmServerDown", "PmApiLatencyHigh", "PmApiSuccessRateLow", "PmPredictionPsiHigh",
                           "PmDriftShareHigh", "PmLiveF2Low", "PmLiveRmseHigh", "PmTrainingFailedTwice",
                           "PmWorkerDegraded"}
    assert all(rule["labels"]["severity"] in ("critical", "warning") for rule in alerts.values())
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    tested = {case["alertname"] for test in tests for case in test.get("alert_rule_test", []) if case["exp_alerts"]}
    assert tested == set(alerts), "every alert is shown firing in a unit test"
    assert "SUCCESS" in _run(promtool, "test", "rules", RULE_TESTS)


def test_alertmanager_routes_each_severity_to_its_receiver() -> None:
    amtool = _tool("amtool")
    config = DEPLOY / "alertmanager" / "alertmanager.yml"
    assert "SUCCESS" in _run(amtool, "check-config", config)
    for severity, receiver in (("critical", "on-call"), ("warning", "team")):
        routed = _run(amtool, "config", "routes", "test", f"--config.file={config}", "alertname=PmAny",
                      f"severity={severity}")
        assert routed.strip() == receiver
    assert {rule["labels"]["severity"] for rule in _rules()} == {"critical", "warning"}


def test_every_dashboard_query_parses_and_the_dashboards_use_the_provisioned_datasource(tmp_path: Path) -> None:
    promtool = _tool("promtool")
    assert [p.stem for p in DASHBOARDS] == ["api", "business", "data-and-drift", "model-performance"]
    queries = _panel_queries()
    records = [{"record": f"dashboard:{uid.replace('-', '_')}:{i}", "expr": expr} for i, (uid, expr) in
               enumerate(queries)]
    extracted = tmp_path / "dashboard_queries.yml"
    extracted.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": records}]}))
    assert f"SUCCESS: {len(records)} rules found" in _run(promtool, "check", "rules", extracted)
    source = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text())
    uid = source["datasources"][0]["uid"]
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        assert {t["datasource"]["uid"] for p in board["panels"] for t in p["targets"]} == {uid}, path.name


def test_compose_mounts_the_files_the_tools_read() -> None:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"app", "prometheus", "alertmanager", "grafana"}
    mounted = {volume.split(":")[0] for service in services.values() for volume in service.get("volumes", [])}
    for path in ("./prometheus/prometheus.yml", "./prometheus/rules", "./alertmanager/alertmanager.yml",
                 "./grafana/provisioning", "./grafana/dashboards"):
        assert path in mounted and (DEPLOY / path).exists(), path


# ------------------------------------------------------------------------------------- against a running server


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, cmapss_dir: Path,
         cmapss_slice: Callable[..., list[str]]) -> Path:
    """FD001 loaded with a tiny FD001 champion, and two fleet datasets: 40 engines of test_FD002 (line-FD002) and
    40 of test_FD001 (line-FD001)."""
    from core.data import ingest

    built = build_trained_home(tmp_path_factory.mktemp("deploy_home"), cmapss_dir)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PM_HOME", str(built))
        for name, subset in (("line-FD002", "test_FD002"), ("line-FD001", "test_FD001")):
            incoming = built / f"{name}.txt"
            incoming.write_text("\n".join(cmapss_slice(subset, units=40)) + "\n")
            ingest.load([incoming], role="fleet", dataset=name)
    return built


SCORED: list[dict[str, Any]] = []
"""The batch prediction of line-FD001 the `scrape` fixture stored (filled by it)."""


@pytest.fixture(scope="module")
def scrape(home: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """(/metrics text after line-FD001 was scored and the alert rules judged the fleet, dataset name -> dataset_id)."""
    from core.data import queries, store
    from core.server.alert_rules import Watcher
    from core.server.alerts import Notifier

    with pytest.MonkeyPatch.context() as mp, api_client(home, TOKEN, mp) as (client, parts):
        scored = client.post("/api/v1/batch-predict", json={"dataset": "line-FD001"})
        assert scored.status_code == 200
        SCORED[:] = scored.json()["engines"]
        Watcher(parts.services.cache, Notifier()).check(force=True)
        for path in ("/api/v1/docs", "/api/v1/openapi.json", "/api/v1/no-such-route", "/api/v1x"):
            client.get(path)
        with store.connect(read_only=True) as con:
            ids = {name: str(queries.find_dataset(con, name)["id"]) for name in ("line-FD002", "line-FD001")}
        yield client.get("/metrics").text, ids


@pytest.mark.slow
def test_every_metric_a_rule_or_panel_uses_is_on_metrics(scrape: tuple[str, dict[str, str]]) -> None:
    text, _ = scrape
    exported = set()
    for family in text_string_to_metric_families(text):
        exported.add(family.name)
        exported.update(sample.name for sample in family.samples)
    used = set().union(*(_metric_names(rule["expr"]) for rule in _rules()),
                       *(_metric_names(expr) for _, expr in _panel_queries()))
    assert {"pm_prediction_psi", "pm_live_high_f2", "process_resident_memory_bytes",
            "pm_http_request_seconds_bucket"} <= used
    assert sorted(used - exported) == []


@pytest.mark.slow
def test_endpoint_labels_are_route_templates_and_the_process_is_measured(scrape: tuple[str, dict[str, str]]) -> None:
    text, _ = scrape
    endpoints = {sample.labels["endpoint"] for family in text_string_to_metric_families(text)
                 if family.name == "pm_http_requests" for sample in family.samples}
    assert {"/api/v1/docs", "/api/v1/openapi.json", "/api/v1/{unmatched}", "dashboard",
            "/api/v1/batch-predict"} <= endpoints
    assert "/api/v1/api/v1" not in endpoints and "" not in endpoints
    assert re.search(r"^process_resident_memory_bytes \d", text, re.MULTILINE)
    assert re.search(r'^pm_engines\{dataset="",dataset_id="\d+",risk="HIGH"\} \d', text, re.MULTILINE)


@pytest.mark.slow
def test_the_fleet_gauges_count_engines_by_risk_backlog_ood_and_expected_cost(
        scrape: tuple[str, dict[str, str]]) -> None:
    text, ids = scrape

    def value(name: str, **labels: str) -> float:
        found = [s.value for f in text_string_to_metric_families(text) for s in f.samples
                 if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
        assert len(found) == 1, (name, labels, found)
        return found[0]

    scored, waiting = ids["line-FD001"], ids["line-FD002"]
    for risk in ("LOW", "MEDIUM", "HIGH"):
        assert value("pm_engines", dataset_id=scored, risk=risk) == sum(e["risk"] == risk for e in SCORED)
    assert value("pm_engines", dataset_id=scored, risk="unscored") == 0 and len(SCORED) == 40
    assert value("pm_engines", dataset_id=waiting, risk="unscored") == 40
    assert value("pm_scoring_backlog_engines", dataset_id=scored) == 0
    assert value("pm_scoring_backlog_engines", dataset_id=waiting) == 40
    assert value("pm_ood_engines", dataset_id=scored) == sum(e["ood"] for e in SCORED)
    assert value("pm_expected_failure_cost_dollars", dataset_id=scored) == pytest.approx(
        50_000 * sum(e["p_fail_30"] for e in SCORED))
    assert value("pm_champion_validation_rmse", model_version="1") > 0
    assert value("pm_alerts", kind="drift", state="open") == 1


def _rule_test(text: str, ids: dict[str, str], tmp_path: Path) -> Path:
    """A promtool unit test holding the scrape's pm_ gauges as constant series for 15 minutes, expecting the drift
    and PSI alerts firing for line-FD002 only."""
    series = []
    for family in text_string_to_metric_families(text):
        if family.type != "gauge" or not family.name.startswith("pm_"):
            continue
        for sample in family.samples:
            labels = ", ".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            series.append({"series": f"{sample.name}{{{labels}}}", "values": f"{sample.value:.6f}x15"})
    expected = [{"labels": f'ALERTS{{alertname="{name}", alertstate="firing", dataset_id="{ids["line-FD002"]}", '
                           'severity="warning"}', "value": 1}
                for name in ("PmDriftShareHigh", "PmPredictionPsiHigh")]
    test = {"rule_files": [str(RULES)], "evaluation_interval": "1m",
            "tests": [{"interval": "1m", "input_series": series, "promql_expr_test": [
                {"expr": 'ALERTS{alertname=~"PmDriftShareHigh|PmPredictionPsiHigh", alertstate="firing"}',
                 "eval_time": "10m", "exp_samples": expected}]}]}
    path = tmp_path / "scraped_test.yml"
    path.write_text(yaml.safe_dump(test))
    return path


@pytest.mark.slow
def test_prometheus_fires_drift_and_psi_alerts_for_fd002_engines_and_not_for_fd001_ones(
        scrape: tuple[str, dict[str, str]], tmp_path: Path) -> None:
    promtool = _tool("promtool")
    text, ids = scrape
    families = {f.name: f for f in text_string_to_metric_families(text)}
    judged = {s.labels["dataset_id"]: s.value for s in families["pm_prediction_psi"].samples}
    assert set(judged) == set(ids.values()), "both fleet datasets were judged"
    assert "SUCCESS" in _run(promtool, "test", "rules", _rule_test(text, ids, tmp_path))
