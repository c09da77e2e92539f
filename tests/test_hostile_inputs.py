"""Hostile inputs (issue 13): each is refused with one sentence naming the file and the limit or fault, and
nothing is written. Limits are lowered through the environment so the files stay small and the tests fast;
the peak memory of full-size refusals is measured by ``python -m core bench ingest --hostile``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from bench import hostile_files
from core.data import ingest, queries, store
from core.data.archives import Cancelled
from core.errors import UserError

Slice = Callable[..., list[str]]


@pytest.fixture
def lines(cmapss_slice: Slice) -> list[str]:
    return cmapss_slice("train_FD001", units=2)


@pytest.fixture
def hostile(tmp_path: Path) -> Path:
    folder = tmp_path / "hostile"
    folder.mkdir()
    return folder


def refusal(sources: list, **kwargs: object) -> str:
    """Load `sources`, expect one refusal, check it is one sentence and nothing reached the store."""
    with pytest.raises(UserError) as info:
        ingest.load(sources, **kwargs)
    message = str(info.value)
    assert "\n" not in message and message.endswith("."), message
    assert "Traceback" not in message
    return message


def assert_nothing_written(home: Path) -> None:
    if (home / "fleet.duckdb").exists():
        with store.connect(read_only=True) as con:
            assert queries.list_datasets(con).empty


def test_zip_bomb_of_valid_members_is_refused_at_the_unpacked_limit(
        pm_home: Path, hostile: Path, lines: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    values = [float(v) for v in lines[0].split()[2:]]
    bomb = hostile_files.zip_bomb(hostile, members=4, member_bytes=400_000, values=values)
    assert bomb.stat().st_size < 100_000
    monkeypatch.setenv("PM_MAX_UNPACKED_MB", "1")
    message = refusal([bomb])
    assert message.startswith("fleet_2.csv in fleet_bomb.zip takes the files of this load past the 1 MB limit")
    assert "PM_MAX_UNPACKED_MB" in message
    assert_nothing_written(pm_home)


def test_member_over_the_file_limit_is_stopped_by_the_bytes_it_produces(
        pm_home: Path, hostile: Path, lines: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    values = [float(v) for v in lines[0].split()[2:]]
    bomb = hostile_files.zip_bomb(hostile, members=1, member_bytes=400_000, values=values)
    monkeypatch.setenv("PM_MAX_FILE_MB", "0.1")
    assert "fleet_0.csv in fleet_bomb.zip" in refusal([bomb])
    assert_nothing_written(pm_home)


def test_zip_nested_1500_deep_is_refused_without_recursion(pm_home: Path, hostile: Path, lines: list[str]) -> None:
    deep = hostile_files.deep_zip(hostile, 1500, "train_FD001.txt", ("\n".join(lines) + "\n").encode())
    message = refusal([deep])
    assert message.endswith("in deep.zip nests zip files more than 3 deep, the limit (PM_MAX_ARCHIVE_DEPTH); "
                            "nothing was loaded.")
    assert_nothing_written(pm_home)


def test_nasa_depth_still_loads(pm_home: Path, hostile: Path, lines: list[str]) -> None:
    two_deep = hostile_files.deep_zip(hostile, 2, "train_FD001.txt", ("\n".join(lines) + "\n").encode())
    assert ingest.load([two_deep]).readings_added == len(lines)


def test_member_lying_about_its_size_is_refused(pm_home: Path, hostile: Path) -> None:
    lying = hostile_files.lying_zip(hostile, actual_bytes=3_000_000, declared_bytes=1_000)
    message = refusal([lying])
    assert message.startswith("train_FD001.txt in lying.zip is corrupt inside its zip file")
    assert_nothing_written(pm_home)


def test_too_many_zip_entries_are_refused(pm_home: Path, hostile: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PM_MAX_ARCHIVE_MEMBERS", "50")
    many = hostile_files.many_entries_zip(hostile, 60)
    assert refusal([many]) == (f"{many} holds more than the 50 zip entries allowed in one load (set "
                               "PM_MAX_ARCHIVE_MEMBERS to raise it); nothing was loaded.")
    assert_nothing_written(pm_home)


def test_not_a_zip_and_truncated_gzip(pm_home: Path, hostile: Path, lines: list[str]) -> None:
    fake = hostile_files.not_a_zip(hostile)
    assert refusal([fake]) == f"{fake} is named .zip but is not a zip file."
    cut = hostile_files.truncated_gzip(hostile, ("\n".join(lines) + "\n").encode())
    assert refusal([cut]) == f"{cut} is a truncated or corrupt gzip file: it ends before the end of its data."
    assert_nothing_written(pm_home)


def test_boolean_sensor_column_in_parquet_is_refused_not_coerced(pm_home: Path, hostile: Path,
                                                                lines: list[str]) -> None:
    path = hostile_files.boolean_parquet(hostile, lines)
    assert refusal([path]) == (f"{path}: P2 (sensor_5) holds true/false values, but it must hold numbers; nothing "
                               "was loaded.")
    assert_nothing_written(pm_home)


def test_datetime_cycle_column_in_parquet_is_refused_not_coerced(pm_home: Path, hostile: Path,
                                                                lines: list[str]) -> None:
    path = hostile_files.datetime_cycle_parquet(hostile, lines)
    assert refusal([path]) == (f"{path}: cycle holds dates or times, but it must hold whole numbers of cycles; "
                               "nothing was loaded.")
    assert_nothing_written(pm_home)


def test_excel_utf8_bom_csv_loads(pm_home: Path, hostile: Path, lines: list[str]) -> None:
    path = hostile_files.bom_csv(hostile, lines)
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    summary = ingest.load([path])
    assert summary.readings_added == len(lines)
    with store.connect(read_only=True) as con:
        assert queries.engines(con, "fleet_excel")["engine"].tolist() == ["1", "2"]


def test_paths_outside_the_import_root_read_the_same_whether_they_exist_or_not(pm_home: Path, tmp_path: Path,
                                                                              lines: list[str]) -> None:
    root = tmp_path / "imports"
    root.mkdir()
    (root / "train_FD001.txt").write_text("\n".join(lines) + "\n")
    messages = [refusal([path], root=root) for path in ("/etc/passwd", "/etc/no-such-file", "../../etc")]
    assert messages == [f"{path} is not inside the import folder {root}; only files under it can be read here."
                        for path in ("/etc/passwd", "/etc/no-such-file", "../../etc")]
    assert ingest.load(["train_FD001.txt"], root=root).readings_added == len(lines)


def test_symlinks_leaving_the_import_root_are_refused(pm_home: Path, tmp_path: Path, lines: list[str]) -> None:
    root = tmp_path / "imports"
    outside = tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "train_FD002.txt").write_text("\n".join(lines) + "\n")
    (root / "elsewhere").symlink_to(outside, target_is_directory=True)
    (root / "train_FD002.txt").symlink_to(outside / "train_FD002.txt")
    assert refusal([root / "elsewhere"], root=root).startswith(f"{root / 'elsewhere'} is not inside the import folder")
    assert refusal([root], root=root).startswith(f"{root / 'train_FD002.txt'} is not inside the import folder")
    assert ingest.load([outside / "train_FD002.txt"]).readings_added == len(lines), "the CLI reads any path"


def test_cancelled_work_stops_with_nothing_written(pm_home: Path, hostile: Path, lines: list[str]) -> None:
    deep = hostile_files.deep_zip(hostile, 2, "train_FD001.txt", ("\n".join(lines) + "\n").encode())
    asked = []

    def cancelled() -> bool:
        asked.append(1)
        return True

    with pytest.raises(Cancelled, match="nothing was written"):
        ingest.load([deep], cancelled=cancelled)
    assert asked
    assert_nothing_written(pm_home)


# ----------------------------------------------------------------------------- hostile names (issue 24)

HOSTILE_NAMES = [
    ("\x1b", "an escape character (U+001B)"),
    ("\x07", "a bell character (U+0007)"),
    ("\r", "a carriage return (U+000D)"),
    ("\n", "a line feed (U+000A)"),
    ("\x00", "a null character (U+0000)"),
    ("\u200b", "a zero-width space (U+200B)"),
    ("\u202e", "the invisible format character right-to-left override (U+202E)"),
]
"""Each hostile character and how a refusal names it."""
CSV_TEXT = [(c, d) for c, d in HOSTILE_NAMES if c != "\x00"]
"""What a CSV field can carry (a NUL makes the file binary, refused as such)."""


def with_engine_ids(lines: list[str], second: str) -> pd.DataFrame:
    """The readings of `lines` with engine 1 named ESN-1 and engine 2 named `second`."""
    frame = hostile_files.readings_frame(lines)
    ids = frame.pop("unit").map({1: "ESN-1", 2: second})
    return frame.assign(engine=ids)[["engine", *frame.columns]]


@pytest.mark.parametrize(("char", "described"), CSV_TEXT)
def test_csv_engine_ids_with_control_or_format_characters_are_refused(
        pm_home: Path, hostile: Path, lines: list[str], char: str, described: str) -> None:
    frame = with_engine_ids(lines, f"ESN{char}-2")
    first_row_of_engine_2 = int((frame["engine"] != "ESN-1").to_numpy().argmax())
    upload = ("fleet_names.csv", frame.to_csv(index=False).encode())
    assert refusal([upload]) == (f"fleet_names.csv line {first_row_of_engine_2 + 2}: the engine id 'ESN…' contains "
                                 f"{described} at position 4.")
    assert_nothing_written(pm_home)


@pytest.mark.parametrize(("char", "described"), HOSTILE_NAMES)
def test_parquet_engine_ids_with_control_or_format_characters_are_refused(
        pm_home: Path, hostile: Path, lines: list[str], char: str, described: str) -> None:
    path = hostile / "fleet_names.parquet"
    frame = with_engine_ids(lines, f"ESN{char}-2")
    frame.to_parquet(path)
    first = int((frame["engine"] != "ESN-1").to_numpy().argmax())
    assert refusal([path]) == (f"{path} row {first + 1}: the engine id 'ESN…' contains {described} at position 4.")
    assert_nothing_written(pm_home)


@pytest.mark.parametrize(("char", "described"), HOSTILE_NAMES)
def test_dataset_names_with_control_or_format_characters_are_refused(
        pm_home: Path, hostile: Path, lines: list[str], char: str, described: str) -> None:
    nasa = hostile / "train_FD001.txt"
    nasa.write_text("\n".join(lines) + "\n")
    assert refusal([nasa], dataset=f"line{char}[2J") == (
        f"The dataset name 'line…' contains {described} at position 5.")
    with pytest.raises(UserError, match="^The dataset name 'line…' contains"):
        ingest.inspect([nasa], dataset=f"line{char}[2J")
    upload = (f"line{char}A.txt", ("\n".join(lines) + "\n").encode())
    message = refusal([upload])
    assert message.endswith(f": the dataset name 'line…' contains {described} at position 5, taken from the file "
                            "name; give the dataset another name or rename the file.")
    assert char not in message
    assert_nothing_written(pm_home)


def test_look_alike_engine_ids_in_files_are_one_engine(pm_home: Path, hostile: Path, lines: list[str]) -> None:
    frame = with_engine_ids(lines, "ESN-2")
    cycles = frame["cycle"].to_numpy()
    last = int(cycles[(frame["engine"] == "ESN-2").to_numpy()].max())
    half = (frame["engine"] == "ESN-2").to_numpy() & (cycles > last // 2)
    frame.loc[half, "engine"] = "ＥＳＮ-2"
    frame.loc[frame["engine"] == "ESN-1", "engine"] = " ESN-1 "
    path = hostile / "fleet_fold.csv"
    frame.to_csv(path, index=False)
    assert ingest.load([path], dataset="ｌｉｎｅ-A").datasets_added == ["line-A"]
    with store.connect(read_only=True) as con:
        assert queries.engines(con, "line-A")["engine"].tolist() == ["ESN-1", "ESN-2"]
        assert queries.find_engine(con, "ｌｉｎｅ-A", "ＥＳＮ-2")["last_cycle"] == last
