"""Ingest: parsing and validation of C-MAPSS files (built from real-file slices), transactions, no-ops, order."""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from core.data import ingest, queries, store
from core.data.cmapss import COLUMNS
from core.errors import UserError
from tests.conftest import REPO_ROOT, cmapss_file

Slice = Callable[..., list[str]]


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def set_field(line: str, index: int, value: str) -> str:
    """Replace the value at `index` of a NASA line, keeping its single spaces and trailing padding."""
    fields = line.split(" ")
    fields[index] = value
    return " ".join(fields)


def refused(path: Path | tuple[str, bytes]) -> str:
    """Load `path` into the store, expect a refusal, and return its sentence."""
    with pytest.raises(UserError) as info:
        ingest.load([path])
    return str(info.value)


def store_state() -> tuple:
    with store.connect(read_only=True) as con:
        return con.execute(
            "SELECT (SELECT count(*) FROM datasets), (SELECT count(*) FROM readings), "
            "(SELECT count(*) FROM rul_truth), (SELECT count(*) FROM truth_files), (SELECT count(*) FROM pending_truth)"
        ).fetchall()[0]


@pytest.fixture
def train_lines(cmapss_slice: Slice) -> list[str]:
    return cmapss_slice("train_FD001", units=2)


# ----------------------------------------------------------------------------- good inputs


def test_real_slice_loads_with_nasa_padding(pm_home: Path, tmp_path: Path, train_lines: list[str]) -> None:
    assert train_lines[0].endswith("  ")
    summary = ingest.load([write(tmp_path / "train_FD001.txt", train_lines)])
    assert summary.datasets_added == ["train_FD001"]
    assert summary.readings_added == len(train_lines)
    with store.connect(read_only=True) as con:
        frame = queries.readings(con, "train_FD001")
        info = queries.get_dataset(con, "train_FD001")
    assert list(frame.columns) == COLUMNS
    assert (info["subset"], info["role"], info["engines"]) == ("FD001", "history", 2)
    first = [float(v) for v in train_lines[0].split()]
    assert frame.iloc[0].tolist() == pytest.approx(first)


def test_other_whitespace_and_blank_lines_still_parse(pm_home: Path, tmp_path: Path, train_lines: list[str]) -> None:
    lines = ["\t".join(line.split()) for line in train_lines]
    lines.insert(3, "")
    summary = ingest.load([write(tmp_path / "train_FD001.txt", lines)])
    assert summary.readings_added == len(train_lines)


def test_csv_with_header_and_parquet_and_upload(pm_home: Path, tmp_path: Path, train_lines: list[str]) -> None:
    frame = pd.DataFrame([[float(v) for v in line.split()] for line in train_lines], columns=COLUMNS)
    frame[list(reversed(COLUMNS))].to_csv(tmp_path / "fleet_a.csv", index=False)
    frame.assign(unit=frame.unit + 10).to_parquet(tmp_path / "fleet_b.parquet")
    upload = ("fleet_c.txt", "\n".join(train_lines).encode())
    summary = ingest.load([tmp_path / "fleet_a.csv", tmp_path / "fleet_b.parquet", upload])
    assert summary.datasets_added == ["fleet_a", "fleet_b", "fleet_c"]
    with store.connect(read_only=True) as con:
        assert queries.readings(con, "fleet_a").equals(queries.readings(con, "fleet_c"))
        assert queries.get_dataset(con, "fleet_b")["source"].endswith("fleet_b.parquet")
        assert queries.get_dataset(con, "fleet_c")["source"] == "upload:fleet_c.txt"


def test_nasa_zip_wrapping_inner_zip(pm_home: Path, tmp_path: Path, cmapss_slice: Slice) -> None:
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as z:
        z.writestr("train_FD002.txt", "\n".join(cmapss_slice("train_FD002", 2)) + "\n")
        z.writestr("test_FD002.txt", "\n".join(cmapss_slice("test_FD002", 3)) + "\n")
        z.writestr("RUL_FD002.txt", "18 \n79 \n106 \n")
        z.writestr("readme.txt", "Data Set: FD002\n")
    outer = tmp_path / "CMAPSS.zip"
    with zipfile.ZipFile(outer, "w") as z:
        z.writestr("6. Turbofan/CMAPSSData.zip", inner.getvalue())
        z.writestr("6. Turbofan/Damage Propagation Modeling.pdf", b"%PDF-1.4")
    reports = ingest.inspect([outer])
    assert [r.name for r in reports] == ["train_FD002", "test_FD002", "RUL_FD002"]
    assert all(r.status == "ok" for r in reports)
    summary = ingest.load([outer])
    assert summary.truth_rows_added == 3
    with store.connect(read_only=True) as con:
        assert queries.rul_truth(con, "test_FD002")["rul"].tolist() == [18, 79, 106]


def test_inspect_reports_without_writing(pm_home: Path, tmp_path: Path, train_lines: list[str]) -> None:
    good = write(tmp_path / "train_FD001.txt", train_lines)
    bad = write(tmp_path / "test_FD001.txt", [set_field(train_lines[0], 7, "abc")])
    reports = ingest.inspect([good, bad])
    assert [r.status for r in reports] == ["ok", "error"]
    assert reports[0].rows == len(train_lines) and reports[0].engines == 2 and len(reports[0].sha256) == 64
    assert "test_FD001.txt line 1: T30 (sensor_3) is 'abc'" in reports[1].message
    assert not (pm_home / "fleet.duckdb").exists()


# ----------------------------------------------------------------------------- bad inputs, one sentence each


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda ls: ls[:4] + [ls[4].rsplit(" ", 3)[0]] + ls[5:], "line 5 has 25 values but a C-MAPSS reading needs 26"),
        (lambda ls: ls[:2] + [set_field(ls[2], 7, "abc")] + ls[3:], "line 3: T30 (sensor_3) is 'abc', which is not a number"),
        (lambda ls: ls[:1] + [set_field(ls[1], 10, "nan")] + ls[2:], "line 2: P15 (sensor_6) is missing, but readings must be finite"),
        (lambda ls: ls[:1] + [set_field(ls[1], 10, "inf")] + ls[2:], "line 2: P15 (sensor_6) is inf, but readings must be finite"),
        (lambda ls: ls[:4] + [ls[3]] + ls[4:], "line 5 repeats engine 1 cycle 4, already given on line 4"),
        (lambda ls: [set_field(ls[0], 1, "0")] + ls[1:], "line 1: cycle is 0, but it must be a positive whole number"),
        (lambda ls: [set_field(ls[0], 1, "1.5")] + ls[1:], "line 1: cycle is 1.5, but it must be a positive whole number"),
        (lambda ls: ls[:2] + [ls[3], ls[2]] + ls[4:], "line 4: engine 1 goes from cycle 4 to cycle 3, but cycles must increase"),
        (lambda ls: ls[:6] + [set_field(ls[6], 8, "-5")] + ls[7:], "line 7: T50 (sensor_4) is -5, outside the plausible range 0 to 100000"),
        (lambda ls: ls[:6] + [set_field(ls[6], 8, "1e9")] + ls[7:], "line 7: T50 (sensor_4) is 1e+09, outside the plausible range"),
        (lambda ls: ls[:6] + [set_field(ls[6], 2, "5000")] + ls[7:], "line 7: altitude (setting_1) is 5000, outside the plausible range"),
    ],
    ids=["columns", "text", "nan", "inf", "duplicate", "cycle-zero", "cycle-fraction", "out-of-order", "negative",
         "huge-value", "setting"],
)
def test_bad_rows_are_refused_with_file_line_and_problem(
    pm_home: Path, tmp_path: Path, train_lines: list[str], edit: Callable, expected: str
) -> None:
    path = write(tmp_path / "train_FD001.txt", edit(list(train_lines)))
    message = refused(path)
    assert message.startswith(f"{path} ")
    assert expected in message
    assert message.count(".") >= 1 and "\n" not in message


def test_empty_and_blank_files(pm_home: Path, tmp_path: Path) -> None:
    (tmp_path / "train_FD001.txt").write_text("")
    (tmp_path / "train_FD002.txt").write_text("  \n\n")
    assert refused(tmp_path / "train_FD001.txt") == f"{tmp_path / 'train_FD001.txt'} is empty."
    assert refused(tmp_path / "train_FD002.txt").endswith("is empty.")


def test_binary_file_is_not_text(pm_home: Path, tmp_path: Path, cmapss_dir: Path) -> None:
    blob = tmp_path / "train_FD001.txt"
    blob.write_bytes(bytes(range(256)) * 4)
    assert "is not a text file: it contains binary data" in refused(blob)
    latin = ("train_FD003.txt", "1 1 caf\xe9".encode("latin-1"))
    assert "train_FD003.txt is not a text file: byte 8 is not valid UTF-8 text" in refused(latin)


def test_truncated_gzip(pm_home: Path, tmp_path: Path, cmapss_dir: Path) -> None:
    packed = cmapss_file(cmapss_dir, "train_FD001")
    data = packed.read_bytes() if packed.suffix == ".gz" else gzip.compress(packed.read_bytes())
    cut = tmp_path / "train_FD001.txt.gz"
    cut.write_bytes(data[: len(data) // 2])
    assert refused(cut) == f"{cut} is a truncated or corrupt gzip file: it ends before the end of its data."
    fake = tmp_path / "train_FD002.txt.gz"
    fake.write_text("1 1 2 3\n")
    assert refused(fake) == f"{fake} is named .gz but is not a gzip file."


def test_size_limits(pm_home: Path, tmp_path: Path, train_lines: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path / "train_FD001.txt", train_lines)
    monkeypatch.setenv("PM_MAX_FILE_MB", "0.01")
    assert "larger than the 0 MB limit for one file (set PM_MAX_FILE_MB to raise it)" in refused(path)
    bomb = tmp_path / "train_FD002.txt.gz"
    bomb.write_bytes(gzip.compress(b"0" * 200_000))
    assert bomb.stat().st_size < 10_000
    assert "unpacks to more than the 0 MB limit" in refused(bomb)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("112 \n12.5 \n", "RUL_FD001.txt line 2: '12.5' is not a whole number of cycles."),
        ("112 \n0 \n", "RUL_FD001.txt line 2: RUL is 0, but it must be a positive whole number of cycles"),
        ("112 98\n", "RUL_FD001.txt line 1 has 2 values but a RUL file needs one whole number per line."),
        ("", "RUL_FD001.txt is empty."),
    ],
    ids=["fraction", "zero", "two-values", "empty"],
)
def test_bad_rul_files(pm_home: Path, tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "RUL_FD001.txt"
    path.write_text(content)
    assert expected in refused(path)


def test_rul_count_must_match_test_units(pm_home: Path, tmp_path: Path, cmapss_slice: Slice) -> None:
    test = write(tmp_path / "test_FD001.txt", cmapss_slice("test_FD001", 3))
    rul = tmp_path / "RUL_FD001.txt"
    rul.write_text("112 \n98 \n")
    with pytest.raises(UserError, match=r"RUL_FD001.txt has 2 RUL values but test_FD001 has 3 engines; they must match\."):
        ingest.load([rul, test])


def test_failed_load_leaves_store_unchanged(pm_home: Path, tmp_path: Path, cmapss_slice: Slice) -> None:
    ingest.load([write(tmp_path / "train_FD001.txt", cmapss_slice("train_FD001", 2))])
    before = store_state()
    good = write(tmp_path / "test_FD001.txt", cmapss_slice("test_FD001", 3))
    rul = tmp_path / "RUL_FD001.txt"
    rul.write_text("112 \n98 \n69 \n")
    bad_lines = cmapss_slice("train_FD003", 2)
    bad = write(tmp_path / "train_FD003.txt", bad_lines[:3] + [bad_lines[2]] + bad_lines[3:])
    with pytest.raises(UserError, match="repeats engine 1 cycle 3"):
        ingest.load([good, rul, bad])
    assert store_state() == before


def test_loading_twice_is_a_noop(pm_home: Path, tmp_path: Path, cmapss_slice: Slice) -> None:
    files = [write(tmp_path / "test_FD001.txt", cmapss_slice("test_FD001", 3)), tmp_path / "RUL_FD001.txt"]
    files[1].write_text("112 \n98 \n69 \n")
    first = ingest.load(files)
    assert (first.readings_added > 0, first.truth_rows_added, first.skipped) == (True, 3, 0)
    state = store_state()
    renamed = tmp_path / "copy_of_test.txt"
    renamed.write_bytes(files[0].read_bytes())
    again = ingest.load([*files, renamed])
    assert (again.datasets_added, again.readings_added, again.truth_rows_added, again.skipped) == ([], 0, 0, 3)
    assert all(r.status == "duplicate" and "already loaded" in r.message for r in again.files)
    assert store_state() == state


def test_same_name_with_other_content_is_refused(pm_home: Path, tmp_path: Path, cmapss_slice: Slice) -> None:
    ingest.load([write(tmp_path / "train_FD001.txt", cmapss_slice("train_FD001", 2))])
    (tmp_path / "more").mkdir()
    other = write(tmp_path / "more" / "train_FD001.txt", cmapss_slice("train_FD001", 3))
    assert "differs from the history dataset train_FD001 already loaded; history datasets are not appended to: delete train_FD001 first" in refused(other)


def test_rul_before_test_in_separate_loads(pm_home: Path, tmp_path: Path, cmapss_slice: Slice) -> None:
    rul = tmp_path / "RUL_FD001.txt"
    rul.write_text("112 \n98 \n69 \n")
    first = ingest.load([rul])
    assert (first.datasets_added, first.truth_rows_added) == ([], 0)
    second = ingest.load([write(tmp_path / "test_FD001.txt", cmapss_slice("test_FD001", 3))])
    assert second.truth_rows_added == 3
    with store.connect(read_only=True) as con:
        assert queries.rul_truth(con, "test_FD001").values.tolist() == [[1, 112], [2, 98], [3, 69]]
        assert bool(queries.list_datasets(con)["has_truth"].iloc[0])


def test_rul_before_test_with_wrong_count_refuses_the_test(pm_home: Path, tmp_path: Path, cmapss_slice: Slice) -> None:
    rul = tmp_path / "RUL_FD001.txt"
    rul.write_text("112 \n98 \n")
    ingest.load([rul])
    before = store_state()
    test = write(tmp_path / "test_FD001.txt", cmapss_slice("test_FD001", 3))
    assert "has 3 engines but the RUL file loaded earlier for test_FD001 has 2 values" in refused(test)
    assert store_state() == before


def test_folder_skips_readme(pm_home: Path, tmp_path: Path, cmapss_slice: Slice) -> None:
    write(tmp_path / "train_FD004.txt", cmapss_slice("train_FD004", 1))
    (tmp_path / "readme.txt").write_text("Data Set: FD004\n")
    assert [r.name for r in ingest.inspect([tmp_path])] == ["train_FD004"]
    assert refused(tmp_path / "missing.txt") == f"{tmp_path / 'missing.txt'} does not exist."


def test_progress_is_reported(pm_home: Path, tmp_path: Path, train_lines: list[str]) -> None:
    seen: list[tuple[float, str]] = []
    ingest.load([write(tmp_path / "train_FD001.txt", train_lines)], progress=lambda f, m: seen.append((f, m)))
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0


# ----------------------------------------------------------------------------- all twelve files, CLI


@pytest.mark.slow
def test_all_twelve_files_load_then_reload_adds_nothing(pm_home: Path, cmapss_dir: Path) -> None:
    summary = ingest.load([cmapss_dir])
    assert (summary.readings_added, summary.truth_rows_added, len(summary.datasets_added)) == (265_256, 707, 8)
    with store.connect(read_only=True) as con:
        listing = queries.list_datasets(con).set_index("name")
    assert listing.loc["train_FD002", "engines"] == 260 and listing.loc["test_FD004", "rows"] == 41_214
    assert listing["has_truth"].sum() == 4
    again = ingest.load([cmapss_dir])
    assert (again.readings_added, again.truth_rows_added, again.skipped) == (0, 0, 12)


def run_cli(*args: str, home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PM_HOME": str(home), "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run([sys.executable, "-m", "core", "ingest", *args], cwd=REPO_ROOT, env=env,
                          check=False, capture_output=True, text=True, timeout=300)


def test_cli_exit_codes_and_sentence(pm_home: Path, tmp_path: Path, cmapss_slice: Slice) -> None:
    lines = cmapss_slice("train_FD001", 2)
    good = write(tmp_path / "train_FD001.txt", lines)
    bad = write(tmp_path / "train_FD002.txt", lines[:2] + [set_field(lines[2], 7, "x")])
    ok = run_cli(str(good), "--json", home=pm_home)
    assert ok.returncode == 0, ok.stderr
    result = json.loads(ok.stdout)
    assert (result["datasets_added"], result["readings_added"], result["store"]["readings"]) == (
        ["train_FD001"], len(lines), len(lines))
    failed = run_cli(str(bad), home=pm_home)
    assert failed.returncode == 1
    assert failed.stderr == f"error: {bad} line 3: T30 (sensor_3) is 'x', which is not a number.\n"
    assert "Traceback" not in failed.stdout + failed.stderr


def test_csv_header_must_name_the_columns(pm_home: Path, tmp_path: Path, train_lines: list[str]) -> None:
    header = ",".join(COLUMNS[:-1] + ["sensor_99"])
    path = write(tmp_path / "fleet.csv", [header] + [",".join(line.split()) for line in train_lines])
    assert refused(path) == (f"{path} has a header that lacks W32 (sensor_21); it must name the 26 columns engine "
                             "(or unit), cycle, the 3 settings and the 21 sensors, by NASA's names or the C-MAPSS "
                             "mnemonics.")
    text_first = write(tmp_path / "train_FD002.txt", [set_field(train_lines[0], 1, "one")] + train_lines[1:])
    assert refused(text_first) == f"{text_first} line 1: cycle is 'one', which is not a number."


# ----------------------------------------------------------------------------- columnar reads, limits, page jobs


def test_line_numbers_count_blank_lines_and_the_header(pm_home: Path, tmp_path: Path, train_lines: list[str]) -> None:
    nasa = list(train_lines[:8])
    nasa[6] = set_field(nasa[6], 8, "-5")
    nasa[2:2] = ["", ""]
    path = write(tmp_path / "train_FD001.txt", nasa)
    assert "line 9: T50 (sensor_4) is -5, outside the plausible range" in refused(path)
    rows = [",".join(line.split()) for line in train_lines[:8]]
    rows[5] = rows[5].replace(",", ",,", 1)
    csv = write(tmp_path / "fleet.csv", [",".join(COLUMNS), "", *rows])
    assert refused(csv) == (f"{csv} line 8 has 27 values but a C-MAPSS reading needs 26 (engine, cycle, 3 settings, "
                            "21 sensors).")


def test_spacing_other_than_nasa_s_is_read_by_the_columnar_reader(pm_home: Path, tmp_path: Path,
                                                                   train_lines: list[str],
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from core.data import parsing

    monkeypatch.setattr(parsing, "_explain", lambda *args: pytest.fail("the line pass ran on a valid file"))
    lines = ["  ".join(line.split()) + " \r" for line in train_lines]
    summary = ingest.load([write(tmp_path / "train_FD001.txt", lines)])
    assert summary.readings_added == len(train_lines)


def test_same_content_twice_in_one_load_is_parsed_once(pm_home: Path, tmp_path: Path, train_lines: list[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from core.data import parsing

    first = write(tmp_path / "fleet_a.txt", train_lines)
    second = write(tmp_path / "fleet_b.txt", train_lines)
    parsed = []
    real = parsing.parse_readings
    monkeypatch.setattr(ingest, "parse_readings", lambda blob, label: parsed.append(label) or real(blob, label))
    reports = ingest.inspect([first, second])
    assert [r.status for r in reports] == ["ok", "duplicate"]
    assert reports[1].message == f"{second} has the same content as {first} in this batch; skipped."
    assert parsed == [str(first)]


def test_parquet_rows_are_limited_before_reading(pm_home: Path, tmp_path: Path, train_lines: list[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    frame = pd.DataFrame([[float(v) for v in line.split()] for line in train_lines], columns=COLUMNS)
    path = tmp_path / "fleet.parquet"
    frame.to_parquet(path)
    monkeypatch.setenv("PM_MAX_ROWS", "100")
    assert refused(path) == (f"{path} holds {len(frame):,} rows, more than the 100 allowed in one Parquet file "
                             "(set PM_MAX_ROWS to raise it).")


@pytest.mark.slow
def test_folder_job_stops_when_its_page_stops_renewing(pm_home: Path, tmp_path: Path, train_lines: list[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from core.operations import ingest_job, jobs

    write(tmp_path / "train_FD001.txt", train_lines)
    monkeypatch.setenv("PM_IMPORT_ROOT", str(tmp_path))
    monkeypatch.setenv("PM_JOB_LEASE_S", "0")
    record = jobs.wait(ingest_job.start("load", ["train_FD001.txt"], None, None).id, timeout_s=120)
    assert (record.state, record.error) == (
        "cancelled", "The work was stopped because the page that started it was closed; nothing was written.")
    assert not (pm_home / "fleet.duckdb").exists()
    monkeypatch.setenv("PM_JOB_LEASE_S", "600")
    record = jobs.wait(ingest_job.start("load", ["train_FD001.txt"], None, None).id, timeout_s=120)
    assert record.state == "succeeded", record.error
    assert record.result["readings_added"] == len(train_lines)
