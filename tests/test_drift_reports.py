"""Drift reports and history (issue 28 item 2): multivariate drift by PCA reconstruction error, drift per load and
per calendar week stored in ``drift_history``, data-quality checks per load, and the self-contained HTML report the
CLI writes."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.cli import main as cli_main
from core.data import ingest, store
from core.data.cmapss import SENSORS
from core.monitoring import drift, history, multivariate, quality


def _parts(folder: Path, lines: list[str], cuts: list[tuple[int, int]], prefix: str = "part") -> list[Path]:
    """The lines of engines ``a..b`` of each cut, one file each."""
    paths = []
    for i, (a, b) in enumerate(cuts):
        path = folder / f"{prefix}{i}.txt"
        path.write_text("\n".join(line for line in lines if a <= int(line.split()[0]) <= b) + "\n")
        paths.append(path)
    return paths


@pytest.fixture
def three_loads(pm_home: Path, tmp_path: Path, cmapss_dir: Path, cmapss_text: Callable[[str], str]) -> Path:
    """train_FD001 as history, and train_FD003's engines 1-30 loaded in three parts into the fleet dataset ``fleet``."""
    ingest.load([cmapss_dir / "train_FD001.txt.gz"])
    for path in _parts(tmp_path, cmapss_text("train_FD003").splitlines(), [(1, 10), (11, 20), (21, 30)]):
        ingest.load([path], role="fleet", dataset="fleet")
    return pm_home


def test_multivariate_drift_stays_within_band_for_halves_of_fd001_and_exceeds_it_for_fd002(
        pm_home: Path, cmapss_dir: Path) -> None:
    ingest.load([cmapss_dir / "train_FD001.txt.gz", cmapss_dir / "train_FD002.txt.gz"])
    with store.connect(read_only=True) as con:
        fd001 = drift.read_side(con, ["train_FD001"])[0]
        fd002 = drift.read_side(con, ["train_FD002"])[0]
    units = np.random.default_rng(1).permutation(fd001["unit"].unique())
    half = fd001["unit"].isin(units[:50])
    within = multivariate.measure(fd001[half], fd001[~half])
    assert not within.drifted and within.lower <= within.score <= within.upper
    assert within.upper > within.lower, "the band comes from reference chunks, it is not a point"
    beyond = multivariate.measure(fd001, fd002)
    assert beyond.drifted and beyond.score > beyond.upper
    assert "sensor_1" not in beyond.sensors, "a near-constant sensor is left out"


def test_drift_over_time_has_one_point_per_load_and_is_stored(three_loads: Path) -> None:
    by_load = history.over_time("fleet", ["train_FD001"], "load")
    assert list(by_load["period_key"]) == ["1", "2", "3"]
    assert list(by_load["engines"]) == [10, 10, 10]
    assert (by_load["drift_share"] > 0).all(), "FD003's engines differ from FD001's"
    with store.connect(read_only=True) as con:
        kept = history.stored(con, "fleet", ["train_FD001"], "load")
        readings = con.execute("SELECT count(*) FROM readings r JOIN datasets d ON d.id = r.dataset_id "
                               "WHERE d.name = 'fleet'").fetchone()[0]
    assert kept is not None and list(kept["period_key"]) == ["1", "2", "3"]
    assert int(by_load["readings"].sum()) == readings
    by_week = history.over_time("fleet", ["train_FD001"], "week")
    assert len(by_week) == 1 and re.fullmatch(r"\d{4}-W\d{2}", by_week["period_key"][0])


def test_drift_over_time_is_computed_again_after_another_load(three_loads: Path, tmp_path: Path,
                                                              cmapss_text: Callable[[str], str]) -> None:
    assert len(history.over_time("fleet", ["train_FD001"], "load")) == 3
    (fourth,) = _parts(tmp_path, cmapss_text("train_FD001").splitlines(), [(31, 40)], prefix="more")
    ingest.load([fourth], role="fleet", dataset="fleet")
    points = history.over_time("fleet", ["train_FD001"], "load")
    assert list(points["period_key"]) == ["1", "2", "3", "4"]
    assert points["drift_share"].iloc[3] < points["drift_share"].iloc[0], "FD001's engines are like the reference"


def test_drift_over_time_per_load_matches_the_pandas_psi(three_loads: Path) -> None:
    """The PSI binned in DuckDB is the PSI the per-sensor comparison computes on the same rows."""
    with store.connect(read_only=True) as con:
        reference = drift.read_side(con, ["train_FD001"])[0]
        fleet = drift.read_side(con, ["fleet"])[0]
        computed = history.compute(con, "fleet", ["train_FD001"], "load")
    first = fleet[fleet["unit"] <= 10]
    table = drift.compare_frames(reference, first)
    share = drift.drift_share(table)
    assert computed.points["drift_share"].iloc[0] == pytest.approx(share)


def _fleet_file(lines: list[str], path: Path) -> Path:
    """Engines 1 and 2 of train_FD001 with faults: engine 1 skips cycles 5-6 and repeats cycle 9 as cycle 10,
    engine 2's sensor_7 stuck from cycle 20 to 49, and one sensor_11 value far above the training range."""
    rows = [line.split() for line in lines]
    out = []
    for row in rows:
        unit, cycle = int(row[0]), int(row[1])
        if unit == 1 and cycle in (5, 6):
            continue
        if unit == 1 and cycle == 10:
            row = [row[0], row[1], *next(r for r in rows if r[0] == "1" and r[1] == "9")[2:]]
        if unit == 2 and 20 <= cycle < 50:
            row[4 + 7] = "554.00"
        if unit == 2 and cycle == 60:
            row[4 + 11] = "60.00"
        out.append(" ".join(row))
    path.write_text("\n".join(out) + "\n")
    return path


def test_quality_checks_find_gaps_repeats_stuck_sensors_and_out_of_range_values(
        pm_home: Path, tmp_path: Path, cmapss_dir: Path, cmapss_slice: Callable[..., list[str]]) -> None:
    ingest.load([cmapss_dir / "train_FD001.txt.gz"])
    ingest.load([_fleet_file(cmapss_slice("train_FD001", units=2), tmp_path / "faulty.txt")], role="fleet",
                dataset="faulty")
    with store.connect(read_only=True) as con:
        table = quality.check(con, "faulty", ["train_FD001"])
        clean = quality.check(con, "train_FD001", ["train_FD001"])
    (row,) = table.to_dict(orient="records")
    assert row["missing_cycles"] == 2 and row["engines_with_gaps"] == 1
    assert row["repeated_cycles"] == 1
    assert row["stuck"] == "sensor_7 (1 engine)"
    assert row["out_of_range"] >= 1 and "sensor_11 (1 reading)" in row["out_of_range_sensors"]
    sentences = quality.findings(table)
    assert len(sentences) == 1 and "2 missing cycles" in sentences[0] and "stuck for 20+ cycles" in sentences[0]
    assert quality.findings(clean) == [], "the training data itself has no findings"


def test_cli_writes_a_self_contained_html_report_with_every_sensor(three_loads: Path, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report.html"
    assert cli_main(["drift", "--reference", "train_FD001", "--current", "fleet", "--html", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["html"] == str(out) and result["multivariate"]["drifted"]
    page = out.read_text()
    assert "<script src=" not in page, "plotly.js is inline, nothing is fetched"
    assert page.count("Plotly.newPlot") == 2, "the sensor chart and the drift-per-load chart"
    assert all(f"<td>{sensor}</td>" in page for sensor in SENSORS)
    assert "Multivariate drift (PCA reconstruction error" in page and "Data quality per load" in page
    features = pd.DataFrame(result["features"])
    assert set(features["feature"]) == set(SENSORS)


def test_report_escapes_dataset_names(three_loads: Path, tmp_path: Path) -> None:
    from core.monitoring import report

    with store.connect(read_only=True) as con:
        reference = drift.read_side(con, ["train_FD001"])[0]
        current = drift.read_side(con, ["fleet"])[0]
        extras = report.collect(con, ["train_FD001"], "fleet", reference, current)
    from core.monitoring import verdicts

    result = verdicts.assess(reference, current).to_dict()
    page = report.render(result, "<b>ref</b>", "<script>alert(1)</script>", extras)
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_a_large_load_is_judged_on_a_seeded_sample_of_whole_engines(three_loads: Path) -> None:
    with store.connect(read_only=True) as con:
        whole = history.compute(con, "fleet", ["train_FD001"], "week").points.iloc[0]
        sampled = history.compute(con, "fleet", ["train_FD001"], "week", max_rows=3_000).points.iloc[0]
        again = history.compute(con, "fleet", ["train_FD001"], "week", max_rows=3_000).points.iloc[0]
        checked = quality.check(con, "fleet", ["train_FD001"], max_rows=1_000)
    assert whole["compared"] == whole["readings"] and whole["engines"] == 30
    assert 0 < sampled["compared"] < whole["readings"] and sampled["readings"] == whole["readings"]
    assert sampled["compared"] == again["compared"] and sampled["drift_share"] == again["drift_share"], "seeded"
    assert (checked["checked_engines"] < checked["engines"]).all() and (checked["checked_engines"] >= 1).all()
