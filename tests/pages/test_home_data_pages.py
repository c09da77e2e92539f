"""AppTest: the Home and Data pages, empty and with real FD001 slices loaded from a folder."""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.data import queries, store
from core.operations import jobs

REPO = Path(__file__).resolve().parents[2]


def _app() -> AppTest:
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    at.run()
    return at


@pytest.fixture(autouse=True)
def import_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The folder box reads only under PM_IMPORT_ROOT: these tests put their folders under tmp_path."""
    monkeypatch.setenv("PM_IMPORT_ROOT", str(tmp_path))
    return tmp_path


def _finish_folder_job(at: AppTest) -> None:
    """Wait for the page's background folder job (AppTest never ticks the polling fragment), then rerun."""
    record = jobs.wait(at.session_state["folder_job"], timeout_s=120)
    assert record.finished, f"the folder job is still {record.state}"
    at.run()


def _assert_nothing_loaded() -> None:
    with store.connect(read_only=True) as con:
        assert queries.list_datasets(con).empty


def _check_folder(at: AppTest, path: Path | str) -> None:
    at.text_input(key="folder").set_value(str(path)).run()
    at.button(key="check_folder").click().run()
    _finish_folder_job(at)


def _load_folder(at: AppTest) -> None:
    at.button(key="load_folder").click().run()
    _finish_folder_job(at)


@pytest.fixture
def folder(tmp_path: Path, cmapss_slice: Callable[..., list[str]], cmapss_text: Callable[[str], str]) -> Path:
    """A folder with the first engines of train/test FD001 and their true RUL."""
    out = tmp_path / "incoming"
    out.mkdir()
    (out / "train_FD001.txt").write_text("\n".join(cmapss_slice("train_FD001", units=3)) + "\n")
    (out / "test_FD001.txt").write_text("\n".join(cmapss_slice("test_FD001", units=4)) + "\n")
    (out / "RUL_FD001.txt").write_text("\n".join(cmapss_text("RUL_FD001").splitlines()[:4]) + "\n")
    return out


def test_home_without_data_says_how_to_load(pm_home: Path) -> None:
    at = _app()
    assert not at.exception and not at.error
    assert any("No fleet data is loaded" in w.value for w in at.warning)
    assert any("No model is trained yet" in i.value for i in at.info)


@pytest.mark.slow
def test_data_page_checks_then_loads_a_folder(pm_home: Path, folder: Path) -> None:
    at = _app()
    at.switch_page("pages/data.py").run()
    _check_folder(at, folder)
    assert not at.exception and not at.error
    report = at.dataframe[0].value
    assert set(report["name"]) == {"train_FD001", "test_FD001", "RUL_FD001"}
    assert set(report["status"]) == {"ok"}
    with store.connect(read_only=True) as con:
        assert queries.list_datasets(con).empty, "checking must not write anything"
    _load_folder(at)
    assert not at.exception and not at.error
    assert any("Loaded 2 datasets" in s.value for s in at.success)
    with store.connect(read_only=True) as con:
        listing = queries.list_datasets(con)
    assert sorted(listing["name"]) == ["test_FD001", "train_FD001"]
    assert listing.set_index("name").loc["test_FD001", "has_truth"]

    at = _app()
    assert any(m.label == "Engines" and m.value == "7" for m in at.metric)


@pytest.mark.slow
def test_a_first_load_into_a_store_without_a_model_starts_the_first_training(pm_home: Path, folder: Path) -> None:
    from core.operations import registry, retrain

    tiny = {"epochs": 1, "n_trees": 10, "samples_per_epoch": 512, "hidden": 8, "layers": 1, "device": "cpu"}
    (pm_home / "recipe.json").write_text(json.dumps({"val_rmse": 0.0, "settings": tiny}))  # keeps the training tiny
    at = _app()
    at.switch_page("pages/data.py").run()
    _check_folder(at, folder)
    _load_folder(at)
    assert not at.exception and not at.error
    (job,) = jobs.list_jobs(kind=retrain.TRAIN_KIND)
    assert [t.value for t in at.text] == [(f"Training a first model on train_FD001 in the background (job {job.id}); "
                                          "follow it on the Models page.")]
    assert job.created_by == "dashboard" and job.data["datasets"] == "train_FD001"
    assert jobs.wait(job.id, timeout_s=600).state == "succeeded"
    assert registry.champion_version() == 1


def test_an_engine_closed_by_an_outcome_is_counted_once(small_fd001: Path) -> None:
    from core.data import fleet_ops

    with store.connect(read_only=True) as con:
        last = int(queries.find_engine(con, "test_FD001", "2")["last_cycle"])
    fleet_ops.record_outcome("test_FD001", "2", last, "failure")
    at = _app()
    assert not at.exception and not at.error
    assert [m.value for m in at.metric if m.label == "Engines"] == ["18"]
    assert "3 datasets · 18 engines" in [m.value for m in at.sidebar.markdown]


@pytest.mark.slow
def test_data_page_shows_a_bad_file_as_a_sentence_and_loads_nothing(pm_home: Path, folder: Path) -> None:
    lines = (folder / "train_FD001.txt").read_text().splitlines()
    lines[4] = lines[4].replace(" ", " abc ", 1)
    (folder / "train_FD001.txt").write_text("\n".join(lines) + "\n")
    at = _app()
    at.switch_page("pages/data.py").run()
    _check_folder(at, folder)
    assert not at.exception
    assert any("train_FD001.txt" in html.unescape(e.value) and "line 5" in e.value for e in at.error)
    _load_folder(at)
    with store.connect(read_only=True) as con:
        names = sorted(queries.list_datasets(con)["name"])
    assert names == ["test_FD001"], "only the files without errors are loaded"


def test_data_page_deletes_after_confirmation(pm_home: Path, folder: Path) -> None:
    from core.data import ingest

    ingest.load([folder])
    at = _app()
    at.switch_page("pages/data.py").run()
    at.selectbox(key="delete_name").set_value("train_FD001").run()
    at.button(key="delete").click().run()
    assert not at.exception
    with store.connect(read_only=True) as con:
        assert "train_FD001" in set(queries.list_datasets(con)["name"]), "nothing is deleted before confirmation"
    at.button(key="confirm_delete").click().run()
    assert not at.exception
    with store.connect(read_only=True) as con:
        assert sorted(queries.list_datasets(con)["name"]) == ["test_FD001"]


@pytest.mark.slow
def test_data_page_loads_a_fleet_file_under_a_name_and_appends_the_next(pm_home: Path, tmp_path: Path,
                                                                         cmapss_slice: Callable[..., list[str]]) -> None:
    from core.data import sensors
    from core.data.cmapss import COLUMNS

    lines = [line.split() for line in cmapss_slice("test_FD001", units=2)]
    header = ",".join(sensors.mnemonic(c) for c in COLUMNS)
    rows = [",".join([f"ESN-{int(f[0]) + 7000}", *f[1:]]) for f in lines]
    incoming = tmp_path / "in_service"
    incoming.mkdir()
    (incoming / "week1.csv").write_text("\n".join([header, *rows[:20]]) + "\n")
    at = _app()
    at.switch_page("pages/data.py").run()
    at.selectbox(key="load_role").set_value("fleet").run()
    at.text_input(key="load_dataset").set_value("line-ops").run()
    _check_folder(at, incoming)
    report = at.dataframe[0].value
    assert report[["name", "role", "action", "status"]].values.tolist() == [["line-ops", "fleet", "create", "ok"]]
    _load_folder(at)
    assert not at.exception and not at.error

    (incoming / "week2.csv").write_text("\n".join([header, *rows[10:]]) + "\n")
    _check_folder(at, incoming)
    report = at.dataframe[0].value.set_index("file")
    assert report.loc[str(incoming / "week2.csv"), "action"] == "append"
    _load_folder(at)
    assert not at.exception and not at.error
    assert any("Appended" in s.value and "line-ops" in html.unescape(s.value) for s in at.success)
    with store.connect(read_only=True) as con:
        info = queries.get_dataset(con, "line-ops")
        engines = queries.engines(con, "line-ops")
    assert (info["role"], info["rows"]) == ("fleet", len(rows))
    assert engines["engine"].tolist() == ["ESN-7001", "ESN-7002"]


def test_folder_box_is_hidden_without_an_import_root(pm_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PM_IMPORT_ROOT")
    at = _app()
    at.switch_page("pages/data.py").run()
    assert not at.exception and not at.error
    assert not [t for t in at.text_input if t.key == "folder"]
    assert not [b for b in at.button if b.key == "check_folder"]
    assert [u for u in at.get("file_uploader")], "uploads stay available"


def test_folder_outside_the_import_root_is_refused_without_saying_whether_it_exists(
        pm_home: Path, import_root: Path) -> None:
    at = _app()
    at.switch_page("pages/data.py").run()
    for outside in ["/etc", "/etc/shadow", "/no/such/place", "../../etc"]:
        at.text_input(key="folder").set_value(outside).run()
        at.button(key="check_folder").click().run()
        assert not at.exception
        assert [html.unescape(e.value) for e in at.error] == [(f"{outside} is not inside the import folder {import_root}; only "
                                               "files under it can be read here.")]
        assert "folder_job" not in at.session_state
    _assert_nothing_loaded()


def test_symlink_leaving_the_import_root_is_refused(pm_home: Path, import_root: Path, folder: Path) -> None:
    link = import_root / "elsewhere"
    link.symlink_to("/etc", target_is_directory=True)
    (folder / "fleet_x.csv").symlink_to("/etc/hostname")
    at = _app()
    at.switch_page("pages/data.py").run()
    at.text_input(key="folder").set_value(str(link)).run()
    at.button(key="check_folder").click().run()
    assert [html.unescape(e.value) for e in at.error] == [(f"{link} is not inside the import folder {import_root}; only files "
                                           "under it can be read here.")]
    _check_folder(at, folder)
    assert any(f"{folder / 'fleet_x.csv'} is not inside the import folder" in html.unescape(e.value) for e in at.error)
    _assert_nothing_loaded()


def _select(at: AppTest, rows: list[int]) -> None:
    """Select rows of the alert table (whose key changes with each new view, so a view opens unselected)."""
    key = f"alert_table_{at.session_state['alert_view']}"
    at.session_state[key] = {"selection": {"rows": rows, "columns": [], "cells": []}}
    at.run()


def _alert_table(at: AppTest):
    (table,) = [d.value for d in at.dataframe if "alert" in d.value.columns]
    return table


def test_home_groups_alerts_by_kind_and_an_operator_acknowledges_and_snoozes_selected_ones(
        pm_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from core.server import alerts
    from core.server.alerts import Finding

    risks = [Finding(key=f"risk:line-A:ESN-{n}", kind="risk", dataset="line-A", engine=f"ESN-{n}", value=0.9,
                     message=f"Engine ESN-{n} of line-A is at HIGH risk.") for n in (1, 2, 3)]
    alerts.sync(risks, {"risk": None})
    alerts.sync([*risks, Finding(key="drift:line-A", kind="drift", dataset="line-A", value=1.0,
                                 message="Fleet dataset line-A has drifted.")], {"drift": None})
    monkeypatch.setattr("getpass.getuser", lambda: "alice")
    at = _app()
    assert not at.exception and not at.error
    shown = {m.label: m.value for m in at.metric}
    assert (shown["Engine at HIGH risk"], shown["Fleet drift"], shown["Failed training job"]) == ("3", "1", "0")
    table = _alert_table(at)
    assert table["kind"].tolist()[0] == "Fleet drift", "newest first"
    assert table["id"].tolist() == sorted(table["id"], reverse=True)
    at.pills(key="alert_kinds").set_value(["risk"]).run()
    table = _alert_table(at)
    assert table["kind"].unique().tolist() == ["Engine at HIGH risk"] and len(table) == 3

    _select(at, [0, 1])
    at.text_input(key="alert_note").set_value("borescope booked").run()
    at.button(key="alert_ack").click().run()
    assert not at.exception and [s.value for s in at.success] == ["Acknowledged 2 alerts."]
    chosen = table["id"].tolist()[:2]
    done = {e.id: e for e in alerts.list_episodes("acknowledged")}
    assert sorted(done) == sorted(chosen)
    assert {(e.acknowledged_by, e.note) for e in done.values()} == {("local (alice)", "borescope booked")}
    assert all(e.acknowledged_at is not None for e in done.values())
    assert len(_alert_table(at)) == 1, "the open list no longer holds them"
    assert at.button(key="alert_ack").disabled, "the new view starts with nothing selected"

    _select(at, [0])
    at.radio(key="alert_snooze_kind").set_value("the risk changes").run()
    at.button(key="alert_snooze").click().run()
    assert not at.exception and [s.value for s in at.success] == ["Snoozed 1 alert."]
    (snoozed,) = alerts.list_episodes("snoozed")
    assert (snoozed.snoozed_by, snoozed.snoozed_until) == ("local (alice)", None)
    at.segmented_control(key="alert_state").set_value("snoozed").run()
    assert _alert_table(at)["snoozed until (UTC)"].tolist() == ["until the risk changes"]
