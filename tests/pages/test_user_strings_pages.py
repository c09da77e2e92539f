"""AppTest: names people give (datasets, engine ids, user names, the Engine page's address) are shown literally,
never read as Markdown (links, bold, LaTeX, colour, shortcodes), on the Engine, Models and Data pages."""

from __future__ import annotations

import html
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from core.data import fleet_ops, queries, sensors, store
from core.data.cmapss import COLUMNS
from core.operations import job_records, jobs
from pages import ui

APP = str(Path(__file__).resolve().parents[2] / "app.py")
PHISH = "**Session expired.** [Sign in again](http://127.0.0.1:9449/phish)"
DATASET = f"{PHISH} $x^2$ :red[alert]"
ENGINE = "**ESN-1** [open](http://127.0.0.1:9449/e) $y$ :fire:"
OTHER_ENGINE = ":red[E2] www.example.com a@b.co"
MARKUP = ("](", "**Session", "**ESN", "**root", "$x^2$", "$y$", ":red[", ":fire:", "www.example", "a@b.co",
          "http://127")
"""Pieces of the names above that must never reach Markdown as they are."""


def _sources(at: AppTest) -> list[str]:
    """The Markdown source of everything the page shows through Markdown: texts, alerts, labels and help texts."""
    texts = [e.value for kind in (at.markdown, at.caption, at.warning, at.error, at.info, at.success, at.toast)
             for e in kind]
    widgets = [*at.metric, *at.button, *at.selectbox, *at.multiselect, *at.text_input, *at.number_input, *at.slider,
               *at.radio, *at.toggle]
    texts += [text for w in widgets for text in (w.label, w.help) if text]
    texts += [block.label for block in (*at.tabs, *at.expander)]
    texts += [p.proto.text for p in at.get("progress")]
    return texts


def _assert_literal(at: AppTest) -> None:
    raw = [(piece, text) for text in _sources(at) for piece in MARKUP if piece in text]
    assert not raw, f"a name reached Markdown unescaped: {raw}"


@pytest.mark.parametrize("value", [DATASET, ENGINE, OTHER_ENGINE, "# h\n- item\n1. x | y `c` <b>&amp; \\ ~~s~~ \x1b",
                                   ":material/home: :streamlit: www.x.org https://x.org mailto:a@b.org"])
def test_text_escapes_every_markdown_character_and_shows_the_value(value: str) -> None:
    source = ui.text(value)
    bare = re.sub(r"&#\d+;", "", source)
    assert not set(bare) & ui.MARKDOWN_CHARS and "\n" not in bare
    assert html.unescape(source).replace(ui.WORD_JOINER, "") == value.replace("\n", "\\x0a").replace("\x1b", "\\x1b")


@pytest.fixture(scope="module")
def hostile_home(trained_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The trained FD001 home plus a fleet dataset named in Markdown whose engine ids are Markdown too."""
    home = Path(shutil.copytree(trained_home, tmp_path_factory.mktemp("hostile") / "home"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PM_HOME", str(home))
        with store.connect(read_only=True) as con:
            rows = queries.readings_many(con, ["test_FD001"])
        rows = rows[rows["unit"].isin([1, 2])].drop(columns="dataset", errors="ignore")
        engines = rows["unit"].map({1: ENGINE, 2: OTHER_ENGINE})
        fleet_ops.append_readings(DATASET, rows.drop(columns="unit").assign(engine=engines))
    return home


@pytest.fixture
def hostile_env(hostile_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PM_HOME", str(hostile_home))
    for var in ("PM_DUCKDB", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(var, raising=False)
    return hostile_home


def _engine_page(engine: tuple[str, str] | None, params: dict[str, str] | None = None,
                 tab: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.session_state["engine"] = engine
    if tab is not None:
        at.session_state["engine_tab"] = tab
    at.switch_page("pages/engine.py")
    for key, value in (params or {}).items():
        at.query_params[key] = value
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_engine_page_shows_a_stored_dataset_name_and_engine_id_literally(hostile_env: Path) -> None:
    at = _engine_page((DATASET, ENGINE), tab="Outcomes")
    assert not at.error, [e.value for e in at.error]
    assert any(c.value.startswith(f"Engine {ui.text(ENGINE)} of {ui.text(DATASET)} (fleet).") for c in at.caption)
    assert at.selectbox(key="_engine_dataset").value == DATASET and at.selectbox(key="_engine_id").value == ENGINE
    _assert_literal(at)

    at.selectbox(key=f"outcome_event_{DATASET}_{ENGINE}").set_value("inspection")
    at.text_input(key=f"outcome_note_{DATASET}_{ENGINE}").set_value("[call me](http://127.0.0.1:9449/n)")
    at.button(key=f"FormSubmitter:outcome_{DATASET}_{ENGINE}-Record outcome").click().run()
    assert not at.exception and not at.error
    (done,) = at.success
    assert done.value == ui.text(f"Recorded inspection of engine {ENGINE} ({DATASET}) at cycle "
                                 f"{at.number_input(key=f'outcome_cycle_{DATASET}_{ENGINE}').value}.")
    assert at.dataframe[0].value["note"].tolist() == ["[call me](http://127.0.0.1:9449/n)"], "a cell shows it as typed"
    _assert_literal(at)


def test_engine_page_address_is_shown_literally(hostile_env: Path) -> None:
    at = _engine_page(None, {"dataset": PHISH})
    assert [w.value for w in at.warning] == [f"No dataset named '{ui.text(PHISH)}' is loaded; showing another one."]
    _assert_literal(at)

    at = _engine_page(None, {"dataset": DATASET, "engine": f"{PHISH} :red[x]"})
    assert [w.value for w in at.warning] == [
        f"Dataset '{ui.text(DATASET)}' has no engine '{ui.text(f'{PHISH} :red[x]')}'; showing engine {ui.text(ENGINE)}."]
    _assert_literal(at)


def test_models_page_shows_job_errors_and_user_names_literally(fd001_store: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    failed = job_records.JobRecord(id="20261122-120000-abcdef", kind="train", module="core.operations.train_job",
                                   state="failed", device="cpu", created_by="api:**root** [admin](mailto:a@b.co)",
                                   error=f"Load {DATASET} first (Data page or `python -m core ingest`).")
    monkeypatch.setattr(jobs, "list_jobs", lambda **_: [failed])
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page("pages/models.py").run()
    assert not at.exception
    assert [e.value for e in at.error] == [f"{ui.text(job_records.ending(failed)[1])} The serving model was not changed."]
    assert any(m.value.endswith(f" · started by {ui.text(failed.created_by)}") for m in at.markdown)
    _assert_literal(at)


def test_data_page_shows_dataset_and_file_names_literally(pm_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           cmapss_slice: Callable[..., list[str]]) -> None:
    lines = [line.split() for line in cmapss_slice("test_FD001", units=1)]
    header = ",".join(sensors.mnemonic(c) for c in COLUMNS)
    folder = tmp_path / "in"
    folder.mkdir()
    monkeypatch.setenv("PM_IMPORT_ROOT", str(tmp_path))
    (folder / "good.csv").write_text("\n".join([header, *(",".join(["ESN-1", *f[1:]]) for f in lines)]) + "\n")
    bad = folder / "[Sign in again](mailto:a@b.co) $x^2$.csv"
    bad.write_text("not a readings file\n")
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page("pages/data.py").run()
    at.text_input(key="folder").set_value(str(folder)).run()
    at.button(key="check_folder").click().run()
    assert jobs.wait(at.session_state["folder_job"], timeout_s=120).finished
    at.run()
    assert not at.exception
    (refused,) = at.error
    assert ui.text(bad) in refused.value
    _assert_literal(at)

    readings = pd.DataFrame([[float(v) for v in f] for f in lines], columns=COLUMNS).astype({"cycle": int})
    fleet_ops.append_readings(DATASET, readings.drop(columns="unit").assign(engine=ENGINE))
    at.switch_page("pages/data.py").run()
    at.selectbox(key="delete_name").set_value(DATASET).run()
    at.button(key="delete").click().run()
    assert not at.exception
    assert [w.value for w in at.warning] == [(f"Delete **{ui.text(DATASET)}** with its readings, true RUL, "
                                              "predictions and feedback? This cannot be undone.")]
    assert at.button(key="confirm_delete").label == f"Yes, delete {ui.text(DATASET)}"
    _assert_literal(at)
    at.button(key="confirm_delete").click().run()
    assert not at.exception
    assert [s.value for s in at.success] == [ui.text(f"Deleted {DATASET}.")]
    _assert_literal(at)

