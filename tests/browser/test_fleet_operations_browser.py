"""In real headless Chromium: load an operator's CSV as a named fleet dataset, open one engine by its shareable
address, see sensor names with units and no claimed true RUL, record its failure and see it move to history."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from core.data import queries, sensors, store
from core.data.cmapss import COLUMNS

pytestmark = pytest.mark.browser


def _fleet_folder(tmp_path: Path, cmapss_slice: Callable[..., list[str]]) -> tuple[Path, int]:
    lines = [line.split() for line in cmapss_slice("test_FD001", units=2)]
    header = ",".join(reversed([sensors.mnemonic(c) for c in COLUMNS]))
    rows = [",".join(reversed([f"ESN-{int(f[0]) + 7000}", *f[1:]])) for f in lines]
    folder = tmp_path / "operator"
    folder.mkdir()
    (folder / "engines.csv").write_text("\n".join([header, *rows]) + "\n")
    last = max(int(f[1]) for f in lines if f[0] == "1")
    return folder, last


def test_load_a_fleet_csv_open_an_engine_by_link_and_record_its_failure(
        browser_page, dashboard, dashboard_env: dict[str, str], model_home: Path, tmp_path: Path,
        cmapss_slice: Callable[..., list[str]], monkeypatch: pytest.MonkeyPatch) -> None:
    folder, last = _fleet_folder(tmp_path, cmapss_slice)
    url = dashboard({**dashboard_env, "PM_HOME": str(model_home), "PM_IMPORT_ROOT": str(tmp_path)})
    page = browser_page

    page.goto(f"{url}/data")
    page.get_by_text("Loaded datasets").wait_for()
    page.get_by_role("combobox", name="Role").click()
    page.get_by_role("option", name="fleet").click()
    name_box = page.get_by_role("textbox", name="Dataset name")
    name_box.fill("line-ops")
    name_box.press("Enter")
    page.get_by_role("tab", name="From a folder").click()
    folder_box = page.get_by_role("textbox", name="Folder on the server")
    folder_box.fill(str(folder))
    folder_box.press("Enter")
    page.get_by_text("Check this folder").click()
    page.get_by_role("button", name="Load 1 file").click()
    page.get_by_text("Loaded 1 datasets").wait_for()

    page.goto(f"{url}/engine?dataset=line-ops&engine=ESN-7001")
    page.get_by_text("Engine ESN-7001 of line-ops (fleet)").wait_for()
    page.get_by_text("In service: its true RUL is not known").wait_for()
    assert "True RUL after the last cycle" not in page.inner_text("body")
    page.get_by_role("tab", name="What if").click()
    page.get_by_text("Predicted RUL (what-if)").wait_for()
    unit_label = re.compile(r"(T24|T30|T50|P30|Ps30|Nf|Nc|NRf|NRc) .*\((psia|°R|rpm)\)")
    page.get_by_text(unit_label).first.wait_for(state="attached")  # sensors named with their units

    page.get_by_role("tab", name="Outcomes").click()
    page.get_by_role("combobox", name="Event").click()
    page.get_by_role("option", name="failure").click()
    page.get_by_role("button", name="Record outcome").click()
    page.get_by_text(f"Recorded failure of engine ESN-7001 (line-ops) at cycle {last}").wait_for()
    page.get_by_text("now history in 'line-ops-closed'").first.wait_for()

    monkeypatch.setenv("PM_HOME", str(model_home))
    with store.connect(read_only=True) as con:
        listing = queries.list_datasets(con).set_index("name")
    assert listing.loc["line-ops", "role"] == "fleet" and listing.loc["line-ops", "closed"] == 1
    assert listing.loc["line-ops-closed", "role"] == "history"
